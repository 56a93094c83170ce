//! HGNC's REST API under `/hgnc` and through gene-api as an HTTP proxy:
//! answers checked against a scan of the shipped sample done here; the
//! error cases; JSON or XML by `Accept`; gene-api's own `/info` and `/search`
//! unchanged for everyone else.

use serde_json::Value;

use crate::helpers::*;

async fn json(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn hgnc_routes_answer_hgnc_s_shapes_from_the_loaded_release() {
    let app = spawn_app().await;
    assert_error(
        app.client
            .get(app.url("/hgnc/info"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap(),
        404,
        "no_data",
        "POST /data",
    )
    .await;
    app.load().await;
    let docs = sample_docs();

    let (status, info) = json(&app, "/hgnc/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["responseHeader"]["status"], 0);
    assert_eq!(info["numDoc"], docs.len());
    let searchable: Vec<&str> = info["searchableFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(searchable.contains(&"symbol") && searchable.contains(&"alias_symbol"));

    // fetch: the whole record, as the sample has it; by a list field, every
    // record holding the value; case does not matter.
    let want = &docs[docs.len() / 2];
    let symbol = want["symbol"].as_str().unwrap();
    let (status, body) = json(
        &app,
        &format!("/hgnc/fetch/symbol/{}", symbol.to_lowercase()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["numFound"], 1, "{body}");
    assert_eq!(&body["response"]["docs"][0], want);
    let alias = docs
        .iter()
        .find_map(|d| d["alias_symbol"].as_array().and_then(|a| a.first()))
        .and_then(Value::as_str)
        .unwrap();
    let holding: usize = docs
        .iter()
        .filter(|d| {
            d["alias_symbol"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().unwrap().eq_ignore_ascii_case(alias))
            })
        })
        .count();
    let (_, body) = json(&app, &format!("/hgnc/fetch/alias_symbol/{alias}")).await;
    assert_eq!(body["response"]["numFound"], holding);
    let (_, body) = json(&app, "/hgnc/fetch/symbol/NO-SUCH-GENE").await;
    assert_eq!(
        (
            body["response"]["numFound"].as_u64(),
            body["response"]["docs"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );

    // search: `+` is a space, the path's field is the default one.
    let znf = |approved: bool| {
        docs.iter()
            .filter(|d| {
                d["symbol"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .starts_with("znf")
                    && (!approved || d["status"] == "Approved")
            })
            .count()
    };
    assert!(znf(true) > 0);
    let (_, body) = json(&app, "/hgnc/search/symbol/ZNF*").await;
    assert_eq!(body["response"]["numFound"], znf(false));
    assert_eq!(
        body["response"]["docs"].as_array().unwrap().len(),
        znf(false),
        "every match"
    );
    let (_, body) = json(&app, "/hgnc/search/symbol/ZNF*+AND+status:Approved").await;
    assert_eq!(body["response"]["numFound"], znf(true));
    let first = &body["response"]["docs"][0];
    assert!(first["hgnc_id"].is_string() && first["symbol"].is_string() && first["score"].is_f64());
    assert_eq!(body["response"]["maxScore"], first["score"]);
    let (_, body) = json(&app, "/hgnc/search/symbol:ZNF*+AND+status:Approved").await;
    assert_eq!(body["response"]["numFound"], znf(true), "the query form");

    // The errors: a field the data set lacks, a malformed query, a path
    // that is not UTF-8.
    assert_error(
        app.get("/hgnc/fetch/nosuchfield/x").await,
        400,
        "bad_field",
        "symbol",
    )
    .await;
    assert_error(
        app.get("/hgnc/search/symbol/(ZNF*").await,
        400,
        "bad_query",
        "character",
    )
    .await;
    assert_error(
        app.get("/hgnc/search/nosuchfield/x").await,
        400,
        "bad_query",
        "nosuchfield",
    )
    .await;
    assert_error(
        app.get("/hgnc/fetch/symbol/%FF").await,
        400,
        "bad_path",
        "UTF-8",
    )
    .await;
    let r = app.client.post(app.url("/hgnc/info")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn xml_unless_json_is_asked_for_and_hgnc_s_host_is_answered_at_the_root() {
    let app = spawn_app().await;
    app.load().await;
    let docs = sample_docs();
    let symbol = docs[0]["symbol"].as_str().unwrap();

    // No Accept: HGNC's (Solr's) XML.
    let r = app.get(&format!("/hgnc/fetch/symbol/{symbol}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    assert!(r.headers().contains_key("x-hgnc-release"));
    let xml = r.text().await.unwrap();
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><lst name=\"responseHeader\">"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<result name=\"response\" numFound=\"1\" start=\"0\"><doc>"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<str name=\"symbol\">{symbol}</str>")),
        "{xml}"
    );

    // Through gene-api as a proxy: the request names rest.genenames.org.
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&app.addr).unwrap())
        .build()
        .unwrap();
    let via_proxy = |path: &str| {
        proxied
            .get(format!("http://rest.genenames.org{path}"))
            .header("accept", "application/json")
            .send()
    };
    let r = via_proxy(&format!("/fetch/symbol/{symbol}")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["docs"][0], docs[0]);
    let body: Value = via_proxy("/info").await.unwrap().json().await.unwrap();
    assert_eq!(
        body["numDoc"],
        docs.len(),
        "HGNC's info for HGNC's host: {body}"
    );
    let body: Value = via_proxy("/search/ZNF*")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["response"]["numFound"].as_u64().unwrap() > 0, "{body}");

    // Everyone else still gets gene-api's own /info and /search.
    let (_, ours) = json(&app, "/info").await;
    assert_eq!(ours["records"], docs.len());
    assert!(ours.get("numDoc").is_none());
    let r = app.get("/fetch/symbol/A1BG").await;
    assert_eq!(
        r.status(),
        404,
        "HGNC's paths at the root only for HGNC's host"
    );
}
