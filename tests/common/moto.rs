//! A real SSM endpoint emulator (`moto_server`, installed by scripts/test)
//! on a free loopback port, and an SDK client pointed at it.

#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::tools::{free_port, wait_for_port, Guard};
use session_ca::ca::ssm::{self, SsmSettings};

/// A running moto_server; stopped when dropped.
pub struct Moto {
    pub guard: Guard,
    pub port: u16,
}

impl Moto {
    /// Starts moto_server on a free port (or `port`).
    pub fn start_on(port: Option<u16>) -> Moto {
        let port = port.unwrap_or_else(free_port);
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run moto_server ({e}); scripts/test installs it into .venv/")
            });
        let mut guard = Guard(child);
        wait_for_port(port, &mut guard.0);
        Moto { guard, port }
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

    pub async fn client(&self) -> aws_sdk_ssm::Client {
        ssm::client(&self.settings()).await
    }
}

/// Settings for an emulator on `port` (which may not be running).
pub fn settings_for(port: u16) -> SsmSettings {
    SsmSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        region: Some("eu-west-1".into()),
        static_credentials: Some(("testing".into(), "testing".into())),
    }
}
