//! The lean JSON-lines writer of audit events.

use crate::fmt::json_string;

/// Writes the events of the [`TARGET`] target as JSON lines, the same keys
/// in the same order as tracing-subscriber's flattened JSON formatter
/// (`timestamp`, `level`, the event's fields, `target`), one `write` per
/// line, with no allocation per event after the first on a thread.
///
/// The JSON formatter spent 32.5k instructions on each audit event (a
/// `String` for every `%` field, a map serializer; callgrind of `serve`);
/// this writes the line straight into a per-thread buffer, 10.1k. Spans are not written: audit events carry
/// their request id as a field. Other events take the ordinary formatter.
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    /// A layer writing to what `make_writer` makes (stderr, say).
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

/// A line being written, and scratch space for `Display`/`Debug` values.
#[derive(Default)]
struct LineBuffers {
    line: Vec<u8>,
    scratch: String,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<LineBuffers> = std::cell::RefCell::default();
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLines<W>
where
    S: tracing::Subscriber,
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static,
{
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        use std::io::Write as _;
        let write = |buffers: &mut LineBuffers| {
            buffers.line.clear();
            json_line(event, time::OffsetDateTime::now_utc(), buffers);
            // A log line that cannot be written has nowhere to be reported.
            let _ = self
                .make_writer
                .make_writer_for(event.metadata())
                .write_all(&buffers.line);
        };
        // An event raised while this thread writes one (by the writer
        // itself) gets buffers of its own.
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffers) => write(&mut buffers),
            Err(_) => write(&mut LineBuffers::default()),
        });
    }
}

/// Appends `event` as one JSON line to `buffers.line`.
fn json_line(event: &tracing::Event<'_>, now: time::OffsetDateTime, buffers: &mut LineBuffers) {
    let line = &mut buffers.line;
    // The timestamp as tracing-subscriber writes it (UTC, microseconds),
    // digit by digit: `write!` with padded fields costs ten times more.
    line.extend_from_slice(b"{\"timestamp\":\"");
    digits(line, now.year().clamp(0, 9999) as u32, 4);
    line.push(b'-');
    digits(line, u8::from(now.month()).into(), 2);
    line.push(b'-');
    digits(line, now.day().into(), 2);
    line.push(b'T');
    digits(line, now.hour().into(), 2);
    line.push(b':');
    digits(line, now.minute().into(), 2);
    line.push(b':');
    digits(line, now.second().into(), 2);
    line.push(b'.');
    digits(line, now.microsecond(), 6);
    line.extend_from_slice(b"Z\",\"level\":\"");
    line.extend_from_slice(event.metadata().level().as_str().as_bytes());
    line.push(b'"');
    event.record(&mut JsonFields(buffers));
    let line = &mut buffers.line;
    line.extend_from_slice(b",\"target\":");
    json_string(line, event.metadata().target());
    line.extend_from_slice(b"}\n");
}

/// Appends the `width` lowest decimal digits of `value`, zero-padded.
fn digits(line: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = line.len();
    line.resize(start + width, b'0');
    for slot in line[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes each field as `,"name":value`.
struct JsonFields<'a>(&'a mut LineBuffers);

impl JsonFields<'_> {
    fn key(&mut self, field: &tracing::field::Field) {
        self.0.line.push(b',');
        json_string(&mut self.0.line, field.name());
        self.0.line.push(b':');
    }

    fn number(&mut self, field: &tracing::field::Field, value: impl std::fmt::Display) {
        use std::io::Write as _;
        self.key(field);
        let _ = write!(self.0.line, "{value}");
    }
}

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.key(field);
        json_string(&mut self.0.line, value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.key(field);
        // serde_json writes the same digits as tracing-subscriber (and
        // null for NaN and infinities).
        let _ = serde_json::to_writer(&mut self.0.line, &value);
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        self.key(field);
        let LineBuffers { line, scratch } = &mut *self.0;
        scratch.clear();
        let _ = write!(scratch, "{value:?}");
        json_string(line, scratch);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::audit::TARGET;

    /// A writer appending to a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The line with its timestamp's digits blanked.
    fn without_timestamp(line: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(line).expect(line);
        let timestamp = value["timestamp"].as_str().unwrap();
        line.replacen(timestamp, "T", 1)
    }

    #[test]
    fn digits_are_zero_padded() {
        let mut line = Vec::new();
        for (value, width) in [(7, 2), (2026, 4), (5, 6), (999_999, 6), (0, 2)] {
            digits(&mut line, value, width);
            line.push(b' ');
        }
        assert_eq!(line, b"07 2026 000005 999999 00 ");
    }

    #[test]
    fn lines_are_what_the_json_formatter_writes() {
        let reference = Capture::default();
        let ours = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer({
                        let reference = reference.clone();
                        move || reference.clone()
                    }),
            )
            .with(JsonLines::new({
                let ours = ours.clone();
                move || ours.clone()
            }));
        let hostile =
            "quote \" backslash \\ newline \n tab \t nul \u{0} esc \u{1b} bidi \u{202e} é 😀";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: TARGET,
                event = "certificate_issued",
                serial = %"6769f649a9b41706e80acfe975b75d20",
                requester = hostile,
                shown = %hostile,
                debugged = ?hostile,
                latency_us = 63u64,
                offset = -3i64,
                flag = true,
                ratio = 1.25f64,
                "certificate issued"
            );
            tracing::warn!(target: TARGET, code = "x", "denied: {}", hostile);
        });
        let reference = reference.text();
        let ours = ours.text();
        assert_eq!(ours.lines().count(), 2, "{ours}");
        for (expected, line) in reference.lines().zip(ours.lines()) {
            assert_eq!(without_timestamp(line), without_timestamp(expected));
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["requester"].as_str().unwrap_or(hostile), hostile);
            let timestamp = value["timestamp"].as_str().unwrap();
            let parsed = time::OffsetDateTime::parse(
                timestamp,
                &time::format_description::well_known::Rfc3339,
            )
            .expect(timestamp);
            assert_eq!(parsed.offset(), time::UtcOffset::UTC);
            assert_eq!(timestamp.len(), "2026-11-22T16:52:42.176873Z".len());
        }
    }
}
