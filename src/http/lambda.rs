//! AWS Lambda specifics: the caller's IAM principal and the request ids from
//! the event's request context, API Gateway stage prefixes, and the runtime loop.

use axum::http::{Request, Uri};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use super::{app, AppState};

/// Longest principal ARN accepted (IAM's own limit is 2048).
const MAX_PRINCIPAL_LEN: usize = 2048;

/// The IAM principal ARN of the caller: REST API v1 `identity.userArn`;
/// HTTP API v2 and Function URL `authorizer.iam.userArn`. ALB events carry
/// no IAM identity.
pub fn iam_principal(context: &RequestContext) -> Option<&str> {
    let arn = match context {
        RequestContext::ApiGatewayV1(c) => c.identity.user_arn.as_deref(),
        RequestContext::ApiGatewayV2(c) => c
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.as_deref()),
        _ => None,
    }?;
    let plausible = arn.starts_with("arn:")
        && arn.len() <= MAX_PRINCIPAL_LEN
        && arn.chars().all(|c| c.is_ascii_graphic());
    plausible.then_some(arn)
}

/// The API Gateway / Function URL request id of the event, if any.
pub fn gateway_request_id(context: &RequestContext) -> Option<&str> {
    match context {
        RequestContext::ApiGatewayV1(c) => c.request_id.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.request_id.as_deref(),
        _ => None,
    }
}

/// Removes the `/{stage}` prefix lambda_http adds to REST API paths, so the
/// routes are the same behind every front door (`$default` stages and
/// Function URLs have none).
pub fn strip_stage<B>(mut request: Request<B>) -> Request<B> {
    static STAGE_NOT_IN_PATH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *STAGE_NOT_IN_PATH
        .get_or_init(|| std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some())
    {
        return request; // lambda_http added no stage, so there is none to remove
    }
    let stage = match request.extensions().request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default" && !s.is_empty()) else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix(&prefix) else {
        return request;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return request;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The service Lambda runs: the same router as `serve`, behind
/// [`strip_stage`], reloading due CAs at the start of each request (the only
/// time a Lambda execution environment is not frozen).
pub fn lambda_app(
    state: AppState,
) -> tower::util::MapRequest<axum::Router, fn(lambda_http::Request) -> lambda_http::Request> {
    let router = app(state.clone()).layer(axum::middleware::from_fn_with_state(
        state,
        super::layers::refresh_due_cas,
    ));
    tower::util::MapRequest::new(router, strip_stage::<lambda_http::Body>)
}

/// Runs the Lambda runtime loop until the execution environment ends.
pub async fn run(state: AppState) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_app(state)).await
}
