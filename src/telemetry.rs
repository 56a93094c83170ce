//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as
//! text for people or as JSON lines for log collectors
//! (`GENE_API__LOG__FORMAT=json`, what the deployment files use); and, when
//! the standard OpenTelemetry variables ask for it, the same spans exported
//! as traces ([`otel`]).

pub mod otel;

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

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
    install(default_filter, format, None);
}

/// The service's subscriber: [`init_with`], plus the OpenTelemetry layer when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set. `runtime`
/// runs the exporter's requests; `mode` names the process in its traces.
/// A bad setting is an error, so that start-up stops and says which.
pub fn init_service(
    default_filter: &str,
    format: LogFormat,
    runtime: &tokio::runtime::Handle,
    mode: &str,
) -> Result<(), String> {
    let traces = otel::layer(runtime, mode)?;
    install(default_filter, format, traces);
    Ok(())
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn install(default_filter: &str, format: LogFormat, traces: Option<Boxed>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let Some(traces) = traces else {
        // Traces off: the fmt subscriber alone, whose filtering is the
        // cheapest there is (a layered registry cost point reads about a
        // tenth: figure 20 went from 0.76 to 0.84 of Redis with this).
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
        return;
    };
    let lines: Boxed = match format {
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_ansi(use_colour())
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Each layer its own filter: RUST_LOG chooses the log lines, and does not
    // turn traces off (at `warn`, no request span would reach the exporter).
    let layers = vec![
        lines.with_filter(filter).boxed(),
        traces.with_filter(LevelFilter::INFO).boxed(),
    ];
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Colour only for a person at a terminal: a pipe, a file or `kubectl logs`
/// gets plain text, and `NO_COLOR` (no-color.org) turns it off everywhere.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
