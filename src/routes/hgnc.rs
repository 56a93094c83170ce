//! HGNC's own REST API (rest.genenames.org: `info`, `fetch`, `search`),
//! answered from the loaded release, so that the clients written against it
//! work unchanged and without HGNC's limit of 10 requests a second:
//!
//! - under **`/hgnc`**: point the client's base URL at `http://<gene-api>/hgnc`;
//! - at the **root, for requests addressed to `rest.genenames.org`**: a
//!   client whose base URL is fixed uses gene-api as its HTTP proxy
//!   (`HTTP_PROXY=http://<gene-api>`), and its requests arrive here.
//!
//! Not at the root for everyone: gene-api's own `/search` and `/info` answer
//! other questions in another shape, and its clients rely on them.
//!
//! Each answer is HGNC's JSON (`responseHeader`, `response.numFound`,
//! `response.docs`) when the client accepts `application/json`, and HGNC's
//! (Solr's) XML otherwise, as HGNC does.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{json_with, of_release, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::{Catalog, Pick, RecordsError, Release};
use crate::search::{self, BadFilter};
use crate::store::Store;

/// The host HGNC's clients address; requests for it are answered at the root.
pub const HGNC_HOST: &str = "rest.genenames.org";

/// `GET /hgnc/{info,fetch,search}`, and the same at the root for requests
/// addressed to [`HGNC_HOST`].
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let prefixed = warp::path("hgnc").and(api(state));
    // The first segment is looked at before the Host header, so other
    // requests (the point reads above all) pay one comparison.
    let proxied = warp::path::peek()
        .and(warp::host::optional())
        .and_then(
            |path: warp::path::Peek, host: Option<warp::host::Authority>| async move {
                let first = path.segments().next().unwrap_or("");
                let ours = matches!(first, "info" | "fetch" | "search")
                    && host.is_some_and(|h| h.host().eq_ignore_ascii_case(HGNC_HOST));
                if ours {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            },
        )
        .untuple_one()
        .and(api(state));
    prefixed.or(proxied).unify()
}

fn api(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let catalog = state.catalog.clone();
    let accept = warp::header::optional::<String>("accept");
    let info = warp::path!("info")
        .and(warp::get())
        .and(accept)
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(info)
        .map(respond);
    let fetch = warp::path!("fetch" / String / String)
        .and(warp::get())
        .and(accept)
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(fetch)
        .map(respond);
    let search_all = warp::path!("search" / String)
        .and(warp::get())
        .and(accept)
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(search_all)
        .map(respond);
    let search_field = warp::path!("search" / String / String)
        .and(warp::get())
        .and(accept)
        .and(with(store))
        .and(with(catalog))
        .then(search_in_field)
        .map(respond);
    info.or(fetch)
        .unify()
        .or(search_all)
        .unify()
        .or(search_field)
        .unify()
}

/// HGNC's `responseHeader`.
#[derive(Serialize, ToSchema)]
pub struct HgncHeader {
    /// 0: the request was answered.
    status: u32,
    /// Milliseconds the query took.
    #[serde(rename = "QTime")]
    q_time: u64,
}

impl HgncHeader {
    fn since(started: Instant) -> Self {
        Self {
            status: 0,
            q_time: started.elapsed().as_millis() as u64,
        }
    }
}

/// HGNC's `info`: what the service holds.
#[derive(Serialize, ToSchema)]
pub struct HgncInfo {
    #[serde(rename = "responseHeader")]
    response_header: HgncHeader,
    /// The release's as-of date (HGNC: when the data was last updated).
    #[serde(rename = "lastModified")]
    last_modified: String,
    /// Gene records.
    #[serde(rename = "numDoc")]
    num_doc: u64,
    /// What `fetch` and `search` may name.
    #[serde(rename = "searchableFields")]
    searchable_fields: Vec<String>,
    /// What a `fetch` answer's records hold.
    #[serde(rename = "storedFields")]
    stored_fields: Vec<String>,
}

