//! session-ca: per-session mTLS client certificates, signed on request.
//!
//! A client POSTs its session facts; the service authenticates it
//! ([`Auth`]), reads the request strictly ([`IssueRequest`]), checks it
//! against a profile ([`Profile::plan`]), generates a key pair and signs a
//! short-lived certificate carrying the facts as X.509 extensions
//! ([`issue`]) with a CA loaded from a [`CaSource`] into a [`CaStore`], and
//! returns PEM certificate, key and chain. The same [`app`] router serves a
//! local TCP listener ([`serve_tcp`]) and AWS Lambda ([`lambda_app`]).
//!
//! What a backend needs to verify the certificates is the
//! `session-ca-verify` crate; the API's wire types and a client are the
//! `session-ca-client` crate. `ARCHITECTURE.md` maps the modules; the HTTP
//! contract is `api-spec/openapi.yaml`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod auth;
mod ca;
mod config;
mod crl;
pub mod crypto;
mod fmt;
mod http;
mod inspect;
mod issuer;
mod keys;
mod metrics;
mod pkcs12;
mod profile;
mod request;
mod store;
mod x509;

pub use audit::{JsonLines, TARGET as AUDIT_TARGET};
pub use auth::settings::HmacKeySettings;
pub use auth::{
    Auth, AuthError, AuthMode, Caller, CallerPattern, Credentials, HmacAuth, HmacError,
};
pub use ca::file::{
    FileCaSource, CA_CERT_FILE, CA_KEY_FILE, CHAIN_FILE, KMS_KEY_FILE, ROOT_CERT_FILE,
    ROOT_KEY_FILE,
};
pub use ca::init::{
    ca_exists, create_ca, parse_subject, CreatedCa, InitOptions, DEFAULT_CA_SUBJECT,
};
pub use ca::kms::{client as kms_client, ChainSpec, KmsCaSource, KmsKey, KmsMode, KmsSignError};
pub use ca::kms_init::{create_kms_ca, KmsInitOptions};
pub use ca::ssm::{
    client as ssm_client, material_from_parameters, parameter_names, publish as publish_ssm,
    sdk_config as aws_sdk_config, SsmCaSource, SsmSettings, ATTEMPT_TIMEOUT as SSM_ATTEMPT_TIMEOUT,
    MAX_ATTEMPTS as SSM_MAX_ATTEMPTS, OPERATION_TIMEOUT as SSM_OPERATION_TIMEOUT,
};
pub use ca::{
    BoxFuture, CaConfig, CaError, CaMaterial, CaSource, CaSourceSpec, CaStore, KeyHolder,
    KeyMaterial, OnLoadFailure, SignError, SigningCa, ON_REQUEST_REFRESH_TIMEOUT,
};
pub use config::{
    expiring_cas, lambda_default_config, Config, ConfigError, ConfigOrigin, EnvSource, ExpiringCa,
    MetricsConfig, ProcessEnv, ServerConfig, DEFAULT_CONFIG, ENV_CONFIG_FILE, ENV_PREFIX,
    MAX_JSON_DEPTH_CAP,
};
pub use config::{CrlConfig, DEFAULT_CRL_NEXT_UPDATE};
pub use crl::{sign as sign_crl, CrlError, INDEX_LAG as CRL_INDEX_LAG};
pub use http::lambda::{
    lambda_app, misconfigured_lambda_app, request_from_str as lambda_request_from_str,
    run as run_lambda, run_misconfigured as run_lambda_misconfigured, LambdaApp,
};
pub use http::server::{serve as serve_tcp, SHUTDOWN_GRACE};
pub use http::{
    app, metrics_app, misconfigured, AppError, AppState, CRL_MEDIA_TYPE, DEFAULT_PROFILE,
    PEM_CHAIN_MEDIA_TYPE, PKCS12_MEDIA_TYPE, REQUEST_ID_HEADER,
};
pub use inspect::{
    inspect, read_certificate, verify_client_certificate, FoundClaim, InspectError, Inspection,
};
pub use issuer::{
    issue, issue_async, validity, IssueError, IssuedCertificate, Validity, RENEW_AT_FRACTION,
};
pub use keys::{FreshKey, KeyError, KeyType, SecretPem};
pub use metrics::emf::{
    is_valid_namespace as is_valid_metrics_namespace, Emf,
    DEFAULT_NAMESPACE as DEFAULT_METRICS_NAMESPACE,
};
pub use metrics::prometheus::{
    Registry as PrometheusRegistry, CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE,
};
pub use metrics::{Dependency, IssuedSample, Metrics, RateLimitHit};
pub use pkcs12::{
    Pkcs12Error, ITERATIONS as PKCS12_ITERATIONS, KEY_ALIAS as PKCS12_KEY_ALIAS,
    TRUSTSTORE_PASSWORD,
};
pub use profile::settings::{ClaimSettings, ProfileSettings, SubjectSetting};
pub use profile::{
    CertificatePlan, ClaimSpec, KeySource, PolicyError, Profile, SubjectAttribute,
    MAX_SESSION_ID_CHARS, MAX_TRANSACTION_ID_CHARS,
};
pub use request::{
    ClaimValue, ClaimValues, CsrError, CsrKey, CsrKeyType, IssueRequest, RequestError,
};
pub use session_ca_verify::{Clock, FixedClock, SharedClock, SystemClock};
pub use store::conformance as store_conformance;
pub use store::dynamodb::{
    client as dynamodb_client, create_table as create_dynamodb_table, DynamoDbStore,
    TTL_ATTRIBUTE as DYNAMODB_TTL_ATTRIBUTE,
};
pub use store::metered::Metered as MeteredStore;
pub use store::open as open_ledger;
pub use store::sqlite::SqliteStore;
pub use store::{
    Begun, CachedCrl, Counts, CrlCache, Hit, Idempotent, Lease, Ledger, LedgerKey, LedgerPage,
    LedgerQuery, LedgerRecord, Reason, Revocation, Store, StoreError, StoreSpec, StoreSync,
    DEFAULT_RETENTION, MAX_PAGE,
};
