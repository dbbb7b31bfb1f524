//! The route handlers: issuance, the CA chain, health, and the fallbacks.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use session_ca_client::{CaHealth, Health, IssuePlan, IssueResponse, Pkcs12Body, PlannedClaim};

use super::extract::Authenticated;
use super::idempotency::{self, Start};
use super::layers::{AuditTrail, RequestId};
use super::{AppError, AppState, DEFAULT_PROFILE, PEM_CHAIN_MEDIA_TYPE, PKCS12_MEDIA_TYPE};
use crate::audit;
use crate::config::Config;
use crate::fmt::rfc3339;
use crate::issuer;
use crate::metrics::prometheus::CaExpiry;
use crate::metrics::Metrics;
use crate::request::IssueRequest;

/// The error for a body that could not be read whole.
pub(crate) fn body_error(rejection: &BytesRejection, config: &Config) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::BodyTooLarge {
            limit: config.server.max_body_bytes,
        }
    } else {
        AppError::BodyUnreadable(rejection.body_text())
    }
}

/// Query of `POST /v1/certificates`. An unknown parameter is refused: a
/// misspelt `dry_run` (`?dryrun=true`) would otherwise issue for real.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueQuery {
    /// Check the request and answer with the plan, issuing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /v1/certificates`: authenticate, parse, apply the profile, issue
/// (or, with `?dry_run=true`, answer with the plan). The outcome's audit
/// event is written by [`super::layers::observe`].
pub(crate) async fn issue_certificate(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trail): Extension<AuditTrail>,
    headers: HeaderMap,
    query: Result<Query<IssueQuery>, QueryRejection>,
    Authenticated { caller, body }: Authenticated,
) -> Result<Response, AppError> {
    trail.set_handling_started();
    let Query(query) = query.map_err(|e| AppError::InvalidQuery(e.body_text()))?;
    is_json(&headers)?;
    // A malformed Idempotency-Key is refused on dry runs too.
    let idempotency_key = idempotency::key_of(&headers)?;
    let body = body.map_err(|rejection| body_error(&rejection, &state.config))?;
    let request = IssueRequest::from_json(&body)?;
    let profile_name = request.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    trail.set_profile(profile_name);
    let profile = state
        .config
        .profile(profile_name)
        .ok_or_else(|| AppError::unknown_profile(profile_name))?;
    let plan = profile.plan(&request, &caller, &request_id)?;
    let ca = state
        .cas
        .get(&plan.ca)
        .ok_or_else(|| AppError::CaUnavailable(format!("CA {:?} is not loaded", plan.ca)))?;
    let now = state.clock.now();
    super::revocations::refuse_if_revoked(&state, &plan, now.unix_timestamp()).await?;
    if query.dry_run {
        return dry_run(profile, &plan, &ca, now, &request_id);
    }
    let session_sent = request.session_id.is_some();
    let limited =
        super::rate_limit::counters(&state, profile, &plan, session_sent, now.unix_timestamp());
    // A retry with its Idempotency-Key gets the first response; the first
    // holds a lease until its response is sealed in the store, and is
    // counted against the rate limits as it takes it.
    let (held, counts) = match idempotency::start(
        &state,
        idempotency_key,
        caller.audit_label(),
        &body,
        profile.max_ttl,
        &limited,
        now.unix_timestamp(),
    )
    .await?
    {
        Start::Replay(response, keys) => {
            // Revoked since, by serial or by a session the first request
            // was given: never handed out again.
            let now = now.unix_timestamp();
            super::revocations::refuse_if_any_revoked(&state, &keys, now).await?;
            return Ok(response);
        }
        Start::Held(held, counts) => (Some(held), counts),
        Start::Plain => (None, None),
    };
    super::rate_limit::enforce(&state, profile, &limited, counts).await?;
    let issued = issuer::issue_async(&ca, &plan, now).await?;
    if issued.not_after < now + plan.ttl {
        audit::certificate_shortened(&plan.ca, ca.not_after, now);
    }
    // Recorded before it is returned; if it cannot be, it is not returned.
    if let Some(store) = state.ledger.store() {
        // A rule stored while this certificate was being signed: it missed
        // the check above and may have missed the revocation's own scan of
        // the ledger, so it is asked again once the certificate is on
        // record (and so on every CRL the rule puts it on): refused, it is
        // never returned.
        let record = ledger_record(profile, &plan, &issued, &request_id, now);
        let keys = super::revocations::keys_of(&plan);
        super::revocations::refusal(
            store
                .record_then_revoked(record, &keys, now.unix_timestamp())
                .await,
        )?;
    }
    let issued_not_after = issued.not_after.unix_timestamp();
    let record = audit::Issued {
        serial: issued.serial_hex.clone(),
        fingerprint_sha256: issued.fingerprint_sha256.clone(),
        profile: plan.profile.clone(),
        ca: plan.ca.clone(),
        session_id: plan.session_id.clone(),
        transaction_id: plan.transaction_id.clone(),
        key_type: issued.key_type,
        not_before: issued.not_before,
        not_after: issued.not_after,
        ca_not_after: ca.expires(),
        delegation_not_after: ca.delegation_ends(),
        issued_at: now,
    };
    let body = IssueResponse {
        serial: issued.serial_hex,
        certificate: issued.certificate_pem,
        private_key: issued
            .private_key_pem
            .as_ref()
            .map(|pem| pem.expose().to_owned()),
        ca_chain: ca.chain_pem.clone(),
        not_before: rfc3339(issued.not_before),
        not_after: rfc3339(issued.not_after),
        renew_after: rfc3339(issued.renew_after),
        key_type: issued.key_type.to_owned(),
        fingerprint_sha256: issued.fingerprint_sha256,
        x5t_s256: issued.x5t_s256,
        profile: plan.profile,
        session_id: plan.session_id,
        request_id: request_id.to_string(),
        pkcs12: issued.pkcs12.map(|file| Pkcs12Body {
            base64: crate::pkcs12::to_base64(&file.der),
            password: file.password.expose().to_owned(),
        }),
    };
    // Sized for the PEMs (plus one escape per line) and the short fields,
    // so the buffer is allocated once instead of doubling from 128 bytes.
    let pem_bytes = body.certificate.len()
        + body.private_key.as_ref().map_or(0, String::len)
        + body.ca_chain.iter().map(String::len).sum::<usize>()
        + body.pkcs12.as_ref().map_or(0, |p12| p12.base64.len());
    let mut json = Vec::with_capacity(pem_bytes + pem_bytes / 32 + 1024);
    serde_json::to_writer(&mut json, &body).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Some(held) = held {
        held.finish(&json, issued_not_after).await?;
    }
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/json"),
            // The body holds a private key: no cache may keep it (RFC 9111 §5.2.2.5).
            (header::CACHE_CONTROL, "no-store"),
        ],
        json,
    )
        .into_response();
    response.extensions_mut().insert(record);
    Ok(response)
}

