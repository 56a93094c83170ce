//! OpenTelemetry traces: one trace from the request to the PNG.
//!
//! Off unless the standard variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, `OTEL_SDK_DISABLED` not
//! `true`. Then the `tracing` spans go out over OTLP/HTTP (protobuf), batched
//! (`OTEL_BSP_*`), with `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
//! `OTEL_SERVICE_NAME` (default `gene-api`) and `OTEL_RESOURCE_ATTRIBUTES`
//! as the SDK reads them; every process adds `gene_api.mode` (api, worker,
//! serve) and its `process.pid`.
//!
//! How a job's trace is joined up: the api's span of a request continues a
//! W3C `traceparent` the request sent (or starts a trace); a submission puts
//! that context in the stream entry (field `trace`) and the trace id in the
//! job record (`trace_id`, so in its events too); the worker's span of the
//! job takes the entry's context as its parent, in whichever process runs it.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once, when traces are on: the provider to flush at exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether this process exports traces. Read per request: one atomic load.
pub fn on() -> bool {
    PROVIDER.get().is_some()
}

fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The layer that turns spans into OpenTelemetry spans, when traces are wanted.
pub(super) fn layer(
    runtime: &tokio::runtime::Handle,
    mode: &str,
) -> Result<Option<super::Boxed>, String> {
    if !wanted() {
        return Ok(None);
    }
    let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    let client = OnRuntime {
        runtime: runtime.clone(),
        inner: std::sync::Arc::new(
            opentelemetry_http::hyper::HyperClient::with_default_connector(timeout, None),
        ),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map_err(|e| format!("OpenTelemetry (OTEL_EXPORTER_OTLP_*): {e}"))?;
    let mut resource = Resource::builder().with_attributes([
        KeyValue::new("gene_api.mode", mode.to_string()),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ]);
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("gene-api");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("gene-api");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = PROVIDER.set(provider);
    // Only what a trace is read for: no source locations, thread names or
    // busy/idle times on every span (with them, each export was 2.4 times
    // the bytes: figure 23, 419 KB against 172 KB).
    Ok(Some(Box::new(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false),
    )))
}

/// Sends what is still batched (at exit). A no-op when traces are off.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("gene-api: flushing the last traces failed: {e}");
        }
    }
}

/// Makes `span` continue the trace of the W3C `traceparent` in `headers`,
/// when there is one (else it starts a trace of its own).
pub fn continue_from_headers(span: &tracing::Span, headers: &warp::http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` a child of the context in `traceparent` (a stream entry's).
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The current span's context as a W3C `traceparent`, and its trace id, for
/// a job submitted now; None when traces are off.
pub fn current() -> Option<(String, String)> {
    if !on() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    Some((traceparent, sc.trace_id().to_string()))
}

/// hyper's client, run on the service's runtime: the SDK's batch exporter
/// sends from a thread of its own, outside any runtime, where hyper cannot
/// run.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    inner: std::sync::Arc<opentelemetry_http::hyper::HyperClient>,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}