/// HGNC's answer to `fetch`: whole records.
#[derive(Serialize, ToSchema)]
pub struct HgncFetch {
    #[serde(rename = "responseHeader")]
    response_header: HgncHeader,
    response: FetchResult,
}

#[derive(Serialize, ToSchema)]
pub struct FetchResult {
    #[serde(rename = "numFound")]
    num_found: usize,
    start: usize,
    /// The records, as HGNC publishes them.
    #[schema(value_type = Vec<Object>)]
    docs: Vec<Value>,
}

/// HGNC's answer to `search`: ids, symbols and scores, best first.
#[derive(Serialize, ToSchema)]
pub struct HgncSearch {
    #[serde(rename = "responseHeader")]
    response_header: HgncHeader,
    response: SearchResult,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    #[serde(rename = "numFound")]
    num_found: usize,
    start: usize,
    #[serde(rename = "maxScore")]
    max_score: f64,
    docs: Vec<HgncSearchDoc>,
}

#[derive(Serialize, ToSchema)]
pub struct HgncSearchDoc {
    hgnc_id: String,
    symbol: String,
    score: f64,
}

#[utoipa::path(
    get, path = "/hgnc/info", tag = "hgnc", operation_id = "hgnc_info",
    params(("Accept" = Option<String>, Header, description = "`application/json` for JSON; XML otherwise, as HGNC")),
    responses((status = 200, description = "HGNC's `info`: when the data was last updated, how many records, the searchable and stored fields", content((HgncInfo = "application/json"), (String = "application/xml"))),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn info(
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let release = catalog
        .release(&mut store.data.clone(), &store.keys, &Pick::Live)
        .await?;
    let body = HgncInfo {
        last_modified: release.info.as_of.clone(),
        num_doc: release.info.records,
        searchable_fields: release
            .index
            .searchable()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        stored_fields: release
            .index
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect(),
        response_header: HgncHeader::since(started),
    };
    Ok(answer(&body, accept.as_deref(), release.id()))
}

#[utoipa::path(
    get, path = "/hgnc/fetch/{field}/{term}", tag = "hgnc", operation_id = "hgnc_fetch",
    params(("field" = String, Path, description = "A searchable field (`info` lists them), e.g. `symbol`, `hgnc_id`, `entrez_id`"),
        ("term" = String, Path, description = "The exact value (case-insensitive; a list field matches if any element does), e.g. `ZNF3`"),
        ("Accept" = Option<String>, Header, description = "`application/json` for JSON; XML otherwise, as HGNC")),
    responses((status = 200, description = "HGNC's `fetch`: the whole records whose field has the value", content((HgncFetch = "application/json"), (String = "application/xml"))),
        (status = 400, description = "No such field (`bad_field`), or a path that is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn fetch(
    field: String,
    term: String,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let filter = [(segment(&field)?, segment(&term)?)];
    let chosen = catalog
        .records(
            &mut store.data.clone(),
            &store.keys,
            &Pick::Live,
            |release: &Release| search::filter(&release.index, &filter).map(|docs| ((), docs)),
        )
        .await;
    let chosen = match chosen {
        Ok(c) => c,
        Err(RecordsError::Catalog(e)) => return Err(e.into()),
        Err(RecordsError::Choose(BadFilter(m))) => {
            return Err(ApiError::bad_request("bad_field", m))
        }
    };
    let docs = chosen
        .records
        .iter()
        .flatten()
        .map(|r| serde_json::from_slice(r))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| ApiError::Internal(format!("a stored record is not JSON: {e}")))?;
    let body = HgncFetch {
        response: FetchResult {
            num_found: docs.len(),
            start: 0,
            docs,
        },
        response_header: HgncHeader::since(started),
    };
    Ok(answer(&body, accept.as_deref(), chosen.release.id()))
}

#[utoipa::path(
    get, path = "/hgnc/search/{query}", tag = "hgnc", operation_id = "hgnc_search",
    params(("query" = String, Path, description = "A query, `+` for a space: `BRAF`, `ZNF*`, `symbol:ZNF*+AND+status:Approved`, `ZNF3+OR+ZNF12`. A bare term searches symbol, alias_symbol and prev_symbol", min_length = 1, max_length = 512),
        ("Accept" = Option<String>, Header, description = "`application/json` for JSON; XML otherwise, as HGNC")),
    responses((status = 200, description = "HGNC's `search`: every match's hgnc_id, symbol and score, best first", content((HgncSearch = "application/json"), (String = "application/xml"))),
        (status = 400, description = "A malformed query (`bad_query`, saying at which character), or a path that is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn search_all(
    query: String,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    search(None, query, accept, store, catalog).await
}

#[utoipa::path(
    get, path = "/hgnc/search/{field}/{query}", tag = "hgnc", operation_id = "hgnc_search_field",
    params(("field" = String, Path, description = "The field a term without `field:` searches, e.g. `symbol`"),
        ("query" = String, Path, description = "A query, `+` for a space: `ZNF*`, `ZNF*+AND+status:Approved`, `ZNF*+NOT+status:Approved`", min_length = 1, max_length = 512),
        ("Accept" = Option<String>, Header, description = "`application/json` for JSON; XML otherwise, as HGNC")),
    responses((status = 200, description = "HGNC's `search`: every match's hgnc_id, symbol and score, best first", content((HgncSearch = "application/json"), (String = "application/xml"))),
        (status = 400, description = "A malformed query (`bad_query`), a field the data set lacks (`bad_query`), or a path that is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn search_in_field(
    field: String,
    query: String,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    search(Some(field), query, accept, store, catalog).await
}

async fn search(
    field: Option<String>,
    query: String,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    // HGNC's clients write spaces as `+` (its documentation does).
    let text = segment(&query)?.replace('+', " ");
    let mut parsed =
        search::parse(&text).map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
    if let Some(field) = field {
        parsed = parsed.with_default_field(&segment(&field)?);
    }
    let release = catalog
        .release(&mut store.data.clone(), &store.keys, &Pick::Live)
        .await?;
    let id = release.id().to_string();
    // Every match, as HGNC answers; a wildcard scans terms: off the async threads.
    let found =
        tokio::task::spawn_blocking(move || search::search(&release.index, &parsed, 0, usize::MAX))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
    let docs: Vec<HgncSearchDoc> = found
        .docs
        .into_iter()
        .map(|d| HgncSearchDoc {
            hgnc_id: d.hgnc_id,
            symbol: d.symbol,
            score: f64::from(d.score),
        })
        .collect();
    let body = HgncSearch {
        response: SearchResult {
            num_found: found.num_found,
            start: 0,
            max_score: docs.first().map_or(0.0, |d| d.score),
            docs,
        },
        response_header: HgncHeader::since(started),
    };
    Ok(answer(&body, accept.as_deref(), &id))
}

/// A path segment, percent-decoded.
fn segment(raw: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("bad_path", "the path is not UTF-8 once decoded"))
}

/// JSON when the client accepts it, HGNC's XML otherwise.
fn answer<T: Serialize>(body: &T, accept: Option<&str>, release: &str) -> Response {
    let wants_json = accept.is_some_and(|a| a.to_ascii_lowercase().contains("json"));
    let resp = if wants_json {
        json_with(StatusCode::OK, body)
    } else {
        let value = serde_json::to_value(body).unwrap_or(Value::Null);
        let mut resp = xml::document(&value).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        resp
    };
    of_release(resp, release)
}

/// HGNC's XML, which is Solr's: `<response>` holding typed, named elements
/// (`<str name="symbol">`, `<arr name="alias_symbol">`, `<lst>` for an
/// object), and the result as `<result name="response" numFound=..>` of `<doc>`s.
mod xml {
    use std::fmt::Write;

    use serde_json::Value;

    pub fn document(body: &Value) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>");
        if let Value::Object(fields) = body {
            // The header first, as Solr writes it.
            let header = fields.get_key_value("responseHeader");
            let rest = fields.iter().filter(|(n, _)| *n != "responseHeader");
            for (name, value) in header.into_iter().chain(rest) {
                match (name.as_str(), value) {
                    ("response", Value::Object(result)) => write_result(&mut out, result),
                    ("lastModified", Value::String(s)) => element(&mut out, "date", Some(name), s),
                    _ => write_value(&mut out, Some(name), value),
                }
            }
        }
        out.push_str("</response>\n");
        out
    }

    fn write_result(out: &mut String, result: &serde_json::Map<String, Value>) {
        out.push_str("<result name=\"response\"");
        for attr in ["numFound", "start", "maxScore"] {
            if let Some(v) = result.get(attr) {
                let _ = write!(out, " {attr}=\"{v}\"");
            }
        }
        out.push('>');
        for doc in result
            .get("docs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str("<doc>");
            if let Value::Object(fields) = doc {
                for (name, value) in fields {
                    write_value(out, Some(name), value);
                }
            }
            out.push_str("</doc>");
        }
        out.push_str("</result>");
    }

    fn write_value(out: &mut String, name: Option<&str>, value: &Value) {
        match value {
            Value::Null => {}
            Value::Bool(b) => element(out, "bool", name, &b.to_string()),
            Value::Number(n) if n.is_f64() => element(out, "float", name, &n.to_string()),
            Value::Number(n) => element(out, "int", name, &n.to_string()),
            Value::String(s) => element(out, "str", name, s),
            Value::Array(items) => {
                open(out, "arr", name);
                for item in items {
                    write_value(out, None, item);
                }
                out.push_str("</arr>");
            }
            Value::Object(fields) => {
                open(out, "lst", name);
                for (n, v) in fields {
                    write_value(out, Some(n), v);
                }
                out.push_str("</lst>");
            }
        }
    }

    fn open(out: &mut String, tag: &str, name: Option<&str>) {
        match name {
            Some(n) => {
                let _ = write!(out, "<{tag} name=\"{}\">", escape(n));
            }
            None => {
                let _ = write!(out, "<{tag}>");
            }
        }
    }

    fn element(out: &mut String, tag: &str, name: Option<&str>, text: &str) {
        open(out, tag, name);
        out.push_str(&escape(text));
        let _ = write!(out, "</{tag}>");
    }

    /// Text and attribute values; characters XML 1.0 cannot hold at all
    /// (controls other than tab and newlines) are dropped.
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                '\t' | '\n' | '\r' => out.push(c),
                c if (c as u32) < 0x20 => {}
                c => out.push(c),
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        #[test]
        fn solr_shapes_typed_and_escaped() {
            let doc = super::document(&json!({
                "responseHeader": {"status": 0, "QTime": 3},
                "response": {"numFound": 1, "start": 0, "docs": [{
                    "symbol": "A&B<\"x\">", "alias_symbol": ["a", "b"], "entrez_id": "1", "n": 2, "f": 0.5
                }]},
            }));
            assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>"));
            assert!(doc.contains(
                "<lst name=\"responseHeader\"><int name=\"QTime\">3</int><int name=\"status\">0</int></lst>"
            ) || doc.contains(
                "<lst name=\"responseHeader\"><int name=\"status\">0</int><int name=\"QTime\">3</int></lst>"
            ), "{doc}");
            assert!(
                doc.contains("<result name=\"response\" numFound=\"1\" start=\"0\"><doc>"),
                "{doc}"
            );
            assert!(
                doc.contains("<str name=\"symbol\">A&amp;B&lt;&quot;x&quot;&gt;</str>"),
                "{doc}"
            );
            assert!(
                doc.contains("<arr name=\"alias_symbol\"><str>a</str><str>b</str></arr>"),
                "{doc}"
            );
            assert!(
                doc.contains("<int name=\"n\">2</int>")
                    && doc.contains("<float name=\"f\">0.5</float>")
            );
            assert!(doc.ends_with("</result></response>\n"), "{doc}");
        }
    }
}
