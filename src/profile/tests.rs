//! Tests of applying a profile to requests.

use super::*;
use serde_json::json;

pub(crate) fn profile() -> Profile {
    let arc: ObjectId = session_ca_verify::DEFAULT_OID_ARC.parse().unwrap();
    let mut claims = BTreeMap::new();
    claims.insert(
        "agent".to_owned(),
        ClaimSpec {
            oid: arc.child(100),
            kind: ClaimType::String,
            max_len: 16,
            required: false,
        },
    );
    claims.insert(
        "geo".to_owned(),
        ClaimSpec {
            oid: arc.child(101),
            kind: ClaimType::Json,
            max_len: 64,
            required: false,
        },
    );
    Profile {
        name: "default".into(),
        ca: "default".into(),
        key_types: vec![KeyType::EcdsaP256, KeyType::Ed25519],
        allow_server_keys: true,
        allow_csr: true,
        csr_key_types: CsrKeyType::ALL.to_vec(),
        default_ttl: Duration::from_secs(300),
        max_ttl: Duration::from_secs(900),
        backdate: Duration::from_secs(30),
        subject: vec![(SubjectAttribute::Organization, "Bank".into())],
        uri_san: Some("urn:uuid:{session_id}".into()),
        crl_url: None,
        require_session_id: false,
        require_transaction_id: false,
        allowed_callers: None,
        claims,
        oid_arc: arc,
        max_json_depth: 3,
        rate_limit: Default::default(),
    }
}

const SID: &str = "92fea10a-0905-40cc-aca1-54ee52e89c71";

fn request(body: serde_json::Value) -> IssueRequest {
    IssueRequest::from_json(body.to_string().as_bytes()).unwrap()
}

fn plan(p: &Profile, body: serde_json::Value) -> Result<CertificatePlan, PolicyError> {
    p.plan(&request(body), &Caller::Anonymous, "req-1")
}

#[test]
fn defaults_fill_in() {
    let plan = plan(&profile(), json!({})).unwrap();
    assert_eq!(plan.key, KeySource::Generate(KeyType::EcdsaP256));
    assert!(!plan.pkcs12);
    assert_eq!(plan.ttl, Duration::from_secs(300));
    let uuid = uuid::Uuid::parse_str(&plan.session_id).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(plan.uri_san, Some(format!("urn:uuid:{}", plan.session_id)));
    let oids: Vec<String> = plan.extensions.iter().map(|(o, _)| o.to_string()).collect();
    assert_eq!(oids, ["1.3.6.1.4.1.32473.1.1", "1.3.6.1.4.1.32473.1.4"]);
    assert_eq!(plan.extensions[1].1, "req-1");
}

#[test]
fn claims_are_encoded_by_type() {
    let plan = plan(
        &profile(),
        json!({"session_id": SID, "transaction_id": "t",
               "claims": {"agent": "iOS", "geo": {"lat": "52.15", "lon": "4.49"}}}),
    )
    .unwrap();
    let by_oid: BTreeMap<String, String> = plan
        .extensions
        .iter()
        .map(|(o, v)| (o.to_string(), v.clone()))
        .collect();
    assert_eq!(by_oid["1.3.6.1.4.1.32473.1.2"], "t");
    assert_eq!(by_oid["1.3.6.1.4.1.32473.1.100"], "iOS");
    assert_eq!(
        by_oid["1.3.6.1.4.1.32473.1.101"],
        r#"{"lat":"52.15","lon":"4.49"}"#
    );
}

#[test]
fn pkcs12_is_refused_on_fips_builds_only() {
    let result = plan(&profile(), json!({"pkcs12": true}));
    if cfg!(feature = "fips") {
        let e = result.unwrap_err();
        assert_eq!(e.code(), "invalid_field");
        assert!(e.to_string().contains("FIPS module"), "{e}");
    } else {
        assert!(result.unwrap().pkcs12);
    }
}

