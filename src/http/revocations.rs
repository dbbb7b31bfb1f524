//! Revocation by fact (`POST /v1/revocations`, administrators only), the
//! refusal of revoked requests at issuance, and each CA's CRL
//! (`GET /v1/crl`, public, like the CA chain).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::extract::Authenticated;
use super::layers::RequestId;
use super::{AppError, AppState, DEFAULT_PROFILE};
use crate::audit;
use crate::crl::{self, CrlError};
use crate::fmt::rfc3339;
use crate::profile::CertificatePlan;
use crate::request::RequestError;
use crate::store::{LedgerKey, Reason, Revocation, StoreError};

/// Media type of `GET /v1/crl` (RFC 5280 §4.2.1.13, RFC 2585 §4.2).
pub const CRL_MEDIA_TYPE: &str = "application/pkix-crl";
/// The longest key value a revocation may name, in characters (so that,
/// four bytes each at most, it fits a DynamoDB partition key).
const MAX_VALUE_LEN: usize = 500;
/// The most matched certificates a revocation's answer lists.
const MAX_LISTED: usize = 1000;

fn unix_time(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Refuses issuance for a revoked session, transaction or requester (403
/// `revoked`); a store that cannot answer refuses it too (503).
pub(crate) async fn refuse_if_revoked(
    state: &AppState,
    plan: &CertificatePlan,
    now: i64,
) -> Result<(), AppError> {
    refuse_if_any_revoked(state, &keys_of(plan), now).await
}

/// What a rule can name of a planned certificate: its session, and its
/// transaction and requester when it has them.
pub(crate) fn keys_of(plan: &CertificatePlan) -> Vec<LedgerKey> {
    let mut keys = Vec::with_capacity(3);
    keys.push(LedgerKey::SessionId(plan.session_id.clone()));
    if let Some(transaction) = &plan.transaction_id {
        keys.push(LedgerKey::TransactionId(transaction.clone()));
    }
    if let Some(requester) = &plan.requester {
        keys.push(LedgerKey::Requester(requester.clone()));
    }
    keys
}

/// 403 `revoked` when a rule in force at `now` covers one of `keys` (a
/// replayed certificate's serial and session, besides the request's).
pub(crate) async fn refuse_if_any_revoked(
    state: &AppState,
    keys: &[LedgerKey],
    now: i64,
) -> Result<(), AppError> {
    let Some(store) = state.ledger.store() else {
        return Ok(());
    };
    refusal(store.revoked(keys, now).await)
}

/// What a revocation check's answer means for the request: 403 `revoked`
/// for a rule in force, 503 `ledger_unavailable` when the store could
/// not tell.
pub(crate) fn refusal(answer: Result<Option<Revocation>, StoreError>) -> Result<(), AppError> {
    match answer {
        Ok(None) => Ok(()),
        Ok(Some(rule)) => Err(AppError::Revoked(format!(
            "{} {:?} was revoked at {} ({}){}; no certificate is issued for it",
            rule.key.kind(),
            rule.key.value(),
            unix_time(rule.revoked_at),
            rule.reason,
            rule.expires
                .map(|at| format!(" until {}", unix_time(at)))
                .unwrap_or_default(),
        ))),
        Err(e) => Err(AppError::LedgerUnavailable(e.to_string())),
    }
}

/// The body of `POST /v1/revocations`. An optional field is absent or a
/// string, never `null`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationBody {
    #[serde(default, deserialize_with = "string")]
    session_id: Option<String>,
    #[serde(default, deserialize_with = "string")]
    transaction_id: Option<String>,
    #[serde(default, deserialize_with = "string")]
    serial: Option<String>,
    #[serde(default, deserialize_with = "string")]
    requester: Option<String>,
    reason: String,
    #[serde(default, deserialize_with = "string")]
    expires: Option<String>,
}

/// A present optional field: a string (`null` is refused).
fn string<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<String>, D::Error> {
    String::deserialize(field).map(Some)
}

/// A serial as the ledger keeps it: the lower-case hex of its DER INTEGER
/// content (a leading `00` octet exactly when the top bit is set), from
/// hex as any tool prints it (either case, with or without that octet, an
/// odd number of digits).
pub(crate) fn canonical_serial(hex: &str) -> Option<String> {
    if hex.is_empty() || hex.len() > 2 * 21 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    let bytes: Vec<u8> = (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    Some(crate::fmt::hex(&crate::x509::der_integer_content(&bytes)))
}

/// A key a revocation or a ledger query names, checked as both read it:
/// 1 to [`MAX_VALUE_LEN`] characters, and a serial in hex (made canonical).
/// The error names the key.
pub(crate) fn checked_key(key: LedgerKey) -> Result<LedgerKey, String> {
    let value = key.value();
    if value.is_empty() || value.chars().count() > MAX_VALUE_LEN {
        return Err(format!(
            "{}: must be 1 to {MAX_VALUE_LEN} characters",
            key.kind()
        ));
    }
    Ok(match key {
        LedgerKey::Serial(hex) => LedgerKey::Serial(canonical_serial(&hex).ok_or_else(|| {
            "serial: must be hexadecimal (with or without a leading 00 octet)".to_owned()
        })?),
        other => other,
    })
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::Request(RequestError::InvalidRequest(message.into()))
}

impl RevocationBody {
    fn parse(body: &[u8]) -> Result<RevocationBody, AppError> {
        serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => invalid(e.to_string()),
            _ => AppError::Request(RequestError::InvalidJson(e.to_string())),
        })
    }

    fn into_rule(
        self,
        now: i64,
        revoked_by: &str,
        request_id: &str,
    ) -> Result<Revocation, AppError> {
        let keys = [
            self.session_id.map(LedgerKey::SessionId),
            self.transaction_id.map(LedgerKey::TransactionId),
            self.serial.map(LedgerKey::Serial),
            self.requester.map(LedgerKey::Requester),
        ];
        let mut keys = keys.into_iter().flatten();
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) => key,
            _ => {
                return Err(invalid(
                    "give exactly one of session_id, transaction_id, serial and requester",
                ))
            }
        };
        let key = checked_key(key).map_err(invalid)?;
        let reason: Reason = self
            .reason
            .parse()
            .map_err(|message: String| invalid(format!("reason: {message}")))?;
        let expires = match self.expires {
            None => None,
            Some(text) => {
                let at = OffsetDateTime::parse(&text, &Rfc3339)
                    .map_err(|_| {
                        invalid(format!(
                            "expires: {text:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z"
                        ))
                    })?
                    .unix_timestamp();
                if at <= now {
                    return Err(invalid(format!(
                        "expires: {text} is not in the future; leave it out to revoke for good"
                    )));
                }
                Some(at)
            }
        };
        Ok(Revocation {
            key,
            reason,
            revoked_at: now,
            expires,
            revoked_by: revoked_by.to_owned(),
            request_id: request_id.to_owned(),
        })
    }
}

