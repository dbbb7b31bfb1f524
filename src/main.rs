//! The `session-ca` command: `serve`, `init`, `inspect`, `publish-ssm` and
//! `request`, and Lambda mode.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use session_ca::auth::AuthMode;
use session_ca::ca::init::{ca_exists, create_ca, InitOptions, DEFAULT_CA_SUBJECT};
use session_ca::ca::ssm::SsmSettings;
use session_ca::ca::OnLoadFailure;
use session_ca::config::{lambda_default_config, CaSourceSpec, ConfigOrigin, ProcessEnv};
use session_ca::inspect::{inspect, read_certificate, verify_client_certificate};
use session_ca::{app, AppState, CaStore, Clock, Config, KeyType, SharedClock, SystemClock};

/// `--version`: the version, the build's one crypto library and, on
/// aws-lc builds, the AWS-LC version linked in.
static LONG_VERSION: LazyLock<String> = LazyLock::new(|| {
    let library = session_ca::crypto::LIBRARY;
    match session_ca::crypto::aws_lc_version() {
        Some(aws_lc) => format!(
            "{} (crypto: {library}, AWS-LC {aws_lc})",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!("{} (crypto: {library})", env!("CARGO_PKG_VERSION")),
    }
});

/// A lightweight signer of short-lived mTLS client certificates.
#[derive(Debug, Parser)]
#[command(name = "session-ca", version, long_version = LONG_VERSION.as_str(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP signer (with no configuration: a development CA in
    /// signer-key/, 127.0.0.1:8080, no authentication).
    Serve(ServeArgs),
    /// Create a CA: a key and certificate, optionally under a root.
    Init(InitArgs),
    /// Show a certificate's validity, subject and claims; verify it with --ca.
    Inspect(InspectArgs),
    /// Upload the CA in a directory to AWS Systems Manager Parameter Store.
    PublishSsm(PublishArgs),
    /// Ask a signer for a certificate and write cert.pem, key.pem and
    /// chain.pem (or a PKCS#12 file).
    Request(RequestArgs),
}

#[derive(Debug, Args)]
struct RequestArgs {
    /// The signer's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "SESSION_CA_URL")]
    url: String,
    /// Profile to issue under (default: the signer's `default`).
    #[arg(long)]
    profile: Option<String>,
    /// Session id (the subject CN); the signer makes a UUID when absent.
    #[arg(long)]
    session_id: Option<String>,
    /// Transaction id.
    #[arg(long)]
    transaction_id: Option<String>,
    /// Lifetime in seconds (default: the profile's).
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
    /// Key type for the signer to generate (ecdsa-p256, ecdsa-p384, ed25519; rsa-2048 and rsa-3072 from signers built with the `aws-lc` feature).
    #[arg(long)]
    key_type: Option<String>,
    /// A claim: NAME=TEXT for a string, NAME:=JSON for a JSON value (repeatable).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// Certify the key of this PEM CSR instead of having one generated (no key.pem is written).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_type", "pkcs12"])]
    csr: Option<PathBuf>,
    /// Directory for cert.pem, key.pem (0600) and chain.pem.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "pkcs12"
    )]
    out: PathBuf,
    /// Write a PKCS#12 key store to FILE (0600) and its password to FILE.password (0600).
    #[arg(long, value_name = "FILE")]
    pkcs12: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for an https:// signer URL.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Sign the request with this HMAC key id (for a signer with auth "hmac").
    #[arg(long, value_name = "ID", env = "SESSION_CA_HMAC_KEY_ID")]
    hmac_key_id: Option<String>,
    /// Read the HMAC secret from this file (default: the environment variable SESSION_CA_HMAC_SECRET).
    #[arg(long, value_name = "FILE", requires = "hmac_key_id")]
    hmac_secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// Parameter name prefix, e.g. /session-ca/prod (writes PREFIX/key, /cert, /chain).
    #[arg(long)]
    prefix: String,
    /// KMS key (id, ARN or alias) for the SecureString key; default: alias/aws/ssm.
    #[arg(long)]
    kms_key_id: Option<String>,
    /// Replace an existing CA under the prefix.
    #[arg(long)]
    overwrite: bool,
    /// Directory holding the CA (as written by `init`).
    #[arg(long, default_value = "signer-key")]
    dir: PathBuf,
    /// AWS region (default: from the AWS environment).
    #[arg(long)]
    region: Option<String>,
    /// SSM endpoint override (default: from the AWS environment, e.g. AWS_ENDPOINT_URL_SSM).
    #[arg(long)]
    endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (TOML); also SESSION_CA_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable); overrides server.listen.
    #[arg(long, value_name = "IP:PORT")]
    listen: Vec<String>,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Directory to write the CA into.
    #[arg(long, default_value = "signer-key")]
    dir: PathBuf,
    /// Key type of the CA key(s).
    #[arg(long, default_value = "ecdsa-p256", value_parser = parse_key_type)]
    key_type: KeyType,
    /// Subject as "CN=...,O=..." (attributes CN, C, ST, L, O, OU).
    #[arg(long, default_value = DEFAULT_CA_SUBJECT)]
    subject: String,
    /// Lifetime of the CA certificate(s) in days.
    #[arg(long, default_value_t = 3650)]
    validity_days: u32,
    /// Create a root and an intermediate; the intermediate signs.
    #[arg(long)]
    intermediate: bool,
    /// Replace an existing CA in the directory.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Certificate file (PEM or DER).
    file: PathBuf,
    /// CA certificates (PEM) to verify against, e.g. the chain from GET /v1/ca.
    #[arg(long, value_name = "CHAIN")]
    ca: Option<PathBuf>,
    /// Configuration whose claim names to use (default: as for serve).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse()
        .map_err(|e: session_ca::keys::KeyError| e.to_string())
}

