//! `/data`: the whole data set. POST queues a load, GET streams every
//! record (or those filters pick, as JSON or TSV), DELETE removes them.

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::docs::{Deleted, GeneFields};
use super::genes::with_total;
use super::listing::{query_pairs, Format, Listing, Writer};
use super::{
    idempotency_key, json_with, of_release, prefer_wait, release_query, respond, small_body,
    submit, take_release, with, AppState, IdempotencyKey,
};
use crate::error::{ApiError, ErrorBody};
use crate::genes::{self, Catalog, Chosen, Pick, RecordsError, ReleaseInfo};
use crate::jobs::Command;
use crate::jobs::Job;
use crate::pipeline::Pipeline;
use crate::store::{Durability, Store};

/// Records read from Redis per round trip when a filtered answer is streamed.
const RECORD_BATCH: usize = 1000;

/// `GET /data`, `POST /data`, `DELETE /data`, `GET /data/info`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let info = warp::path!("data" / "info")
        .and(warp::get())
        .and(release_query())
        .and(with(store.clone()))
        .and(with(state.catalog.clone()))
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
                .and(idempotency_key(state))
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

/// What POST /data may ask for: nothing (the server's source), or an
/// archived release by date, read from the server's archive template.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// An archived HGNC release by its date, `YYYY-MM-DD`: the server reads
    /// it from its archive (`data.archive_source`, HGNC's monthly archive by
    /// default). The client never names a host.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", format = Date)]
    release: Option<String>,
}

/// Parses POST /data's body: empty, `{}` or `{"release": "YYYY-MM-DD"}`.
pub(super) fn parse_load_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
    })?;
    // `null`: as no body (the contract's body is nullable).
    if value.is_null() {
        return Ok(None);
    }
    if value.get("source").is_some() {
        return Err(ApiError::bad_request(
            "source_not_allowed",
            "the data source is set on the server (GENE_API__DATA__SOURCE), not per request; \
             send POST /data with no body, or {\"release\": \"YYYY-MM-DD\"} for an archived release",
        ));
    }
    // serde reads a struct from an array too (`[null]` would be `{}`): the
    // contract's body is an object, so only an object is one.
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "unexpected_body",
            format!("POST /data takes no body, or {{\"release\": \"YYYY-MM-DD\"}}, not {value}"),
        ));
    }
    let req: LoadRequest = serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "unexpected_body",
            format!("POST /data takes no body, or {{\"release\": \"YYYY-MM-DD\"}}: {e}"),
        )
    })?;
    match req.release {
        None => Ok(None),
        Some(d) if genes::release::is_date(&d) => Ok(Some(d)),
        Some(d) => Err(ApiError::bad_request(
            "bad_release_date",
            format!(
                "release {d:?} is not a date YYYY-MM-DD (HGNC archives monthly, e.g. 2024-07-01)"
            ),
        )),
    }
}

