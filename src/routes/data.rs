//! `/data`: the whole data set. POST queues a load, GET streams every
//! record (or those filters pick, as JSON or TSV), DELETE removes them.

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::docs::{Deleted, EmptyBody, GeneFields};
use super::genes::with_total;
use super::listing::{query_pairs, Format, Listing, Writer};
use super::{accepted, json_with, prefer_wait, respond, small_body, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::LoadSummary;
use crate::genes::{self, Catalog, Chosen, RecordsAt, RecordsError};
use crate::jobs::Command;
use crate::jobs::Job;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// Records read from Redis per round trip when a filtered answer is streamed.
const RECORD_BATCH: usize = 1000;

/// `GET /data`, `POST /data`, `DELETE /data`, `GET /data/info`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let info = warp::path!("data" / "info")
        .and(warp::get())
        .and(with(store.clone()))
        .then(data_info)
        .map(respond);
    let data = warp::path!("data").and(
        warp::get()
            .and(query_pairs())
            .and(warp::header::optional::<String>("accept"))
            .and(with(store.clone()))
            .and(with(state.catalog.clone()))
            .then(get_data)
            .map(respond)
            .or(warp::post()
                .and(with(state.clone()))
                .and(prefer_wait())
                .and(small_body())
                .then(post_data)
                .map(respond))
            .unify()
            .or(warp::delete()
                .and(with(store))
                .then(delete_data)
                .map(respond))
            .unify(),
    );
    info.or(data).unify()
}

/// POST /data takes no parameters: the source is the server's to choose.
pub(super) fn check_load_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
    })?;
    match value.as_object() {
        Some(o) if o.is_empty() => Ok(()),
        Some(o) if o.contains_key("source") => Err(ApiError::bad_request(
            "source_not_allowed",
            "the data source is set on the server (GENE_API__DATA__SOURCE), not per request; \
             send POST /data with no body",
        )),
        _ => Err(ApiError::bad_request(
            "unexpected_body",
            "POST /data takes no body; send it empty",
        )),
    }
}

