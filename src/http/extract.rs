//! The [`Authenticated`] extractor: the request's caller, authenticated by
//! the configured [`crate::auth::Auth`], and its body.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use lambda_http::request::RequestContext;

use super::handlers::body_error;
use super::layers::AuditTrail;
use super::{lambda, AppError, AppState};
use crate::auth::{Caller, Credentials};

/// An authenticated caller and the request's body (read whole; its
/// rejection, if it could not be, is left for the handler to report after
/// its own checks, except where the signature covers the body).
pub(crate) struct Authenticated {
    /// Who is calling.
    pub(crate) caller: Caller,
    /// The body, or why it could not be read.
    pub(crate) body: Result<Bytes, BytesRejection>,
}

impl FromRequest<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let (parts, body) = request.into_parts();
        let trail = parts.extensions.get::<AuditTrail>().cloned();
        let iam_principal = parts
            .extensions
            .get::<RequestContext>()
            .and_then(lambda::iam_principal)
            .map(str::to_owned);
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
        let method = parts.method.clone();
        let uri = parts.uri.clone();
        let client_path = parts.extensions.get::<lambda::ClientPath>().cloned();
        let body = Bytes::from_request(Request::from_parts(parts, body), state).await;

        let auth = &state.config.auth;
        let signed_body = if auth.needs_body() {
            // The signature covers the body: it must have arrived whole.
            match &body {
                Ok(body) => body.as_ref(),
                Err(rejection) => {
                    if let Some(trail) = &trail {
                        trail.set_requester("unauthenticated");
                    }
                    return Err(body_error(rejection, &state.config));
                }
            }
        } else {
            &[]
        };
        let credentials = Credentials {
            iam_principal: iam_principal.as_deref(),
            authorization: authorization
                .as_ref()
                .map(|v| v.to_str().unwrap_or("\u{fffd}")),
            method: method.as_str(),
            path_and_query: uri.path_and_query().map_or(uri.path(), |p| p.as_str()),
            client_path: client_path.as_ref().map(|p| p.0.as_str()),
            body: signed_body,
            now: state.clock.now().unix_timestamp(),
        };
        let now = credentials.now;
        let mut outcome = auth.authenticate(credentials).map_err(AppError::from);
        if let (Ok(_), crate::auth::Auth::Hmac(hmac), Some(store)) =
            (&outcome, auth, state.ledger.store())
        {
            // Replays are refused by every instance sharing the store, not
            // only by this one's memory.
            let claim = authorization
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|header| hmac.replay_claim(header));
            if let Some((name, expires)) = claim {
                match store.claim(&name, now, expires).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = Err(AppError::Auth(crate::auth::AuthError::Hmac(
                            crate::auth::HmacError::Replayed,
                        )))
                    }
                    Err(e) => outcome = Err(AppError::StoreUnavailable(e.to_string())),
                }
            }
        }
        if let Some(trail) = &trail {
            trail.set_requester(match &outcome {
                Ok(caller) => caller.audit_label(),
                Err(_) => "unauthenticated",
            });
        }
        Ok(Authenticated {
            caller: outcome?,
            body,
        })
    }
}