/// Whether an event is a TRACE event of the AWS SDK, which logs whole
/// request bodies at that level (for publish-ssm: the CA private key).
fn is_aws_sdk_trace(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() == tracing::Level::TRACE
        && [
            "aws_smithy",
            "aws_sdk",
            "aws_config",
            "aws_runtime",
            "aws_sigv4",
        ]
        .iter()
        .any(|prefix| metadata.target().starts_with(prefix))
}

fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter =
        EnvFilter::try_from_env("SESSION_CA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("SESSION_CA_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let output = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    // Whatever SESSION_CA_LOG says, the SDK's trace events never reach the output.
    // In JSON, audit events (one per request) take the lean JSON writer.
    let ordinary = tracing_subscriber::filter::filter_fn(move |m| {
        let audit_event = m.target() == session_ca::audit::TARGET;
        !(is_aws_sdk_trace(m) || (json && audit_event))
    });
    let audit = json.then(|| {
        session_ca::audit::JsonLines::new(std::io::stderr).with_filter(
            tracing_subscriber::filter::filter_fn(|m| m.target() == session_ca::audit::TARGET),
        )
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(output.with_filter(ordinary))
        .with(audit)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> Result<()> {
    // Lambda runs the binary with no arguments and AWS_LAMBDA_RUNTIME_API set.
    if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        init_logging();
        session_ca::crypto::self_check().map_err(anyhow::Error::msg)?;
        // One event at a time per execution environment: one thread, so
        // an event never hops between worker threads (those wake-ups were
        // most of the CPU of a warm invocation).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        return runtime.block_on(lambda());
    }
    let cli = Cli::parse();
    init_logging();
    session_ca::crypto::self_check().map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve(args)),
        Command::Init(args) => init(args),
        Command::Inspect(args) => inspect_command(args),
        Command::PublishSsm(args) => runtime()?.block_on(publish_ssm(args)),
        Command::Request(args) => runtime()?.block_on(request(args)),
    }
}

/// Lambda mode: configuration from the environment, CA loaded once per
/// execution environment before the first event, IAM callers. A CA that
/// cannot be loaded yields 503s (and retries), never an init failure that
/// API Gateway would turn into an opaque 502.
async fn lambda() -> Result<()> {
    let config = Config::load_with_default(None, &ProcessEnv, &[], &lambda_default_config())
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            match config.server.auth {
                AuthMode::Iam => {}
                AuthMode::None => bail!("server.auth: \"none\" is for local development only; Lambda mode needs \"iam\""),
                // Its replay window is per process, and a function runs in many.
                AuthMode::Hmac => bail!("server.auth: \"hmac\" is for standalone servers; Lambda mode needs \"iam\""),
            }
            Ok(config)
        });
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            // Answer every event with a 500 rather than failing the init,
            // which callers would only see as an opaque 502.
            tracing::error!(error = %e, "invalid configuration; answering every request with 500 internal_error");
            return lambda_http::run(session_ca::http::misconfigured())
                .await
                .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"));
        }
    };
    tracing::debug!("configuration loaded");
    let clock: SharedClock = Arc::new(SystemClock);
    let cas = CaStore::load(
        &config,
        &clock,
        &SsmSettings::default(),
        OnLoadFailure::ServeUnavailable,
    )
    .await?;
    log_loaded(&cas, &config, clock.now());
    // No background refresh: Lambda freezes the environment between events,
    // so the router reloads due CAs at the start of requests instead.
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock,
    };
    tracing::info!(
        crypto = session_ca::crypto::LIBRARY,
        "session-ca ready for Lambda events"
    );
    session_ca::http::lambda::run(state)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