#[utoipa::path(
    post, path = "/data", tag = "data",
    params(("Prefer" = Option<String>, Header, description = "`wait=<seconds>` (RFC 7240): answer when the job ends, or after that many seconds (at most `http.max_wait_secs`)", pattern = "^wait=[0-9]{1,3}$")),
    request_body(content = Option<EmptyBody>, description = "Nothing, or `{}`: the source is the server's (`GENE_API__DATA__SOURCE`)", content_type = "application/json"),
    responses((status = 202, description = "A load of the configured source: the job, queued (follow `Location`)", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 200, description = "With `Prefer: wait`: the job ended `done` in time", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody), (status = 413, description = "The body is over 16 KiB", body = ErrorBody), (status = 422, description = "With `Prefer: wait`: the job failed in that time (`job_failed`, the job in `job`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn post_data(state: AppState, wait: Option<u64>, body: Bytes) -> Result<Response, ApiError> {
    check_load_body(&body)?;
    let job = state.pipeline.submit(load_command(&state.pipeline)).await?;
    accepted(&state, job, wait).await
}

/// A load of the server's configured source.
pub(super) fn load_command(pipeline: &Pipeline) -> Command {
    Command::Load {
        source: pipeline.settings.data.source.clone(),
        withdrawn: Some(pipeline.settings.data.withdrawn.clone()),
        trigger: crate::jobs::Trigger::Request,
    }
}

#[utoipa::path(
    get, path = "/data", tag = "data",
    params(
        ("limit" = Option<usize>, Query, description = "At most this many records (1 to 50,000); with any parameter the answer has `X-Total-Count`", minimum = 1, maximum = 50000),
        ("offset" = Option<usize>, Query, description = "Skip this many matching records first", minimum = 0, maximum = 1000000),
        ("fields" = Option<String>, Query, description = "Only these fields, comma-separated, in this order: `hgnc_id,symbol,name`"),
        ("format" = Option<String>, Query, description = "`json` (the default) or `tsv` (HGNC's TSV layout; also chosen by `Accept: text/tab-separated-values`)", pattern = "^(json|tsv)$"),
        ("symbol" = Option<String>, Query, description = "Filter: the approved symbol (case-insensitive). Any stored field filters the same way (`GET /info` lists them); several filters are AND-ed"),
        ("alias_symbol" = Option<String>, Query, description = "Filter: one of the gene's aliases (a list field matches any element)"),
        ("locus_group" = Option<String>, Query, description = "Filter: e.g. `protein-coding gene`"),
        ("chromosome" = Option<String>, Query, description = "Filter: the chromosome `location` names (`1`..`22`, `X`, `Y`, `MT`)"),
    ),
    responses((status = 200, description = "Every gene record of the live data set, or those the filters pick, in source order (as JSON, or as TSV)", content(
            (Vec<GeneFields> = "application/json"),
            (String = "text/tab-separated-values")),
            headers(("X-Total-Count" = String, description = "How many records match in all (with any parameter)"))),
        (status = 400, description = "An unknown parameter or field (the message lists the allowed ones), or a malformed value", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_data(
    pairs: Vec<(String, String)>,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    const EXTRA: [&str; 2] = ["fields", "format"];
    let mut listing = Listing::parse(pairs, &EXTRA)?;
    if listing.format.is_none() && accept.is_some_and(|a| a.contains("text/tab-separated-values")) {
        listing.format = Some(Format::Tsv);
    }
    let mut conn = store.data.clone();
    if listing.is_plain() {
        let (stream, len) = genes::stream_blob(&mut conn, &store.keys)
            .await?
            .ok_or_else(ApiError::no_data)?;
        let mut resp = warp::reply::stream(stream).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(resp);
    }
    let chosen = catalog
        .records(&mut conn, &store.keys, |index| {
            let (page, total) = listing.select(index, "/data", &EXTRA)?;
            let first: Vec<String> = page
                .iter()
                .take(RECORD_BATCH)
                .map(|d| index.docs[*d as usize].hgnc_id.clone())
                .collect();
            Ok::<_, ApiError>(((page, total), first))
        })
        .await;
    let Chosen {
        index,
        extra: (page, total),
        records,
    } = match chosen {
        Ok(Some(c)) => c,
        Ok(None) => return Err(ApiError::no_data()),
        Err(RecordsError::Choose(e)) => return Err(e),
        Err(RecordsError::Catalog(e)) => return Err(e.into()),
    };
    let mut writer = Writer::new(
        listing.format.unwrap_or(Format::Json),
        listing.fields,
        &index,
    );
    let content_type = writer.content_type();
    let mut first = writer.head();
    writer
        .write(&records, &mut first)
        .map_err(ApiError::Internal)?;
    let rest: Vec<String> = page
        .iter()
        .skip(RECORD_BATCH)
        .map(|d| index.docs[*d as usize].hgnc_id.clone())
        .collect();
    let mut resp = if rest.is_empty() {
        first.extend_from_slice(writer.tail());
        Response::new(Bytes::from(first).into())
    } else {
        // The rest follows in batches, read as the client takes them; if
        // the data set is replaced meanwhile, the answer is cut, not mixed.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
        let version = index.version.clone();
        let (keys, mut conn) = (store.keys.clone(), conn);
        tokio::spawn(async move {
            if tx.send(Ok(Bytes::from(first))).await.is_err() {
                return;
            }
            for batch in rest.chunks(RECORD_BATCH) {
                let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
                let item = match genes::records_at(&mut conn, &keys, &version, &ids).await {
                    Ok(RecordsAt::Records(records)) => {
                        let mut out = Vec::with_capacity(records.len() * 1024);
                        writer
                            .write(&records, &mut out)
                            .map(|()| Bytes::from(out))
                            .map_err(std::io::Error::other)
                    }
                    Ok(RecordsAt::Stale(_)) => Err(std::io::Error::other(
                        "the data set changed while streaming",
                    )),
                    Err(e) => Err(std::io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
            let _ = tx.send(Ok(Bytes::from_static(writer.tail()))).await;
        });
        warp::reply::stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
            .into_response()
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(with_total(resp, total))
}

#[utoipa::path(
    get, path = "/data/info", tag = "data",
    responses((status = 200, description = "What the live data set is: records, source, when it was loaded", body = LoadSummary),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn data_info(store: Store) -> Result<Response, ApiError> {
    let summary = genes::summary(&mut store.data.clone(), &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    Ok(json_with(StatusCode::OK, &summary))
}

#[utoipa::path(
    delete, path = "/data", tag = "data",
    responses((status = 200, description = "The data set is removed (`deleted` is the record count, 0 when none was loaded)", body = Deleted),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn delete_data(store: Store) -> Result<Response, ApiError> {
    let n = genes::delete_all(&mut store.data.clone(), &store.keys).await?;
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": n, "message": format!("removed {n} gene records")}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_body_must_be_empty() {
        assert!(check_load_body(b"").is_ok());
        assert!(check_load_body(b" {} ").is_ok());
        let e = check_load_body(br#"{"source": "/etc/passwd"}"#).unwrap_err();
        assert!(e.to_string().contains("GENE_API__DATA__SOURCE"));
        assert!(check_load_body(b"{oops")
            .unwrap_err()
            .to_string()
            .contains("malformed"));
        assert!(check_load_body(b"[1]").is_err());
    }
}
