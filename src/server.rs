//! The HTTP server loop: accepts connections and serves the warp filter on
//! each with limits that a slow or hostile client cannot exhaust. warp's own
//! `serve` sets none of them (no header timeout, so a client that sends a
//! header byte a minute holds a connection forever).
//!
//! - `http.header_timeout_secs`: the time a client has to send a request's
//!   headers, counted from when the connection is ready for the next request.
//!   It bounds slow headers and idle keep-alive connections alike.
//! - `http.max_header_bytes`: larger request heads are refused with a JSON
//!   431 (`header_too_large`). hyper answers heads past its read buffer
//!   itself, with a bare 431; the buffer is 4 times the limit, so that only
//!   heads far over it get that one.
//! - Bodies are bounded by the routes (16 KiB, `routes::small_body`), and
//!   event streams per client by `limits.streams_per_client`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use warp::{Filter, Reply};

use crate::config::HttpSettings;

/// The peer of a request's connection, for `warp::ext::optional::<Peer>()`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Set on a request whose head is over `http.max_header_bytes`: the routes'
/// first filter answers it with the JSON 431 (`routes::head_within_limit`).
#[derive(Debug, Clone, Copy)]
pub struct HeadTooLarge {
    pub bytes: usize,
    pub limit: usize,
}

/// A request head's size as sent: the request line, each header line and
/// the blank line (HTTP/1.1 framing; HTTP/2's compressed headers are
/// counted the same way, as hyper counts them against its limit).
fn head_bytes<B>(req: &hyper::Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Serves `filter` on `listener` until `stop` is cancelled, then lets the
/// open connections finish their requests (the caller bounds how long).
pub async fn serve<F, R>(
    listener: TcpListener,
    filter: F,
    http: HttpSettings,
    stop: CancellationToken,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + Send,
{
    // hyper calls the service once per request, and a warp service clones
    // its filter on every call: the whole route tree with its state. Boxed,
    // that clone is one reference count (perf showed the tree's clone and
    // drop at a fifth of the CPU of a point read).
    let filter = filter.map(|reply: R| reply.into_response()).boxed();
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // 0 turns it off (as the other limits' 0 does).
        .header_read_timeout((!http.header_timeout.is_zero()).then_some(http.header_timeout));
    let head_limit = http.max_header_bytes;
    if head_limit > 0 {
        builder
            .http1()
            .max_buf_size(head_limit.saturating_mul(4).max(8192));
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = io.set_nodelay(true);
        let service = warp::service(filter.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            let bytes = head_bytes(&req);
            if head_limit > 0 && bytes > head_limit {
                req.extensions_mut().insert(HeadTooLarge {
                    bytes,
                    limit: head_limit,
                });
            }
            let mut service = service.clone();
            service.call(req)
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed requests end here: the
                // client's problem, not the server's.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
