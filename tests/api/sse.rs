//! Test tools for the job system: a real SSE client over HTTP, and a real HTTP
//! server on the loopback standing in for the HGNC download site, whose
//! behaviour the test switches (failing, slow, fixed).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// A connected SSE stream, read event by event.
pub struct SseClient {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    pub status: u16,
    pub content_type: String,
}

impl SseClient {
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("SSE connect");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Self {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
            status,
            content_type,
        }
    }

    /// The next event (keep-alive comments skipped); None when the stream
    /// ends. Panics after `limit` without one.
    pub async fn next(&mut self, limit: Duration) -> Option<SseEvent> {
        tokio::time::timeout(limit, self.next_inner())
            .await
            .expect("no SSE event in time")
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(SseEvent { id, event, data });
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Events until one for `job` whose event name is a final state.
    pub async fn until_final(&mut self, job: &str, limit: Duration) -> Vec<SseEvent> {
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next(left).await.expect("stream ended early");
            let fin =
                e.data["id"] == job && ["done", "failed", "cancelled"].contains(&e.event.as_str());
            out.push(e);
            if fin {
                return out;
            }
        }
    }
}

/// What the stand-in source server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SourceMode {
    /// 503 Service Unavailable after 200 ms: a transient failure.
    Unavailable = 0,
    /// The sample, sent in 64 KiB pieces 100 ms apart (about 2 s in all).
    Slow = 1,
    /// The sample, at once.
    Fast = 2,
}

/// A real HTTP server serving `body` in the current [`SourceMode`].
pub struct SourceServer {
    pub url: String,
    mode: Arc<AtomicU8>,
}

impl SourceServer {
    pub async fn start(body: Vec<u8>, mode: SourceMode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hgnc_complete_set.json",
            listener.local_addr().unwrap()
        );
        let state = Arc::new(AtomicU8::new(mode as u8));
        let mode = state.clone();
        let body = Arc::new(body);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let (body, mode) = (body.clone(), mode.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = s.read(&mut req).await;
                    if mode == SourceMode::Unavailable as u8 {
                        // Slow to say no, as an overloaded server is: each
                        // failing run lasts long enough to be watched.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let piece = if mode == SourceMode::Slow as u8 {
                        64 * 1024
                    } else {
                        body.len()
                    };
                    for chunk in body.chunks(piece) {
                        if s.write_all(chunk).await.is_err() {
                            return;
                        }
                        if mode == SourceMode::Slow as u8 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                });
            }
        });
        Self { url, mode: state }
    }

    pub fn set(&self, mode: SourceMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}
