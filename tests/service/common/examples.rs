//! The crate's examples as real processes: built once per test binary with
//! cargo, and the `mtls_backend` server started on a free port.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The claim definitions of the test signer's `default` profile, as
/// `mtls_backend` arguments.
pub const CLAIMS: [&str; 4] = [
    "--claim",
    "agent=1.3.6.1.4.1.32473.1.100:string",
    "--claim",
    "geo=1.3.6.1.4.1.32473.1.101:json",
];

/// Builds example `name` (once per test binary) and returns its path.
/// Cargo reports the executable it built, so the target directory and
/// profile need no guessing.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let mut cargo = Command::new(env!("CARGO"));
    // `--workspace`: scripts/test builds the tests with `cargo test
    // --workspace`, and cargo unifies features over the packages it is
    // asked to build. Without it the example's dependencies (the AWS SDK,
    // lambda_http, tokio, ...) resolve to other features, and this build
    // compiles them all again (four minutes of a CI run).
    cargo
        .args([
            "build",
            "--workspace",
            "--example",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
    // The example on the crypto library these tests were built with.
    if cfg!(feature = "fips") {
        cargo.args(["--no-default-features", "--features", "fips"]);
    } else if cfg!(feature = "aws-lc") {
        cargo.args(["--no-default-features", "--features", "aws-lc"]);
    }
    // Cargo gives a test the variables it gives a crate it compiles
    // (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...). Some build scripts (ring's)
    // rerun when those change, so passing them on would rebuild half the
    // dependency tree here and again in the next `cargo test`.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if matches!(
            &*var,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_BIN_NAME"
        ) || var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_BIN_EXE_")
        {
            cargo.env_remove(&*var);
        }
    }
    let out = cargo
        .output()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(out.status.success(), "building the example {name} failed");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {name} executable"));
    built.insert(name.to_owned(), path.clone());
    path
}

/// A running example server (`mtls_backend`, `proxied_backend`): its port
/// and its log (stderr) file. Killed on drop.
pub struct Backend {
    process: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Backend {
    /// Starts the example on a free port, trusting the client CAs in
    /// `dir/ca_file`, with `server.pem`/`server-key.pem` from `dir` as its
    /// identity (see `tools::write_server_identity`) and `extra` arguments;
    /// reads the bound address from its first line of output.
    pub fn start(dir: &Path, name: &str, ca_file: &str, extra: &[&str]) -> Backend {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--ca",
            ca_file,
            "--cert",
            "server.pem",
            "--key",
            "server-key.pem",
        ];
        args.extend_from_slice(extra);
        Backend::spawn("mtls_backend", dir, name, &args)
    }

    /// Starts `example` in `dir` with `args`, its stderr in `dir/NAME.log`,
    /// and reads the bound address from its first line of output.
    pub fn spawn(example: &str, dir: &Path, name: &str, args: &[&str]) -> Backend {
        let log = dir.join(format!("{name}.log"));
        let mut process = Command::new(example_bin(example))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {example} example: {e}"));
        let stdout = process.stdout.take().unwrap();
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let port = match first.trim().parse::<std::net::SocketAddr>() {
            Ok(addr) => addr.port(),
            Err(_) => {
                let _ = process.kill();
                panic!(
                    "{example} did not print its address but {first:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        };
        Backend { process, port, log }
    }

    /// Waits (briefly) for `text` in the backend's log and returns the log.
    pub fn log_containing(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(text) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the backend has logged so far.
    #[cfg(not(feature = "fips"))]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `https://localhost:PORT/`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}
