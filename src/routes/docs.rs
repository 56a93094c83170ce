//! `GET /openapi.json`, the contract, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they answer with; `GET /docs`,
//! Swagger UI, whose files are compiled into the binary (`vendored`), so it
//! works with no internet.
//!
//! The types below exist for the contract only: what a route returns as raw
//! JSON (a gene record is stored as HGNC publishes it) or builds with
//! `json!`, described for clients.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::json_with;
use crate::error::ApiError;

/// The whole API, as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gene-api",
        description = "The HGNC gene data set over HTTP, with Redis Streams jobs and PNG plots. \
            Every error answer is `{\"error\": code, \"message\": text}`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        super::health, super::ready,
        super::metrics::scrape, openapi_json, docs_index, docs_file,
        super::dashboard::index, super::whoami::whoami,
        super::data::get_data, super::data::post_data, super::data::delete_data,
        super::data::data_info, super::schedules::list_schedules,
        super::genes::get_genes, super::genes::get_gene, super::genes::get_by_symbol,
        super::genes::lookup, super::search::search, super::search::info,
        super::releases::list, super::releases::one, super::releases::get_diff,
        super::releases::gene_history, super::releases::symbol_history,
        super::jobs::list_jobs, super::jobs::post_job, super::jobs::stats,
        super::jobs::pause, super::jobs::resume,
        super::jobs::get_job, super::jobs::cancel_job, super::jobs::retry_job,
        super::jobs::job_events,
        super::dead::list_dead, super::dead::requeue_dead, super::dead::drop_dead,
        super::events::events,
        super::image::get_latest_image, super::image::post_image, super::image::delete_images,
        super::image::get_image, super::image::delete_image,
        super::hgnc::info, super::hgnc::fetch, super::hgnc::search_all,
        super::hgnc::search_in_field,
    ),
    tags(
        (name = "data", description = "The data set: load it (also on a schedule), read it whole, remove it"),
        (name = "genes", description = "Genes by HGNC id, symbol, any name or cross-reference, filters and queries"),
        (name = "releases", description = "HGNC releases: which one answers, the kept ones, what changed between two, a gene's history"),
        (name = "jobs", description = "Jobs: submit, follow (also live, as server-sent events), cancel, retry, pause the queue, dead letters"),
        (name = "images", description = "Plots: make one (a job), fetch the PNG"),
        (name = "hgnc", description = "HGNC's own REST API (rest.genenames.org), answered from the loaded release: its clients work with this base URL, or with gene-api as their HTTP proxy"),
        (name = "operations", description = "Probes, metrics, this contract, the dashboard"),
    )
)]
pub struct ApiDoc;

/// A gene record as HGNC publishes it (`hgnc_complete_set.json`); only the
/// commonest fields are listed, and every other field HGNC has is passed on.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Gene {
    /// e.g. `HGNC:5`
    hgnc_id: String,
    /// The approved symbol, e.g. `A1BG`
    symbol: String,
    name: Option<String>,
    locus_group: Option<String>,
    locus_type: Option<String>,
    status: Option<String>,
    /// Cytogenetic location, e.g. `19q13.43`
    location: Option<String>,
    alias_symbol: Option<Vec<String>>,
    prev_symbol: Option<Vec<String>>,
    entrez_id: Option<String>,
    ensembl_gene_id: Option<String>,
    date_approved_reserved: Option<String>,
}

/// A gene record, or the fields of it that `fields=` selected: any of the
/// fields HGNC publishes (`GET /info` lists them).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct GeneFields {
    hgnc_id: Option<String>,
    symbol: Option<String>,
    name: Option<String>,
    locus_group: Option<String>,
    location: Option<String>,
}

/// What a DELETE removed.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Deleted {
    /// How many things (records, images, entries) were removed.
    deleted: u64,
    message: String,
}

/// A plot's parameters, as `POST /image` takes them in a JSON body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PlotParams {
    /// The chart (default locus_group).
    kind: Option<crate::plot::PlotKind>,
    /// Pixels (default 1000).
    #[schema(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Pixels (default 600).
    #[schema(minimum = 200, maximum = 4000)]
    height: Option<u32>,
}

/// `POST /jobs`: a load of the configured source, or a plot.
#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
pub enum JobRequest {
    /// `{"kind": "load"}`, or `{"kind": "load", "release": "2024-07-23"}` for
    /// an archived release (as `POST /data` takes it).
    Load {
        #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", format = Date)]
        release: Option<String>,
    },
    /// `{"kind": "plot", "plot": "chromosome", "width": 1000, "height": 600}`
    Plot {
        /// The chart (default locus_group).
        plot: Option<crate::plot::PlotKind>,
        #[schema(minimum = 200, maximum = 4000)]
        width: Option<u32>,
        #[schema(minimum = 200, maximum = 4000)]
        height: Option<u32>,
    },
}

/// A dead-letter entry put back on the stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Requeued {
    /// The dead-letter entry that was requeued.
    requeued: String,
    /// The new stream entry.
    entry_id: String,
    /// The job, `queued` again.
    job: Option<crate::jobs::Job>,
}

