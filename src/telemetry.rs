//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once. Later calls are no-ops, so tests may
/// call it freely.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(use_colour())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Colour only for a person at a terminal: a pipe, a file or `kubectl logs`
/// gets plain text, and `NO_COLOR` (no-color.org) turns it off everywhere.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