#[test]
fn each_rule_has_its_code() {
    let p = profile();
    for (body, code) in [
        (json!({"ttl_seconds": 0}), "ttl_too_short"),
        (json!({"ttl_seconds": 901}), "ttl_too_long"),
        (json!({"key_type": "ecdsa-p384"}), "key_type_not_allowed"),
        (json!({"claims": {"nope": "x"}}), "unknown_claim"),
        (json!({"claims": {"session_id": "x"}}), "unknown_claim"),
        (json!({"claims": {"agent": 5}}), "claim_wrong_type"),
        (
            json!({"claims": {"agent": "x".repeat(17)}}),
            "claim_too_long",
        ),
        (json!({"claims": {"geo": [[[["deep"]]]]}}), "claim_too_deep"),
        (
            json!({"claims": {"agent": "a\u{0}b"}}),
            "invalid_claim_value",
        ),
        (
            json!({"claims": {"geo": {"k\u{1b}": 1}}}),
            "invalid_claim_value",
        ),
        (
            json!({"claims": {"agent": "\u{202e}gnp"}}),
            "invalid_claim_value",
        ),
        (json!({"session_id": ""}), "invalid_field"),
        (json!({"session_id": "x".repeat(65)}), "invalid_field"),
        (json!({"transaction_id": "a\nb"}), "invalid_field"),
        (json!({"csr": "-----BEGIN"}), "invalid_csr"),
        (json!({"csr": ""}), "invalid_csr"),
    ] {
        let err = plan(&p, body.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{body}: {err}");
    }
    assert!(plan(&p, json!({"claims": {"agent": "x".repeat(16)}})).is_ok());
    assert_eq!(
        plan(&p, json!({"session_id": "not-a-uuid"})).unwrap_err(),
        PolicyError::NotAUuid {
            field: "session_id"
        }
    );
    let mut csr_only = p.clone();
    csr_only.allow_server_keys = false;
    assert_eq!(
        plan(&csr_only, json!({})).unwrap_err().code(),
        "server_keys_not_allowed"
    );
    let mut keys_only = p.clone();
    keys_only.allow_csr = false;
    assert_eq!(
        plan(&keys_only, json!({"csr": "x"})).unwrap_err().code(),
        "csr_not_allowed",
        "the profile refuses before the CSR is parsed"
    );
    let mut free = p.clone();
    free.uri_san = Some("urn:example:{session_id}".into());
    let ok = plan(&free, json!({"session_id": "é".repeat(64)})).unwrap();
    assert_eq!(
        ok.uri_san.unwrap(),
        format!("urn:example:{}", "%C3%A9".repeat(64))
    );
    assert!(plan(&p, json!({"ttl_seconds": 900})).is_ok());
}

#[test]
fn required_fields_and_claims() {
    let mut p = profile();
    p.require_session_id = true;
    p.require_transaction_id = true;
    p.claims.get_mut("agent").unwrap().required = true;
    let e = plan(&p, json!({"transaction_id": "t", "claims": {"agent": "a"}})).unwrap_err();
    assert_eq!(e, PolicyError::MissingField("session_id"));
    let e = plan(&p, json!({"session_id": SID, "claims": {"agent": "a"}})).unwrap_err();
    assert_eq!(e, PolicyError::MissingField("transaction_id"));
    let e = plan(&p, json!({"session_id": SID, "transaction_id": "t"})).unwrap_err();
    assert_eq!(e.code(), "missing_claim");
    assert!(plan(
        &p,
        json!({"session_id": SID, "transaction_id": "t", "claims": {"agent": "a"}})
    )
    .is_ok());
}

#[test]
fn allowed_callers_are_enforced() {
    let mut p = profile();
    p.allowed_callers = Some(vec![CallerPattern::new("role/payments-*")]);
    let req = request(json!({}));
    let err = p.plan(&req, &Caller::Anonymous, "r").unwrap_err();
    assert_eq!(err.code(), "caller_not_allowed");
    let ok = p
        .plan(&req, &Caller::Principal("role/payments-api".into()), "r")
        .unwrap();
    assert_eq!(ok.requester.as_deref(), Some("role/payments-api"));
    assert!(ok
        .extensions
        .iter()
        .any(|(o, v)| o.to_string() == "1.3.6.1.4.1.32473.1.3" && v == "role/payments-api"));
    let err = p
        .plan(&req, &Caller::Principal("role/ledger".into()), "r")
        .unwrap_err();
    assert_eq!(err.code(), "caller_not_allowed");
}

#[test]
fn uri_san_values_are_percent_encoded() {
    assert_eq!(
        expand_uri_template("urn:x:{profile}:{session_id}", "a b/ü", None, "p"),
        "urn:x:p:a%20b%2F%C3%BC"
    );
}
