//! `GET /v1/certificates`: the ledger's records for administrators, by
//! session, transaction, serial or requester, within a window, in pages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::extract::Authenticated;
use super::{AppError, AppState};
use crate::fmt::rfc3339;
use crate::store::{LedgerKey, LedgerQuery, LedgerRecord, StoreError, MAX_PAGE};

/// The default page size.
const DEFAULT_PAGE: u32 = 100;

/// The query string of `GET /v1/certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LedgerParams {
    session_id: Option<String>,
    transaction_id: Option<String>,
    serial: Option<String>,
    requester: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn time_param(name: &str, text: Option<&str>) -> Result<Option<i64>, AppError> {
    text.map(|text| {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(OffsetDateTime::unix_timestamp)
            .map_err(|_| {
                AppError::InvalidQuery(format!(
                    "{name}: {text:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"
                ))
            })
    })
    .transpose()
}

impl LedgerParams {
    fn into_query(self, now: i64) -> Result<LedgerQuery, AppError> {
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
                return Err(AppError::InvalidQuery(
                    "give exactly one of session_id, transaction_id, serial and requester".into(),
                ))
            }
        };
        // As a revocation reads it: any spelling of a serial finds it.
        let key = super::revocations::checked_key(key).map_err(AppError::InvalidQuery)?;
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::InvalidQuery(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(LedgerQuery {
            key,
            since: time_param("since", self.since.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
            limit,
            cursor: self.cursor,
            now,
        })
    }
}

/// A record as the API shows it: times in RFC 3339, claims as an object.
fn record_json(record: LedgerRecord) -> Value {
    let time = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .map(rfc3339)
            .unwrap_or_default()
    };
    let claims: Map<String, Value> = record
        .claims
        .into_iter()
        .map(|(name, text)| (name, Value::String(text)))
        .collect();
    json!({
        "serial": record.serial,
        "fingerprint_sha256": record.fingerprint_sha256,
        "ca": record.ca,
        "profile": record.profile,
        "requester": record.requester,
        "request_id": record.request_id,
        "session_id": record.session_id,
        "transaction_id": record.transaction_id,
        "claims": claims,
        "key_type": record.key_type,
        "not_before": time(record.not_before),
        "not_after": time(record.not_after),
        "issued_at": time(record.issued_at),
        "certificate": record.certificate,
    })
}

/// `GET /v1/certificates?session_id=...` (or `transaction_id`, `serial`,
/// `requester`; with `since`, `until`, `limit`, `cursor`).
pub(crate) async fn list_certificates(
    State(state): State<AppState>,
    query: Result<Query<LedgerParams>, QueryRejection>,
    Authenticated { caller, .. }: Authenticated,
) -> Result<Response, AppError> {
    if !state.config.is_admin(&caller) {
        return Err(AppError::NotAdmin(caller.audit_label().to_owned()));
    }
    let Query(params) = query.map_err(|e| AppError::InvalidQuery(e.body_text()))?;
    let query = params.into_query(state.clock.now().unix_timestamp())?;
    let store = state.ledger.store().ok_or(AppError::NoLedger)?;
    let page = store.query(&query).await.map_err(|e| match e {
        StoreError::BadQuery(message) => AppError::InvalidQuery(message),
        other => AppError::LedgerUnavailable(other.to_string()),
    })?;
    let certificates: Vec<Value> = page.records.into_iter().map(record_json).collect();
    Ok(Json(json!({ "certificates": certificates, "next": page.next })).into_response())
}
