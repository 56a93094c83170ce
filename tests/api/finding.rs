//! Finding genes: symbols, filters, search, lookups, TSV and /info, each
//! checked against a scan of the shipped sample done here, in the test.

use std::collections::{BTreeMap, HashSet};

use gene_api::app::Mode;
use serde_json::{json, Value};

use crate::helpers::*;

fn lower(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Does `field` of `doc` equal `value` (case-insensitive; any list element)?
fn has(doc: &Value, field: &str, value: &str) -> bool {
    let value = value.to_lowercase();
    if field == "chromosome" {
        return doc["location"]
            .as_str()
            .and_then(gene_api::plot::chromosome_of)
            .is_some_and(|c| c.to_lowercase() == value);
    }
    match &doc[field] {
        Value::Array(items) => items.iter().any(|i| lower(i).as_deref() == Some(&value)),
        v => lower(v).as_deref() == Some(&value),
    }
}

fn ids(docs: &[&Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["hgnc_id"].as_str().unwrap().to_string())
        .collect()
}

fn total(r: &reqwest::Response) -> usize {
    r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_finding_route_says_no_data_before_a_load() {
    let app = spawn_app().await;
    for path in [
        "/genes/symbol/A1BG",
        "/search?q=A1BG",
        "/info",
        "/genes?symbol=A1BG",
        "/data?symbol=A1BG",
        "/data?format=tsv",
    ] {
        assert_error(app.get(path).await, 404, "no_data", "POST /data").await;
    }
    let r = lookup(&app, &json!({"terms": ["A1BG"]})).await;
    assert_error(r, 404, "no_data", "POST /data").await;
    // The query is checked first: a malformed one is a 400 even without data.
    assert_error(
        app.get("/search?q=(A1BG").await,
        400,
        "bad_query",
        "at character",
    )
    .await;
}

/// Previous symbols and aliases that are nobody's approved symbol, with the
/// ids of the genes that carry each, in source order.
fn former_names(docs: &[Value]) -> BTreeMap<String, Vec<String>> {
    let approved: HashSet<String> = docs
        .iter()
        .map(|d| d["symbol"].as_str().unwrap().to_lowercase())
        .collect();
    let mut carriers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in docs {
        for f in ["prev_symbol", "alias_symbol"] {
            for a in d[f].as_array().into_iter().flatten() {
                let a = a.as_str().unwrap().to_lowercase();
                if !approved.contains(&a) {
                    let e = carriers.entry(a).or_default();
                    let id = d["hgnc_id"].as_str().unwrap().to_string();
                    if !e.contains(&id) {
                        e.push(id);
                    }
                }
            }
        }
    }
    carriers
}

#[tokio::test]
async fn symbols_resolve_case_insensitively_and_former_names_point_to_genes() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    for doc in docs.iter().step_by(7) {
        let symbol = doc["symbol"].as_str().unwrap();
        for asked in [symbol.to_string(), symbol.to_lowercase()] {
            let r = app.get(&format!("/genes/symbol/{}", segment(&asked))).await;
            assert_eq!(r.status(), 200, "{asked}");
            assert_eq!(&r.json::<Value>().await.unwrap(), doc, "{asked}");
        }
    }
    // A former name or alias that several genes carry, and one that a single gene does.
    let carriers = former_names(&docs);
    let (shared, many) = carriers.iter().find(|(_, v)| v.len() > 1).unwrap();
    let (single, one) = carriers.iter().find(|(_, v)| v.len() == 1).unwrap();
    for (term, want) in [(shared, many), (single, one)] {
        let r = app
            .get(&format!("/genes/symbol/{}", segment(&term.to_uppercase())))
            .await;
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "gene_not_found");
        let got: Vec<&str> = body["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["hgnc_id"].as_str().unwrap())
            .collect();
        let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
        want_sorted.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "{term}");
        for c in body["candidates"].as_array().unwrap() {
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains(c["symbol"].as_str().unwrap()));
        }
    }
    let r = app.get("/genes/symbol/NO-SUCH-GENE-XYZ").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["candidates"], json!([]));
    assert_error(
        app.get(&format!("/genes/symbol/{}", "A".repeat(300))).await,
        400,
        "bad_symbol",
        "256",
    )
    .await;
}