/// `POST /v1/revocations`: stores the rule, then answers 201 with it and
/// the unexpired certificates it matches.
pub(crate) async fn create_revocation(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    Authenticated { caller, body }: Authenticated,
) -> Result<Response, AppError> {
    if !state.config.is_admin(&caller) {
        return Err(AppError::NotAdmin(caller.audit_label().to_owned()));
    }
    super::handlers::is_json(&headers)?;
    let body = body.map_err(|rejection| super::handlers::body_error(&rejection, &state.config))?;
    let now = state.clock.now().unix_timestamp();
    let rule = RevocationBody::parse(&body)?.into_rule(now, caller.audit_label(), &request_id)?;
    let store = Arc::clone(state.ledger.store().ok_or(AppError::NoLedger)?);
    let since = now.saturating_sub(crl::horizon(&state.config));
    // Stored, matched and audited in a task of its own: once the rule is
    // stored it is in force, so its audit event is written even when this
    // request is dropped meanwhile (its client gone, its time limit hit).
    let stored = {
        let rule = rule.clone();
        let request_id = request_id.clone();
        tokio::spawn(async move {
            store.revoke(&rule).await?;
            // Stored first. A certificate being issued meanwhile is either
            // recorded already (and so found here) or asked about again once
            // recorded, and refused (`issue_certificate`); every CRL from
            // now on lists it.
            let matched = crl::matching(store.as_ref(), &rule.key, now, since)
                .await
                .map(|records| {
                    records
                        .into_iter()
                        .filter(|r| r.not_after > now)
                        .collect::<Vec<_>>()
                });
            // Audited once stored, whether or not the matches could be read.
            audit::revocation_made(
                rule.key.kind(),
                rule.key.value(),
                rule.reason.name(),
                rule.expires
                    .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
                &rule.revoked_by,
                &request_id,
                matched.as_ref().ok().map(Vec::len),
            );
            Ok::<_, StoreError>(matched)
        })
    };
    let matched = stored
        .await
        .map_err(|e| AppError::Internal(format!("the revocation task failed: {e}")))?
        .map_err(|e| AppError::LedgerUnavailable(e.to_string()))?;
    let mut matched = matched.map_err(|e| AppError::LedgerUnavailable(e.to_string()))?;
    let total = matched.len();
    matched.truncate(MAX_LISTED);
    let certificates: Vec<Value> = matched
        .into_iter()
        .map(|r| {
            json!({
                "serial": r.serial,
                "ca": r.ca,
                "session_id": r.session_id,
                "transaction_id": r.transaction_id,
                "requester": r.requester,
                "issued_at": unix_time(r.issued_at),
                "not_after": unix_time(r.not_after),
            })
        })
        .collect();
    let mut revocation = serde_json::Map::new();
    revocation.insert(rule.key.kind().into(), rule.key.value().into());
    revocation.insert("reason".into(), rule.reason.name().into());
    revocation.insert("revoked_at".into(), unix_time(rule.revoked_at).into());
    revocation.insert("expires".into(), rule.expires.map(unix_time).into());
    revocation.insert("revoked_by".into(), rule.revoked_by.into());
    revocation.insert("request_id".into(), request_id.to_string().into());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "revocation": revocation,
            "matched": total,
            "certificates": certificates,
            "truncated": total > MAX_LISTED,
        })),
    )
        .into_response())
}

