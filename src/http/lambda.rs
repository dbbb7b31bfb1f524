//! AWS Lambda specifics: the caller's IAM principal and the request ids from
//! the event's request context, API Gateway stage prefixes, and the runtime loop.

use axum::http::{Request, Uri};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
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
pub fn route_on_event_path<B>(mut request: Request<B>) -> Request<B> {
    let Some(path) = event_path(&request) else {
        return request;
    };
    // Whatever the event held, the route is a valid path: encoded back
    // where API Gateway decoded it, so `%3F` stays in the path and never
    // becomes a query, and `%23` never cuts it short.
    let path = utf8_percent_encode(&path, NOT_IN_PATH).to_string();
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
/// text and would send `application/pem-certificate-chain` base64-encoded,
/// which a REST API without that binary media type hands to clients as
/// base64 text. Marking it text makes every front door pass it as it is;
/// PKCS#12 stays binary (a REST API needs `application/pkcs12` among its
/// binary media types to pass it as bytes).
async fn pem_as_text(mut response: axum::response::Response) -> axum::response::Response {
    let is_pem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(super::PEM_CHAIN_MEDIA_TYPE.as_bytes())
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
pub fn lambda_app(
    state: AppState,
) -> tower::util::MapRequest<axum::Router, fn(lambda_http::Request) -> lambda_http::Request> {
    let router = app(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            super::layers::refresh_due_cas,
        ))
        .layer(axum::middleware::map_response(pem_as_text));
    tower::util::MapRequest::new(router, route_on_event_path::<lambda_http::Body>)
}

/// A Lambda HTTP event, read in one pass where its shape is plain.
///
/// lambda_http reads an event by trying each front door's shape in turn,
/// the REST API's first: a Function URL or HTTP API event (`"version":
/// "2.0"`), the one `deploy/template.yaml` sets up, is parsed whole as a
/// REST API event (headers, query and context allocated) before that
/// fails on its missing `httpMethod` and it is parsed again. Here the
/// event's `version` is read first (skipping the rest, allocating nothing)
/// and a `2.0` event is parsed once, as what it says it is; any other
/// event, or a `2.0` event that does not parse as one, is read exactly as
/// lambda_http reads it.
#[derive(Debug)]
pub struct Event(lambda_http::request::LambdaRequest);

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The one field of an event that names its payload format.
        #[derive(Deserialize)]
        struct Shape<'a> {
            #[serde(borrow, default)]
            version: Option<&'a str>,
        }
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let version_2 =
            serde_json::from_str::<Shape<'_>>(text).is_ok_and(|shape| shape.version == Some("2.0"));
        if version_2 {
            if let Ok(event) = serde_json::from_str::<ApiGatewayV2httpRequest>(text) {
                return Ok(Event(LambdaRequest::ApiGatewayV2(event)));
            }
        }
        serde_json::from_str::<LambdaRequest>(text)
            .map(Event)
            .map_err(serde::de::Error::custom)
    }
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
    let adapter = lambda_http::Adapter::from(lambda_app(state));
    let service = tower::util::MapRequest::new(adapter, lambda_request as fn(_) -> _);
    lambda_http::lambda_runtime::run(service).await
}

/// The event lambda_http's adapter takes.
fn lambda_request(event: LambdaEvent<Event>) -> LambdaEvent<LambdaRequest> {
    LambdaEvent::new(event.payload.0, event.context)
}