fn log_loaded(cas: &CaStore, config: &Config, now: time::OffsetDateTime) {
    for (name, ca) in cas.all() {
        if let Some(ca) = ca {
            tracing::info!(ca = %name, subject = %ca.subject, not_after = %session_ca::audit::rfc3339(ca.not_after), "CA loaded");
        }
    }
    for expiring in session_ca::ca::expiring_cas(config, cas, now) {
        tracing::warn!(
            ca = %expiring.name,
            not_after = %session_ca::audit::rfc3339(expiring.not_after),
            max_ttl_seconds = expiring.max_ttl.as_secs(),
            "CA expires within the max_ttl of its profiles: certificates are shortened to its expiry; rotate it"
        );
    }
}

async fn publish_ssm(args: PublishArgs) -> Result<()> {
    let source = session_ca::ca::file::FileCaSource::new(args.dir.clone());
    let material = session_ca::CaSource::load(&source).await?;
    // Check it exactly as the signer will before anything leaves this machine.
    session_ca::SigningCa::from_material("publish", &material, SystemClock.now())?;
    let client = session_ca::ca::ssm::client(&SsmSettings {
        endpoint_url: args.endpoint_url,
        region: args.region,
        static_credentials: None,
    })
    .await;
    let written = session_ca::ca::ssm::publish(
        &client,
        &args.prefix,
        &material,
        args.kms_key_id.as_deref(),
        args.overwrite,
    )
    .await?;
    for name in written {
        println!("wrote {name}");
    }
    println!(
        "configure the signer with SESSION_CA_CAS__DEFAULT__SOURCE=ssm:{}",
        args.prefix
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    let overrides = if args.listen.is_empty() {
        Vec::new()
    } else {
        vec![(
            "server.listen".to_owned(),
            toml::Value::Array(
                args.listen
                    .iter()
                    .cloned()
                    .map(toml::Value::String)
                    .collect(),
            ),
        )]
    };
    let config = Config::load(args.config.as_deref(), &ProcessEnv, &overrides)?;
    if config.server.auth == AuthMode::Iam {
        bail!(
            "auth \"iam\" takes the caller from the Lambda request context, which `serve` does \
             not have; use it in Lambda mode"
        );
    }
    let clock: SharedClock = Arc::new(SystemClock);

    if config.origin == ConfigOrigin::Embedded {
        for ca in config.cas.values() {
            if let CaSourceSpec::File(dir) = &ca.source {
                if !ca_exists(dir) {
                    create_development_ca(dir, &*clock)?;
                }
            }
        }
    }

    let cas = CaStore::load(
        &config,
        &clock,
        &SsmSettings::default(),
        OnLoadFailure::Fail,
    )
    .await?;
    log_loaded(&cas, &config, clock.now());
    cas.spawn_refresh(clock.clone());

    let listen = config.server.listen.clone();
    let header_read_timeout = config.server.request_timeout;
    let auth = config.server.auth;
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock,
    };
    let router = app(state);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for addr in listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local: SocketAddr = listener.local_addr()?;
        tracing::info!(address = %local, %auth, crypto = session_ca::crypto::LIBRARY, "session-ca listening");
        let router = router.clone();
        let mut stop = stop_rx.clone();
        servers.spawn(session_ca::http::server::serve(
            listener,
            router,
            header_read_timeout,
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
        ));
    }

    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing requests in flight");
        }
        Some(result) = servers.join_next() => {
            result.context("a listener task failed")?.context("a listener failed")?;
        }
    }
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        result
            .context("a listener task failed")?
            .context("a listener failed")?;
    }
    Ok(())
}

