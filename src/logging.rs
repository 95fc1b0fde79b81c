//! Structured logs: one JSON object per line on stderr.
//!
//! Each line is `{"timestamp","level",<the event's fields>,"target"}`.
//! Fields are written as JSON numbers, booleans or strings, except the
//! fields in [`JSON_FIELDS`], which the code records as JSON text and the
//! line carries as JSON (an array stays an array, not a quoted string).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
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
        writeln!(writer, "{}", line(event))
    }
}

/// The JSON object of one event.
fn line(event: &Event<'_>) -> Value {
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let meta = event.metadata();
    let mut fields = Fields(Map::new());
    fields.0.insert("timestamp".into(), timestamp.into());
    fields
        .0
        .insert("level".into(), meta.level().as_str().into());
    event.record(&mut fields);
    fields.0.insert("target".into(), meta.target().into());
    Value::Object(fields.0)
}

struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(Value::Null);
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, text_or_json(field, value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, text_or_json(field, format!("{value:?}")));
    }
}

fn text_or_json(field: &Field, text: String) -> Value {
    if JSON_FIELDS.contains(&field.name()) {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v;
        }
    }
    Value::String(text)
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
