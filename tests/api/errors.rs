use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let app = spawn_app().await;
    // `/` is the dashboard.
    for path in ["/nope", "/genes/HGNC:5/extra", "/data/1", "/docs/a/b"] {
        assert_error(app.get(path).await, 404, "not_found", "/genes").await;
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let app = spawn_app().await;
    let c = &app.client;
    for req in [
        c.put(app.url("/data")),
        c.post(app.url("/genes")),
        c.delete(app.url("/genes/HGNC:5")),
        c.put(app.url("/jobs")), // POST /jobs submits a job
        c.put(app.url("/image")),
        c.post(app.url("/image/0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d")),
        c.post(app.url("/health")),
    ] {
        let r = req.send().await.unwrap();
        assert_error(r, 405, "method_not_allowed", "method").await;
    }
}

/// Every 405 says which methods its route takes (`Allow`, RFC 9110), and
/// they are the methods the contract lists for the path: checked on every
/// path of the served contract, with a method it does not list.
#[tokio::test]
async fn every_405_has_an_allow_header_that_the_contract_agrees_with() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() > 20, "{}", paths.len());
    let order = [
        "get", "head", "post", "put", "patch", "delete", "options", "trace",
    ];
    let value = |param: &str| match param {
        "hgnc_id" => "HGNC:5",
        "symbol" => "A1BG",
        "entry_id" => "1-0",
        "release" => "2024-07-23",
        "file" => "swagger-ui.css",
        _ => "0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d",
    };
    let mut checked = 0;
    for (template, item) in paths {
        let mut path = String::new();
        for segment in template.split('/').skip(1) {
            path.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => path.push_str(value(param)),
                None => path.push_str(segment),
            }
        }
        let listed: Vec<String> = order
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_ascii_uppercase())
            .collect();
        for method in ["TRACE", "PUT", "PATCH", "DELETE", "POST"] {
            if listed.iter().any(|m| m == method) {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = app.client.request(m, app.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 405, "{method} {path}");
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(allow, Some(listed.join(", ")), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[tokio::test]
async fn oversized_bodies_are_json_413() {
    let app = spawn_app().await;
    let big = vec![b' '; 64 * 1024];
    for path in ["/data", "/image"] {
        let r = app
            .client
            .post(app.url(path))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_error(r, 413, "payload_too_large", "too large").await;
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_creates_no_job() {
    let app = spawn_app().await;
    app.load().await;
    for path in ["/data", "/image"] {
        let r = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body("{\"kind\": ")
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "malformed_json", "malformed").await;
    }
    let jobs: Vec<serde_json::Value> = app.get("/jobs").await.json().await.unwrap();
    assert_eq!(jobs.len(), 1, "only the load job exists");
}

#[tokio::test]
async fn clients_cannot_choose_the_load_source() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/data"))
        .body(r#"{"source": "file:///etc/passwd"}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "source_not_allowed", "GENE_API__DATA__SOURCE").await;
}