fn create_development_ca(dir: &Path, clock: &dyn Clock) -> Result<()> {
    let created = create_ca(
        &InitOptions {
            dir: dir.to_path_buf(),
            key_type: KeyType::EcdsaP256,
            subject: DEFAULT_CA_SUBJECT.to_owned(),
            validity_days: 3650,
            intermediate: false,
            force: false,
        },
        clock.now(),
    )?;
    tracing::warn!(
        dir = %dir.display(),
        "created a DEVELOPMENT CA because none existed; do not trust it beyond this machine \
         (production CAs come from `session-ca init` and a configuration file)"
    );
    for file in created.files {
        tracing::debug!(file = %file.display(), "wrote");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn init(args: InitArgs) -> Result<()> {
    let options = InitOptions {
        dir: args.dir,
        key_type: args.key_type,
        subject: args.subject,
        validity_days: args.validity_days,
        intermediate: args.intermediate,
        force: args.force,
    };
    let created = create_ca(&options, SystemClock.now())?;
    for file in &created.files {
        println!("wrote {}", file.display());
    }
    println!(
        "CA valid until {}",
        session_ca::audit::rfc3339(created.not_after)
    );
    if options.intermediate {
        println!(
            "the root key ({}) is not needed to sign; move it offline",
            options
                .dir
                .join(session_ca::ca::file::ROOT_KEY_FILE)
                .display()
        );
    }
    Ok(())
}

/// `NAME=TEXT` (a string claim) or `NAME:=JSON` (any JSON value).
fn parse_claim(arg: &str) -> Result<(String, serde_json::Value)> {
    if let Some((name, json)) = arg.split_once(":=") {
        if !name.contains('=') {
            let value = serde_json::from_str(json)
                .with_context(|| format!("--claim {arg:?}: the value after := is not JSON"))?;
            return Ok((name.to_owned(), value));
        }
    }
    match arg.split_once('=') {
        Some((name, text)) if !name.is_empty() => {
            Ok((name.to_owned(), serde_json::Value::String(text.to_owned())))
        }
        _ => bail!("--claim {arg:?}: expected NAME=TEXT or NAME:=JSON"),
    }
}

async fn request(args: RequestArgs) -> Result<()> {
    use session_ca::client::{self, CertificateRequest, SignerClient};

    let mut claims = std::collections::BTreeMap::new();
    for arg in &args.claims {
        let (name, value) = parse_claim(arg)?;
        if claims.insert(name.clone(), value).is_some() {
            bail!("--claim {name:?} is given twice");
        }
    }
    let csr = match &args.csr {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CSR {}", path.display()))?,
        ),
        None => None,
    };
    let extra_roots = match &args.cacert {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let mut signer = SignerClient::new(&args.url, extra_roots.as_deref())?;
    if let Some(key_id) = &args.hmac_key_id {
        let secret = match &args.hmac_secret_file {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read the HMAC secret {}", path.display()))?,
            None => std::env::var("SESSION_CA_HMAC_SECRET")
                .map(String::into_bytes)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--hmac-key-id needs the secret: set SESSION_CA_HMAC_SECRET or pass --hmac-secret-file"
                    )
                })?,
        };
        let secret = session_ca::hmac::Secret::new(session_ca::hmac::trim_line_end(&secret))?;
        signer = signer.with_hmac(key_id, secret);
    }
    let issued = signer
        .issue(&CertificateRequest {
            profile: args.profile,
            session_id: args.session_id,
            transaction_id: args.transaction_id,
            ttl_seconds: args.ttl,
            key_type: args.key_type,
            claims,
            csr,
            pkcs12: args.pkcs12.is_some(),
        })
        .await?;
    let written = match &args.pkcs12 {
        Some(path) => client::write_pkcs12_file(path, &issued)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => client::write_pem_files(&args.out, &issued)
            .with_context(|| format!("cannot write into {}", args.out.display()))?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("serial       {}", issued.serial);
    println!("session_id   {}", issued.session_id);
    println!("not_after    {}", issued.not_after);
    println!("renew_after  {}", issued.renew_after);
    Ok(())
}

fn inspect_command(args: InspectArgs) -> Result<()> {
    let input = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let der = read_certificate(&input).with_context(|| args.file.display().to_string())?;
    let config = Config::load(args.config.as_deref(), &ProcessEnv, &[])?;
    let report = inspect(&der, &config.claim_names(), &config.oid_arc)
        .with_context(|| args.file.display().to_string())?;
    print!("{report}");
    if let Some(ca) = args.ca {
        let ca_pem = std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let now = SystemClock.now();
        match verify_client_certificate(&der, &ca_pem, now) {
            Ok(()) => println!(
                "verified:     yes, a valid TLS client certificate under {} now",
                ca.display()
            ),
            Err(e) => {
                println!("verified:     NO");
                bail!("{e}");
            }
        }
    }
    Ok(())
}
