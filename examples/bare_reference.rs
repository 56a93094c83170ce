//! The physical reference of `scripts/bench` for point reads from memory: a
//! bare hyper server that answers `GET /genes/<hgnc_id>` with the same record
//! bytes gene-api serves (each record's text as it lies in the source file),
//! from a map in memory. No routing framework, no Redis, no middleware: what
//! the machine gives for an HTTP answer of that size on the same hyper,
//! hyper-util and tokio as gene-api (same connection builder, `TCP_NODELAY`,
//! a multi-thread runtime with one thread per core).
//!
//! ```sh
//! cargo run --release --example bare_reference -- HGNC_JSON PORT
//! ```
//!
//! Prints `listening on 127.0.0.1:<port>` once it accepts connections. Any
//! other path, or an unknown id, is answered 404.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct File<'a> {
    #[serde(borrow)]
    response: Docs<'a>,
}

#[derive(Deserialize)]
struct Docs<'a> {
    #[serde(borrow)]
    docs: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Id<'a> {
    hgnc_id: &'a str,
}

/// A body sent in one frame (hyper's own `Full` lives in http-body-util,
/// which gene-api does not depend on).
struct Whole(Option<Bytes>);

impl Body for Whole {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

fn answer(records: &HashMap<String, Bytes>, req: &Request<Incoming>) -> Response<Whole> {
    match records.get(req.uri().path()) {
        Some(body) => {
            let mut resp = Response::new(Whole(Some(body.clone())));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        None => {
            let mut resp = Response::new(Whole(None));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (path, port) = match (args.next(), args.next()) {
        (Some(path), Some(port)) => (path, port.parse::<u16>().context("PORT")?),
        _ => anyhow::bail!("usage: bare_reference HGNC_JSON PORT"),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let file: File = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let mut records = HashMap::with_capacity(file.response.docs.len());
    for raw in file.response.docs {
        let id: Id = serde_json::from_str(raw.get()).context("a record without hgnc_id")?;
        records.insert(
            format!("/genes/{}", id.hgnc_id),
            Bytes::copy_from_slice(raw.get().as_bytes()),
        );
    }
    let records = Arc::new(records);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            println!(
                "listening on {} ({} records)",
                listener.local_addr()?,
                records.len()
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let (io, _) = listener.accept().await?;
                let _ = io.set_nodelay(true);
                let records = records.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let resp = answer(&records, &req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        })
}
