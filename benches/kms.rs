//! CPU and wall time per issuance with the CA key in memory (a file CA), in
//! AWS KMS delegated mode and in KMS direct mode, in one process and one
//! run, so the ratios are meaningful on a shared machine. Run by
//! `benches/kms.sh`, which starts moto's server (with the KMS behaviours of
//! `tests/service/scripts/moto_server_kms.py`) and sets
//! `SESSION_CA_BENCH_AWS_ENDPOINT`.
//!
//! KMS here is moto on loopback: its latency is a Python process's, not
//! AWS's (KMS `Sign` takes milliseconds over the network), so wall times
//! of direct mode say little; the signer's own CPU per issuance (this
//! process's utime + stime from `/proc/self/stat`, which excludes moto) is
//! the figure that carries over.
//!
//! Without the variable it says so and measures nothing (so that `cargo
//! test --all-targets`, which runs every bench once, needs no emulator).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_ca::{
    create_ca, create_kms_ca, issue_async, AppState, CaStore, Caller, Config, ConfigOrigin,
    InitOptions, IssueRequest, KeyType, KmsInitOptions, OnLoadFailure, SharedClock, SsmSettings,
    SystemClock,
};

/// This process's CPU time (user + system), from /proc/self/stat (USER_HZ
/// is 100 on Linux, a fixed ABI of /proc).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn config(source: &str) -> Config {
    let text = format!("{source}\n[profiles.default]\n");
    Config::from_toml(
        ConfigOrigin::File("bench.toml".into()),
        &text,
        &BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn state(config: Config, settings: &SsmSettings) -> AppState {
    let clock: SharedClock = Arc::new(SystemClock);
    let cas = CaStore::load(&config.cas, &clock, settings, OnLoadFailure::Fail)
        .await
        .unwrap();
    AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics: Default::default(),
        ledger: Default::default(),
    }
}

/// Issues P-256 certificates until `budget` of CPU time is spent (at least
/// `min` of them); returns (issued, CPU per issuance, wall per issuance).
async fn measure(state: &AppState, min: u32, budget: Duration) -> (u32, Duration, Duration) {
    let ca = state.cas.get("default").unwrap();
    let profile = state.config.profile("default").unwrap();
    let body = br#"{"transaction_id":"tx-bench","key_type":"ecdsa-p256"}"#;
    let one = || async {
        let request = IssueRequest::from_json(body).unwrap();
        let plan = profile.plan(&request, &Caller::Anonymous, "req-1").unwrap();
        issue_async(&ca, &plan, state.clock.now()).await.unwrap()
    };
    for _ in 0..20 {
        one().await;
    }
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let mut n = 0;
    while n < min || cpu_time() - cpu0 < budget {
        one().await;
        n += 1;
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    (n, cpu / n, wall / n)
}

fn main() {
    let Ok(endpoint) = std::env::var("SESSION_CA_BENCH_AWS_ENDPOINT") else {
        eprintln!(
            "kms bench: SESSION_CA_BENCH_AWS_ENDPOINT is not set; run benches/kms.sh, which \
             starts the KMS emulator (nothing measured)"
        );
        return;
    };
    let settings = SsmSettings {
        endpoint_url: Some(endpoint),
        region: Some("eu-west-1".into()),
        static_credentials: Some(("testing".into(), "testing".into())),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc();
        create_ca(
            &InitOptions {
                dir: dir.path().join("file-ca"),
                key_type: KeyType::EcdsaP256,
                subject: "CN=Bench file CA".into(),
                validity_days: 30,
                intermediate: false,
                path_len: 0,
                force: true,
            },
            now - time::Duration::hours(1),
        )
        .unwrap();
        let kms = session_ca::kms_client(&settings).await;
        let key_id = kms
            .create_key()
            .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
            .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned();
        let kms_dir = dir.path().join("kms-ca");
        create_kms_ca(
            kms,
            &KmsInitOptions {
                dir: kms_dir.clone(),
                key_id: key_id.clone(),
                subject: "CN=Bench KMS CA".into(),
                validity_days: 30,
                issuer_dir: None,
                force: false,
            },
            now,
        )
        .await
        .unwrap();
        let file = format!(
            "[cas.default]\nsource = \"file:{}\"",
            dir.path().join("file-ca").display()
        );
        let kms = format!(
            "[cas.default]\nsource = \"kms:{key_id}\"\nchain = \"file:{}\"",
            kms_dir.display()
        );
        let delegated = format!("{kms}\ndelegate = \"1h\"");
        let budget = Duration::from_secs(3);
        println!("P-256 leaf, P-256 CA key; {} build", build());
        println!("| CA key | issued | signer CPU per issuance | wall per issuance |");
        println!("|---|---|---|---|");
        let mut file_cpu = Duration::ZERO;
        for (name, source, min) in [
            ("in memory (file CA)", file, 2000),
            ("KMS delegated", delegated, 2000),
            ("KMS direct (moto)", kms, 300),
        ] {
            let state = state(config(&source), &settings).await;
            let (n, cpu, wall) = measure(&state, min, budget).await;
            if file_cpu.is_zero() {
                file_cpu = cpu;
            }
            println!(
                "| {name} | {n} | {:.1} µs ({:.2}×) | {:.1} µs |",
                cpu.as_secs_f64() * 1e6,
                cpu.as_secs_f64() / file_cpu.as_secs_f64(),
                wall.as_secs_f64() * 1e6
            );
        }
    });
}

fn build() -> &'static str {
    if cfg!(feature = "fips") {
        "fips"
    } else if cfg!(feature = "aws-lc") {
        "aws-lc"
    } else {
        "ring"
    }
}
