//! Many instances behave as one: rate limits, HMAC replay refusal and
//! idempotent retries kept in the store, through the router on a SQLite
//! store (with the store failing where a test says so). The same features
//! across real `serve` processes sharing moto's DynamoDB, and one `serve`
//! on SQLite: `fleet_processes.rs`.

use crate::common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;
use session_ca::{
    AppState, BoxFuture, Ledger, LedgerKey, LedgerQuery, SqliteStore, Store, StoreError,
};

/// The fixed "now" of these tests: the start of the current minute. (Not
/// `t0()`: the store deletes what has expired by the wall clock, and
/// counters, claims and leases made in the past have.)
fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    time::OffsetDateTime::from_unix_timestamp(now - now % 60).unwrap()
}

/// A service with a CA made a day before [`now`] and its clock at `now`.
async fn service_now() -> TestService {
    TestService::with(
        session_ca::KeyType::EcdsaP256,
        false,
        now() - time::Duration::days(1),
        365,
        now(),
    )
    .await
}

/// A test service whose ledger is a SQLite store in its directory and
/// whose configuration adds `extra` (profiles with limits).
async fn service_with_store(extra: &str) -> (TestService, AppState, Arc<SqliteStore>) {
    let service = service_now().await;
    let path = service.dir.path().join("ledger.sqlite3");
    let text = config_text(
        &service.ca_dir(),
        &format!("[store]\nurl = \"sqlite:{}\"\n{extra}", path.display()),
    );
    let mut state = state_from_toml(&text, now(), now()).await;
    let store = Arc::new(SqliteStore::open(&path, session_ca::DEFAULT_RETENTION).unwrap());
    state.ledger = Ledger::new(store.clone());
    (service, state, store)
}

fn issue_request(body: &str, key: Option<&str>) -> Request<Body> {
    let mut request =
        Request::post("/v1/certificates").header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn records_of_session(store: &dyn Store, session: &str) -> usize {
    store
        .query(&LedgerQuery {
            key: LedgerKey::SessionId(session.into()),
            since: None,
            until: None,
            limit: 1000,
            cursor: None,
            now: now().unix_timestamp(),
        })
        .await
        .unwrap()
        .records
        .len()
}

/// Asserts `reply` is a 429 `rate_limited` naming `limit`.
fn assert_limited(reply: &Reply, limit: &str) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.json()
    );
    assert_eq!(reply.code(), "rate_limited");
    assert!(reply.message().contains(limit), "{}", reply.message());
}

/// `state` with its clock `after` [`now`].
fn state_at(state: &AppState, after: time::Duration) -> AppState {
    let mut later = state.clone();
    later.clock = Arc::new(session_ca::FixedClock::new(now() + after));
    later
}

const LIMITED: &str = r#"
[profiles.limited]
ca = "default"
rate_limit = { per_caller = "3/min", per_session = "2/min" }
[profiles.limited_open]
ca = "default"
rate_limit = { per_caller = "1/min", on_store_error = "open" }
[profiles.limited_closed]
ca = "default"
rate_limit = { per_caller = "1/min" }
"#;

