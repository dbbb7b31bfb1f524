//! AWS Lambda specifics: the caller's IAM principal and the request ids from
//! the event's request context, API Gateway stage prefixes, and the runtime loop.

use axum::http::{Request, Uri};
use lambda_http::aws_lambda_events::alb::AlbTargetGroupRequest;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{LambdaEvent, RequestExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// What a path may not hold as it is (RFC 3986 §3.3: outside `pchar` and
/// `/`): a space, `"`, `#`, `<`, `>`, `?`, `` ` ``, `{`, `}`, `|`, `\`, `^`,
/// controls and non-ASCII. `%` stays: a raw event path is already encoded.
const NOT_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');
/// What a decoded path parameter may not hold as it is: the above and `%`
/// (API Gateway hands path parameters over decoded, so a `%` is a `%`).
const NOT_IN_DECODED_VALUE: &AsciiSet = &NOT_IN_PATH.add(b'%');
/// A path parameter that is one segment (`{name}`) may not hold `/` either.
const NOT_IN_SEGMENT: &AsciiSet = &NOT_IN_DECODED_VALUE.add(b'/');

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

/// Routes the request on the path of the event itself, relative to the
/// API, so the routes are the same behind every front door, whatever the
/// stage is called and whether a custom domain maps a base path to it.
///
/// lambda_http rebuilds the URI with a `/{stage}` prefix it only adds when
/// the path does not already start with one, so a stage named like a route
/// (`v1`) cannot be told apart afterwards. The event says it plainly:
/// - a route template with path parameters (REST API `resource`
///   `/{proxy+}`, HTTP API route key `ANY /{proxy+}`) filled with the
///   event's `pathParameters` is the path relative to the API, behind any
///   stage and any custom domain base path;
/// - a template without parameters (`/v1/certificates`) is that path;
/// - otherwise a REST API's `path` never holds the stage, and an HTTP API's
///   `rawPath` holds its named stage only on the `execute-api` endpoint;
///   Function URLs and ALBs have no stage.
///
/// Behind a custom domain whose API mapping has a path, an HTTP API's
/// `$default` route cannot tell the mapping from the route: use a
/// `{proxy+}` route there (see deploy/README.md).
///
/// The path of the client's URL, when it is another (the stage or base
/// path in front), goes with the request as [`ClientPath`]: HMAC callers
/// sign their URL's path.
pub fn route_on_event_path<B>(mut request: Request<B>) -> Request<B> {
    let Some(path) = event_path(&request) else {
        return request;
    };
    // Whatever the event held, the route is a valid path: encoded back
    // where API Gateway decoded it, so `%3F` stays in the path and never
    // becomes a query, and `%23` never cuts it short.
    let path = utf8_percent_encode(&path, NOT_IN_PATH).to_string();
    if let Some(client) = client_path(&request).filter(|client| *client != path) {
        request.extensions_mut().insert(ClientPath(client));
    }
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
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

/// The path of the client's URL behind API Gateway, when a stage or a
/// custom domain's base path lies in front of the route the request is
/// routed on (see [`route_on_event_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPath(pub String);

/// The path of the client's URL as the event tells it: a REST API's
/// `requestContext.path` (with the stage on the `execute-api` endpoint,
/// with the base path behind a custom domain), an HTTP API's `rawPath`.
fn client_path<B>(request: &Request<B>) -> Option<String> {
    let path = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.path.as_deref()?,
        RequestContext::ApiGatewayV2(_) => request.raw_http_path(),
        _ => return None,
    };
    Some(utf8_percent_encode(path, NOT_IN_PATH).to_string())
}

/// The event's path relative to the API (see [`route_on_event_path`]), or
/// `None` for a request that did not come from an API Gateway event.
fn event_path<B>(request: &Request<B>) -> Option<String> {
    let raw = request.raw_http_path();
    let parameters = request.path_parameters_ref();
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => Some(
            c.resource_path
                .as_deref()
                .and_then(|template| fill_template(template, parameters))
                .unwrap_or_else(|| raw.to_owned()),
        ),
        RequestContext::ApiGatewayV2(c) => {
            let template = c
                .route_key
                .as_deref()
                .and_then(|key| key.split_once(' '))
                .map(|(_method, template)| template);
            if let Some(path) = template.and_then(|t| fill_template(t, parameters)) {
                return Some(path);
            }
            let on_execute_api = c
                .domain_name
                .as_deref()
                .is_some_and(|d| d.contains(".execute-api."));
            let named_stage = c
                .stage
                .as_deref()
                .filter(|s| !s.is_empty() && *s != "$default");
            Some(match named_stage {
                Some(stage) if on_execute_api => strip_prefix_segment(raw, stage),
                _ => raw.to_owned(),
            })
        }
        _ => None,
    }
}

