//! API conformance: schemathesis (PyPI, pinned in
//! scripts/requirements-test.txt) generates requests from
//! `api-spec/openapi.yaml`, valid and invalid ones, against a live
//! `session-ca serve` with the embedded default, and checks every response
//! against the spec: no 5xx, documented status codes, content types,
//! headers and bodies, invalid requests refused, valid ones accepted.
//! Run by scripts/test, which puts schemathesis on PATH.

use crate::common::tools;

use std::process::Command;
use std::time::Instant;

use tools::{output_text, start_serve};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api-spec/openapi.yaml");

/// Test cases per operation and phase, and the seed: the same inputs every
/// run (about 1,200 requests), 15-40 s against a debug build.
const MAX_EXAMPLES: &str = "500";
const SEED: &str = "1";

/// Every check, built-in and those of [`CHECKS`]. Schemathesis's own
/// `positive_data_acceptance` is off for `POST /v1/certificates` and `GET
/// /v1/certificates` (replaced by `ledger_accepts_schema_valid_queries`:
/// exactly one key, and a cursor the ledger gave, are said in prose):
/// there `issue_accepts_schema_valid_requests` replaces it, because whether
/// a schema-valid request is issued also depends on the profile's policy
/// (422) and on a CSR's contents (400 `invalid_csr`), which no JSON Schema
/// can say. Hypothesis's `too_slow` health check is off: how fast inputs
/// are generated on a busy machine says nothing about the service.
const CONFIG: &str = r#"hooks = "session_ca_checks.py"
suppress-health-check = ["too_slow"]

[checks]
enabled = true

[[operations]]
include-name = "POST /v1/certificates"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = "GET /v1/certificates"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = "POST /v1/revocations"
checks.positive_data_acceptance.enabled = false
"#;

/// Checks added to schemathesis's, as a hooks module.
const CHECKS: &str = r##"import json

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

ISSUE = "POST /v1/certificates"


def error_code(response):
    try:
        return json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def has_number_beyond_double(value):
    if isinstance(value, dict):
        return any(has_number_beyond_double(v) for v in value.values())
    if isinstance(value, list):
        return any(has_number_beyond_double(v) for v in value)
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return abs(value) > 1.7976931348623157e308
    return False


@schemathesis.check
def issue_accepts_schema_valid_requests(ctx, response, case):
    """positive_data_acceptance for POST /v1/certificates (turned off there).

    A request the schema allows is issued (201), or answered with its plan
    (200) when it asked for a dry run, unless it hits what no JSON Schema can
    say: a profile that does not exist (404 unknown_profile), the
    profile's policy (422: its max_ttl, key types, claims, required fields,
    session id form), a CSR whose contents are not a valid request (400
    invalid_csr) or numbers the spec refuses in prose (400 invalid_request).
    Any other refusal means the spec and the service disagree.
    """
    if case.operation.label != ISSUE or case.meta is None:
        return None
    if not case.meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    status, code = response.status_code, error_code(response)
    dry_run = str((case.query or {}).get("dry_run", "")).lower() == "true"
    if status == (200 if dry_run else 201) or status == 422:
        return None
    # State no schema holds: a session or transaction an earlier
    # POST /v1/revocations of this run revoked.
    if (status, code) == (403, "revoked"):
        return None
    if (status, code) in {(404, "unknown_profile"), (400, "invalid_csr")}:
        return None
    # Two refusals the spec states in prose: ttl_seconds written with a
    # fraction or an exponent (300.0, an integer to JSON Schema), and a
    # claim number beyond the range of a double.
    body = case.body if isinstance(case.body, dict) else {}
    if (status, code) == (400, "invalid_request") and isinstance(body.get("ttl_seconds"), float):
        return None
    if (status, code) == (400, "invalid_json") and has_number_beyond_double(body.get("claims")):
        return None
    raise AssertionError(
        f"A schema-valid request was refused with {status} {code}: {response.text[:500]}"
    )


REVOKE = "POST /v1/revocations"


@schemathesis.check
def revocation_accepts_schema_valid_requests(ctx, response, case):
    """positive_data_acceptance for POST /v1/revocations (turned off there).
    A schema-valid revocation is stored (201), unless its `expires` is not
    in the future, which the spec says in prose (400 invalid_request).
    """
    if case.operation.label != REVOKE or case.meta is None:
        return None
    if not case.meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    status, code = response.status_code, error_code(response)
    if status == 201:
        return None
    body = case.body if isinstance(case.body, dict) else {}
    if (status, code) == (400, "invalid_request") and "expires" in body:
        return None
    raise AssertionError(
        f"A schema-valid revocation was refused with {status} {code}: {response.text[:500]}"
    )