#[tokio::test]
async fn rate_limits_refuse_with_429_and_retry_after_until_the_window_ends() {
    let (_service, state, _store) = service_with_store(LIMITED).await;
    // per_session = 2/min: the third request of one session is refused.
    let session = json!({"profile": "limited", "session_id": SESSION_ID}).to_string();
    for _ in 0..2 {
        let reply = send(&state, issue_request(&session, None)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    }
    let refused = send(&state, issue_request(&session, None)).await;
    assert_limited(&refused, "per_session");
    // The clock is on a minute: the window ends in 60 s.
    assert_eq!(refused.headers[header::RETRY_AFTER], "60");
    // Dry runs count for nothing; fresh sessions are under per_caller = 3/min,
    // which the refused request above used up too.
    let dry = send(
        &state,
        Request::post("/v1/certificates?dry_run=true")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(session.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.json());
    let fresh = json!({"profile": "limited"}).to_string();
    let reply = send(&state, issue_request(&fresh, None)).await;
    assert_limited(&reply, "per_caller");
    // A later window starts from zero.
    let later = state_at(&state, time::Duration::minutes(1));
    let reply = send(&later, issue_request(&session, None)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    // Other profiles are not limited.
    let reply = send(&state, issue_request("{}", None)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn keyed_requests_are_counted_as_their_lease_is_taken_and_replays_never() {
    // per_caller = 3/min. A keyed first request takes its lease and is
    // counted in one store call; its replays, however many, are not.
    let (_service, state, _store) = service_with_store(LIMITED).await;
    let body = json!({"profile": "limited"}).to_string();
    let first = send(&state, issue_request(&body, Some("limit-key-0123456789a"))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    for _ in 0..3 {
        let replay = send(&state, issue_request(&body, Some("limit-key-0123456789a"))).await;
        assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.json());
        assert_eq!(replay.headers["idempotent-replayed"], "true");
    }
    let second = send(&state, issue_request(&body, Some("limit-key-0123456789b"))).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.json());
    let third = send(&state, issue_request(&body, None)).await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.json());
    // The fourth certificate is one too many, keyed or not.
    let fourth = send(&state, issue_request(&body, Some("limit-key-0123456789c"))).await;
    assert_limited(&fourth, "per_caller");
    // Refused, the key has no response stored: a retry of it in the next
    // window gets a certificate of its own, not a replay.
    let later = state_at(&state, time::Duration::minutes(1));
    let retried = send(&later, issue_request(&body, Some("limit-key-0123456789c"))).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.json());
    assert!(retried.headers.get("idempotent-replayed").is_none());
}

/// RSA keys are generated only by aws-lc builds (ring cannot).
#[cfg(feature = "aws-lc")]
#[tokio::test]
async fn rsa_keys_have_a_limit_of_their_own() {
    let (_service, state, _store) = service_with_store(
        "[profiles.rsa]\nca = \"default\"\nkey_types = [\"ecdsa-p256\", \"rsa-2048\"]\n\
         rate_limit = { rsa_per_caller = \"1/min\", per_caller = \"10/min\" }\n",
    )
    .await;
    let rsa = json!({"profile": "rsa", "key_type": "rsa-2048"}).to_string();
    let ecdsa = json!({"profile": "rsa"}).to_string();
    let first = send(&state, issue_request(&rsa, None)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    let refused = send(&state, issue_request(&rsa, None)).await;
    assert_limited(&refused, "rsa_per_caller");
    // Other key types are counted only per caller.
    let other = send(&state, issue_request(&ecdsa, None)).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.json());
}

#[tokio::test]
async fn a_limit_holds_exactly_under_concurrency_32() {
    let (_service, state, _store) = service_with_store(
        "[profiles.ten]\nca = \"default\"\nrate_limit = { per_caller = \"10/h\" }\n",
    )
    .await;
    let body = json!({"profile": "ten"}).to_string();
    let replies =
        futures_util::future::join_all((0..32).map(|_| send(&state, issue_request(&body, None))))
            .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (10, 22));
}

#[tokio::test]
async fn an_idempotent_retry_gets_the_first_response_and_no_second_certificate() {
    let (service, state, store) = service_with_store("").await;
    let body = json!({"session_id": SESSION_ID, "transaction_id": "tx-idem"}).to_string();
    let key = "retry-key-0123456789abcdef";
    let first = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.json());
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(again.body, first.body, "the same response, key included");
    assert_eq!(records_of_session(store.as_ref(), SESSION_ID).await, 1);

    // The same key with another body: 422; a fresh key: a new certificate.
    let other = json!({"session_id": SESSION_ID, "transaction_id": "tx-other"}).to_string();
    let reused = send(&state, issue_request(&other, Some(key))).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "idempotency_key_reused");
    let fresh = send(&state, issue_request(&body, Some("another-key-0123456789"))).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    assert_ne!(fresh.json()["serial"], first.json()["serial"]);
    assert_eq!(records_of_session(store.as_ref(), SESSION_ID).await, 2);

    // A malformed key is refused on a dry run too.
    let dry = send(
        &state,
        Request::post("/v1/certificates?dry_run=true")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "too-short")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(dry.status, StatusCode::BAD_REQUEST);

    // Revoked by its serial since: the replay is refused, not handed out.
    let serial = first.json()["serial"].as_str().unwrap().to_owned();
    let rule = session_ca::store_conformance::rule(
        LedgerKey::Serial(serial),
        now().unix_timestamp(),
        None,
    );
    store.revoke(&rule).await.unwrap();
    let revoked = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(revoked.status, StatusCode::FORBIDDEN, "{}", revoked.json());
    assert_eq!(revoked.code(), "revoked");

    // A malformed key is refused before anything happens.
    for bad in ["short", "has spaces in it 0123", "ünïcode-0123456789"] {
        let mut request = issue_request(&body, None);
        request.headers_mut().insert(
            "idempotency-key",
            header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
        );
        let reply = send(&state, request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.code(), "invalid_request");
        assert!(
            reply.message().contains("Idempotency-Key"),
            "{}",
            reply.message()
        );
    }
    // So is the header given twice, even with two well-formed keys.
    let mut twice = issue_request(&body, Some(key));
    twice.headers_mut().append(
        "idempotency-key",
        header::HeaderValue::from_static("another-key-0123456789"),
    );
    let reply = send(&state, twice).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(reply.message().contains("once"), "{}", reply.message());

    // The stored response is sealed: neither the private key, nor its
    // base64 body, nor the certificate is in the file in any form.
    drop(state);
    let issued = first.json();
    let private_key = issued["private_key"].as_str().unwrap();
    let key_body: String = private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut bytes = std::fs::read(service.dir.path().join("ledger.sqlite3")).unwrap();
    bytes.extend(std::fs::read(service.dir.path().join("ledger.sqlite3-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    for needle in [
        "PRIVATE KEY",
        &key_body[..40],
        &key_body[key_body.len() - 40..],
        key,
    ] {
        assert!(!text.contains(needle), "{needle:?} is in the store");
    }
    let der = base64_decode(&key_body);
    assert!(
        !bytes.windows(der.len()).any(|w| w == der.as_slice()),
        "the key's DER is in the store"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn a_retry_after_the_certificate_expired_gets_a_new_one() {
    let (_service, state, store) = service_with_store("").await;
    let body = json!({"session_id": SESSION_ID, "ttl_seconds": 300}).to_string();
    let key = "expiry-key-0123456789abcdef";
    let first = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    let later = state_at(&state, time::Duration::seconds(301));
    let retry = send(&later, issue_request(&body, Some(key))).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.json());
    assert!(
        retry.headers.get("idempotent-replayed").is_none(),
        "a dead certificate is not replayed"
    );
    assert_ne!(retry.json()["serial"], first.json()["serial"]);
    assert_eq!(records_of_session(store.as_ref(), SESSION_ID).await, 2);
}

#[tokio::test]
async fn concurrent_duplicates_get_one_certificate() {
    let (_service, state, store) = service_with_store("").await;
    let body = json!({"session_id": SESSION_ID, "transaction_id": "tx-dup"}).to_string();
    let replies = futures_util::future::join_all((0..100).map(|_| {
        send(
            &state,
            issue_request(&body, Some("dup-key-0123456789abcdef")),
        )
    }))
    .await;
    let serials: std::collections::BTreeSet<String> = replies
        .iter()
        .filter(|r| r.status.is_success())
        .map(|r| r.json()["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serials.len(), 1, "{serials:?}");
    for reply in &replies {
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::CONFLICT,
            "{}: {}",
            reply.status,
            reply.json()
        );
    }
    assert_eq!(records_of_session(store.as_ref(), SESSION_ID).await, 1);
}

/// A store whose ledger writes take `delay` (a slow disk), and whose
/// counting, claims or idempotency entries fail while `broken` is set.
#[derive(Debug)]
struct Faulty {
    inner: SqliteStore,
    delay: Duration,
    broken: AtomicBool,
}

fn down() -> StoreError {
    StoreError::Unavailable("test: the store is down".into())
}

impl Store for Faulty {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn record<'a>(
        &'a self,
        record: &'a session_ca::LedgerRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.record(record).await
        })
    }
    fn query<'a>(
        &'a self,
        query: &'a LedgerQuery,
    ) -> BoxFuture<'a, Result<session_ca::LedgerPage, StoreError>> {
        self.inner.query(query)
    }
    fn revoke<'a>(
        &'a self,
        rule: &'a session_ca::Revocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.revoke(rule)
    }
    fn revoked<'a>(
        &'a self,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<session_ca::Revocation>, StoreError>> {
        self.inner.revoked(keys, now)
    }
    fn revocations_since(
        &self,
        since: i64,
    ) -> BoxFuture<'_, Result<Vec<session_ca::Revocation>, StoreError>> {
        self.inner.revocations_since(since)
    }
    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.revision()
    }
    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.next_crl_number(ca)
    }
    fn count<'a>(
        &'a self,
        hits: &'a [session_ca::Hit],
    ) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        if self.broken.load(Ordering::SeqCst) {
            return Box::pin(async { Err(down()) });
        }
        self.inner.count(hits)
    }
    fn claim<'a>(
        &'a self,
        name: &'a str,
        now: i64,
        expires: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        if self.broken.load(Ordering::SeqCst) {
            return Box::pin(async { Err(down()) });
        }
        self.inner.claim(name, now, expires)
    }
    fn begin<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
    ) -> BoxFuture<'a, Result<session_ca::Begun, StoreError>> {
        if self.broken.load(Ordering::SeqCst) {
            return Box::pin(async { Err(down()) });
        }
        self.inner.begin(lease)
    }
    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<session_ca::Idempotent>, StoreError>> {
        self.inner.idempotent(id, now)
    }
    fn finish<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.finish(lease, sealed)
    }
    fn abandon<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.abandon(lease)
    }
}

