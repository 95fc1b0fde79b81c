//! Structured logs: one JSON object per line on stderr.
//!
//! Each line is `{"timestamp","level",<the event's fields>,"target"}`.
//! Fields are written as JSON numbers, booleans or strings, except the
//! fields in [`JSON_FIELDS`], which the code records as JSON text and the
//! line carries as JSON (an array stays an array, not a quoted string).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields recorded as JSON text, written into the line as JSON.
pub const JSON_FIELDS: &[&str] = &["transform_changes"];

/// Installs the JSON log subscriber (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .event_format(JsonLine)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Formats an event as one JSON object.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&line(event))
    }
}

/// The JSON object of one event, and its newline.
///
/// The line is written as it is read, not built as a `serde_json::Map`
/// first: every request logs one access event, and the map's keys, values
/// and index cost 2 % of Veil's CPU time per request in the proxy bench.
/// Each value goes through `serde_json`'s serializer, so the escaping is
/// its own. An event's fields have distinct names (`tracing` has one field
/// per name at a callsite), so there are no duplicate keys to merge.
fn line(event: &Event<'_>) -> String {
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let meta = event.metadata();
    let mut line = Line(Vec::with_capacity(1024));
    line.member("timestamp", timestamp.as_str());
    line.member("level", meta.level().as_str());
    event.record(&mut line);
    line.member("target", meta.target());
    let mut bytes = line.0;
    bytes.extend_from_slice(b"}\n");
    // Only `serde_json` output and ASCII punctuation were written, so the
    // bytes are UTF-8; were they not, the line is still written.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A line being written: `{` and the members so far.
struct Line(Vec<u8>);

impl Line {
    /// Writes `"name":` and the value.
    fn member<T: serde::Serialize + ?Sized>(&mut self, name: &str, value: &T) {
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        let _ = serde_json::to_writer(&mut self.0, name);
        self.0.push(b':');
        // Serializing a string, number or bool into a Vec cannot fail; a
        // float that is not finite is written as `null`.
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    /// A field recorded as text: JSON for the [`JSON_FIELDS`] when it is
    /// valid JSON, a JSON string otherwise.
    fn text(&mut self, field: &Field, text: &str) {
        if JSON_FIELDS.contains(&field.name()) {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return self.member(field.name(), &v);
            }
        }
        self.member(field.name(), text);
    }
}

impl Visit for Line {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field.name(), &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field.name(), &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field.name(), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field.name(), &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field.name(), &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if JSON_FIELDS.contains(&field.name()) {
            self.text(field, &format!("{value:?}"));
        } else {
            // Escaped as it is formatted, without a `String` in between.
            self.member(field.name(), &Debugged(value));
        }
    }
}

/// A `Debug` value (a `%field` is recorded as one) serialized as a JSON
/// string.
struct Debugged<'a>(&'a dyn fmt::Debug);

impl fmt::Display for Debugged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Debugged<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique request id.
pub fn request_id() -> String {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The process id, asked of the kernel once, not per request.
    format!("{:x}-{n:06x}", PID.get_or_init(std::process::id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_json_object_per_event_with_json_fields_as_json() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLine)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "veil::access",
                status = 200u16,
                latency_ms = 1.5,
                ratio = f64::NAN,
                signed = -3i64,
                ok = true,
                endpoint = "/v1.0/users",
                method = %"GET",
                transform_changes = %"[3,0,1]",
                note = %"[not json",
            );
            tracing::warn!(target: "veil::serve", error = %"a \"quoted\"\nline", "accept failed");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let a = &lines[0];
        assert_eq!(a["target"], "veil::access");
        assert_eq!(a["level"], "INFO");
        assert_eq!(a["status"], 200);
        assert_eq!(a["latency_ms"], 1.5);
        assert_eq!(a["ratio"], Value::Null);
        assert_eq!(a["signed"], -3);
        let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.first(), Some(&"timestamp"), "{a}");
        assert_eq!(keys.last(), Some(&"target"), "{a}");
        assert_eq!(keys.len(), 12, "{a}");
        assert_eq!(a["ok"], true);
        assert_eq!(a["method"], "GET");
        assert_eq!(a["transform_changes"], serde_json::json!([3, 0, 1]));
        assert_eq!(a["note"], "[not json");
        assert!(
            a["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{a}"
        );
        let b = &lines[1];
        assert_eq!(b["message"], "accept failed");
        assert_eq!(b["error"], "a \"quoted\"\nline");
        assert_eq!(b["level"], "WARN");
    }
}
