//! The behaviour every [`Store`] must have, as one async check that the
//! SQLite unit tests and the DynamoDB tests (against moto) both run, so the
//! two backends cannot drift. Public for those tests; not an API.
#![doc(hidden)]

use super::{
    Begun, Hit, Idempotent, Lease, LedgerKey, LedgerQuery, LedgerRecord, Reason, Revocation, Store,
    StoreError,
};

/// The retention the store under test must have been built with: 30 days.
pub const RETENTION_DAYS: i64 = 30;

/// A record issued at `issued_at` (Unix seconds), valid 5 minutes.
pub fn record(
    serial: &str,
    session: &str,
    transaction: Option<&str>,
    requester: Option<&str>,
    issued_at: i64,
) -> LedgerRecord {
    LedgerRecord {
        serial: serial.to_owned(),
        fingerprint_sha256: format!("{serial:0>64}"),
        ca: "default".into(),
        profile: "default".into(),
        requester: requester.map(str::to_owned),
        request_id: format!("req-{serial}"),
        session_id: session.to_owned(),
        transaction_id: transaction.map(str::to_owned),
        claims: vec![
            ("agent".into(), "\"iOS ✓\"".into()),
            ("geo".into(), r#"{"lat":"52.1"}"#.into()),
        ],
        key_type: "ecdsa-p256".into(),
        not_before: issued_at - 30,
        not_after: issued_at + 300,
        issued_at,
        certificate: format!(
            "-----BEGIN CERTIFICATE-----\nMII{serial}\n-----END CERTIFICATE-----\n"
        ),
    }
}

fn query(key: LedgerKey, now: i64) -> LedgerQuery {
    LedgerQuery {
        key,
        since: None,
        until: None,
        limit: 100,
        cursor: None,
        now,
    }
}

fn serials(records: &[LedgerRecord]) -> Vec<&str> {
    records.iter().map(|r| r.serial.as_str()).collect()
}

/// Records a small ledger into an empty `store` (built with
/// [`RETENTION_DAYS`]) and checks every query, paging, windows, duplicate
/// refusal and retention. Panics with what differs.
pub async fn check(store: &dyn Store) {
    let t0: i64 = 1_800_000_000;
    let day = 86_400;
    let records = [
        record(
            "0a01",
            "s-1",
            Some("tx-1"),
            Some("arn:aws:iam::1:role/a"),
            t0,
        ),
        record(
            "0a02",
            "s-1",
            Some("tx-2"),
            Some("arn:aws:iam::1:role/a"),
            t0 + 10,
        ),
        record("0a03", "s-2", Some("tx-2"), None, t0 + 20),
        record("0a04", "s-1", None, Some("hmac-key-b"), t0 + 20),
        // Expired beyond retention by the time of the queries below.
        record(
            "0a05",
            "s-1",
            Some("tx-1"),
            Some("arn:aws:iam::1:role/a"),
            t0 - 40 * day,
        ),
    ];
    for r in &records {
        store
            .record(r)
            .await
            .unwrap_or_else(|e| panic!("{}: record {}: {e}", store.describe(), r.serial));
    }
    // Never overwritten.
    let mut again = records[0].clone();
    again.session_id = "s-9".into();
    match store.record(&again).await {
        Err(StoreError::Duplicate(serial)) => assert_eq!(serial, "0a01"),
        other => panic!("{}: a second record of 0a01: {other:?}", store.describe()),
    }

    let now = t0 + 60;
    let page = store
        .query(&query(LedgerKey::SessionId("s-1".into()), now))
        .await
        .unwrap();
    assert_eq!(
        serials(&page.records),
        ["0a01", "0a02", "0a04"],
        "{}: by session",
        store.describe()
    );
    assert_eq!(
        page.records[0],
        records[0],
        "{}: the record as written",
        store.describe()
    );
    assert_eq!(page.next, None);
    let page = store
        .query(&query(LedgerKey::TransactionId("tx-2".into()), now))
        .await
        .unwrap();
    assert_eq!(
        serials(&page.records),
        ["0a02", "0a03"],
        "{}: by transaction",
        store.describe()
    );
    let page = store
        .query(&query(
            LedgerKey::Requester("arn:aws:iam::1:role/a".into()),
            now,
        ))
        .await
        .unwrap();
    assert_eq!(
        serials(&page.records),
        ["0a01", "0a02"],
        "{}: by requester",
        store.describe()
    );
    let page = store
        .query(&query(LedgerKey::Serial("0a03".into()), now))
        .await
        .unwrap();
    assert_eq!(
        serials(&page.records),
        ["0a03"],
        "{}: by serial",
        store.describe()
    );
    let page = store
        .query(&query(LedgerKey::Serial("0bff".into()), now))
        .await
        .unwrap();
    assert!(page.records.is_empty());
    // Past retention: not returned (whether or not it is deleted yet).
    let page = store
        .query(&query(LedgerKey::Serial("0a05".into()), now))
        .await
        .unwrap();
    assert!(
        page.records.is_empty(),
        "{}: 0a05 is past retention",
        store.describe()
    );
    // ... but within it, it is.
    let page = store
        .query(&query(
            LedgerKey::Serial("0a05".into()),
            t0 - 40 * day + 3600,
        ))
        .await
        .unwrap();
    assert_eq!(serials(&page.records), ["0a05"], "{}", store.describe());

    // Windows: since inclusive, until exclusive.
    let mut windowed = query(LedgerKey::SessionId("s-1".into()), now);
    windowed.since = Some(t0 + 10);
    windowed.until = Some(t0 + 20);
    let page = store.query(&windowed).await.unwrap();
    assert_eq!(
        serials(&page.records),
        ["0a02"],
        "{}: window",
        store.describe()
    );

    // Pages of one, followed to the end, give each record once, in order.
    let mut paged = query(LedgerKey::SessionId("s-1".into()), now);
    paged.limit = 1;
    let mut seen = Vec::new();
    loop {
        let page = store.query(&paged).await.unwrap();
        assert!(page.records.len() <= 1);
        seen.extend(page.records.iter().map(|r| r.serial.clone()));
        match page.next {
            Some(next) => paged.cursor = Some(next),
            None => break,
        }
        assert!(
            seen.len() <= 3,
            "{}: paging does not end: {seen:?}",
            store.describe()
        );
    }
    assert_eq!(
        seen,
        ["0a01", "0a02", "0a04"],
        "{}: paging",
        store.describe()
    );
    let mut bad = query(LedgerKey::SessionId("s-1".into()), now);
    bad.cursor = Some("not a cursor".into());
    assert!(matches!(
        store.query(&bad).await,
        Err(StoreError::BadQuery(_))
    ));

    // A cursor is good for the query that gave it alone: not edited, not
    // for another key or window (which would skip or repeat records).
    let mut first = query(LedgerKey::SessionId("s-1".into()), now);
    first.limit = 1;
    let cursor = store.query(&first).await.unwrap().next.unwrap();
    let (at, rest) = cursor.split_once('.').unwrap();
    let edited = format!("{}.{rest}", at.parse::<i64>().unwrap() + 1);
    let mut other_key = first.clone();
    other_key.key = LedgerKey::SessionId("s-2".into());
    let mut other_window = first.clone();
    other_window.since = Some(t0);
    for (cursor, mut asked, why) in [
        (edited, first.clone(), "edited"),
        (cursor.to_ascii_uppercase(), first.clone(), "upper case"),
        (cursor.clone(), other_key, "another key"),
        (cursor.clone(), other_window, "another window"),
    ] {
        asked.cursor = Some(cursor);
        assert!(
            matches!(store.query(&asked).await, Err(StoreError::BadQuery(_))),
            "{}: a cursor {why}",
            store.describe()
        );
    }
    first.cursor = Some(cursor);
    first.limit = 100;
    assert_eq!(
        serials(&store.query(&first).await.unwrap().records),
        ["0a02", "0a04"],
        "{}: the cursor of the query that gave it",
        store.describe()
    );
}

/// The retention the shorter-lived client of [`check_shortened_retention`]
/// must have been built with: 10 days.
pub const SHORTER_RETENTION_DAYS: i64 = 10;

/// Two clients of one empty store: `written` built with
/// [`RETENTION_DAYS`], `shorter` with [`SHORTER_RETENTION_DAYS`] (as after
/// a restart with `store.retention` lowered). A record written under the
/// longer retention is not returned past the shorter one, whatever expiry
/// it was stamped with.
pub async fn check_shortened_retention(written: &dyn Store, shorter: &dyn Store) {
    let now: i64 = 1_800_000_000;
    let day = 86_400;
    let old = record("0b01", "s-kept", None, None, now - 20 * day);
    let recent = record("0b02", "s-kept", None, None, now - day);
    for r in [&old, &recent] {
        written.record(r).await.unwrap();
    }
    let asked = query(LedgerKey::SessionId("s-kept".into()), now);
    assert_eq!(
        serials(&written.query(&asked).await.unwrap().records),
        ["0b01", "0b02"],
        "{}: within the retention it was written with",
        written.describe()
    );
    assert_eq!(
        serials(&shorter.query(&asked).await.unwrap().records),
        ["0b02"],
        "{}: past the retention kept now",
        shorter.describe()
    );
    let by_serial = query(LedgerKey::Serial("0b01".into()), now);
    assert!(shorter.query(&by_serial).await.unwrap().records.is_empty());
}

/// A rule revoking `key` at `at`, for `expires`.
pub fn rule(key: LedgerKey, at: i64, expires: Option<i64>) -> Revocation {
    Revocation {
        key,
        reason: Reason::KeyCompromise,
        revoked_at: at,
        expires,
        revoked_by: "admin".into(),
        request_id: format!("req-revoke-{at}"),
    }
}

/// Checks revocation rules and counters through two clients `a` and `b` of
/// one empty store: a rule stored through one is in force for the other at
/// once, until its end; rules are listed by time; the revision grows with
/// each rule; CRL numbers only grow, whichever client asks. Panics with
/// what differs.
pub async fn check_revocations(a: &dyn Store, b: &dyn Store) {
    let t0: i64 = 1_800_000_000;
    let name = a.describe();
    let session = LedgerKey::SessionId("s-rev".into());
    let requester = LedgerKey::Requester("arn:aws:iam::1:role/rev".into());
    let transaction = LedgerKey::TransactionId("tx-rev".into());
    let keys = [session.clone(), transaction.clone(), requester.clone()];
    assert_eq!(
        b.revoked(&keys, t0).await.unwrap(),
        None,
        "{name}: none yet"
    );
    let revision = b.revision().await.unwrap();

    let permanent = rule(session.clone(), t0, None);
    a.revoke(&permanent).await.unwrap();
    let found = b.revoked(&keys, t0).await.unwrap();
    assert_eq!(
        found.as_ref(),
        Some(&permanent),
        "{name}: seen by the other client"
    );
    assert_eq!(
        b.revoked(&keys, t0 - 60).await.unwrap().as_ref(),
        Some(&permanent),
        "{name}: in force for a clock behind the one that revoked"
    );
    assert!(
        b.revision().await.unwrap() > revision,
        "{name}: revision grows"
    );

    let held = rule(requester.clone(), t0 + 10, Some(t0 + 100));
    b.revoke(&held).await.unwrap();
    let only_requester = [requester.clone()];
    assert_eq!(
        a.revoked(&only_requester, t0 + 50).await.unwrap().as_ref(),
        Some(&held),
        "{name}: a rule with an end, in force"
    );
    assert_eq!(
        a.revoked(&only_requester, t0 + 100).await.unwrap(),
        None,
        "{name}: a rule with an end, ended"
    );
    assert_eq!(
        a.revoked(&[transaction], t0 + 50).await.unwrap(),
        None,
        "{name}: other keys are not revoked"
    );
    // The same key revoked again: the rule still in force answers.
    let again = rule(requester.clone(), t0 + 20, None);
    a.revoke(&again).await.unwrap();
    assert_eq!(
        b.revoked(&only_requester, t0 + 200).await.unwrap().as_ref(),
        Some(&again),
        "{name}: the later, permanent rule"
    );

    // The last check of an issuance, made once its record is on file: a
    // rule stored through the other client since this one last looked is
    // found, and keys no rule names are not refused.
    let late = LedgerKey::SessionId("s-rev-late".into());
    let late_keys = [late.clone()];
    assert_eq!(
        b.revoked(&late_keys, t0 + 30).await.unwrap(),
        None,
        "{name}: not revoked yet"
    );
    let signed_meanwhile = rule(late.clone(), t0 + 30, None);
    a.revoke(&signed_meanwhile).await.unwrap();
    let on_file = record("0fe1", "s-rev-late", None, None, t0 + 30);
    assert_eq!(
        b.record_then_revoked(on_file, &late_keys, t0 + 30)
            .await
            .unwrap()
            .as_ref(),
        Some(&signed_meanwhile),
        "{name}: a rule stored while the certificate was signed"
    );
    let clean = record("0fe2", "s-rev-clean", None, None, t0 + 30);
    assert_eq!(
        b.record_then_revoked(
            clean.clone(),
            &[LedgerKey::SessionId("s-rev-clean".into())],
            t0 + 30
        )
        .await
        .unwrap(),
        None,
        "{name}: a session no rule names"
    );
    match b
        .record_then_revoked(
            clean,
            &[LedgerKey::SessionId("s-rev-clean".into())],
            t0 + 30,
        )
        .await
    {
        Err(StoreError::Duplicate(serial)) => assert_eq!(serial, "0fe2", "{name}"),
        other => panic!("{name}: a second record of one serial: {other:?}"),
    }

    let listed = b.revocations_since(t0 + 5).await.unwrap();
    assert_eq!(
        listed,
        [held.clone(), again.clone(), signed_meanwhile.clone()],
        "{name}: rules since"
    );
    assert_eq!(a.revocations_since(t0).await.unwrap().len(), 4, "{name}");

    let mut last = 0;
    for i in 0..6 {
        let client = if i % 2 == 0 { a } else { b };
        let number = client.next_crl_number("default").await.unwrap();
        assert!(number > last, "{name}: CRL number {number} after {last}");
        last = number;
    }
    let other = a.next_crl_number("other").await.unwrap();
    assert!(other >= 1, "{name}: each CA has its own counter");
}

fn lease(id: &str, token: &str, fingerprint: &str, now: i64, lease_until: i64) -> Lease {
    Lease {
        id: id.to_owned(),
        fingerprint: fingerprint.to_owned(),
        token: token.to_owned(),
        now,
        lease_until,
        expires: now + 600,
    }
}

/// Checks the shared state of [`super::fleet`] through two clients `a` and
/// `b` of one store: counters count once per hit across both (also under
/// concurrency), a claim is single-use until it expires, and of two
/// idempotent requests one takes the lease while the other finds it,
/// pending then done, and a lease is finished or abandoned only by its
/// holder. Panics with what differs.
pub async fn check_fleet(a: &dyn Store, b: &dyn Store) {
    let t0: i64 = 1_800_000_000;
    let name = a.describe();

    // Counters: each hit one more, whichever client counts it.
    let hits = [
        Hit {
            counter: "rate#p#caller#c1#60#1800000000".into(),
            expires: t0 + 120,
        },
        Hit {
            counter: "rate#p#session#s1#60#1800000000".into(),
            expires: t0 + 120,
        },
    ];
    assert_eq!(a.count(&hits).await.unwrap(), [1, 1], "{name}: first hits");
    assert_eq!(b.count(&hits).await.unwrap(), [2, 2], "{name}: through b");
    assert_eq!(
        a.count(&hits[1..]).await.unwrap(),
        [3],
        "{name}: one counter"
    );
    let counter = [Hit {
        counter: "rate#p#caller#c2#60#1800000000".into(),
        expires: t0 + 120,
    }];
    let concurrent = (0..32).map(|i| if i % 2 == 0 { a } else { b }.count(&counter));
    let mut seen: Vec<u64> = futures_util::future::join_all(concurrent)
        .await
        .into_iter()
        .map(|counts| counts.unwrap()[0])
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=32).collect::<Vec<u64>>(),
        "{name}: 32 concurrent hits, each its own count"
    );

    // Claims: single-use until they expire.
    assert!(a.claim("hmac#0011", t0, t0 + 300).await.unwrap());
    assert!(!b.claim("hmac#0011", t0 + 1, t0 + 301).await.unwrap());
    assert!(!a.claim("hmac#0011", t0 + 300, t0 + 600).await.unwrap());
    assert!(
        b.claim("hmac#0011", t0 + 301, t0 + 601).await.unwrap(),
        "{name}: an expired claim is free again"
    );
    assert!(b.claim("hmac#0022", t0, t0 + 300).await.unwrap());

    // Idempotency: one lease, seen pending, then done, by the other client.
    let first = lease("e1", "token-a", "fp-1", t0, t0 + 30);
    let second = lease("e1", "token-b", "fp-1", t0 + 1, t0 + 31);
    assert_eq!(
        b.idempotent("e1", t0).await.unwrap(),
        None,
        "{name}: none yet"
    );
    assert_eq!(a.begin(&first).await.unwrap(), Begun::Started);
    assert_eq!(
        b.begin(&second).await.unwrap(),
        Begun::Exists(Idempotent::Pending {
            fingerprint: "fp-1".into(),
            lease_until: t0 + 30
        }),
        "{name}: a retry finds the first request pending"
    );
    assert!(
        matches!(
            b.finish(&second, b"not mine").await,
            Err(StoreError::Duplicate(_))
        ),
        "{name}: only the holder finishes a lease"
    );
    b.abandon(&second).await.unwrap();
    let sealed = b"nonce+ciphertext+tag".to_vec();
    a.finish(&first, &sealed).await.unwrap();
    let done = Idempotent::Done {
        fingerprint: "fp-1".into(),
        sealed: sealed.clone(),
    };
    assert_eq!(
        b.begin(&second).await.unwrap(),
        Begun::Exists(done.clone()),
        "{name}: a retry finds the sealed response"
    );
    assert_eq!(b.idempotent("e1", t0 + 2).await.unwrap(), Some(done));
    a.abandon(&first).await.unwrap();
    assert!(
        matches!(
            b.idempotent("e1", t0 + 3).await.unwrap(),
            Some(Idempotent::Done { .. })
        ),
        "{name}: a finished entry is not abandoned"
    );
    assert_eq!(
        a.idempotent("e1", t0 + 601).await.unwrap(),
        None,
        "{name}: past its expiry an entry is gone"
    );
    assert_eq!(
        a.begin(&lease("e1", "token-c", "fp-2", t0 + 601, t0 + 631))
            .await
            .unwrap(),
        Begun::Started,
        "{name}: and its id free again"
    );

    // An abandoned lease is free at once; a dead holder's after lease_until.
    let held = lease("e2", "token-a", "fp-1", t0, t0 + 30);
    assert_eq!(a.begin(&held).await.unwrap(), Begun::Started);
    a.abandon(&held).await.unwrap();
    assert_eq!(b.idempotent("e2", t0).await.unwrap(), None);
    assert_eq!(b.begin(&held).await.unwrap(), Begun::Started);
    let takeover = lease("e2", "token-b", "fp-1", t0 + 31, t0 + 61);
    assert_eq!(
        a.begin(&takeover).await.unwrap(),
        Begun::Started,
        "{name}: a lease past lease_until is taken over"
    );
    assert!(matches!(
        b.finish(&held, b"late").await,
        Err(StoreError::Duplicate(_))
    ));

    // Of concurrent beginners exactly one takes the lease.
    let contenders: Vec<Lease> = (0..16)
        .map(|i| lease("e3", &format!("token-{i}"), "fp-1", t0, t0 + 30))
        .collect();
    let begun = futures_util::future::join_all(
        contenders
            .iter()
            .enumerate()
            .map(|(i, l)| if i % 2 == 0 { a } else { b }.begin(l)),
    )
    .await;
    let started = begun
        .iter()
        .filter(|b| matches!(b, Ok(Begun::Started)))
        .count();
    assert_eq!(started, 1, "{name}: one of 16 concurrent begins: {begun:?}");

    // Taking a lease and counting in one call: counted only when taken.
    let limits = [Hit {
        counter: "rate#p#caller#c3#60#1800000000".into(),
        expires: t0 + 120,
    }];
    let taker = lease("e4", "token-a", "fp-1", t0, t0 + 30);
    let (begun, counts) = a.begin_counting(&taker, &limits).await.unwrap();
    assert_eq!(
        begun,
        Begun::Started,
        "{name}: begin_counting takes a free lease"
    );
    assert_eq!(
        counts.map(Result::unwrap),
        Some(vec![1]),
        "{name}: and counts"
    );
    let retry = lease("e4", "token-b", "fp-1", t0 + 1, t0 + 31);
    let (begun, counts) = b.begin_counting(&retry, &limits).await.unwrap();
    assert!(
        matches!(begun, Begun::Exists(Idempotent::Pending { .. })),
        "{name}: a retry finds the lease held: {begun:?}"
    );
    assert!(counts.is_none(), "{name}: and is not counted");
    let (begun, counts) = b
        .begin_counting(&lease("e5", "token-a", "fp-1", t0, t0 + 30), &[])
        .await
        .unwrap();
    assert_eq!(begun, Begun::Started);
    assert!(counts.is_none(), "{name}: no hits, no counts");
    assert_eq!(
        a.count(&limits).await.unwrap(),
        [2],
        "{name}: only the taken lease was counted"
    );
}
