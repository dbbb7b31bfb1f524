//! Tests of loading and validating the configuration.

use super::*;
use crate::keys::KeyType;
use crate::profile::SubjectAttribute;

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(ConfigOrigin::File("test.toml".into()), text, &no_env(), &[])
}

const MINIMAL: &str = r#"
    [cas.default]
    source = "file:signer-key"
    [profiles.default]
"#;

#[test]
fn embedded_default_is_valid() {
    let config = Config::load(None, &no_env(), &[]).unwrap();
    assert_eq!(config.origin, ConfigOrigin::Embedded);
    let p = config.profile("default").unwrap();
    assert_eq!(p.max_ttl, Duration::from_secs(900));
    assert_eq!(p.default_ttl, Duration::from_secs(300));
    assert_eq!(p.backdate, Duration::from_secs(30));
    assert_eq!(p.claims.len(), 2);
    assert_eq!(config.server.listen, ["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(config.server.max_body_bytes, 65536);
    assert_eq!(config.server.max_header_bytes, 16384);
    assert_eq!(config.server.request_timeout, Duration::from_secs(10));
    let names = config.claim_names();
    assert_eq!(names[&"1.3.6.1.4.1.32473.1.101".parse().unwrap()], "geo");
    assert_eq!(
        names[&"1.3.6.1.4.1.32473.1.3".parse().unwrap()],
        "requester"
    );
}

#[test]
fn lambda_default_uses_iam_and_parameter_store() {
    let err = Config::from_toml(
        ConfigOrigin::Embedded,
        &lambda_default_config(),
        &no_env(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("profiles.default.allowed_callers: required with auth"),
        "{err}"
    );
    let env: BTreeMap<String, String> = [(
        "SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS".to_owned(),
        r#"["arn:aws:sts::123456789012:assumed-role/payments-*/*"]"#.to_owned(),
    )]
    .into();
    let c = Config::from_toml(ConfigOrigin::Embedded, &lambda_default_config(), &env, &[]).unwrap();
    assert_eq!(c.auth.mode(), AuthMode::Iam);
    assert_eq!(
        c.cas["default"].source,
        CaSourceSpec::Ssm("/session-ca/default".into())
    );
    for bad in [
        "ssm:",
        "ssm:/",
        "ssm:relative",
        "ssm:/a/",
        "ssm:/a//b",
        "ssm:/a b",
    ] {
        let text = format!("[cas.default]\nsource = \"{bad}\"\n[profiles.default]\n");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("cas.default.source"), "{bad}: {err}");
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let c = load(MINIMAL).unwrap();
    let p = c.profile("default").unwrap();
    assert_eq!(p.key_types, KeyType::ALL);
    assert!(p.allowed_callers.is_none());
    assert_eq!(c.cas["default"].refresh, Duration::from_secs(300));
}

#[test]
fn environment_overrides_settings() {
    let env: BTreeMap<String, String> = [
        ("SESSION_CA_PROFILES__DEFAULT__MAX_TTL", "20m"),
        ("SESSION_CA_PROFILES__DEFAULT__KEY_TYPES", r#"["ed25519"]"#),
        ("SESSION_CA_SERVER__LISTEN", "127.0.0.1:9999"),
        ("SESSION_CA_SERVER__MAX_BODY_BYTES", "2048"),
        ("SESSION_CA_LOG", "debug"),
        ("OTHER__THING", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &env, &[]).unwrap();
    let p = c.profile("default").unwrap();
    assert_eq!(p.max_ttl, Duration::from_secs(1200));
    assert_eq!(p.key_types, [KeyType::Ed25519]);
    assert_eq!(c.server.listen, ["127.0.0.1:9999".parse().unwrap()]);
    assert_eq!(c.server.max_body_bytes, 2048);
}

#[test]
fn a_table_from_the_environment_is_applied_before_its_keys() {
    /// An environment listing the key before its table (as a real one may).
    struct KeyFirst;
    impl EnvSource for KeyFirst {
        fn vars(&self) -> Vec<(String, String)> {
            vec![
                (
                    "SESSION_CA_PROFILES__DEFAULT__BACKDATE".into(),
                    "10s".into(),
                ),
                (
                    "SESSION_CA_PROFILES__DEFAULT".into(),
                    r#"{ ca = "default", backdate = "50s", subject = { O = "Env Bank" } }"#.into(),
                ),
            ]
        }
    }
    let env = KeyFirst;
    let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &env, &[]).unwrap();
    let p = c.profile("default").unwrap();
    assert_eq!(p.backdate, Duration::from_secs(10));
    assert_eq!(
        p.subject,
        [(SubjectAttribute::Organization, "Env Bank".to_owned())]
    );
}

#[test]
fn environment_names_the_file_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session-ca.toml");
    std::fs::write(
        &path,
        MINIMAL.replace("[profiles.default]", "[profiles.other]"),
    )
    .unwrap();
    let env: BTreeMap<String, String> =
        [(ENV_CONFIG_FILE.to_owned(), path.display().to_string())].into();
    let c = Config::load(None, &env, &[]).unwrap();
    assert!(c.profile("other").is_some());
    assert_eq!(c.origin, ConfigOrigin::File(path));

    let missing: BTreeMap<String, String> =
        [(ENV_CONFIG_FILE.to_owned(), "/nonexistent/x.toml".to_owned())].into();
    let err = Config::load(None, &missing, &[]).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn command_line_overrides_win() {
    let c = Config::from_toml(
        ConfigOrigin::Embedded,
        DEFAULT_CONFIG,
        &no_env(),
        &[(
            "server.listen".into(),
            toml::Value::Array(vec!["[::1]:8443".into()]),
        )],
    )
    .unwrap();
    assert_eq!(c.server.listen, ["[::1]:8443".parse().unwrap()]);
}

/// Each bad configuration is refused with a message naming the file and the field.
#[test]
fn bad_settings_name_file_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("[server]\nlisten = \"0.0.0.0:8080\"\n", "server.auth", "loopback"),
        ("[server]\nlisten = \"localhost\"\n", "server.listen", "IP:port"),
        ("[server]\nauth = \"magic\"\n", "server.auth", "unknown variant"),
        ("[server]\nmax_body_bytes = 10\n", "server.max_body_bytes", "between"),
        ("[server]\nmax_header_bytes = 10\n", "server.max_header_bytes", "between"),
        ("[server]\nrequest_timeout = \"1h\"\n", "server.request_timeout", "between"),
        ("[server]\nport = 1\n", "server", "unknown field"),
        ("[claims]\noid_arc = \"1.99\"\n", "claims.oid_arc", "at most 39"),
        ("[claims]\noid_arc = \"1.3.6.1.5.5.7.1\"\n", "claims.oid_arc", "overlaps"),
        ("[claims]\noid_arc = \"2.5.29.7\"\n", "claims.oid_arc", "overlaps"),
        ("[claims]\noid_arc = \"2.5\"\n", "claims.oid_arc", "overlaps"),
        ("[profiles.default]\nmax_ttl = \"25h\"\n", "profiles.default.max_ttl", "24h"),
        ("[profiles.default]\nmax_ttl = \"five\"\n", "profiles.default.max_ttl", "invalid duration"),
        ("[profiles.default]\ndefault_ttl = \"1h\"\n", "profiles.default.default_ttl", "max_ttl"),
        ("[profiles.default]\nbackdate = \"2h\"\n", "profiles.default.backdate", "1h"),
        ("[profiles.default]\nbackdate = \"1500ms\"\n", "profiles.default.backdate", "whole"),
        ("[profiles.default]\nca = \"nope\"\n", "profiles.default.ca", "no CA named"),
        ("[profiles.default]\nkey_types = []\n", "profiles.default.key_types", "at least one"),
        ("[profiles.default]\nallow_csr = false\nallow_server_keys = false\n", "profiles.default.allow_csr", "issue nothing"),
        ("[profiles.default]\ncsr_key_types = []\n", "profiles.default.csr_key_types", "at least one"),
        ("[profiles.default]\ncsr_key_types = [\"rsa-1024\"]\n", "profiles.default.csr_key_types", "unknown variant"),
        ("[profiles.default]\ncsr_key_types = [\"ed25519\", \"ed25519\"]\n", "profiles.default.csr_key_types", "twice"),
        ("[profiles.default]\nkey_types = [\"rsa-1024\"]\n", "profiles.default.key_types", "unknown variant"),
        ("[profiles.default]\nsubject = { CN = \"x\" }\n", "profiles.default.subject.CN", "CN is the session id"),
        ("[profiles.default]\nsubject = { C = \"Netherlands\" }\n", "profiles.default.subject.C", "two-letter"),
        ("[profiles.default]\nsubject = \"O=Bank,C=Netherlands\"\n", "profiles.default.subject.C", "two-letter"),
        ("[profiles.default]\nsubject = \"O=Bank,C\"\n", "profiles.default.subject", "is not KEY=VALUE"),
        ("[profiles.default]\nsubject = \"O=Bank,O=Other\"\n", "profiles.default.subject.O", "twice"),
        ("[profiles.default]\nsubject = \"CN=x\"\n", "profiles.default.subject.CN", "CN is the session id"),
        ("[profiles.default]\nuri_san = \"urn:{nope}\"\n", "profiles.default.uri_san", "placeholder"),
        ("[profiles.default]\nuri_san = \"no scheme here\"\n", "profiles.default.uri_san", "absolute URI"),
        ("[profiles.default]\nuri_san = \"urn:uuid:x-{session_id}\"\n", "profiles.default.uri_san", "RFC 4122"),
        ("[profiles.default]\nuri_san = \"urn:tx:{transaction_id}\"\n", "profiles.default.uri_san", "add \"transaction_id\" to require"),
        ("[profiles.default]\nrequire = [\"agent\"]\n", "profiles.default.require[0]", "neither"),
        ("[profiles.default]\nallowed_callers = [\"\"]\n", "profiles.default.allowed_callers[0]", "empty"),
        ("[profiles.default]\nsurprise = 1\n", "profiles.default", "unknown field"),
        ("[profiles.default.claims]\na = { oid = \"1.2.x\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "decimal"),
        ("[profiles.default.claims]\na = { oid = \"2.5.29.19\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "standard X.509"),
        ("[profiles.default.claims]\na = { oid = \"1.3.6.1.4.1.32473.1.1\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "session_id"),
        ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"string\", max_len = 5 }\nb = { oid = \"1.2.3\", type = \"json\", max_len = 5 }\n", "profiles.default.claims.b.oid", "already used"),
        ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"xml\", max_len = 5 }\n", "profiles.default.claims.a.type", "unknown variant"),
        ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"string\", max_len = 0 }\n", "profiles.default.claims.a.max_len", "between"),
        ("[profiles.default.claims]\nrequester = { oid = \"1.2.3\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.requester", "not one of"),
        ("[cas.default]\nrefresh = \"0s\"\n", "cas.default.refresh", "at least 1s"),
    ];
    for (extra, field, needle) in cases {
        let mut text = extra.replace("[cas.default]\n", "[cas.default]\nsource = \"file:k\"\n");
        if !extra.contains("[cas.default]") {
            text.push_str("\n[cas.default]\nsource = \"file:signer-key\"\n");
        }
        if !extra.contains("[profiles.default") {
            text.push_str("\n[profiles.default]\n");
        }
        let err = load(&text).expect_err(extra).to_string();
        assert!(err.starts_with("test.toml: "), "{extra}: {err}");
        assert!(err.contains(field), "{extra}: want field {field} in: {err}");
        assert!(err.contains(needle), "{extra}: want {needle:?} in: {err}");
    }
}

/// KMS-backed CAs: the source, its chain and delegation, each refused with
/// the setting named.
#[test]
fn kms_sources_and_their_settings() {
    let ok = load(
        "[cas.default]\nsource = \"kms:alias/session-ca\"\nchain = \"ssm:/session-ca/prod\"\n\
         delegate = \"1h\"\n[profiles.default]\n",
    )
    .unwrap();
    assert_eq!(
        ok.cas["default"].source,
        CaSourceSpec::Kms {
            key_id: "alias/session-ca".into(),
            chain: crate::ca::kms::ChainSpec::Ssm("/session-ca/prod".into()),
            mode: crate::ca::kms::KmsMode::Delegated(Duration::from_secs(3600)),
        }
    );
    assert_eq!(
        ok.cas["default"].source.describe_holder(),
        "key in AWS KMS kms:alias/session-ca, delegated mode (KMS certifies an in-memory \
         issuing CA for 1h at a time); certificates from ssm:/session-ca/prod"
    );
    let direct = load(
        "[cas.default]\nsource = \"kms:arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab\"\n\
         chain = \"file:kms-ca\"\n[profiles.default]\n",
    )
    .unwrap();
    assert!(matches!(
        direct.cas["default"].source,
        CaSourceSpec::Kms {
            mode: crate::ca::kms::KmsMode::Direct,
            ..
        }
    ));
    let cases: &[(&str, &str, &str)] = &[
        (
            "source = \"kms:alias/x\"\n",
            "cas.default.chain",
            "required with a \"kms:KEY\" source",
        ),
        (
            "source = \"kms:\"\nchain = \"file:d\"\n",
            "cas.default.source",
            "invalid KMS key",
        ),
        (
            "source = \"kms:alias/a b\"\nchain = \"file:d\"\n",
            "cas.default.source",
            "invalid KMS key",
        ),
        (
            "source = \"kms:alias/x\"\nchain = \"kms:alias/y\"\n",
            "cas.default.chain",
            "unsupported CA source",
        ),
        (
            "source = \"kms:alias/x\"\nchain = \"ssm:nope\"\n",
            "cas.default.chain",
            "invalid Parameter Store prefix",
        ),
        (
            "source = \"file:d\"\nchain = \"ssm:/p\"\n",
            "cas.default.chain",
            "only a \"kms:KEY\" source",
        ),
        (
            "source = \"ssm:/p\"\ndelegate = \"1h\"\n",
            "cas.default.delegate",
            "only a \"kms:KEY\" source",
        ),
        (
            "source = \"kms:alias/x\"\nchain = \"file:d\"\ndelegate = \"5m\"\n",
            "cas.default.delegate",
            "between 15m and 7d",
        ),
        (
            "source = \"kms:alias/x\"\nchain = \"file:d\"\ndelegate = \"8d\"\n",
            "cas.default.delegate",
            "between 15m and 7d",
        ),
        (
            "source = \"kms:alias/x\"\nchain = \"file:d\"\ndelegate = \"30m\"\n",
            "cas.default.delegate",
            "less than 3 × profiles.default.max_ttl",
        ),
    ];
    for (ca, field, needle) in cases {
        let text = format!("[cas.default]\n{ca}[profiles.default]\n");
        let err = load(&text).expect_err(ca).to_string();
        assert!(err.contains(field), "{ca}: want field {field} in: {err}");
        assert!(err.contains(needle), "{ca}: want {needle:?} in: {err}");
    }
    // No CRL can cover a delegated CA's certificates: no distribution point.
    let crl_url = "crl_url = \"http://ca.internal/v1/crl\"\n";
    let err = load(&format!(
        "[cas.default]\nsource = \"kms:alias/x\"\nchain = \"file:d\"\ndelegate = \"1h\"\n\
         [profiles.default]\n{crl_url}"
    ))
    .expect_err("crl_url with a delegated CA")
    .to_string();
    assert!(
        err.contains("profiles.default.crl_url") && err.contains("KMS-delegated"),
        "{err}"
    );
    load(&format!(
        "[cas.default]\nsource = \"kms:alias/x\"\nchain = \"file:d\"\n[profiles.default]\n{crl_url}"
    ))
    .expect("crl_url with KMS direct custody");
}

#[test]
fn rsa_server_keys_need_the_aws_lc_build() {
    let text = "[cas.default]\nsource = \"file:signer-key\"\n\
                [profiles.default]\nkey_types = [\"ecdsa-p256\", \"rsa-3072\"]\n";
    let loaded = load(text);
    #[cfg(feature = "aws-lc")]
    {
        let config = loaded.unwrap();
        let profile = config.profile("default").unwrap();
        assert_eq!(profile.key_types, [KeyType::EcdsaP256, KeyType::Rsa3072]);
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        let e = loaded.unwrap_err().to_string();
        assert!(e.contains("profiles.default.key_types"), "{e}");
        assert!(
            e.contains(
                "rsa-3072 keys are generated only by signers built with the `aws-lc` feature"
            ),
            "{e}"
        );
    }
}

#[test]
fn syntax_errors_name_the_file() {
    let err = load("[server\n").unwrap_err().to_string();
    assert!(err.contains("test.toml is not valid TOML"), "{err}");
    let err = load("[cas.default]\nsource = \"s3:bucket\"\n[profiles.default]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cas.default.source") && err.contains("file:DIR"),
        "{err}"
    );
    let err = load("[cas.default]\nsource = \"file:k\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one [profiles.NAME]"), "{err}");
}

