//! Logging set-up: `tracing` to stderr, as text or JSON lines.
//!
//! The filter comes from `DRAWBRIDGE_LOG` (or `RUST_LOG`), default `info`. Nothing Drawbridge logs
//! carries a message body, phone number or secret; the request span carries a request id, the
//! method and the route pattern only (see `web::request_id`).

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber. Does nothing if one is installed already.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DRAWBRIDGE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
