//! Fetching the HGNC source: an `http(s)://` URL or a local file.

use bytes::Bytes;
use futures_util::StreamExt;

use super::LoadError;
use crate::config::DataSettings;

/// What a fetch got.
pub enum Fetched {
    /// The body, with the validators the server sent (none for a file).
    Body {
        body: Bytes,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The server answered 304 to the validators sent: nothing changed.
    NotModified,
}

/// The validators of what was fetched last, for a conditional GET.
#[derive(Debug, Default, Clone)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Reads `source`: an `http(s)://` URL or a local path (`file://` allowed).
/// With `since`, a URL is fetched conditionally (`If-None-Match`,
/// `If-Modified-Since`). `on_bytes` is told how many bytes have arrived so
/// far, as they arrive.
pub async fn fetch_source(
    source: &str,
    settings: &DataSettings,
    since: Option<&Validators>,
    on_bytes: impl Fn(u64),
) -> Result<Fetched, LoadError> {
    let source = source.trim();
    if source.starts_with("http://") || source.starts_with("https://") {
        fetch_url(source, settings, since, on_bytes).await
    } else {
        let path = source.strip_prefix("file://").unwrap_or(source);
        let fail = |reason: String| LoadError::Fetch {
            source_name: path.to_string(),
            reason,
            transient: false,
        };
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > settings.max_bytes {
            return Err(LoadError::TooLarge {
                source_name: path.to_string(),
                limit: settings.max_bytes,
            });
        }
        let body = tokio::fs::read(path)
            .await
            .map(Bytes::from)
            .map_err(|e| fail(e.to_string()))?;
        on_bytes(body.len() as u64);
        Ok(Fetched::Body {
            body,
            etag: None,
            last_modified: None,
        })
    }
}

async fn fetch_url(
    url: &str,
    settings: &DataSettings,
    since: Option<&Validators>,
    on_bytes: impl Fn(u64),
) -> Result<Fetched, LoadError> {
    let fail = |reason: String, transient: bool| LoadError::Fetch {
        source_name: url.to_string(),
        reason,
        transient,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.fetch_timeout)
        .user_agent(concat!("gene-api/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string(), false))?;
    let mut req = client.get(url);
    if let Some(v) = since {
        if let Some(etag) = &v.etag {
            req = req.header("if-none-match", etag);
        }
        if let Some(lm) = &v.last_modified {
            req = req.header("if-modified-since", lm);
        }
    }
    let resp = req.send().await.map_err(|e| fail(error_chain(&e), true))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && since.is_some() {
        return Ok(Fetched::NotModified);
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    if !status.is_success() {
        // 5xx and 429 may pass; a 404 will not.
        let transient = status.is_server_error() || status.as_u16() == 429;
        return Err(fail(format!("the server answered {status}"), transient));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > settings.max_bytes)
    {
        return Err(LoadError::TooLarge {
            source_name: url.to_string(),
            limit: settings.max_bytes,
        });
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(1 << 20) as usize);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(error_chain(&e), true))?;
        if (body.len() + chunk.len()) as u64 > settings.max_bytes {
            return Err(LoadError::TooLarge {
                source_name: url.to_string(),
                limit: settings.max_bytes,
            });
        }
        body.extend_from_slice(&chunk);
        on_bytes(body.len() as u64);
    }
    Ok(Fetched::Body {
        body: Bytes::from(body),
        etag,
        last_modified,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