#[utoipa::path(
    post, path = "/data", tag = "data",
    params(("Prefer" = Option<String>, Header, description = "`wait=<seconds>` (RFC 7240): answer when the job ends, or after that many seconds (at most `http.max_wait_secs`); any other preference is ignored, as RFC 7240 asks"),
        ("Idempotency-Key" = Option<String>, Header, description = "Submit once (IETF Idempotency-Key draft): the same request again with the same key (per API key or client, for `http.idempotency_ttl_secs`) answers the first job (`Idempotent-Replayed: true`), another request with it is a 422 `idempotency_key_reused`. 1 to 255 visible ASCII characters without `\"` or `\\`, as a quoted string or bare", pattern = "^(\"[ !#-\\[\\]-~]{1,255}\"|[!#-\\[\\]-~]{1,255})$")),
    request_body(content = Option<LoadRequest>, description = "Nothing, or `{}`: the server's source (`GENE_API__DATA__SOURCE`) and withdrawn file; `{\"release\": \"YYYY-MM-DD\"}`: that archived release, from the server's archive template", content_type = "application/json"),
    responses((status = 202, description = "A load: the job, queued (follow `Location`); its result names the release, or says `unchanged: true` when the source had not changed", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 200, description = "With `Prefer: wait`: the job ended `done` in time", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody), (status = 413, description = "The body is over 16 KiB", body = ErrorBody), (status = 422, description = "With `Prefer: wait`: the job failed in that time (`job_failed`, the job in `job`); or the Idempotency-Key came first with another request (`idempotency_key_reused`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn post_data(
    state: AppState,
    wait: Option<u64>,
    key: Option<IdempotencyKey>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let archived = parse_load_body(&body)?;
    let command = load_command(&state.pipeline, archived.as_deref());
    submit(&state, "POST /data", command, key, wait).await
}

/// A load of the server's configured source, or of an archived release.
pub(super) fn load_command(pipeline: &Pipeline, archived: Option<&str>) -> Command {
    let data = &pipeline.settings.data;
    let (source, withdrawn) = match archived {
        None => (data.source.clone(), data.withdrawn.clone()),
        Some(date) => (
            data.archive_source.replace("{date}", date),
            data.archive_withdrawn.replace("{date}", date),
        ),
    };
    Command::Load {
        source,
        withdrawn: Some(withdrawn).filter(|w| !w.trim().is_empty()),
        trigger: crate::jobs::Trigger::Request,
    }
}

#[utoipa::path(
    get, path = "/data", tag = "data",
    params(
        ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$"),
        ("limit" = Option<usize>, Query, description = "At most this many records (1 to 50,000); with any parameter the answer has `X-Total-Count`", minimum = 1, maximum = 50000),
        ("offset" = Option<usize>, Query, description = "Skip this many matching records first", minimum = 0, maximum = 1000000),
        ("fields" = Option<String>, Query, description = "Only these fields, comma-separated, in this order: `hgnc_id,symbol,name`", min_length = 1),
        ("format" = Option<String>, Query, description = "`json` (the default) or `tsv` (HGNC's TSV layout; also chosen by `Accept: text/tab-separated-values`)", pattern = "^(json|tsv)$"),
        ("symbol" = Option<String>, Query, description = "Filter: the approved symbol (case-insensitive). Any stored field filters the same way (`GET /info` lists them); several filters are AND-ed", pattern = "^.*\\S.*$"),
        ("alias_symbol" = Option<String>, Query, description = "Filter: one of the gene's aliases (a list field matches any element)", pattern = "^.*\\S.*$"),
        ("locus_group" = Option<String>, Query, description = "Filter: e.g. `protein-coding gene`", pattern = "^.*\\S.*$"),
        ("chromosome" = Option<String>, Query, description = "Filter: the chromosome `location` names (`1`..`22`, `X`, `Y`, `MT`)", pattern = "^.*\\S.*$"),
    ),
    responses((status = 200, description = "Every gene record of the live data set, or those the filters pick, in source order (as JSON, or as TSV)", content(
            (Vec<GeneFields> = "application/json"),
            (String = "text/tab-separated-values")),
            headers(("X-Total-Count" = String, description = "How many records match in all (with any parameter)"), ("X-HGNC-Release" = String, description = "The release answered from"))),
        (status = 400, description = "An unknown parameter or field (the message lists the allowed ones), a malformed value, or not a release id (`bad_release`)", body = ErrorBody),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_data(
    mut pairs: Vec<(String, String)>,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    const EXTRA: [&str; 2] = ["fields", "format"];
    let pick = take_release(&mut pairs)?;
    let mut listing = Listing::parse(pairs, &EXTRA)?;
    if listing.format.is_none() && accept.is_some_and(|a| a.contains("text/tab-separated-values")) {
        listing.format = Some(Format::Tsv);
    }
    let mut conn = store.data.clone();
    if listing.is_plain() {
        let release = catalog.release(&mut conn, &store.keys, &pick).await?;
        let len = release.info.data_bytes;
        let body = match release.held() {
            // Held in memory: the whole release as it was when the request
            // began (immutable), with no Redis round trip.
            Some(held) => warp::reply::stream(held_array(held.clone())).into_response(),
            None => warp::reply::stream(genes::stream_records(
                &conn,
                &store.keys,
                release.id(),
                release.digests.clone(),
            ))
            .into_response(),
        };
        let mut resp = of_release(body, release.id());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(resp);
    }
    let chosen = catalog
        .records(&mut conn, &store.keys, &pick, |release| {
            let (page, total) = listing.select(&release.index, "/data", &EXTRA)?;
            let first: Vec<genes::index::DocId> = page.iter().take(RECORD_BATCH).copied().collect();
            Ok::<_, ApiError>(((page, total), first))
        })
        .await;
    let Chosen {
        release,
        extra: (page, total),
        records,
        ..
    } = match chosen {
        Ok(c) => c,
        Err(RecordsError::Choose(e)) => return Err(e),
        Err(RecordsError::Catalog(e)) => return Err(e.into()),
    };
    let mut writer = Writer::new(
        listing.format.unwrap_or(Format::Json),
        listing.fields,
        &release.index,
    );
    let content_type = writer.content_type();
    let mut first = writer.head();
    writer
        .write(&records, &mut first)
        .map_err(ApiError::Internal)?;
    let rest_docs: Vec<genes::index::DocId> = page.iter().skip(RECORD_BATCH).copied().collect();
    let rest: Vec<genes::Digest> = rest_docs
        .iter()
        .map(|d| release.digests[*d as usize])
        .collect();
    let mut resp = if rest.is_empty() {
        first.extend_from_slice(writer.tail());
        Response::new(Bytes::from(first).into())
    } else {
        // The rest follows in batches, read as the client takes them. The
        // records are the release's own (immutable, named by content); if
        // the release stops being kept meanwhile, the answer is cut.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
        let id = release.id().to_string();
        let (keys, mut conn) = (store.keys.clone(), conn);
        let held = release.held().cloned();
        tokio::spawn(async move {
            if tx.send(Ok(Bytes::from(first))).await.is_err() {
                return;
            }
            if let Some(held) = held {
                for batch in rest_docs.chunks(RECORD_BATCH) {
                    let records: Vec<Option<Bytes>> = batch
                        .iter()
                        .map(|d| held.get(*d as usize).cloned())
                        .collect();
                    let mut out = Vec::with_capacity(records.len() * 1024);
                    let item = writer
                        .write(&records, &mut out)
                        .map(|()| Bytes::from(out))
                        .map_err(std::io::Error::other);
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
                let _ = tx.send(Ok(Bytes::from_static(writer.tail()))).await;
                return;
            }
            for batch in rest.chunks(RECORD_BATCH) {
                let digests: Vec<&[u8]> = batch.iter().map(|d| &d[..]).collect();
                let item = match genes::records_checked(
                    &mut conn,
                    &keys,
                    genes::Check::Kept(&id),
                    &digests,
                )
                .await
                {
                    Ok(genes::Checked::Records(records)) if records.iter().all(Option::is_some) => {
                        let mut out = Vec::with_capacity(records.len() * 1024);
                        writer
                            .write(&records, &mut out)
                            .map(|()| Bytes::from(out))
                            .map_err(std::io::Error::other)
                    }
                    Ok(_) => Err(std::io::Error::other(
                        "the release stopped being kept while streaming",
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
    Ok(of_release(with_total(resp, total), release.id()))
}

#[utoipa::path(
    get, path = "/data/info", tag = "data",
    params(("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$")),
    responses((status = 200, description = "What the live release (or the one asked for) is: id, as-of date, records, source, sha256, withdrawn file, when it was loaded", body = ReleaseInfo,
            headers(("X-HGNC-Release" = String, description = "The release answered from"))),
        (status = 400, description = "Not a release id (`bad_release`)", body = ErrorBody),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`), or no such release (`release_not_found`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn data_info(pick: Pick, store: Store, catalog: Catalog) -> Result<Response, ApiError> {
    let mut conn = store.data.clone();
    let info = match &pick {
        Pick::Live => genes::summary(&mut conn, &store.keys).await?,
        Pick::Release(id) => genes::release_info(&mut conn, &store.keys, id).await?,
    };
    match info {
        Some(info) => Ok(of_release(json_with(StatusCode::OK, &info), &info.id)),
        // Not kept (or nothing loaded): the catalog says which.
        None => Err(super::missing_release(&catalog, &mut conn, &store.keys, &pick).await),
    }
}

#[utoipa::path(
    delete, path = "/data", tag = "data",
    responses((status = 200, description = "The data set is removed (`deleted` is the record count, 0 when none was loaded)", body = Deleted),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn delete_data(store: Store) -> Result<Response, ApiError> {
    let ((n, releases), durability) = genes::delete_all(&store).await?;
    if let Durability::Short { acked, wanted } = durability {
        return Err(ApiError::NotReplicated {
            message: format!(
                "the data set is deleted on the Redis primary, but only {acked} of {wanted} \
                 replicas confirmed it in time, so a failover now could bring it back; \
                 DELETE /data again (it is idempotent)"
            ),
            job: None,
        });
    }
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({
            "deleted": n,
            "releases_deleted": releases,
            "message": format!("removed the live release's {n} gene records and all {releases} kept releases (the history too)"),
        }),
    ))
}

/// A held release's records as one JSON array, in chunks of
/// [`RECORD_BATCH`] records (the same bytes the Redis path streams).
fn held_array(
    held: std::sync::Arc<Vec<Bytes>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks = held.len().div_ceil(RECORD_BATCH).max(1);
    futures_util::stream::iter((0..chunks).map(move |n| {
        let batch =
            &held[(n * RECORD_BATCH).min(held.len())..((n + 1) * RECORD_BATCH).min(held.len())];
        let mut out =
            Vec::with_capacity(batch.iter().map(Bytes::len).sum::<usize>() + batch.len() + 2);
        for (i, r) in batch.iter().enumerate() {
            out.push(if n == 0 && i == 0 { b'[' } else { b',' });
            out.extend_from_slice(r);
        }
        if held.is_empty() {
            out.extend_from_slice(b"[");
        }
        if n + 1 == chunks {
            out.push(b']');
        }
        Ok(Bytes::from(out))
    }))
}

#[cfg(test)]
mod tests {
    use super::held_array;
    use bytes::Bytes;
    use futures_util::StreamExt;

    async fn body(records: Vec<&'static str>) -> String {
        let held = std::sync::Arc::new(
            records
                .into_iter()
                .map(|r| Bytes::from_static(r.as_bytes()))
                .collect::<Vec<_>>(),
        );
        let chunks: Vec<_> = held_array(held).collect().await;
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&c.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn a_held_release_streams_as_one_json_array() {
        assert_eq!(body(vec![]).await, "[]");
        assert_eq!(body(vec!["{\"a\":1}"]).await, "[{\"a\":1}]");
        let many: Vec<&'static str> = (0..2501).map(|_| "1").collect();
        let text = body(many).await;
        let parsed: Vec<u32> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 2501);
    }

    use super::*;

    #[test]
    fn load_body_is_empty_or_an_archive_date() {
        assert_eq!(parse_load_body(b"").unwrap(), None);
        assert_eq!(parse_load_body(b" {} ").unwrap(), None);
        assert_eq!(
            parse_load_body(br#"{"release": "2024-07-23"}"#)
                .unwrap()
                .as_deref(),
            Some("2024-07-23")
        );
        let e = parse_load_body(br#"{"source": "/etc/passwd"}"#).unwrap_err();
        assert!(e.to_string().contains("GENE_API__DATA__SOURCE"));
        for bad in [
            &br#"{"release": "../../etc"}"#[..],
            br#"{"release": "2024-13-01"}"#,
        ] {
            assert!(parse_load_body(bad)
                .unwrap_err()
                .to_string()
                .contains("YYYY-MM-DD"));
        }
        assert!(parse_load_body(b"{oops")
            .unwrap_err()
            .to_string()
            .contains("malformed"));
        assert!(parse_load_body(b"[1]").is_err());
        // serde alone reads `[null]` as a struct with `release: null`.
        for not_object in [&b"[null]"[..], b"[]", b"\"x\"", b"3"] {
            let e = parse_load_body(not_object).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        }
        assert!(parse_load_body(br#"{"url": "x"}"#).is_err());
    }
}