/// The ledger's record of an issued certificate (never its private key).
fn ledger_record(
    profile: &crate::profile::Profile,
    plan: &crate::profile::CertificatePlan,
    issued: &issuer::IssuedCertificate,
    request_id: &str,
    now: time::OffsetDateTime,
) -> crate::store::LedgerRecord {
    crate::store::LedgerRecord {
        serial: issued.serial_hex.clone(),
        fingerprint_sha256: issued.fingerprint_sha256.clone(),
        ca: plan.ca.clone(),
        profile: plan.profile.clone(),
        requester: plan.requester.clone(),
        request_id: request_id.to_owned(),
        session_id: plan.session_id.clone(),
        transaction_id: plan.transaction_id.clone(),
        // The profile's claims (the standard ones have fields of their own),
        // as the text the certificate carries.
        claims: plan
            .extensions
            .iter()
            .filter_map(|(oid, text)| {
                let name = profile
                    .claim_name(oid)
                    .map_or_else(|| oid.to_string(), str::to_owned);
                let standard = session_ca_verify::StandardClaim::ALL
                    .iter()
                    .any(|c| c.name() == name);
                (!standard).then(|| (name, text.clone()))
            })
            .collect(),
        key_type: issued.key_type.to_owned(),
        not_before: issued.not_before.unix_timestamp(),
        not_after: issued.not_after.unix_timestamp(),
        issued_at: now.unix_timestamp(),
        certificate: issued.certificate_pem.clone(),
    }
}

/// The answer to a dry run: the plan as it would be signed now.
fn dry_run(
    profile: &crate::profile::Profile,
    plan: &crate::profile::CertificatePlan,
    ca: &crate::ca::SigningCa,
    now: time::OffsetDateTime,
    request_id: &str,
) -> Result<Response, AppError> {
    let validity = issuer::validity(now, plan.ttl, plan.backdate, ca.not_before, ca.not_after)?;
    let mut subject: Vec<String> = plan
        .subject
        .iter()
        .map(|(attribute, value)| format!("{}={}", attribute.short_name(), rdn_value(value)))
        .collect();
    subject.push(format!("CN={}", rdn_value(&plan.session_id)));
    let claims = plan
        .extensions
        .iter()
        .map(|(oid, text)| PlannedClaim {
            oid: oid.to_string(),
            name: profile.claim_name(oid).unwrap_or("(unnamed)").to_owned(),
            value: text.clone(),
        })
        .collect();
    let body = IssuePlan {
        dry_run: true,
        profile: plan.profile.clone(),
        ca: plan.ca.clone(),
        subject: subject.join(", "),
        session_id: plan.session_id.clone(),
        transaction_id: plan.transaction_id.clone(),
        key_type: plan.key.key_type_name().to_owned(),
        key_source: match plan.key {
            crate::profile::KeySource::Generate(_) => "generated",
            crate::profile::KeySource::Csr(_) => "csr",
        }
        .to_owned(),
        not_before: rfc3339(validity.not_before),
        not_after: rfc3339(validity.not_after),
        renew_after: rfc3339(validity.renew_after),
        uri_san: plan.uri_san.clone(),
        claims,
        pkcs12: plan.pkcs12,
        request_id: request_id.to_owned(),
    };
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response.extensions_mut().insert(audit::Checked {
        profile: plan.profile.clone(),
        ca: plan.ca.clone(),
        session_id: plan.session_id.clone(),
        transaction_id: plan.transaction_id.clone(),
        key_type: plan.key.key_type_name(),
    });
    Ok(response)
}