#[tokio::test]
async fn filters_page_and_select_like_a_scan_of_the_records() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    let first = &docs[0];
    let alias = docs
        .iter()
        .find_map(|d| d["alias_symbol"].as_array().and_then(|a| a.first()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_uppercase();
    let pubmed = docs
        .iter()
        .find_map(|d| d["pubmed_id"].as_array().and_then(|a| a.first()))
        .unwrap()
        .to_string();
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("symbol", first["symbol"].as_str().unwrap().to_lowercase())],
        vec![("alias_symbol", alias)],
        vec![("pubmed_id", pubmed)],
        vec![("locus_group", "PSEUDOGENE".into())],
        vec![("chromosome", "19".into())],
        vec![("chromosome", "x".into())],
        vec![
            ("chromosome", "19".into()),
            ("locus_group", "protein-coding gene".into()),
        ],
        vec![
            ("status", "Approved".into()),
            ("locus_group", "non-coding RNA".into()),
            ("chromosome", "1".into()),
        ],
        vec![("symbol", "NO-SUCH-GENE".into())],
        // More than one batch of records: the streamed part is compared too.
        vec![("status", "approved".into())],
    ];
    for filters in cases {
        let want: Vec<&Value> = docs
            .iter()
            .filter(|d| filters.iter().all(|(f, v)| has(d, f, v)))
            .collect();
        let query = serde_urlencoded::to_string(&filters).unwrap();
        let r = app.get(&format!("/genes?{query}")).await;
        assert_eq!(r.status(), 200, "{query}");
        assert_eq!(total(&r), want.len(), "{query}");
        assert_eq!(
            r.json::<Vec<String>>().await.unwrap(),
            ids(&want),
            "{query}"
        );
        let r = app.get(&format!("/data?{query}")).await;
        assert_eq!(total(&r), want.len(), "{query}");
        let got: Vec<Value> = r.json().await.unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{query}");
    }

    // Paging: every window of the pseudogenes is the same slice of the scan.
    let want: Vec<&Value> = docs
        .iter()
        .filter(|d| has(d, "locus_group", "pseudogene"))
        .collect();
    let n = want.len();
    for (offset, limit) in [
        (0, 1),
        (1, 5),
        (n - 1, 10),
        (n, 10),
        (n + 5, 1),
        (0, n + 100),
    ] {
        let r = app
            .get(&format!(
                "/genes?locus_group=pseudogene&offset={offset}&limit={limit}"
            ))
            .await;
        assert_eq!(total(&r), n);
        let page: Vec<String> = r.json().await.unwrap();
        let expect: Vec<String> = ids(&want).into_iter().skip(offset).take(limit).collect();
        assert_eq!(page, expect, "offset {offset} limit {limit}");
    }
    // Paging with no filter pages everything; the classic answers stay as they were.
    let r = app.get("/data?offset=1000&limit=700").await;
    assert_eq!(total(&r), docs.len());
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page, docs[1000..].to_vec());
    let plain: Vec<Value> = app.get("/data").await.json().await.unwrap();
    assert_eq!(plain, docs);
    let r = app.get("/genes").await;
    assert!(r.headers().get("x-total-count").is_none());
    assert_eq!(r.json::<Vec<String>>().await.unwrap().len(), docs.len());

    // Field selection, in the order asked; absent fields are left out.
    let r = app
        .get("/data?fields=symbol,hgnc_id,location&limit=50")
        .await;
    let page: Vec<Value> = r.json().await.unwrap();
    for (got, doc) in page.iter().zip(&docs) {
        let o = got.as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let want_keys: Vec<&str> = ["symbol", "hgnc_id", "location"]
            .into_iter()
            .filter(|k| doc.get(*k).is_some())
            .collect();
        let mut sorted_want = want_keys.clone();
        sorted_want.sort();
        assert_eq!(keys, sorted_want);
        for k in want_keys {
            assert_eq!(got[k], doc[k]);
        }
    }
    let raw = app
        .get("/data?fields=symbol,hgnc_id&limit=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(raw.starts_with(r#"[{"symbol":"#), "{raw}");

    // Errors name what is allowed.
    assert_error(
        app.get("/genes?bogus=1").await,
        400,
        "bad_parameter",
        "alias_symbol",
    )
    .await;
    assert_error(
        app.get("/genes?fields=symbol").await,
        400,
        "bad_parameter",
        "limit, offset",
    )
    .await;
    assert_error(
        app.get("/data?fields=symbol,nope").await,
        400,
        "bad_fields",
        "hgnc_id",
    )
    .await;
    assert_error(
        app.get("/data?limit=0").await,
        400,
        "bad_limit",
        "1 to 50000",
    )
    .await;
    assert_error(app.get("/data?offset=x").await, 400, "bad_offset", "0 to").await;
    assert_error(
        app.get("/data?format=xml").await,
        400,
        "bad_format",
        "json or tsv",
    )
    .await;
    assert_error(
        app.get("/genes?symbol=").await,
        400,
        "bad_filter",
        "needs a value",
    )
    .await;
    assert_error(
        app.get("/genes?limit=1&limit=2").await,
        400,
        "bad_parameter",
        "twice",
    )
    .await;
}

/// HGNC's TSV: a header of field names, list values joined with `|`.
fn parse_tsv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    (header, rows)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.replace(['\t', '\n', '\r'], " "),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join("|"),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn tsv_parses_back_to_the_records() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    let by_param = app.get("/data?format=tsv").await;
    assert_eq!(
        by_param.headers()["content-type"],
        "text/tab-separated-values; charset=utf-8"
    );
    let text = by_param.text().await.unwrap();
    let by_accept = app
        .client
        .get(app.url("/data"))
        .header("accept", "text/tab-separated-values")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, by_accept);
    let (header, rows) = parse_tsv(&text);
    // Every field of the sample is a column, HGNC's first columns first.
    assert_eq!(&header[..3], ["hgnc_id", "symbol", "name"]);
    let fields: HashSet<&str> = docs
        .iter()
        .flat_map(|d| d.as_object().unwrap().keys().map(String::as_str))
        .collect();
    assert_eq!(
        header.iter().map(String::as_str).collect::<HashSet<_>>(),
        fields
    );
    // More rows than one batch: the streamed part is checked too.
    assert_eq!(rows.len(), docs.len());
    for (row, doc) in rows.iter().zip(&docs) {
        assert_eq!(row.len(), header.len());
        for (col, value) in header.iter().zip(row) {
            assert_eq!(value, &cell(&doc[col.as_str()]), "{} {col}", doc["hgnc_id"]);
        }
    }
    // Filters and field selection apply to the TSV too.
    let text = app
        .get("/data?format=tsv&locus_group=pseudogene&fields=symbol,alias_symbol")
        .await
        .text()
        .await
        .unwrap();
    let (header, rows) = parse_tsv(&text);
    assert_eq!(header, ["symbol", "alias_symbol"]);
    let want: Vec<&Value> = docs
        .iter()
        .filter(|d| has(d, "locus_group", "pseudogene"))
        .collect();
    assert_eq!(rows.len(), want.len());
    for (row, doc) in rows.iter().zip(want) {
        assert_eq!(row, &[cell(&doc["symbol"]), cell(&doc["alias_symbol"])]);
    }
}