async fn faulty_service(delay: Duration) -> (TestService, AppState, Arc<Faulty>) {
    let (service, mut state, _) = service_with_store(LIMITED).await;
    let store = Arc::new(Faulty {
        inner: SqliteStore::open(
            &service.dir.path().join("ledger.sqlite3"),
            session_ca::DEFAULT_RETENTION,
        )
        .unwrap(),
        delay,
        broken: AtomicBool::new(false),
    });
    state.ledger = Ledger::new(store.clone());
    (service, state, store)
}

#[tokio::test]
async fn a_duplicate_of_a_slow_first_request_waits_then_gets_409_with_retry_after() {
    // The first request's ledger write takes longer than a duplicate waits.
    let (_service, state, _store) = faulty_service(Duration::from_secs(4)).await;
    let body = json!({"session_id": SESSION_ID}).to_string();
    let key = "slow-key-0123456789abcdef";
    let first = tokio::spawn({
        let state = state.clone();
        let body = body.clone();
        async move { send(&state, issue_request(&body, Some(key))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let duplicate = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(
        duplicate.status,
        StatusCode::CONFLICT,
        "{}",
        duplicate.json()
    );
    assert_eq!(duplicate.code(), "idempotency_in_progress");
    // The first request usually answers within milliseconds: a second.
    assert_eq!(duplicate.headers[header::RETRY_AFTER], "1");
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED);
    // Once the first is answered, its retry gets the same response.
    let retry = send(&state, issue_request(&body, Some(key))).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
}

/// The first request's holder is presumed dead once its lease has lapsed:
/// a duplicate that sees it lapse while it waits takes the lease over and
/// is served, instead of waiting out its time and getting 409.
#[tokio::test]
async fn a_duplicate_takes_over_a_lease_that_lapses_while_it_waits() {
    let (_service, mut state, _store) = faulty_service(Duration::from_secs(4)).await;
    let clock = StepClock::at(now());
    state.clock = clock.clone();
    let body = json!({"session_id": SESSION_ID}).to_string();
    let key = "lapse-key-0123456789abcdef";
    let first = tokio::spawn({
        let state = state.clone();
        let body = body.clone();
        async move { send(&state, issue_request(&body, Some(key))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let duplicate = tokio::spawn({
        let state = state.clone();
        let body = body.clone();
        async move { send(&state, issue_request(&body, Some(key))).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Past the lease (at least 30 s) while the duplicate waits.
    clock.set(now() + time::Duration::minutes(2));
    let duplicate = duplicate.await.unwrap();
    assert_eq!(
        duplicate.status,
        StatusCode::CREATED,
        "{}",
        duplicate.json()
    );
    let _ = first.await;
}

#[tokio::test]
async fn store_faults_fail_closed_except_where_a_limit_says_open() {
    let (_service, state, store) = faulty_service(Duration::ZERO).await;
    store.broken.store(true, Ordering::SeqCst);
    let closed = send(
        &state,
        issue_request(r#"{"profile":"limited_closed"}"#, None),
    )
    .await;
    assert_eq!(closed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(closed.code(), "ledger_unavailable");
    assert!(
        !closed.message().contains("test: the store is down"),
        "the cause stays in the log"
    );
    let open = send(&state, issue_request(r#"{"profile":"limited_open"}"#, None)).await;
    assert_eq!(open.status, StatusCode::CREATED, "{}", open.json());
    // Idempotency always fails closed, and a request without a key is not
    // held up by it.
    let keyed = send(
        &state,
        issue_request("{}", Some("down-key-0123456789abcdef")),
    )
    .await;
    assert_eq!(keyed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(keyed.code(), "ledger_unavailable");
    let plain = send(&state, issue_request("{}", None)).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    // Recovery needs no restart.
    store.broken.store(false, Ordering::SeqCst);
    let keyed = send(
        &state,
        issue_request("{}", Some("down-key-0123456789abcdef")),
    )
    .await;
    assert_eq!(keyed.status, StatusCode::CREATED, "{}", keyed.json());
    let closed = send(
        &state,
        issue_request(r#"{"profile":"limited_closed"}"#, None),
    )
    .await;
    assert_eq!(closed.status, StatusCode::CREATED, "{}", closed.json());
}

const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-fleet";

/// Signer state with `auth = "hmac"` on the CA of `service`, sharing the
/// SQLite store at `ledger` (its own client of the file, as another
/// instance would have).
async fn hmac_instance(service: &TestService, ledger: &std::path::Path) -> (AppState, Arc<Faulty>) {
    let text = format!(
        "[server]\nauth = \"hmac\"\n[hmac_keys.payments-fn]\nsecret_env = \"TEST_FLEET_SECRET\"\n\
         [store]\nurl = \"sqlite:{}\"\n[cas.default]\nsource = \"file:{}\"\n[profiles.default]\n",
        ledger.display(),
        service.ca_dir().display()
    );
    let env = std::collections::BTreeMap::from([(
        "TEST_FLEET_SECRET".to_owned(),
        HMAC_SECRET.to_owned(),
    )]);
    let config =
        session_ca::Config::from_toml(session_ca::ConfigOrigin::Embedded, &text, &env, &[])
            .unwrap();
    let mut state = service.at(now(), now()).await;
    state.config = Arc::new(config);
    let store = Arc::new(Faulty {
        inner: SqliteStore::open(ledger, session_ca::DEFAULT_RETENTION).unwrap(),
        delay: Duration::ZERO,
        broken: AtomicBool::new(false),
    });
    state.ledger = Ledger::new(store.clone());
    (state, store)
}

fn signed(body: &str, nonce: &str) -> Request<Body> {
    let secret = session_ca_client::hmac::Secret::new(HMAC_SECRET.as_bytes()).unwrap();
    let authorization = session_ca_client::hmac::authorization_with_nonce(
        "payments-fn",
        &secret,
        "POST",
        "/v1/certificates",
        now().unix_timestamp(),
        nonce,
        body.as_bytes(),
    );
    Request::post("/v1/certificates")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, authorization)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_signed_request_accepted_by_one_instance_is_refused_by_every_other() {
    let service = service_now().await;
    let ledger = service.dir.path().join("ledger.sqlite3");
    let (a, _) = hmac_instance(&service, &ledger).await;
    let (b, b_store) = hmac_instance(&service, &ledger).await;
    let body = r#"{"transaction_id":"tx-hmac"}"#;
    let first = send(&a, signed(body, "nonce-fleet-0000000001")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    // The same signed request replayed to the other instance (whose own
    // memory has never seen it).
    let replayed = send(&b, signed(body, "nonce-fleet-0000000001")).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replayed.code(), "unauthenticated");
    assert!(
        replayed.message().contains("already used"),
        "{}",
        replayed.message()
    );
    let fresh = send(&b, signed(body, "nonce-fleet-0000000002")).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.json());
    // Replay refusal fails closed: with the store down, nothing is issued.
    b_store.broken.store(true, Ordering::SeqCst);
    let down = send(&b, signed(body, "nonce-fleet-0000000003")).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.code(), "ledger_unavailable");
    // Recovered, a request signed anew (as clients sign every attempt) is issued.
    b_store.broken.store(false, Ordering::SeqCst);
    let back = send(&b, signed(body, "nonce-fleet-0000000004")).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.json());
}

/// The error codes of a shared store, produced through the router (for
/// `api::every_error_code_in_the_spec_is_produced_and_no_other`): every
/// refusal of these requests, by code.
pub(crate) async fn store_error_codes() -> std::collections::BTreeSet<String> {
    let mut refusals = Vec::new();
    let (_service, state, _store) = service_with_store(LIMITED).await;
    // rate_limited: limited_closed admits one request a minute.
    for _ in 0..2 {
        refusals.push(
            send(
                &state,
                issue_request(r#"{"profile":"limited_closed"}"#, None),
            )
            .await,
        );
    }
    // idempotency_key_reused: the same key with another body.
    let key = "codes-key-0123456789abcdef";
    refusals.push(send(&state, issue_request("{}", Some(key))).await);
    refusals.push(send(&state, issue_request(r#"{"ttl_seconds":60}"#, Some(key))).await);
    // idempotency_in_progress: a duplicate of a first request whose ledger
    // write outlasts the duplicate's wait.
    let (_service, slow, _store) = faulty_service(Duration::from_secs(4)).await;
    let first = tokio::spawn({
        let slow = slow.clone();
        async move { send(&slow, issue_request("{}", Some(key))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    refusals.push(send(&slow, issue_request("{}", Some(key))).await);
    assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
    refusals
        .iter()
        .filter(|r| !r.status.is_success())
        .map(|r| r.code())
        .collect()
}

/// The store's calls are measured by operation, its failures counted, and
/// a refusal by a rate limit counted by profile and limit too.
#[tokio::test]
async fn store_calls_failures_and_rate_limits_are_in_the_metrics() {
    let (_service, mut state, store) = faulty_service(Duration::ZERO).await;
    let registry = Arc::new(session_ca::PrometheusRegistry::new());
    let metrics = session_ca::Metrics::Prometheus(registry.clone());
    state.metrics = metrics.clone();
    state.ledger = Ledger::new(Arc::new(session_ca::MeteredStore::new(
        store.clone(),
        metrics,
    )));
    store.broken.store(true, Ordering::SeqCst);
    let closed = send(
        &state,
        issue_request(r#"{"profile":"limited_closed"}"#, None),
    )
    .await;
    assert_eq!(closed.code(), "ledger_unavailable");
    store.broken.store(false, Ordering::SeqCst);
    let session = json!({"profile": "limited", "session_id": SESSION_ID}).to_string();
    for _ in 0..2 {
        let reply = send(&state, issue_request(&session, None)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    }
    assert_limited(
        &send(&state, issue_request(&session, None)).await,
        "per_session",
    );

    let text = String::from_utf8(registry.exposition(&[], now())).unwrap();
    let sample = |series: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    for (series, value) in [
        (r#"session_ca_store_errors_total{operation="count"}"#, 1.0),
        (
            r#"session_ca_store_duration_seconds_count{operation="count"}"#,
            4.0,
        ),
        (
            r#"session_ca_store_errors_total{operation="record_then_revoked"}"#,
            0.0,
        ),
        (
            r#"session_ca_store_duration_seconds_count{operation="record_then_revoked"}"#,
            2.0,
        ),
        (
            r#"session_ca_refusals_total{code="ledger_unavailable"}"#,
            1.0,
        ),
        (r#"session_ca_refusals_total{code="rate_limited"}"#, 1.0),
        (
            r#"session_ca_rate_limited_total{limit="per_session",profile="limited"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(series), Some(value), "{series} in\n{text}");
    }
}