/// A route template (`/{proxy+}`, `/v1/{proxy+}`, `/v1/certificates`) with
/// its parameters filled in; `None` when one is missing.
fn fill_template(
    template: &str,
    parameters: Option<&lambda_http::aws_lambda_events::query_map::QueryMap>,
) -> Option<String> {
    if !template.starts_with('/') {
        return None;
    }
    let mut path = String::with_capacity(template.len() + 32);
    for segment in template.split('/').skip(1) {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                // `{proxy+}` takes the rest of the path, `/` included;
                // `{name}` is one segment.
                let (name, set) = match name.strip_suffix('+') {
                    Some(greedy) => (greedy, NOT_IN_DECODED_VALUE),
                    None => (name, NOT_IN_SEGMENT),
                };
                let value = parameters?.first(name)?;
                path.extend(utf8_percent_encode(value, set));
            }
            None => path.push_str(segment),
        }
    }
    Some(path)
}

/// `path` without a leading `/{segment}` (`/prod/v1/ca` -> `/v1/ca`).
fn strip_prefix_segment(path: &str, segment: &str) -> String {
    match path
        .strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(segment))
    {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => path.to_owned(),
    }
}

/// The header that makes lambda_http answer a body as text
/// (`isBase64Encoded: false`) whatever its media type.
const LAMBDA_TEXT_BODY: &str = "x-lambda-http-content-encoding";

/// PEM is text, but lambda_http only knows `text/*`, JSON, XML and YAML as
/// text and would send `application/pem-certificate-chain` (the CA chain)
/// and `application/x-pem-file` (a CRL as PEM) base64-encoded, which a
/// REST API without those binary media types hands to clients as base64
/// text. Marking them text makes every front door pass them as they are;
/// PKCS#12 and the DER CRL stay binary (a REST API needs
/// `application/pkcs12` and `application/pkix-crl` among its binary media
/// types to pass them as bytes).
async fn pem_as_text(mut response: axum::response::Response) -> axum::response::Response {
    let is_pem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            [super::PEM_CHAIN_MEDIA_TYPE, super::PEM_FILE_MEDIA_TYPE]
                .iter()
                .any(|pem| v.as_bytes().starts_with(pem.as_bytes()))
        });
    if is_pem {
        response.headers_mut().insert(
            LAMBDA_TEXT_BODY,
            axum::http::HeaderValue::from_static("text"),
        );
    }
    response
}

/// The service Lambda runs: the same router as `serve`, behind
/// [`route_on_event_path`], reloading due CAs at the start of each request (the only
/// time a Lambda execution environment is not frozen), with PEM answered as
/// text on every front door.
pub fn lambda_app(state: AppState) -> LambdaApp {
    let router = app(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            super::layers::refresh_due_cas,
        ))
        .layer(axum::middleware::map_response(pem_as_text));
    tower::util::MapRequest::new(router, route_on_event_path::<lambda_http::Body>)
}

/// A router behind [`route_on_event_path`], as the runtime loop runs it.
pub type LambdaApp =
    tower::util::MapRequest<axum::Router, fn(lambda_http::Request) -> lambda_http::Request>;

/// The service of a Lambda whose configuration was refused at start-up
/// ([`super::misconfigured`]) behind [`route_on_event_path`], like
/// [`lambda_app`]: behind a stage or a base path, `GET /healthz` still
/// says why, and every refused issuance is still counted.
pub fn misconfigured_lambda_app(reason: &str, metrics: crate::metrics::Metrics) -> LambdaApp {
    tower::util::MapRequest::new(
        super::misconfigured(reason, metrics),
        route_on_event_path::<lambda_http::Body>,
    )
}

