//! Fetching the HGNC source: an `http(s)://` URL or a local file.

use bytes::Bytes;
use futures_util::StreamExt;

use super::LoadError;
use crate::config::DataSettings;

/// Reads the configured source: an `http(s)://` URL or a local path (`file://` allowed).
/// `on_bytes` is told how many bytes have arrived so far, as they arrive.
pub async fn fetch_source(
    settings: &DataSettings,
    on_bytes: impl Fn(u64),
) -> Result<Bytes, LoadError> {
    let source = settings.source.trim();
    if source.starts_with("http://") || source.starts_with("https://") {
        fetch_url(source, settings, on_bytes).await
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
        Ok(body)
    }
}

async fn fetch_url(
    url: &str,
    settings: &DataSettings,
    on_bytes: impl Fn(u64),
) -> Result<Bytes, LoadError> {
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
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(error_chain(&e), true))?;
    let status = resp.status();
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
    Ok(Bytes::from(body))
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