#[tokio::test]
async fn search_ranks_and_matches_like_a_scan() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    let names = |d: &Value| -> Vec<String> {
        ["symbol", "alias_symbol", "prev_symbol"]
            .iter()
            .flat_map(|f| match &d[*f] {
                Value::String(s) => vec![s.to_lowercase()],
                Value::Array(a) => a
                    .iter()
                    .map(|s| s.as_str().unwrap().to_lowercase())
                    .collect(),
                _ => vec![],
            })
            .collect()
    };
    // An exact approved symbol comes first, with the top score.
    let a = search(&app, "a1bg", "").await;
    assert_eq!(a["docs"][0]["symbol"], "A1BG");
    assert_eq!(a["docs"][0]["matched_by"], json!(["symbol"]));
    // A prefix: every gene whose symbol, alias or previous symbol starts with it.
    let want = docs
        .iter()
        .filter(|d| names(d).iter().any(|n| n.starts_with("a2m")))
        .count();
    let a = search(&app, "A2M*", "&limit=1000").await;
    assert_eq!(a["numFound"], want);
    let got = a["docs"].as_array().unwrap();
    assert_eq!(got.len(), want);
    // Wildcard matches by symbol before those by alias, each group by symbol.
    let scores: Vec<u64> = got.iter().map(|d| d["score"].as_u64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let by_symbol: Vec<String> = got
        .iter()
        .filter(|d| d["score"] == 10)
        .map(|d| d["symbol"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = by_symbol.clone();
    sorted.sort();
    assert_eq!(by_symbol, sorted);
    // An infix wildcard in a field, and booleans with phrases.
    let want = docs
        .iter()
        .filter(|d| {
            d["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("kinase")
        })
        .count();
    assert_eq!(search(&app, "name:*KINASE*", "").await["numFound"], want);
    let want = docs
        .iter()
        .filter(|d| has(d, "locus_group", "protein-coding gene") && !has(d, "chromosome", "1"))
        .count();
    assert_eq!(
        search(
            &app,
            r#"locus_group:"protein-coding gene" NOT chromosome:1"#,
            ""
        )
        .await["numFound"],
        want
    );
    let want = docs
        .iter()
        .filter(|d| {
            has(d, "chromosome", "19")
                && (has(d, "locus_group", "pseudogene") || has(d, "locus_group", "other"))
        })
        .count();
    assert_eq!(
        search(
            &app,
            "chromosome:19 AND (locus_group:pseudogene OR locus_group:other)",
            ""
        )
        .await["numFound"],
        want
    );
    // An alias several genes carry finds them all.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        for a in d["alias_symbol"].as_array().into_iter().flatten() {
            *count.entry(a.as_str().unwrap().to_lowercase()).or_default() += 1;
        }
    }
    let (alias, n) = count.iter().find(|(_, n)| **n > 1).unwrap();
    let a = search(&app, alias, "").await;
    assert!(a["numFound"].as_u64().unwrap() >= *n as u64);
    // Pages are windows of one ranking.
    let all = search(&app, "A*", "&limit=1000").await;
    for (offset, limit) in [
        (0, 3),
        (5, 7),
        (all["numFound"].as_u64().unwrap() as usize - 2, 10),
    ] {
        let page = search(&app, "A*", &format!("&offset={offset}&limit={limit}")).await;
        let want: Vec<&Value> = all["docs"]
            .as_array()
            .unwrap()
            .iter()
            .skip(offset)
            .take(limit)
            .collect();
        assert_eq!(
            page["docs"].as_array().unwrap().iter().collect::<Vec<_>>(),
            want
        );
        assert_eq!(page["numFound"], all["numFound"]);
    }
    // Malformed queries say where.
    for (q, needle) in [
        ("(BRCA1", "at character 7"),
        ("a AND", "at character 6"),
        ("\"open", "never closed"),
        ("nosuch:x", "searchable fields are"),
        ("", "empty"),
    ] {
        assert_error(
            app.get(&format!("/search?q={}", urlencode(q))).await,
            400,
            "bad_query",
            needle,
        )
        .await;
    }
    assert_error(app.get("/search").await, 400, "bad_query", "q is required").await;
    assert_error(
        app.get("/search?q=a&limit=1001").await,
        400,
        "bad_limit",
        "1 to 1000",
    )
    .await;
    assert_error(
        app.get("/search?q=a&sort=x").await,
        400,
        "bad_parameter",
        "q, limit, offset",
    )
    .await;
}

/// POST /genes/lookup with a JSON body.
async fn lookup(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/genes/lookup"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn search(app: &TestApp, q: &str, extra: &str) -> Value {
    let r = app.get(&format!("/search?q={}{extra}", urlencode(q))).await;
    assert_eq!(r.status(), 200, "{q}");
    r.json::<Value>().await.unwrap()
}

fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string()
}