/// A Lambda HTTP event, read in one pass where its shape is plain.
///
/// lambda_http reads an event by trying each front door's shape in turn,
/// the REST API's first: a Function URL or HTTP API event, the kind
/// `deploy/template.yaml` sets up, was parsed as a REST API event up to
/// its request context (headers and query allocated) before that failed
/// on the missing `httpMethod`, and then parsed again. An event whose
/// first member is `"version": "2.0"` (payload format 2.0, as AWS sends
/// HTTP API and Function URL events) is parsed once, as that shape, here;
/// any other event, or one that does not parse as that shape, is read in
/// lambda_http's order ([`read_as_lambda_http`]). The one difference: an
/// event that opens with `"version": "2.0"` and is also a whole REST API
/// event (both `httpMethod` and `requestContext.http`), which no AWS
/// front door sends and only a direct `lambda:Invoke` could, is read as
/// the HTTP API event it says it is, where lambda_http would read it as a
/// REST API event.
#[derive(Debug)]
pub struct Event(LambdaRequest);

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if starts_with_version_2(text) {
            if let Ok(event) = serde_json::from_str::<ApiGatewayV2httpRequest>(text) {
                return Ok(Event(LambdaRequest::ApiGatewayV2(event)));
            }
        }
        read_as_lambda_http(text)
            .map(Event)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether the JSON object `text` opens with the member `"version":
/// "2.0"` (JSON whitespace allowed around its tokens).
fn starts_with_version_2(text: &str) -> bool {
    fn skip(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\n', '\r'])
    }
    skip(text)
        .strip_prefix('{')
        .and_then(|rest| skip(rest).strip_prefix("\"version\""))
        .and_then(|rest| skip(rest).strip_prefix(':'))
        .is_some_and(|rest| skip(rest).starts_with("\"2.0\""))
}

/// An event read as lambda_http 1 reads it, for the front doors this
/// crate enables (Cargo.toml: `apigw_rest`, `apigw_http`, `alb`): the
/// first of those shapes it parses as, in that order, from the text
/// already in hand (lambda_http would copy it again). The test
/// `events_are_read_as_lambda_http_reads_them` holds the two readings
/// equal on every event fixture.
fn read_as_lambda_http(text: &str) -> Result<LambdaRequest, String> {
    if let Ok(event) = serde_json::from_str::<ApiGatewayProxyRequest>(text) {
        return Ok(LambdaRequest::ApiGatewayV1(event));
    }
    if let Ok(event) = serde_json::from_str::<ApiGatewayV2httpRequest>(text) {
        return Ok(LambdaRequest::ApiGatewayV2(event));
    }
    serde_json::from_str::<AlbTargetGroupRequest>(text)
        .map(LambdaRequest::Alb)
        .map_err(|_| {
            "this function expects a JSON payload from Amazon API Gateway (REST or HTTP \
             API), an Application Load Balancer or a Lambda Function URL, but the data \
             matches none of their events"
                .to_owned()
        })
}

/// The request an event's JSON makes, read as [`run`] reads every
/// invocation's event ([`Event`]): for tests and benchmarks.
pub fn request_from_str(event: &str) -> Result<lambda_http::Request, serde_json::Error> {
    serde_json::from_str::<Event>(event).map(|Event(event)| event.into())
}

/// Runs the Lambda runtime loop until the execution environment ends: as
/// `lambda_http::run` does (its adapter turns each event into a request
/// and the service's response into the front door's answer), with the
/// event read by [`Event`].
pub async fn run(state: AppState) -> Result<(), lambda_http::Error> {
    run_app(lambda_app(state)).await
}

/// The runtime loop of a Lambda whose configuration was refused
/// ([`misconfigured_lambda_app`]): every request gets 503 `not_configured`
/// naming the setting (`reason`).
pub async fn run_misconfigured(
    reason: &str,
    metrics: crate::metrics::Metrics,
) -> Result<(), lambda_http::Error> {
    run_app(misconfigured_lambda_app(reason, metrics)).await
}

async fn run_app(app: LambdaApp) -> Result<(), lambda_http::Error> {
    let adapter = lambda_http::Adapter::from(app);
    let service = tower::util::MapRequest::new(adapter, lambda_request as fn(_) -> _);
    lambda_http::lambda_runtime::run(service).await
}

/// The event lambda_http's adapter takes.
fn lambda_request(event: LambdaEvent<Event>) -> LambdaEvent<LambdaRequest> {
    LambdaEvent::new(event.payload.0, event.context)
}

#[cfg(test)]
mod tests {
    use super::starts_with_version_2;

    #[test]
    fn version_2_is_told_by_the_first_member_alone() {
        for yes in [
            r#"{"version":"2.0","routeKey":"$default"}"#,
            " {\n\t\"version\" :\r\n \"2.0\" , \"rawPath\": \"/\"}",
        ] {
            assert!(starts_with_version_2(yes), "{yes:?}");
        }
        for no in [
            r#"{"resource":"/","version":"2.0"}"#,
            r#"{"version":"1.0","httpMethod":"GET"}"#,
            r#"{"version":"2.01"}"#,
            r#"{"versions":"2.0"}"#,
            r#"{"version":2.0}"#,
            r#"{"\u0076ersion":"2.0"}"#,
            r#"["version","2.0"]"#,
            "",
            "{",
        ] {
            assert!(!starts_with_version_2(no), "{no:?}");
        }
    }
}