LEDGER = "GET /v1/certificates"
LEDGER_KEYS = ("session_id", "transaction_id", "serial", "requester")


@schemathesis.check
def ledger_accepts_schema_valid_queries(ctx, response, case):
    """positive_data_acceptance for GET /v1/certificates (turned off there).
    A schema-valid query is answered 200, unless it breaks what the spec
    says in prose: exactly one of the four keys, and a cursor this ledger
    gave (400 invalid_query).
    """
    if case.operation.label != LEDGER or case.meta is None:
        return None
    if not case.meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    status, code = response.status_code, error_code(response)
    if status == 200:
        return None
    query = case.query or {}
    keys = [k for k in LEDGER_KEYS if k in query]
    if (status, code) == (400, "invalid_query") and (len(keys) != 1 or "cursor" in query):
        return None
    raise AssertionError(
        f"A schema-valid query was refused with {status} {code}: {response.text[:500]}"
    )


@schemathesis.check
def error_code_documented_for_status(ctx, response, case):
    """An error's code is one the operation documents for that status.

    Each documented error response names its codes in backticks in its
    description; a code under a status that does not name it is a mismatch
    between spec and service (for undocumented statuses
    status_code_conformance speaks).
    """
    code = error_code(response)
    if code is None:
        return None
    documented = case.operation.definition.raw.get("responses", {}).get(str(response.status_code))
    if documented is None:
        return None
    if f"`{code}`" not in documented.get("description", ""):
        raise AssertionError(
            f"{response.status_code} with code {code!r}, which the spec's description of "
            f"{case.operation.label} {response.status_code} does not name"
        )
    return None
"##;

#[test]
#[ignore = "needs schemathesis; run scripts/test"]
fn the_live_service_answers_as_the_openapi_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schemathesis.toml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("session_ca_checks.py"), CHECKS).unwrap();
    let (_server, port) = start_serve(BIN, dir.path());

    let started = Instant::now();
    let out = Command::new("schemathesis")
        .args([
            "--config-file",
            "schemathesis.toml",
            "--no-color",
            "run",
            SPEC,
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--mode",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--generation-database",
            "none",
            "--continue-on-failure",
            "--request-timeout",
            "20",
        ])
        .current_dir(dir.path())
        .env("COLUMNS", "120")
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run schemathesis ({e}); scripts/test installs it into .venv/ \
                 (pinned in scripts/requirements-test.txt) and puts .venv/bin on PATH"
            )
        });
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "schemathesis failed ({}, after {:.0?}): the service and api-spec/openapi.yaml \
         disagree (or the run could not start):\n{text}",
        out.status,
        started.elapsed()
    );
    // It really ran: every operation of the spec was tested.
    let after = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
            .trim()
            .to_owned()
    };
    let selected = after("Selected:");
    let (tested_of, total) = selected.split_once('/').unwrap();
    assert_eq!(tested_of, total, "operations left out:\n{text}");
    assert_eq!(after("Tested:"), total, "operations not tested:\n{text}");
    // Every case passed every check...
    let (generated, passed) = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .unwrap_or_else(|| panic!("no test case count in:\n{text}"));
    assert_eq!(format!("{generated} passed"), passed, "{text}");
    // ...and nothing was flagged, but for one warning the spec cannot
    // avoid: no schema can say "exactly one of these four parameters" of
    // GET /v1/certificates (the spec says it in prose), so its generated
    // queries mostly carry several keys and are refused (400
    // invalid_query), and a fuzzing phase that happens to send no
    // single-key query is reported as "mostly rejected". What must be
    // accepted there is checked by ledger_accepts_schema_valid_queries.
    if !text.contains("No issues found") {
        let section = text
            .split("= WARNINGS =")
            .nth(1)
            .and_then(|rest| rest.split("= SUMMARY =").next())
            .unwrap_or_else(|| panic!("issues, but no WARNINGS section:\n{text}"));
        let flagged: Vec<&str> = section
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .collect();
        assert!(
            flagged == ["GET /v1/certificates"]
                && section.contains("Schema validation mismatch")
                && section.matches(" operation").count() == 1,
            "{text}"
        );
    }
}