/// One server-sent event (keep-alive comments come between them).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// The job's state after the change.
    event: crate::jobs::JobStatus,
    /// The job record, as JSON (the same object `GET /jobs/{job_id}` answers).
    #[schema(content_media_type = "application/json")]
    data: String,
    /// The event's id (`<ms>-<seq>`), for `Last-Event-ID`; the first event of
    /// `/jobs/{job_id}/events` (the state when asked) has none.
    id: Option<String>,
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    status: String,
}

/// `GET /openapi.json`, `GET /docs`, `GET /docs/<file>`.
pub fn routes(open: bool) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let spec = warp::path!("openapi.json")
        .and(warp::get())
        .then(move || openapi_json(open));
    let index = warp::path!("docs").and(warp::get()).then(docs_index);
    let file = warp::path!("docs" / String)
        .and(warp::get())
        .then(docs_file)
        .map(super::respond);
    spec.or(index).unify().or(file).unify()
}

/// The served contract. `open`: the server has no keys, and the contract says
/// so: no operation asks for a bearer key or answers 401/403 (a client
/// generator or fuzzer would otherwise believe the write routes protected).
fn spec_json(open: bool) -> &'static str {
    static SPEC: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    SPEC[usize::from(open)].get_or_init(|| {
        let mut doc =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
        add_gate_answers(&mut doc, open);
        no_other_job_fields(&mut doc);
        serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes")
    })
}

/// `POST /jobs` refuses fields its kind does not take (a misspelt `widht`
/// would otherwise be a silent default); utoipa drops `deny_unknown_fields`
/// on the variants of an internally tagged enum, so the contract says it here.
fn no_other_job_fields(doc: &mut serde_json::Value) {
    let variants = &mut doc["components"]["schemas"]["JobRequest"]["oneOf"];
    for v in variants.as_array_mut().into_iter().flatten() {
        v["additionalProperties"] = serde_json::Value::Bool(false);
    }
}

/// The methods the route `template` (as [`super::route_template`] names it)
/// answers, for the `Allow` header of a 405 (RFC 9110 requires one): read
/// from the served contract, so the header and the contract cannot disagree.
pub(super) fn allowed_methods(template: &str) -> Option<&'static str> {
    static ALLOWED: OnceLock<std::collections::HashMap<String, String>> = OnceLock::new();
    ALLOWED
        .get_or_init(|| {
            let doc: serde_json::Value =
                serde_json::from_str(spec_json(true)).expect("the OpenAPI document parses");
            let order = [
                "get", "head", "post", "put", "patch", "delete", "options", "trace",
            ];
            doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(path, item)| {
                    let methods: Vec<String> = order
                        .iter()
                        .filter(|m| item.get(**m).is_some())
                        .map(|m| m.to_ascii_uppercase())
                        .collect();
                    (path.clone(), methods.join(", "))
                })
                .collect()
        })
        .get(template)
        .map(String::as_str)
}

/// What the gate (`routes/gate.rs`) may answer before any route runs, added
/// to every operation from the same table the gate uses
/// (`auth::required_scope`): the bearer key each operation needs, 401 and
/// 403 where a key is checked, 429 wherever a budget is spent.
fn add_gate_answers(doc: &mut serde_json::Value, open: bool) {
    use serde_json::json;
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let retry_after =
        json!({"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}});
    if !open {
        doc["components"]["securitySchemes"] = json!({
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "An API key (`gene-api keygen`)"}
        });
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            let method = method.to_ascii_uppercase();
            let scope = crate::auth::required_scope(&method, path).filter(|_| !open);
            if let Some(scope) = scope {
                let when = if scope == crate::auth::Scope::Read {
                    " (only when the server protects reads: `auth.protect_reads`)"
                } else {
                    ""
                };
                op["security"] = if scope == crate::auth::Scope::Read {
                    json!([{}, {"bearer": []}])
                } else {
                    json!([{"bearer": []}])
                };
                let responses = &mut op["responses"];
                responses["401"] = json!({
                    "description": format!("No API key, or an unknown one (`unauthorized`){when}"),
                    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
                    "content": error.clone()});
                responses["403"] = json!({
                    "description": format!("The key's scope is not enough: this needs `{}` (`forbidden`){when}", scope.as_str()),
                    "content": error.clone()});
            }
            if super::gate::is_submission(&method, path) {
                op["responses"]["503"]["description"] = json!(
                    "The job queue's backlog is at `limits.max_backlog` (`busy`; nothing was queued), \
                     or Redis is unavailable (`unavailable`); retry after the Retry-After seconds"
                );
            }
            if !matches!(path.as_str(), "/health" | "/ready") {
                op["responses"]["429"] = json!({
                    "description": "This client's request budget is spent (`rate_limited`); too many event streams open",
                    "headers": retry_after.clone(),
                    "content": error.clone()});
            }
        }
    }
}

/// This contract, as OpenAPI 3.1 JSON.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json(open: bool) -> Response {
    let mut r = Response::new(spec_json(open).into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn swagger_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")))
        .clone()
}