/// Query of `GET /v1/crl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CrlQuery {
    /// The CA (default: the default profile's).
    ca: Option<String>,
    /// `der` (default) or `pem`.
    #[serde(default)]
    format: CrlFormat,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CrlFormat {
    #[default]
    Der,
    Pem,
}

/// `GET /v1/crl[?ca=NAME][&format=pem]`: the CA's current CRL.
pub(crate) async fn current_crl(
    State(state): State<AppState>,
    query: Result<Query<CrlQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|e| AppError::InvalidQuery(e.body_text()))?;
    let name = match query.ca {
        Some(name) => name,
        None => state
            .config
            .profile(DEFAULT_PROFILE)
            .map(|p| p.ca.clone())
            .ok_or_else(|| AppError::InvalidQuery("name the CA: ?ca=NAME".into()))?,
    };
    if !state.config.cas.contains_key(&name) {
        return Err(AppError::unknown_ca(&name));
    }
    let ca = state
        .cas
        .get(&name)
        .ok_or_else(|| AppError::CaUnavailable(format!("CA {name:?} is not loaded")))?;
    let refused = |e: CrlError| match e {
        CrlError::Store(e) => AppError::LedgerUnavailable(e.to_string()),
        CrlError::Unsupported(reason) => AppError::CrlUnavailable(reason),
        CrlError::Sign(reason) => AppError::KeyHolderUnavailable(reason),
    };
    // What the CA cannot sign (a per-instance delegation, a certificate
    // without cRLSign or a key identifier) it cannot sign with any ledger:
    // 409 before the ledger is asked for or read.
    let signable = crl::signable(&ca).map_err(refused)?;
    let store = state.ledger.store().ok_or(AppError::NoLedger)?;
    let now = state.clock.now();
    let der = crl::current(
        store.as_ref(),
        state.ledger.crls(),
        &signable,
        &state.config,
        now,
    )
    .await
    .map_err(refused)?;
    Ok(match query.format {
        CrlFormat::Der => ([(header::CONTENT_TYPE, CRL_MEDIA_TYPE)], der.to_vec()).into_response(),
        CrlFormat::Pem => {
            let pem = pem::encode_config(
                &pem::Pem::new("X509 CRL", der.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            ([(header::CONTENT_TYPE, super::PEM_FILE_MEDIA_TYPE)], pem).into_response()
        }
    })
}
