//! CORS (`GENE_API__HTTP__CORS_ORIGINS`) over real HTTP: what a browser on
//! another origin sends (preflights, `Origin`) and what it may read back.
//! The browser itself is in `scripts/live/run.py` (a page on a second origin
//! in headless Chromium).

use std::path::Path;

use gene_api::app::Mode;
use gene_api::auth::{generate, Scope};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, SAMPLE};

const LAB: &str = "http://lab.test:8888";
const ELSEWHERE: &str = "http://elsewhere.test";

fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/image"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

async fn jobs_kept(app: &TestApp) -> usize {
    let r = app.client.get(app.url("/jobs")).send().await.unwrap();
    r.json::<Vec<Value>>().await.unwrap().len()
}

#[tokio::test]
async fn a_listed_origin_may_call_with_its_key_and_any_other_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (write, line) = generate("lab", Scope::Write).unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{line}\n")).unwrap();
    let keys = keys.display().to_string();
    let app = spawn_app_with(
        Mode::Serve,
        Path::new(SAMPLE),
        &[
            ("GENE_API__AUTH__KEYS_FILE", &keys),
            (
                "GENE_API__HTTP__CORS_ORIGINS",
                &format!("{LAB}, https://other.lab.test"),
            ),
        ],
    )
    .await;
    let r = app
        .client
        .post(app.url("/data"))
        .bearer_auth(&write)
        .header("prefer", "wait=20")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The preflight of a POST with a key: answered without a key (browsers
    // send none on a preflight), naming what the page may send and read.
    let r = preflight(
        &app,
        LAB,
        "POST",
        "authorization, content-type, prefer, idempotency-key, last-event-id",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(allowed_origin(r.headers()), Some(LAB));
    let h = r.headers();
    for header in [
        "authorization",
        "prefer",
        "idempotency-key",
        "last-event-id",
        "content-type",
    ] {
        assert!(
            list(h, "access-control-allow-headers").contains(&header.to_string()),
            "{header}: {h:?}"
        );
    }
    for method in ["get", "post", "delete"] {
        assert!(
            list(h, "access-control-allow-methods").contains(&method.to_string()),
            "{method}: {h:?}"
        );
    }
    // A header it does not allow, and an origin it does not list: refused.
    let r = preflight(&app, LAB, "POST", "x-secret").await;
    assert_eq!(r.status(), 403);
    let r = preflight(&app, ELSEWHERE, "POST", "authorization").await;
    assert_eq!(r.status(), 403);
    assert!(allowed_origin(r.headers()).is_none());
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GENE_API__HTTP__CORS_ORIGINS"),
        "{body}"
    );

    // The real requests: a read, and a plot with the key; the page may read
    // the headers it needs.
    let r = app
        .client
        .get(app.url("/genes/HGNC:5"))
        .header("origin", LAB)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allowed_origin(r.headers()), Some(LAB));
    let exposed = list(r.headers(), "access-control-expose-headers");
    for header in [
        "location",
        "link",
        "retry-after",
        "x-total-count",
        "x-job-id",
        "x-hgnc-release",
    ] {
        assert!(
            exposed.contains(&header.to_string()),
            "{header}: {exposed:?}"
        );
    }
    let before = jobs_kept(&app).await;
    let r = app
        .client
        .post(app.url("/image"))
        .header("origin", LAB)
        .bearer_auth(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(allowed_origin(r.headers()), Some(LAB));
    assert!(r.headers().contains_key("location"));
    // An error is readable too: the page can show why.
    let r = app
        .client
        .post(app.url("/image"))
        .header("origin", LAB)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(allowed_origin(r.headers()), Some(LAB));

    // Another origin's POST (no preflight needed for a form-style one), even
    // with a valid key: refused, and nothing queued.
    let r = app
        .client
        .post(app.url("/image"))
        .header("origin", ELSEWHERE)
        .bearer_auth(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        jobs_kept(&app).await,
        before + 1,
        "only the listed origin's plot was queued"
    );

    // The API's own page (the dashboard) is not another origin; nor is a
    // client that sends no Origin: neither meets CORS.
    let own = app.addr.clone();
    let r = app
        .client
        .post(app.url("/image"))
        .header("origin", &own)
        .bearer_auth(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the dashboard's own POST");
    let r = app
        .client
        .get(app.url("/genes/HGNC:5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(allowed_origin(r.headers()).is_none());
}

#[tokio::test]
async fn with_a_star_any_page_reads_without_a_key_and_none_writes() {
    let app = spawn_app_with(
        Mode::Serve,
        Path::new(SAMPLE),
        &[("GENE_API__HTTP__CORS_ORIGINS", "*")],
    )
    .await;
    let r = app
        .client
        .post(app.url("/data"))
        .header("prefer", "wait=20")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/genes/HGNC:5"))
        .header("origin", ELSEWHERE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // warp names the origin rather than `*` (the same to a browser), and
    // says the answer varies with it.
    assert_eq!(allowed_origin(r.headers()), Some(ELSEWHERE));
    assert!(list(r.headers(), "vary").contains(&"origin".to_string()));
    // No key from a page of any origin, and no writes.
    let r = preflight(&app, ELSEWHERE, "GET", "authorization").await;
    assert_eq!(r.status(), 403);
    let r = preflight(&app, ELSEWHERE, "POST", "content-type").await;
    assert_eq!(r.status(), 403);
    let before = jobs_kept(&app).await;
    for (method, path) in [("POST", "/image"), ("DELETE", "/data")] {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("origin", ELSEWHERE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(
            allowed_origin(r.headers()),
            Some(ELSEWHERE),
            "the page can read why"
        );
    }
    assert_eq!(jobs_kept(&app).await, before, "nothing queued");
    let r = app.client.get(app.url("/data/info")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the data is still there");
}

#[tokio::test]
async fn without_cors_origins_no_answer_carries_cors_headers() {
    let app = spawn_app_with(Mode::Serve, Path::new(SAMPLE), &[]).await;
    let r = app
        .client
        .get(app.url("/health"))
        .header("origin", ELSEWHERE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(allowed_origin(r.headers()).is_none());
    let r = preflight(&app, ELSEWHERE, "POST", "content-type").await;
    assert!(allowed_origin(r.headers()).is_none(), "{:?}", r.headers());
}