/// Swagger UI's page: `/docs` serves it, and its files come from `/docs/<file>`.
#[utoipa::path(
    get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Swagger UI for this contract (no internet needed)", content_type = "text/html", body = String))
)]
async fn docs_index() -> Response {
    // Swagger UI's index refers to its files relatively: from `/docs` they
    // would be looked up at `/`, so its page is answered with a base of `/docs/`.
    match utoipa_swagger_ui::serve("index.html", swagger_config()) {
        Ok(Some(file)) => {
            let html = String::from_utf8_lossy(&file.bytes).replacen(
                "<head>",
                "<head><base href=\"/docs/\">",
                1,
            );
            let mut r = Response::new(html.into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        _ => json_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({"error": "internal", "message": "Swagger UI is missing from this build"}),
        ),
    }
}

/// One of Swagger UI's files (scripts, styles, icons).
#[utoipa::path(
    get, path = "/docs/{file}", tag = "operations",
    params(("file" = String, Path, description = "A Swagger UI file, e.g. `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/css"), (String = "text/javascript"), (String = "text/html"),
            (Vec<u8> = "image/png"), (String = "application/json"))),
        (status = 404, description = "No such file (`not_found`)", body = crate::error::ErrorBody),
    )
)]
async fn docs_file(file: String) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found("not_found", format!("Swagger UI has no file {file:?}"));
    let found = utoipa_swagger_ui::serve(&file, swagger_config())
        .map_err(|e| ApiError::Internal(format!("Swagger UI file {file}: {e}")))?
        .ok_or_else(missing)?;
    let mut r = Response::new(found.bytes.to_vec().into());
    if let Ok(v) = HeaderValue::from_str(&found.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_server_s_contract_asks_for_no_key_and_a_keyed_one_s_does() {
        let ops = |open: bool| -> Vec<(String, serde_json::Value)> {
            let doc: serde_json::Value = serde_json::from_str(spec_json(open)).unwrap();
            assert_eq!(doc["components"]["securitySchemes"].is_null(), open);
            let mut out = vec![];
            for (path, item) in doc["paths"].as_object().unwrap() {
                for (method, op) in item.as_object().unwrap() {
                    out.push((format!("{method} {path}"), op.clone()));
                }
            }
            out
        };
        for (name, op) in ops(true) {
            assert!(op.get("security").is_none(), "{name}");
            assert!(op["responses"].get("401").is_none(), "{name}");
            assert!(op["responses"].get("403").is_none(), "{name}");
        }
        let keyed = ops(false);
        let delete_data = &keyed.iter().find(|(n, _)| n == "delete /data").unwrap().1;
        assert_eq!(delete_data["security"], serde_json::json!([{"bearer": []}]));
        assert!(delete_data["responses"].get("401").is_some());
        // The same operations either way.
        let names = |v: &[(String, serde_json::Value)]| {
            v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&ops(true)), names(&keyed));
    }

    #[test]
    fn the_contract_has_every_operation_the_gate_knows_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(spec_json(false)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        // The operations, derived: the gate's table (which must name every
        // route, or the route needs admin) against the contract's paths.
        let gate: std::collections::BTreeSet<(String, String)> = crate::auth::OPERATIONS
            .iter()
            .map(|(m, t, _)| (m.to_ascii_lowercase(), t.to_string()))
            .collect();
        let mut contract = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                contract.insert((method.clone(), path.clone()));
            }
        }
        // HGNC's root paths answer only requests addressed to HGNC's host
        // (see hgnc.rs): the contract has each as its `/hgnc/...` twin.
        let hgnc_root = |t: &str| t.starts_with("/fetch/") || t.starts_with("/search/");
        for (m, t) in gate.iter().filter(|(_, t)| hgnc_root(t)) {
            assert!(
                contract.contains(&(m.clone(), format!("/hgnc{t}"))),
                "{m} /hgnc{t}"
            );
        }
        let undocumented: Vec<_> = gate
            .difference(&contract)
            .filter(|(_, t)| !hgnc_root(t))
            .collect();
        assert!(
            undocumented.is_empty(),
            "not in the contract: {undocumented:?}"
        );
        let unknown: Vec<_> = contract.difference(&gate).collect();
        assert!(
            unknown.is_empty(),
            "in the contract, but the gate does not know them (they need admin): {unknown:?}"
        );
        // A job as GET /jobs/<id> answers it, with every field the README's job
        // example and docs/api.md (Job states) name.
        let job = &doc["components"]["schemas"]["Job"]["properties"];
        for field in ["attempts", "max_attempts", "retries", "next_attempt_at"] {
            assert!(
                job.get(field).is_some(),
                "Job.{field} is not in the contract"
            );
        }
        // Each documented path is a route template the metrics and the gate know.
        for (_, path) in &contract {
            assert!(
                super::super::ROUTE_TEMPLATES.contains(&path.as_str()),
                "{path}"
            );
            assert_eq!(
                super::super::route_template(&super::super::example_path(path)),
                path
            );
        }
    }
}
