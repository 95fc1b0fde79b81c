//! Structured logs: one JSON object per line on stderr.

use std::sync::atomic::{AtomicU64, Ordering};

/// Installs the JSON log subscriber (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique request id.
pub fn request_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{n:06x}", std::process::id())
}
