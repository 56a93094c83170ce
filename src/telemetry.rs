//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as
//! text for people or as JSON lines for log collectors
//! (`GENE_API__LOG__FORMAT=json`, what the deployment files use).

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::{fmt, EnvFilter};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message and fields.
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(serde::de::Error::custom(format!(
                "log.format (GENE_API__LOG__FORMAT) must be \"text\" or \"json\", got {s:?}"
            ))),
        }
    }
}

/// Installs the global subscriber once, as text. Later calls are no-ops, so
/// tests may call it freely.
pub fn init(default_filter: &str) {
    init_with(default_filter, LogFormat::Text);
}

/// Installs the global subscriber once, in `format`.
pub fn init_with(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(use_colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Colour only for a person at a terminal: a pipe, a file or `kubectl logs`
/// gets plain text, and `NO_COLOR` (no-color.org) turns it off everywhere.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
