//! CRLs of a CA whose key is in AWS KMS (moto): in direct custody the CRL
//! is signed by the KMS key itself and openssl verifies it against the CA
//! certificate; a delegated CA, whose issuing key each instance makes for
//! itself, answers 409 `crl_unavailable` saying why.

use crate::common::moto::Moto;
use crate::common::{get, issue_json, tools};
use crate::kms::{kms_ca, kms_config, kms_state};

use std::sync::Arc;

use aws_sdk_kms::types::KeySpec;
use serde_json::json;
use session_ca::{Ledger, SharedClock, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server and openssl; run scripts/test"]
async fn a_kms_ca_signs_its_crl_in_direct_custody_and_says_why_not_when_delegated() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP384, dir.path()).await;
    let clock: SharedClock = Arc::new(session_ca::SystemClock);
    let ledger = Ledger::new(Arc::new(
        SqliteStore::open(
            &dir.path().join("ledger.sqlite3"),
            session_ca::DEFAULT_RETENTION,
        )
        .unwrap(),
    ));

    let mut direct = kms_state(
        kms_config(&key_id, dir.path(), None),
        &moto.settings(),
        clock.clone(),
    )
    .await;
    direct.ledger = ledger.clone();
    let issued = issue_json(&direct, json!({"transaction_id": "tx-kms-crl"})).await;
    assert_eq!(issued.status, 201);
    let serial = issued.json()["serial"].as_str().unwrap().to_owned();
    std::fs::write(
        dir.path().join("chain.pem"),
        crate::common::chain_of(&issued.json()),
    )
    .unwrap();
    let revoked = crate::common::send(
        &direct,
        axum::http::Request::post("/v1/revocations")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"serial": serial, "reason": "keyCompromise"}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(revoked.status, 201);
    let crl = get(&direct, "/v1/crl?format=pem").await;
    assert_eq!(crl.status, 200, "{}", String::from_utf8_lossy(&crl.body));
    std::fs::write(dir.path().join("crl.pem"), &crl.body).unwrap();
    let out = tools::run(
        "openssl",
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-verify",
            "-text",
        ],
        dir.path(),
    );
    let text = tools::output_text(&out);
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.contains("ecdsa-with-SHA384"),
        "signed by the P-384 KMS key: {text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains(&serial.trim_start_matches("00").to_ascii_lowercase()),
        "{serial} listed: {text}"
    );

    let mut delegated = kms_state(
        kms_config(&key_id, dir.path(), Some("1h")),
        &moto.settings(),
        clock,
    )
    .await;
    delegated.ledger = ledger;
    let store = Arc::clone(delegated.ledger.store().unwrap());
    let before = store.next_crl_number("default").await.unwrap();
    for _ in 0..2 {
        let reply = get(&delegated, "/v1/crl").await;
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (409, "crl_unavailable")
        );
        assert!(reply.message().contains("delegate"), "{}", reply.message());
    }
    // Refused before any work: no CRL number spent on a CRL that cannot
    // be signed (the route is public).
    assert_eq!(store.next_crl_number("default").await.unwrap(), before + 1);
    // Whatever the ledger: without one it is the same 409, not a 404.
    delegated.ledger = session_ca::Ledger::off();
    let reply = get(&delegated, "/v1/crl").await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (409, "crl_unavailable")
    );
}
