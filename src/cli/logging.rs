//! Logging: text on a terminal, JSON elsewhere; audit events through the lean writer.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether an event is a TRACE event of the AWS SDK, which logs whole
/// request bodies at that level (for publish-ssm: the CA private key).
pub(super) fn is_aws_sdk_trace(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() == tracing::Level::TRACE
        && [
            "aws_smithy",
            "aws_sdk",
            "aws_config",
            "aws_runtime",
            "aws_sigv4",
        ]
        .iter()
        .any(|prefix| metadata.target().starts_with(prefix))
}

pub(super) fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter =
        EnvFilter::try_from_env("SESSION_CA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("SESSION_CA_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let output = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    // Whatever SESSION_CA_LOG says, the SDK's trace events never reach the output.
    // In JSON, audit events (one per request) take the lean JSON writer.
    let ordinary = tracing_subscriber::filter::filter_fn(move |m| {
        let audit_event = m.target() == session_ca::AUDIT_TARGET;
        !(is_aws_sdk_trace(m) || (json && audit_event))
    });
    let audit = json.then(|| {
        session_ca::JsonLines::new(std::io::stderr).with_filter(
            tracing_subscriber::filter::filter_fn(|m| m.target() == session_ca::AUDIT_TARGET),
        )
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(output.with_filter(ordinary))
        .with(audit)
        .init();
}