/// The environment of a Lambda function deployed with the SAM template.
fn lambda_env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [(
        "SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS".to_owned(),
        r#"["arn:aws:sts::123456789012:assumed-role/payments-*/*"]"#.to_owned(),
    )]
    .into();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

#[test]
fn lambda_mode_needs_the_operators_subject() {
    // The embedded default's development subject never reaches Lambda mode.
    let err = Config::load_lambda(&lambda_env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("profiles.default.subject: not set")
            && err.contains("SESSION_CA_PROFILES__DEFAULT__SUBJECT")
            && err.contains("CertificateSubject"),
        "{err}"
    );
    // Callers of the refusing function learn the setting, not the values.
    let public = Config::load_lambda(&lambda_env(&[(
        "SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS",
        "not-a-list",
    )]))
    .unwrap_err()
    .public_summary();
    assert_eq!(
        public,
        "the setting profiles.default.allowed_callers is missing or invalid; the function's log says why"
    );
    // Text, as a CloudFormation parameter passes it; attributes in subject order.
    let c = Config::load_lambda(&lambda_env(&[(
        "SESSION_CA_PROFILES__DEFAULT__SUBJECT",
        "O=Example Bank, OU=Payments ,C=NL",
    )]))
    .unwrap();
    assert_eq!(c.auth.mode(), AuthMode::Iam);
    assert_eq!(
        c.profiles["default"].subject,
        vec![
            (SubjectAttribute::Country, "NL".to_owned()),
            (SubjectAttribute::Organization, "Example Bank".to_owned()),
            (SubjectAttribute::OrganizationalUnit, "Payments".to_owned()),
        ]
    );
    // Or a TOML table.
    let c = Config::load_lambda(&lambda_env(&[(
        "SESSION_CA_PROFILES__DEFAULT__SUBJECT",
        r#"{ O = "Example Bank" }"#,
    )]))
    .unwrap();
    assert_eq!(
        c.profiles["default"].subject,
        vec![(SubjectAttribute::Organization, "Example Bank".to_owned())]
    );
    // `serve`'s embedded default keeps its development subject.
    let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &no_env(), &[]).unwrap();
    assert!(!c.profiles["default"].subject.is_empty());
}

