//! The DynamoDB ledger with the real aws-sdk-dynamodb against moto's
//! server: the behaviour every store has (the conformance check the SQLite
//! backend runs too), an unreachable DynamoDB, and what the items hold.

use crate::common::moto::{settings_for, Moto};
use crate::common::tools::free_port;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use session_ca::{
    create_dynamodb_table, dynamodb_client, store_conformance, DynamoDbStore, Store, StoreError,
};

const RETENTION: Duration = Duration::from_secs(store_conformance::RETENTION_DAYS as u64 * 86_400);

/// moto, a fresh ledger table in it, and a store on that table with the
/// signer's own client settings.
async fn ledger(table: &str) -> (Moto, DynamoDbStore, aws_sdk_dynamodb::Client) {
    let moto = Moto::start();
    let setup = moto.dynamodb_client().await;
    create_dynamodb_table(&setup, table).await.unwrap();
    // A second creation leaves it as it is.
    create_dynamodb_table(&setup, table).await.unwrap();
    let store = DynamoDbStore::new(dynamodb_client(&moto.settings()).await, table, RETENTION);
    (moto, store, setup)
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_behaves_as_every_store() {
    let (_moto, store, setup) = ledger("session-ca-ledger").await;
    assert_eq!(store.describe(), "dynamodb:session-ca-ledger");
    store_conformance::check(&store).await;

    let ttl = setup
        .describe_time_to_live()
        .table_name("session-ca-ledger")
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    let table = setup
        .describe_table()
        .table_name("session-ca-ledger")
        .send()
        .await
        .unwrap();
    let mut indexes: Vec<_> = table
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["gsi_requester", "gsi_session", "gsi_transaction"]);
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_crl_numbers_hold_across_two_clients_of_one_table() {
    let (moto, a, _setup) = ledger("session-ca-revocations").await;
    let b = DynamoDbStore::new(
        dynamodb_client(&moto.settings()).await,
        "session-ca-revocations",
        RETENTION,
    );
    store_conformance::check_revocations(&a, &b).await;
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_retention_hides_older_records_at_once() {
    let (moto, written, _setup) = ledger("session-ca-shorter").await;
    let shorter = DynamoDbStore::new(
        dynamodb_client(&moto.settings()).await,
        "session-ca-shorter",
        std::time::Duration::from_secs(store_conformance::SHORTER_RETENTION_DAYS as u64 * 86_400),
    );
    store_conformance::check_shortened_retention(&written, &shorter).await;
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_holds_across_two_clients_of_one_table() {
    let (moto, a, _setup) = ledger("session-ca-fleet").await;
    let b = DynamoDbStore::new(
        dynamodb_client(&moto.settings()).await,
        "session-ca-fleet",
        RETENTION,
    );
    store_conformance::check_fleet(&a, &b).await;
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_skip_records_past_retention_without_ending_early() {
    let (_moto, store, _setup) = ledger("ledger-retention").await;
    let t0: i64 = 1_800_000_000;
    // Twelve records of one session, every other one long past retention,
    // interleaved in time with the live ones.
    for i in 0..12i64 {
        let at = if i % 2 == 0 {
            t0 + i
        } else {
            t0 - 90 * 86_400 + i
        };
        let r = store_conformance::record(&format!("0c{i:02x}"), "s-r", None, None, at);
        store.record(&r).await.unwrap();
    }
    let mut query = session_ca::LedgerQuery {
        key: session_ca::LedgerKey::SessionId("s-r".into()),
        since: None,
        until: None,
        limit: 2,
        cursor: None,
        now: t0 + 60,
    };
    let mut pages = Vec::new();
    loop {
        let page = store.query(&query).await.unwrap();
        pages.push(
            page.records
                .iter()
                .map(|r| r.serial.clone())
                .collect::<Vec<_>>(),
        );
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
        assert!(pages.len() <= 6, "{pages:?}");
    }
    assert_eq!(
        pages,
        [["0c00", "0c02"], ["0c04", "0c06"], ["0c08", "0c0a"]],
        "full pages, then none"
    );
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dynamodb_is_unavailable_naming_the_table() {
    let port = free_port();
    let store = DynamoDbStore::new(
        dynamodb_client(&settings_for(port)).await,
        "ledger-nowhere",
        RETENTION,
    );
    let r = store_conformance::record("0d01", "s-1", None, None, 1_800_000_000);
    let started = std::time::Instant::now();
    let err = store.record(&r).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ledger-nowhere")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let query = session_ca::LedgerQuery {
        key: session_ca::LedgerKey::SessionId("s-1".into()),
        since: None,
        until: None,
        limit: 10,
        cursor: None,
        now: 1_800_000_000,
    };
    let err = store.query(&query).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ledger-nowhere")),
        "{err:?}"
    );
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_hold_no_private_key_and_expire_after_retention() {
    let (_moto, store, setup) = ledger("ledger-items").await;
    let records = [
        store_conformance::record("0e01", "s-1", Some("tx-1"), Some("hmac-a"), 1_800_000_000),
        store_conformance::record("0e02", "s-2", None, None, 1_800_000_100),
    ];
    for r in &records {
        store.record(r).await.unwrap();
    }
    // The test alone scans; the store never does.
    let items = setup
        .scan()
        .table_name("ledger-items")
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    assert_eq!(items.len(), records.len());
    for item in &items {
        let text = format!("{item:?}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        let Some(AttributeValue::S(serial)) = item.get("serial") else {
            panic!("no serial: {item:?}");
        };
        let record = records.iter().find(|r| &r.serial == serial).unwrap();
        let expected = record.not_after + RETENTION.as_secs() as i64;
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(expected.to_string())),
            "{serial}"
        );
        assert_eq!(
            item.get("pk"),
            Some(&AttributeValue::S(format!("CERT#{serial}")))
        );
        // Only the indexes it has a value for.
        assert_eq!(
            item.contains_key("t_pk"),
            record.transaction_id.is_some(),
            "{serial}"
        );
        assert_eq!(
            item.contains_key("r_pk"),
            record.requester.is_some(),
            "{serial}"
        );
    }
}

/// The signer configured with `store.url = "dynamodb:TABLE"` records what
/// it issues there, before answering.
#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_with_a_dynamodb_ledger_records_what_it_issues() {
    let (moto, _store, _setup) = ledger("signer-ledger").await;
    let ledger = session_ca::open_ledger(
        &session_ca::StoreSpec::parse("dynamodb:signer-ledger").unwrap(),
        RETENTION,
        session_ca::StoreSync::Full,
        &moto.settings(),
        &session_ca::Metrics::Off,
    )
    .await
    .unwrap();
    let service = crate::common::TestService::new().await;
    let mut state = service.state.clone();
    state.ledger = ledger.clone();
    let reply = crate::common::issue_json(
        &state,
        serde_json::json!({"session_id": crate::common::SESSION_ID, "transaction_id": "tx-dynamo"}),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let page = ledger
        .store()
        .unwrap()
        .query(&session_ca::LedgerQuery {
            key: session_ca::LedgerKey::TransactionId("tx-dynamo".into()),
            since: None,
            until: None,
            limit: 10,
            cursor: None,
            now: crate::common::t0().unix_timestamp(),
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].serial, body["serial"].as_str().unwrap());
    assert_eq!(
        page.records[0].certificate,
        body["certificate"].as_str().unwrap()
    );
}

/// deploy/template.yaml's table has the keys, indexes and TTL attribute the
/// store uses (checked against the table `create_table` makes in moto, by
/// name: a drift would make every write fail in AWS).
#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_table_matches_the_stores() {
    let (_moto, _store, setup) = ledger("template-check").await;
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/template.yaml"))
            .unwrap();
    let table = setup
        .describe_table()
        .table_name("template-check")
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    for key in table.key_schema() {
        let line = format!(
            "{{ AttributeName: {}, KeyType: {} }}",
            key.attribute_name(),
            key.key_type().as_str()
        );
        assert!(template.contains(&line), "template lacks {line}");
    }
    for index in table.global_secondary_indexes() {
        let name = index.index_name().unwrap();
        assert!(template.contains(&format!("IndexName: {name}")), "{name}");
        for key in index.key_schema() {
            let line = format!(
                "{{ AttributeName: {}, KeyType: {} }}",
                key.attribute_name(),
                key.key_type().as_str()
            );
            assert!(template.contains(&line), "template lacks {line} of {name}");
        }
    }
    assert!(template.contains(&format!(
        "AttributeName: {}\n        Enabled: true",
        session_ca::DYNAMODB_TTL_ATTRIBUTE
    )));
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_fails_closed_while_dynamodb_is_away_or_throttles_and_recovers() {
    use crate::common::faulty_proxy::{Fault, FaultyProxy};
    use crate::common::{issue_json, Reply, TestService, SESSION_ID};
    // Nothing listens on `port` yet: the table is unreachable from the start.
    let port = free_port();
    let proxy = FaultyProxy::start(&format!("http://127.0.0.1:{port}"), Fault::None).await;
    let service = TestService::new().await;
    let mut state = service.state.clone();
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(DynamoDbStore::new(
        dynamodb_client(&settings_for(proxy.port)).await,
        "ledger-faults",
        RETENTION,
    )));
    let request = serde_json::json!({"session_id": SESSION_ID});
    let refused = |reply: Reply, why: &str| {
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (503, "ledger_unavailable"),
            "{why}"
        );
        assert!(reply.json().get("certificate").is_none(), "{why}");
    };
    refused(issue_json(&state, request.clone()).await, "unreachable");

    // DynamoDB comes up on that port: the same signer recovers, no restart.
    let moto = Moto::start_on(Some(port));
    create_dynamodb_table(&moto.dynamodb_client().await, "ledger-faults")
        .await
        .unwrap();
    assert_eq!(issue_json(&state, request.clone()).await.status, 201);

    // Throttled twice: the SDK's retries absorb it.
    let before = proxy.seen();
    proxy.set(Fault::Throttle { remaining: 2 });
    assert_eq!(issue_json(&state, request.clone()).await.status, 201);
    assert_eq!(proxy.seen().throttled - before.throttled, 2);
    // Throttled beyond the retries: no certificate.
    proxy.set(Fault::Throttle { remaining: 1000 });
    refused(issue_json(&state, request.clone()).await, "throttled");
    proxy.set(Fault::None);
    assert_eq!(issue_json(&state, request).await.status, 201);
}
