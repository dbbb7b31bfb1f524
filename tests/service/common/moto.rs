//! A real AWS endpoint emulator (moto's server, installed by scripts/test)
//! on a free loopback port, and an SDK client pointed at it. It is started
//! through `scripts/moto_server_kms.py`, which adds behaviours of AWS that
//! moto lacks (KMS `Sign` with `MessageType=DIGEST`, KMS refusing a
//! disabled key, and DynamoDB writes that are atomic under concurrency);
//! the script says which and cites the AWS documentation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::tools::{free_port, wait_for_port, Guard};
use session_ca::SsmSettings;

/// A running moto_server; stopped when dropped.
pub struct Moto {
    /// The moto_server process, stopped when this is dropped.
    _server: Guard,
    pub port: u16,
}

impl Moto {
    /// Starts moto_server on a free port (or `port`).
    pub fn start_on(port: Option<u16>) -> Moto {
        let port = port.unwrap_or_else(free_port);
        let child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/service/scripts/moto_server_kms.py"
            ))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 with moto ({e}); scripts/test installs it into .venv/")
            });
        let mut guard = Guard(child);
        wait_for_port(port, &mut guard.0);
        warm_up(port);
        Moto {
            _server: guard,
            port,
        }
    }

    pub fn start() -> Moto {
        Self::start_on(None)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn settings(&self) -> SsmSettings {
        settings_for(self.port)
    }

    /// The SDK configuration of the tests' own calls (publishing,
    /// corrupting, creating keys and tables): the signer's, with lenient
    /// timeouts, so a busy machine cannot fail a test's set-up. The signer
    /// under test keeps its own 1 s / 2 s / 5 s timeouts ([`Moto::settings`]).
    async fn setup_config(&self) -> aws_config::SdkConfig {
        session_ca::aws_sdk_config(&self.settings())
            .await
            .into_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build()
    }

    /// An SSM client for the tests' own calls.
    pub async fn client(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.setup_config().await)
    }

    /// A KMS client for the tests' own calls (creating, disabling keys).
    pub async fn kms_client(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.setup_config().await)
    }

    /// A DynamoDB client for the tests' own calls (creating, scanning tables).
    pub async fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.setup_config().await)
    }
}

/// The first call to a service makes moto import and set up its backend
/// (for SSM: its default parameters), which takes seconds on a busy
/// machine. One call here, with no client timeout, keeps that out of the
/// signer's 5 s operation timeout in every test.
fn warm_up(port: u16) {
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AmazonSSM.DescribeParameters\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/ssm/aws4_request, \
         SignedHeaders=host, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("moto_server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "moto_server did not answer a DescribeParameters call: {response}"
    );
}

/// Settings for an emulator on `port` (which may not be running).
pub fn settings_for(port: u16) -> SsmSettings {
    SsmSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        region: Some("eu-west-1".into()),
        static_credentials: Some(("testing".into(), "testing".into())),
    }
}