#[test]
fn lambda_mode_needs_iam_or_hmac_with_a_store() {
    let hmac_key = [
        ("SESSION_CA_HMAC_KEYS__K1__SECRET_ENV", "K1_SECRET"),
        ("K1_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    for (auth, keys, why) in [
        ("none", &[][..], "local development only"),
        (
            "hmac",
            &hmac_key[..],
            "needs a store shared by every execution environment",
        ),
    ] {
        let mut env = lambda_env(&[
            ("SESSION_CA_SERVER__AUTH", auth),
            ("SESSION_CA_PROFILES__DEFAULT__SUBJECT", "O=Example Bank"),
        ]);
        env.extend(keys.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let err = Config::load_lambda(&env).unwrap_err().to_string();
        assert!(
            err.contains("server.auth") && err.contains(why),
            "{auth}: {err}"
        );
    }
    // An SQLite file is each environment's own: not a shared store.
    let mut env = lambda_env(&[
        ("SESSION_CA_SERVER__AUTH", "hmac"),
        ("SESSION_CA_STORE__URL", "sqlite:/tmp/ledger.sqlite3"),
        ("SESSION_CA_PROFILES__DEFAULT__SUBJECT", "O=Example Bank"),
    ]);
    env.extend(
        hmac_key
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let err = Config::load_lambda(&env).unwrap_err().to_string();
    assert!(err.contains("each environment's own"), "{err}");
    // So is a rate limit counted in an SQLite file: each environment would
    // count alone.
    let env = lambda_env(&[
        ("SESSION_CA_STORE__URL", "sqlite:/tmp/ledger.sqlite3"),
        ("SESSION_CA_PROFILES__DEFAULT__SUBJECT", "O=Example Bank"),
        (
            "SESSION_CA_PROFILES__DEFAULT__RATE_LIMIT__PER_CALLER",
            "60/min",
        ),
    ]);
    let err = Config::load_lambda(&env).unwrap_err().to_string();
    assert!(
        err.contains("profiles.default.rate_limit") && err.contains("each environment's own"),
        "{err}"
    );
    // With DynamoDB, HMAC's replay refusal holds across environments.
    let mut env = lambda_env(&[
        ("SESSION_CA_SERVER__AUTH", "hmac"),
        ("SESSION_CA_STORE__URL", "dynamodb:session-ca-ledger"),
        ("SESSION_CA_PROFILES__DEFAULT__SUBJECT", "O=Example Bank"),
    ]);
    env.extend(
        hmac_key
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::load_lambda(&env).unwrap();
    assert_eq!(config.auth.mode(), AuthMode::Hmac);
}

#[test]
fn rate_limits_are_checked_and_need_a_store() {
    let with = |store: &str, limit: &str| {
        let limit: toml::Table = format!("x = {{ {limit} }}").parse().unwrap();
        let overrides = [
            ("store.url".to_owned(), toml::Value::String(store.into())),
            ("profiles.default.rate_limit".to_owned(), limit["x"].clone()),
        ];
        Config::from_toml(
            ConfigOrigin::Embedded,
            DEFAULT_CONFIG,
            &no_env(),
            &overrides,
        )
    };
    let c = with(
        "sqlite:/tmp/x.sqlite3",
        "per_caller = \"600/min\", rsa_per_caller = \"5/min\", on_store_error = \"open\"",
    )
    .unwrap();
    let limits = &c.profiles["default"].rate_limit;
    assert_eq!(limits.per_caller.unwrap().count, 600);
    assert_eq!(limits.rsa_per_caller.unwrap().count, 5);
    assert_eq!(
        limits.on_store_error,
        crate::profile::rate_limit::FailMode::Open
    );
    for (store, limit, field, why) in [
        (
            "none",
            "per_caller = \"1/s\"",
            "profiles.default.rate_limit",
            "counted in the store",
        ),
        (
            "sqlite:/tmp/x",
            "per_session = \"1/week\"",
            "rate_limit.per_session",
            "COUNT/UNIT",
        ),
        (
            "sqlite:/tmp/x",
            "per_transaction = \"0/min\"",
            "rate_limit.per_transaction",
            "admits nothing",
        ),
        (
            "sqlite:/tmp/x",
            "per_sesion = \"1/s\"",
            "rate_limit",
            "per_sesion",
        ),
        (
            "sqlite:/tmp/x",
            "on_store_error = \"maybe\"",
            "on_store_error",
            "maybe",
        ),
    ] {
        let err = with(store, limit).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(why), "{limit}: {err}");
    }
}

#[test]
fn store_sync_is_for_sqlite_only() {
    let with = |url: &str, sync: &str| {
        let overrides = [
            ("store.url".to_owned(), toml::Value::String(url.into())),
            ("store.sync".to_owned(), toml::Value::String(sync.into())),
        ];
        Config::from_toml(
            ConfigOrigin::Embedded,
            DEFAULT_CONFIG,
            &no_env(),
            &overrides,
        )
    };
    let c = with("sqlite:/tmp/x.sqlite3", "normal").unwrap();
    assert_eq!(c.store.sync, crate::store::StoreSync::Normal);
    let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &no_env(), &[]).unwrap();
    assert_eq!(c.store.sync, crate::store::StoreSync::Full, "the default");
    let err = with("dynamodb:session-ca-ledger", "normal")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.sync") && err.contains("SQLite ledger"),
        "{err}"
    );
    let err = with("sqlite:/tmp/x.sqlite3", "off")
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.sync") && err.contains("off"), "{err}");
}