/// An attribute value escaped as RFC 4514 §2.4 says: `"`, `+`, `,`, `;`,
/// `<`, `>` and `\` always, `#` and a space at the start, a space at the end.
fn rdn_value(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn is_json(headers: &HeaderMap) -> Result<(), AppError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(AppError::UnsupportedMediaType(
            "no Content-Type header".into(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType(format!("{text:?}")))
    }
}

/// Query of `GET /v1/ca`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaQuery {
    profile: Option<String>,
    format: Option<CaFormat>,
}

/// The forms `GET /v1/ca` serves the chain in.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CaFormat {
    /// PEM certificates, issuing CA first.
    #[default]
    Pem,
    /// A PKCS#12 trust store for Java (password [`crate::pkcs12::TRUSTSTORE_PASSWORD`]).
    Pkcs12,
}

pub(crate) async fn ca_chain(
    State(state): State<AppState>,
    query: Result<Query<CaQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|e| AppError::InvalidQuery(e.body_text()))?;
    let name = query.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let profile = state
        .config
        .profile(&name)
        .ok_or_else(|| AppError::unknown_profile(&name))?;
    let ca = state
        .cas
        .get(&profile.ca)
        .ok_or_else(|| AppError::CaUnavailable(format!("CA {:?} is not loaded", profile.ca)))?;
    match query.format.unwrap_or_default() {
        CaFormat::Pem => Ok((
            [(header::CONTENT_TYPE, PEM_CHAIN_MEDIA_TYPE)],
            ca.chain_pem_bundle.clone(),
        )
            .into_response()),
        CaFormat::Pkcs12 => {
            let chain: Vec<&[u8]> = ca.chain_der.iter().map(|c| c.as_ref()).collect();
            let store = crate::pkcs12::trust_store(&chain)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            Ok((
                [
                    (header::CONTENT_TYPE, PKCS12_MEDIA_TYPE),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"truststore.p12\"",
                    ),
                ],
                store,
            )
                .into_response())
        }
    }
}

/// `GET /metrics`: the Prometheus exposition (text format 0.0.4), each
/// CA's time left computed now.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Metrics::Prometheus(registry) = &state.metrics else {
        return AppError::NotFound {
            method: "GET".into(),
            path: super::METRICS_PATH.into(),
        }
        .into_response();
    };
    let cas: Vec<CaExpiry> = state
        .cas
        .all()
        .into_iter()
        .map(|(name, ca)| CaExpiry {
            name,
            not_after: ca.as_ref().map(|ca| ca.expires()),
            delegation_not_after: ca.and_then(|ca| ca.delegation_ends()),
        })
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::prometheus::CONTENT_TYPE,
        )],
        registry.exposition(&cas, state.clock.now()),
    )
        .into_response()
}

/// `GET /healthz` of a service whose configuration was refused.
pub(crate) async fn healthz_not_configured(reason: std::sync::Arc<str>) -> Response {
    let body = Health {
        status: "unavailable".into(),
        cas: Vec::new(),
        reason: Some(format!("the signer is not configured: {reason}")),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    let cas: Vec<CaHealth> = state
        .cas
        .all()
        .into_iter()
        .map(|(name, ca)| CaHealth {
            name,
            subject: ca.as_ref().map(|ca| ca.subject.clone()),
            not_after: ca.as_ref().map(|ca| rfc3339(ca.not_after)),
            key_holder: ca.as_ref().map(|ca| ca.holder().holder()),
            key_mode: ca.as_ref().map(|ca| ca.holder().mode().to_owned()),
            usable: ca.is_some_and(|ca| ca.not_before <= now && now < ca.not_after),
        })
        .collect();
    let ok = !cas.is_empty() && cas.iter().all(|c| c.usable);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        cas,
        reason: None,
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::NotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::rdn_value;

    #[test]
    fn rdn_values_are_escaped_as_rfc_4514_says() {
        assert_eq!(rdn_value("Example Bank"), "Example Bank");
        assert_eq!(rdn_value("Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(
            rdn_value("a+b=c;\"d\"<e>\\"),
            "a\\+b=c\\;\\\"d\\\"\\<e\\>\\\\"
        );
        assert_eq!(rdn_value("#1 "), "\\#1\\ ");
        assert_eq!(rdn_value(" x#"), "\\ x#");
    }
}