#[tokio::test]
async fn lookups_resolve_every_kind_of_term_in_order() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    let with = |f: &str| {
        docs.iter()
            .find(|d| d[f].is_string() || d[f].is_array())
            .unwrap()
    };
    let e = with("ensembl_gene_id");
    let n = with("entrez_id");
    let u = docs
        .iter()
        .find(|d| d["uniprot_ids"].as_array().is_some_and(|a| a.len() == 1))
        .unwrap();
    let (ambiguous, carriers) = former_names(&docs)
        .into_iter()
        .find(|(_, v)| v.len() > 1)
        .unwrap();
    let terms = json!([
        docs[3]["hgnc_id"],
        docs[4]["symbol"].as_str().unwrap().to_lowercase(),
        e["ensembl_gene_id"],
        n["entrez_id"],
        u["uniprot_ids"][0],
        ambiguous.to_uppercase(),
        "NO-SUCH-THING",
    ]);
    let r = lookup(&app, &json!({ "terms": terms })).await;
    assert_eq!(r.status(), 200);
    let answers: Vec<Value> = r.json().await.unwrap();
    assert_eq!(answers.len(), 7);
    for (a, t) in answers.iter().zip(terms.as_array().unwrap()) {
        assert_eq!(&a["term"], t);
    }
    let found = |i: usize, doc: &Value, field: &str| {
        assert_eq!(answers[i]["hgnc_id"], doc["hgnc_id"], "{}", answers[i]);
        assert_eq!(answers[i]["symbol"], doc["symbol"]);
        assert_eq!(answers[i]["matched_by"], json!([field]));
    };
    found(0, &docs[3], "hgnc_id");
    found(1, &docs[4], "symbol");
    found(2, e, "ensembl_gene_id");
    found(3, n, "entrez_id");
    found(4, u, "uniprot_ids");
    let got: Vec<&str> = answers[5]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hgnc_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, carriers);
    assert_eq!(answers[6]["not_found"], true);

    // 10,000 terms are one request; 10,001 are refused, and so is a body over 1 MiB.
    let many: Vec<String> = (0..10_000)
        .map(|i| docs[i % docs.len()]["symbol"].as_str().unwrap().to_string())
        .collect();
    let r = lookup(&app, &json!({"terms": many})).await;
    assert_eq!(r.status(), 200);
    let answers: Vec<Value> = r.json().await.unwrap();
    assert_eq!(answers.len(), 10_000);
    assert!(answers.iter().all(|a| a["hgnc_id"].is_string()));
    let too_many = vec!["A1BG"; 10_001];
    let r = lookup(&app, &json!({"terms": too_many})).await;
    assert_error(r, 400, "too_many_terms", "at most 10000").await;
    let huge = vec!["x".repeat(200); 6000];
    let r = lookup(&app, &json!({"terms": huge})).await;
    assert_error(r, 413, "payload_too_large", "too large").await;
    for body in [
        r#"{"terms": "A1BG"}"#,
        r#"{"term": ["A1BG"]}"#,
        "[1]",
        "{oops",
    ] {
        let r = app
            .client
            .post(app.url("/genes/lookup"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "bad_lookup", "terms").await;
    }
    let r = app.get("/genes/lookup").await;
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn info_describes_the_loaded_data_set() {
    let app = spawn_app().await;
    let job = app.load().await;
    let docs = sample_docs();
    let info: Value = app.get("/info").await.json().await.unwrap();
    assert_eq!(info["records"], docs.len());
    assert_eq!(info["version"], job["result"]["release"]);
    assert_eq!(info["release"]["job_id"], job["id"]);
    assert_eq!(info["source"], SAMPLE);
    assert!(info["loaded_at"].is_string());
    let field = |name: &str| {
        info["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    assert_eq!(field("symbol")["types"], json!(["string"]));
    assert_eq!(field("alias_symbol")["types"], json!(["array"]));
    assert_eq!(
        field("location")["records"],
        docs.iter().filter(|d| d.get("location").is_some()).count()
    );
    assert!(info["searchable"]
        .as_array()
        .unwrap()
        .contains(&json!("chromosome")));
    for facet in ["locus_group", "locus_type", "status"] {
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for d in &docs {
            *want
                .entry(d[facet].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let got: BTreeMap<String, u64> = info["counts"][facet]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["value"].as_str().unwrap().to_string(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{facet}");
    }
}

#[tokio::test]
async fn a_failed_load_keeps_the_old_indexes_and_a_good_one_swaps_them_for_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hgnc.json");
    std::fs::copy(SAMPLE, &source).unwrap();
    let app = spawn_app_with(Mode::Serve, &source, &[]).await;
    app.load().await;
    // A second api process on the same Redis, with the index in its memory.
    let other = start((), Mode::Api, test_env(app.redis.port, &source)).await;
    let docs = sample_docs();
    let old_symbol = docs[0]["symbol"].as_str().unwrap().to_string();
    let first = other.get(&format!("/genes/symbol/{old_symbol}")).await;
    assert_eq!(first.status(), 200);
    let before = other
        .get("/search?q=A*&limit=1000")
        .await
        .text()
        .await
        .unwrap();

    std::fs::write(
        &source,
        b"{\"response\": {\"docs\": [{\"hgnc_id\": \"HGNC:1\"}, {\"symbol\": \"X\"}]}}",
    )
    .unwrap();
    assert_eq!(app.load().await["status"], "failed");
    for a in [&app.addr, &other.addr] {
        let r = app
            .client
            .get(format!("{a}/search?q=A*&limit=1000"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), before);
    }

    // A new set: the first gene renamed, the last one gone.
    let mut changed = docs.clone();
    changed[0]["symbol"] = json!("ZZRENAMED1");
    changed.pop();
    std::fs::write(
        &source,
        serde_json::to_vec(&json!({"response": {"docs": changed}})).unwrap(),
    )
    .unwrap();
    let job = app.load().await;
    assert_eq!(job["status"], "done");
    // The other replica answers from the new set at once, with no wait.
    let r = other.get("/genes/symbol/zzrenamed1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["hgnc_id"],
        docs[0]["hgnc_id"]
    );
    assert_eq!(
        other
            .get(&format!("/genes/symbol/{old_symbol}"))
            .await
            .status(),
        404
    );
    let info: Value = other.get("/info").await.json().await.unwrap();
    assert_eq!(info["records"], docs.len() - 1);
    assert_eq!(info["release"]["job_id"], job["id"]);
    assert_eq!(info["version"], job["result"]["release"]);
    let r = other
        .get(&format!(
            "/genes?hgnc_id={}",
            docs.last().unwrap()["hgnc_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(total(&r), 0);

    // The release before, whose index is no longer stored (only the live
    // one's is): a fresh replica builds it from that release's records when
    // asked for it, and answers from it, not from the live one.
    let releases: Value = other.get("/releases").await.json().await.unwrap();
    let older = releases["releases"][1]["id"].as_str().unwrap().to_string();
    assert_eq!(releases["releases"][0]["id"], job["result"]["release"]);
    let mut redis = app.redis.conn(0);
    let stored: i64 = redis::cmd("EXISTS")
        .arg(format!("gene-api:release:{older}:index"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(stored, 0, "a replaced release keeps no stored index");
    let fresh = start((), Mode::Api, test_env(app.redis.port, &source)).await;
    let r = fresh.get("/genes/symbol/ZZRENAMED1").await;
    assert_eq!(r.status(), 200);
    let r = fresh
        .get(&format!("/genes/symbol/{old_symbol}?release={older}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hgnc-release"], older.as_str());
    assert_eq!(r.json::<Value>().await.unwrap(), docs[0]);
    let r = fresh.get("/data?symbol=zzrenamed1&fields=hgnc_id").await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"hgnc_id": docs[0]["hgnc_id"]}])
    );
    let a: Value = fresh
        .get(&format!(
            "/search?q={}&release={older}",
            old_symbol.to_lowercase()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["docs"][0]["hgnc_id"], docs[0]["hgnc_id"]);
    let a: Value = fresh
        .get("/search?q=zzrenamed*")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["numFound"], 1);
}

/// The "Finding genes" examples of docs/api.md, as a new user runs them on the
/// sample `scripts/run` loads offline: each GET answers what its comment
/// says (404 where it says so, else 200; `numFound`, `X-Total-Count` and the
/// row count of the TSV as written), and the lookup finds all but "nope".
#[tokio::test]
async fn the_documented_finding_examples_answer_on_the_shipped_sample() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let section = page
        .split("## Finding genes")
        .nth(1)
        .and_then(|s| s.split("**Filters**").next())
        .expect("docs/api.md has a Finding genes section");
    let app = spawn_app().await;
    assert_eq!(app.load().await["status"], "done");
    let number_after = |comment: &str, label: &str| -> Option<usize> {
        let rest = &comment[comment.find(label)? + label.len()..];
        let digits: String = rest
            .trim_start_matches([' ', ':', '"'])
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    let mut checked = 0;
    for line in section.lines().filter(|l| l.starts_with("curl -s ")) {
        if line.contains("-X POST") {
            continue;
        }
        let url = line["curl -s ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_matches('\'');
        let path = url.strip_prefix("localhost:5000").unwrap();
        let comment = line.split_once('#').map_or("", |(_, c)| c);
        let r = app.get(path).await;
        let status = r.status().as_u16();
        let header_total = r
            .headers()
            .get("x-total-count")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        let body = r.text().await.unwrap();
        let want = if comment.contains("404") { 404 } else { 200 };
        assert_eq!(status, want, "docs/api.md: {line}\nanswer: {body}");
        if let Some(n) = number_after(comment, "numFound") {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["numFound"], n, "docs/api.md: {line}");
        }
        if let Some(n) = number_after(comment, "X-Total-Count") {
            assert_eq!(header_total, Some(n), "docs/api.md: {line}");
        }
        if let Some(n) =
            number_after(comment, "").filter(|_| comment.contains("rows and the header"))
        {
            assert_eq!(body.lines().count(), n + 1, "docs/api.md: {line}");
        }
        if comment.contains("candidates") {
            let v: Value = serde_json::from_str(&body).unwrap();
            let named: Vec<&str> = v["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["symbol"].as_str().unwrap())
                .collect();
            for symbol in named.iter() {
                assert!(
                    comment.contains(symbol),
                    "docs/api.md: {line}\nanswer: {body}"
                );
            }
            assert!(!named.is_empty(), "docs/api.md: {line}\nanswer: {body}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "{checked} examples checked");
    // The lookup example: every term but "nope" is found.
    let terms: Value = serde_json::from_str(
        section
            .split("-d '")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .expect("the lookup example"),
    )
    .unwrap();
    let answers: Vec<Value> = app
        .client
        .post(app.url("/genes/lookup"))
        .json(&terms)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for a in answers {
        let term = a["term"].as_str().unwrap();
        assert_eq!(a.get("not_found").is_some(), term == "nope", "{a}");
    }
}
