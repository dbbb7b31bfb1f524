//! The embedded ledger alone: records per second and process CPU per
//! record for the SQLite store under `CONCURRENCY` concurrent writers (as
//! `serve` has at that many requests in flight), and CPU per revocation
//! check (three keys, none revoked: what every issuance asks). Records are
//! shaped as a busy production signer's: a new UUID session and a random
//! transaction id each (the worst case for their indexes), four IAM
//! callers, 20,000 a second, a PEM certificate of a P-256 leaf's size;
//! serials first random (as leaves had them), then time-ordered (as the
//! issuer makes them now), each into a fresh ledger. The file is under
//! `target/` (a disk, not a tmpfs, so the flushes are real).
//!
//!   cargo bench --bench ledger_store          # RECORDS=40000 CONCURRENCY=64
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a few
//! hundred records once, to show it still works, and measures nothing
//! worth reading.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_ca::{LedgerKey, LedgerRecord, SqliteStore, Store};

/// This process's CPU time (user + system), from /proc/self/stat (USER_HZ
/// is 100 on Linux, a fixed ABI of /proc).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    use session_ca::crypto::rand::SecureRandom as _;
    session_ca::crypto::rand::SystemRandom::new()
        .fill(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the records' serials are made.
#[derive(Clone, Copy, Debug)]
enum Serials {
    /// 16 random octets (what leaves had before their serials began with
    /// the time).
    Random,
    /// 6 octets of the time in milliseconds, then 10 random ones (what
    /// the issuer makes).
    TimeOrdered,
}

fn serial(serials: Serials, start: i64, i: u64) -> String {
    match serials {
        Serials::Random => random_hex(16),
        Serials::TimeOrdered => {
            let millis = start as u64 * 1000 + i / 20;
            format!("{:012x}{}", millis, random_hex(10))
        }
    }
}

/// The `i`th record: issued at 20,000 a second from `start`, by one of
/// four callers.
fn record(serials: Serials, start: i64, i: u64) -> LedgerRecord {
    let mut r = session_ca::store_conformance::record(
        &serial(serials, start, i),
        &uuid::Uuid::new_v4().to_string(),
        Some(&format!("tx-{}", random_hex(8))),
        Some(&format!(
            "arn:aws:sts::123456789012:assumed-role/payments-{}/fn",
            i % 4
        )),
        start + (i / 20_000) as i64,
    );
    r.fingerprint_sha256 = random_hex(32);
    r.request_id = uuid::Uuid::new_v4().to_string();
    // A P-256 leaf of the default profile is about 900 bytes of PEM.
    r.certificate = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        random_hex(420)
    );
    r
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let records = env("RECORDS", if measuring { 40_000 } else { 640 });
    let concurrency = env("CONCURRENCY", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut last = None;
        // Each shape into a fresh ledger, one after the other in this run.
        for serials in [Serials::Random, Serials::TimeOrdered] {
            let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
            let store = Arc::new(
                SqliteStore::open(
                    &dir.path().join("ledger.sqlite3"),
                    session_ca::DEFAULT_RETENTION,
                )
                .unwrap(),
            );
            let per_task = records / concurrency;
            // Records made beforehand: the measurement is the store's.
            let batches: Vec<Vec<LedgerRecord>> = (0..concurrency)
                .map(|task| {
                    (0..per_task)
                        .map(|i| record(serials, now, i * concurrency + task))
                        .collect()
                })
                .collect();
            let (wall, cpu) = (Instant::now(), cpu_time());
            let tasks: Vec<_> = batches
                .into_iter()
                .map(|batch| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        for r in &batch {
                            store.record(r).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
            let n = (per_task * concurrency) as f64;
            println!(
                "record, concurrency {concurrency}, {serials:?} serials: {:.0} records/s, \
                 {:.1} µs CPU per record ({n} records)",
                n / wall.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / n
            );
            last = Some((store, dir));
        }
        let (store, _dir) = last.unwrap();

        let keys = [
            LedgerKey::SessionId(uuid::Uuid::new_v4().to_string()),
            LedgerKey::TransactionId("tx-none".into()),
            LedgerKey::Requester("arn:aws:iam::1:role/none".into()),
        ];
        let checks = if measuring { 50_000 } else { 100 };
        let cpu = cpu_time();
        for _ in 0..checks {
            assert!(store.revoked(&keys, now).await.unwrap().is_none());
        }
        println!(
            "revocation check (3 keys): {:.1} µs CPU per check",
            (cpu_time() - cpu).as_secs_f64() * 1e6 / checks as f64
        );
    });
}
