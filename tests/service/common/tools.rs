//! Running real peers (openssl, curl, pkilint) from tests. A missing tool is
//! a failure that says how to get it, never a silent skip.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command to completion, failing the test if it cannot start.
pub fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); it is installed by scripts/test"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited before listening: {status}");
        }
        // A connection to itself is not a listener: when nothing listens
        // yet on a port of the ephemeral range, the kernel may pick that
        // very port as the connection's source and connect it to itself
        // (TCP simultaneous open), and the next connect is refused.
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            if stream.local_addr().ok() != stream.peer_addr().ok() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listened on port {port} within 20 s");
}

/// Starts `bin serve` in `dir` on a free loopback port, output discarded,
/// and waits until it listens.
pub fn start_serve(bin: &str, dir: &Path) -> (Guard, u16) {
    start_serve_with(bin, dir, &[])
}

/// Starts `bin serve` with `args` in `dir`, listening on a port the kernel
/// picks (`127.0.0.1:0`), and returns that port, read from the "session-ca
/// listening" log line. (A port from [`free_port`] can be taken by a test
/// running in parallel before the server binds it, and the test would then
/// talk to the other test's server.) The rest of the output is discarded.
pub fn start_serve_with(bin: &str, dir: &Path, args: &[&str]) -> (Guard, u16) {
    let (server, port, _log) = start_serve_logged(bin, dir, args);
    (server, port)
}

/// [`start_serve_with`], also returning the server's whole JSON log, which
/// the returned thread yields once the server has exited.
pub fn start_serve_logged(
    bin: &str,
    dir: &Path,
    args: &[&str],
) -> (Guard, u16, std::thread::JoinHandle<String>) {
    start_serve_logged_env(bin, dir, args, &[])
}

/// [`start_serve_logged`] with `env` added to the server's environment.
pub fn start_serve_logged_env(
    bin: &str,
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (Guard, u16, std::thread::JoinHandle<String>) {
    use std::io::BufRead as _;
    let mut child = Command::new(bin)
        .arg("serve")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--listen", "127.0.0.1:0"])
        .env("SESSION_CA_LOG_FORMAT", "json")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} serve: {e}"));
    let stderr = child.stderr.take().unwrap();
    let server = Guard(child);
    let (found, port) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let mut found = Some(found);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = &found {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if event["message"] == "session-ca listening" {
                    let address = event["address"].as_str().unwrap_or_default();
                    let port = address.parse::<std::net::SocketAddr>().map(|a| a.port());
                    let _ = sender.send(port.map_err(|_| line.clone()));
                    found = None;
                }
            }
            log.push_str(&line);
            log.push('\n');
        }
        // The server exited (or closed stderr) before it listened.
        if let Some(sender) = found {
            let _ = sender.send(Err(log.clone()));
        }
        log
    });
    match port.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(port)) => (server, port, log),
        Ok(Err(output)) => panic!("{bin} serve did not listen; its output:\n{output}"),
        Err(_) => panic!("{bin} serve did not listen within 20 s"),
    }
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `openssl s_server` requiring a client certificate from `client_ca`.
pub fn start_s_server(
    dir: &Path,
    server_cert: &str,
    server_key: &str,
    client_ca: &str,
) -> (Guard, u16) {
    let port = free_port();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            server_cert,
            "-key",
            server_key,
            "-Verify",
            "1",
            "-verify_return_error",
            "-CAfile",
            client_ca,
            "-www",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); it is installed by scripts/test"));
    wait_for_port(port, &mut child);
    (Guard(child), port)
}

/// Writes a self-signed TLS server certificate for localhost into `dir`.
pub fn write_server_identity(dir: &Path) -> (&'static str, &'static str) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::hours(1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
    ("server.pem", "server-key.pem")
}

/// Calls the s_server with curl presenting `cert`/`key`; returns (success, stdout+stderr).
pub fn curl_mtls(dir: &Path, port: u16, cert: &str, key: &str) -> (bool, String) {
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "server.pem",
            "--cert",
            cert,
            "--key",
            key,
            &format!("https://localhost:{port}/"),
        ],
        dir,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the `session-ca` binary `bin` in `dir` with plain-text logs and no
/// backtraces, as a user would see it.
pub fn session_ca_in(bin: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("SESSION_CA_LOG_FORMAT", "text")
        .env("RUST_BACKTRACE", "0")
        .env_remove("SESSION_CA_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// stdout and stderr of a finished command, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first fenced block of `lang` after `<!-- readme-test:NAME -->` in
/// README.md: the README's examples are run by the tests as written.
pub fn readme_block(name: &str, lang: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = format!("<!-- readme-test:{name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker} not in README"))..];
    let fence = format!("```{lang}\n");
    let start = after
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} block after {marker}"))
        + fence.len();
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_owned()
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Starts the runtime API emulator of `cargo lambda watch` (without its
/// function supervisor: when that supervisor, watchexec, is signalled it
/// takes down unrelated processes of the session, and it would rebuild
/// the crate with other features) on a free port and waits until it
/// listens. A function binary started with `AWS_LAMBDA_RUNTIME_API` set to
/// `http://127.0.0.1:PORT/.rt` then runs its real runtime loop.
pub fn start_lambda_emulator() -> (Guard, u16) {
    let port = free_port();
    let emulator = Command::new("cargo-lambda")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run cargo-lambda ({e}); scripts/test installs it into .venv/")
        });
    let mut emulator = Guard(emulator);
    wait_for_port(port, &mut emulator.0);
    (emulator, port)
}

/// `program` started as Lambda starts a function (no arguments, the
/// runtime API and function variables set) against the emulator on `port`.
pub fn lambda_function(program: &Path, port: u16) -> Command {
    let mut function = Command::new(program);
    function
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    function
}

/// Invokes the function running under the emulator on `port` with the
/// event in `event_file` (`cargo lambda invoke --data-file`) and returns
/// its JSON response.
pub fn lambda_invoke(port: u16, event_file: &Path) -> serde_json::Value {
    let out = Command::new("cargo-lambda")
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(event_file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run cargo-lambda ({e}); scripts/test installs it into .venv/")
        });
    assert!(
        out.status.success(),
        "invoke {}: {}",
        event_file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invoke {} printed no JSON ({e}): {}",
            event_file.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// pkilint findings at WARNING or above, as (code, message).
pub fn pkilint_findings(dir: &Path, file: &str) -> Vec<(String, String)> {
    let out = run(
        "lint_pkix_cert",
        &["lint", "-s", "WARNING", "-f", "JSON", file],
        dir,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        assert!(
            out.status.success(),
            "pkilint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Vec::new();
    }
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("pkilint output ({e}): {text}"));
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["finding_descriptions"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Starts nginx (the Debian package) in `dir`, listening with TLS on a free
/// loopback port with `server.pem`/`server-key.pem` of `dir`, and `server`
/// (directives and locations) inside its `server` block; waits until it
/// listens.
pub fn start_nginx(dir: &Path, server: &str) -> (Guard, u16) {
    let port = free_port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("nginx-tmp")).unwrap();
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-tmp/body;
    proxy_temp_path {d}/nginx-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server-key.pem;
        {server}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nginx ({e}); scripts/test installs it"));
    wait_for_port(port, &mut nginx);
    (Guard(nginx), port)
}
