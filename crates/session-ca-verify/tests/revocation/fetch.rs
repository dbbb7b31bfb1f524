//! The `crl-fetch` feature against a real HTTP server: a std TcpListener
//! answering every GET with the body currently set.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_ca_verify::{CrlRefresher, VerifyError, VerifyErrorKind};

use crate::pki::{crl_der, Pki};
use crate::{assert_revoked, now, revoking, verifier, HOUR};

/// Serves `(status, body)` as it is at each request; returns the base URL.
fn serve(answer: Arc<Mutex<(u16, Vec<u8>)>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let (status, body) = answer.lock().unwrap().clone();
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/pkix-crl\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn refresh_from_loads_a_served_crl_and_keeps_the_last_good_one() {
    let pki = Pki::new();
    let verifier = verifier(&pki, now(), &[]).unwrap();
    let answer = Arc::new(Mutex::new((200, crl_der(&revoking(&pki)))));
    let url = format!("{}/issuing.crl", serve(answer.clone()));

    assert_eq!(verifier.crls().refresh_from(&url).unwrap(), 1);
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());

    // Garbage, an error status and a forged CRL keep the last good CRL.
    *answer.lock().unwrap() = (200, b"<html>not a CRL</html>".to_vec());
    let err = verifier.crls().refresh_from(&url).unwrap_err();
    assert!(matches!(err, VerifyError::UnusableCrl { .. }), "{err:?}");
    *answer.lock().unwrap() = (404, Vec::new());
    let err = verifier
        .crls()
        .refresh_from(&format!("{url}?token=s3cret"))
        .unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::RevocationUnavailable);
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let impostor = pki.other_ca("impostor", "/CN=Issuing");
    *answer.lock().unwrap() = (
        200,
        pki.crl(&impostor, &[], now(), now() + HOUR).into_bytes(),
    );
    assert!(verifier.crls().refresh_from(&url).is_err());
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());
    verifier.verify(&pki.chain(&pki.good)).unwrap();

    // Nothing listening: a fetch error, the CRL kept.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/x.crl", closed.local_addr().unwrap());
    drop(closed);
    let err = verifier.crls().refresh_from(&dead).unwrap_err();
    assert!(matches!(err, VerifyError::CrlFetch { .. }), "{err:?}");
    assert_eq!(verifier.crls().len(), 1);
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn the_refresher_swaps_in_new_crls_until_stopped() {
    let pki = Pki::new();
    let verifier = verifier(&pki, now(), &[]).unwrap();
    let answer = Arc::new(Mutex::new((200, crl_der(&revoking(&pki)))));
    let url = format!("{}/issuing.crl", serve(answer.clone()));
    let (tx, rx) = mpsc::channel();
    let refresher = CrlRefresher::spawn(
        verifier.crls().clone(),
        &url,
        Duration::from_millis(50),
        move |outcome| {
            let _ = tx.send(outcome.map_err(|e| e.to_string()));
        },
    )
    .unwrap();
    let wait = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(wait(), Ok(1));
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());

    // The server breaks: failures are reported, the CRL stays.
    *answer.lock().unwrap() = (200, b"garbage".to_vec());
    let err = std::iter::repeat_with(wait).find_map(Result::err).unwrap();
    assert!(err.contains("not a CRL"), "{err}");
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());

    // A newer CRL that revokes the other certificate instead is picked up.
    *answer.lock().unwrap() = (
        200,
        crl_der(&pki.crl(&pki.issuing, &[&pki.good], now(), now() + HOUR)),
    );
    std::iter::repeat_with(wait)
        .find(Result::is_ok)
        .unwrap()
        .unwrap();
    verifier.verify(&pki.chain(&pki.revoked)).unwrap();
    assert!(verifier.verify(&pki.chain(&pki.good)).is_err());

    refresher.stop();
    // Stopped: the channel's sender went with the thread.
    while rx.recv_timeout(Duration::from_secs(10)).is_ok() {}
    assert!(CrlRefresher::spawn(
        verifier.crls().clone(),
        "https://x/y",
        Duration::from_secs(1),
        |_| {}
    )
    .is_err());
}
