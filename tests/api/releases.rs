//! HGNC releases on the derived pair in data/releases/ (2021-04-27 and
//! 2024-07-23 of HGNC's own files, cut down by scripts/derive-releases):
//! identity, pinning, withdrawn and merged ids, lookups, diffs, histories,
//! dropping old releases. Every expectation is computed here from the
//! fixture files, not typed in.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gene_api::app::Mode;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{assert_error, spawn_app_with, TestApp, SAMPLE};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/releases");
const OLD: &str = "2021-04-27";
const NEW: &str = "2024-07-23";

fn set_path(date: &str) -> String {
    format!("{DIR}/hgnc_complete_set_{date}.json")
}
fn withdrawn_path(date: &str) -> String {
    format!("{DIR}/withdrawn_{date}.txt")
}

/// `(hgnc_id, symbol, status)` of a withdrawn id's target.
type Target = (String, String, String);

/// A release as the test reads it from the fixture files.
struct Fixture {
    docs: Vec<Value>,
    by_id: HashMap<String, Value>,
    sha256: String,
    bytes: u64,
    /// id -> (status, symbol, targets `(id, symbol, status)`).
    withdrawn: HashMap<String, (String, String, Vec<Target>)>,
    withdrawn_rows: Vec<String>,
}

fn fixture(date: &str) -> Fixture {
    let body = std::fs::read(set_path(date)).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let docs = v["response"]["docs"].as_array().unwrap().clone();
    let by_id = docs
        .iter()
        .map(|d| (d["hgnc_id"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    let text = std::fs::read_to_string(withdrawn_path(date)).unwrap();
    let mut withdrawn = HashMap::new();
    let mut withdrawn_rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let targets = cols
            .get(3)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.split(", ")
                    .map(|t| {
                        let p: Vec<&str> = t.split('|').collect();
                        (p[0].to_string(), p[1].to_string(), p[2].to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        withdrawn_rows.push(cols[0].to_string());
        withdrawn.insert(
            cols[0].to_string(),
            (cols[1].to_string(), cols[2].to_string(), targets),
        );
    }
    Fixture {
        docs,
        by_id,
        sha256: hex::encode(sha2::Sha256::digest(&body)),
        bytes: body.len() as u64,
        withdrawn,
        withdrawn_rows,
    }
}

impl Fixture {
    /// Where a withdrawn id points in this release: each target followed
    /// through withdrawn merges to an approved gene (id, symbol, status).
    fn resolve(&self, id: &str) -> Vec<Target> {
        let (_, _, targets) = &self.withdrawn[id];
        targets
            .iter()
            .map(|(tid, tsym, tstatus)| {
                let (mut id, mut sym, mut status) = (tid.clone(), tsym.clone(), tstatus.clone());
                let mut seen = HashSet::from([id.clone()]);
                loop {
                    if let Some(d) = self.by_id.get(&id) {
                        sym = d["symbol"].as_str().unwrap().to_string();
                        status = "Approved".into();
                        break;
                    }
                    let Some((st, ws, next)) = self.withdrawn.get(&id) else {
                        break;
                    };
                    (sym, status) = (ws.clone(), st.clone());
                    if next.len() != 1 || !seen.insert(next[0].0.clone()) {
                        break;
                    }
                    (id, sym, status) = next[0].clone();
                }
                (id, sym, status)
            })
            .collect()
    }
}

async fn app(extra: &[(&str, &str)]) -> TestApp {
    let source = set_path(NEW);
    let withdrawn = withdrawn_path(NEW);
    let archive = format!("{DIR}/hgnc_complete_set_{{date}}.json");
    let archive_w = format!("{DIR}/withdrawn_{{date}}.txt");
    let mut env = vec![
        ("GENE_API__DATA__WITHDRAWN", withdrawn.as_str()),
        ("GENE_API__DATA__ARCHIVE_SOURCE", archive.as_str()),
        ("GENE_API__DATA__ARCHIVE_WITHDRAWN", archive_w.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_app_with(Mode::Serve, Path::new(&source), &env).await
}

/// POST /data with `body` and the finished job.
async fn load(app: &TestApp, body: Value) -> Value {
    let r = app
        .client
        .post(app.url("/data"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{body}");
    let job: Value = r.json().await.unwrap();
    app.wait_job(job["id"].as_str().unwrap()).await
}

/// Loads the 2021 release (from the archive template), then the 2024 one
/// (the server's source); their ids.
async fn load_pair(app: &TestApp) -> (String, String) {
    let mut ids = Vec::new();
    for body in [json!({"release": OLD}), json!({})] {
        let job = load(app, body).await;
        assert_eq!(job["status"], "done", "{job}");
        ids.push(job["result"]["release"].as_str().unwrap().to_string());
    }
    (ids.remove(0), ids.remove(0))
}

async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_identified_pinned_and_answer_what_each_file_says() {
    let (old, new) = (fixture(OLD), fixture(NEW));
    let app = app(&[]).await;
    let j1 = load(&app, json!({"release": OLD})).await;
    assert_eq!(j1["status"], "done", "{j1}");
    let r1 = j1["result"]["release"].as_str().unwrap().to_string();
    let j2 = load(&app, json!({})).await;
    assert_eq!(j2["status"], "done", "{j2}");
    let r2 = j2["result"]["release"].as_str().unwrap().to_string();
    assert!(r1.starts_with(&format!("{OLD}-")) && r2.starts_with(&format!("{NEW}-")));
    assert_eq!(j2["params"]["trigger"], "request");

    // Identity, as the files say.
    for (id, f, date) in [(&r1, &old, OLD), (&r2, &new, NEW)] {
        let info = json_of(app.get(&format!("/releases/{id}")).await).await;
        assert_eq!(info["sha256"], f.sha256.as_str());
        assert_eq!(info["source_bytes"], f.bytes);
        assert_eq!(info["records"], f.docs.len());
        assert_eq!(info["as_of"], date);
        assert_eq!(info["as_of_from"], "file_name");
        let w = &info["withdrawn"];
        assert_eq!(w["records"], f.withdrawn.len());
        let merged = f
            .withdrawn
            .values()
            .filter(|(s, ..)| s == "Merged/Split")
            .count();
        assert_eq!(w["merged_split"], merged);
        assert_eq!(w["entry_withdrawn"], f.withdrawn.len() - merged);
        assert_eq!(info["live"], *id == r2);
    }
    let list = json_of(app.get("/releases").await).await;
    assert_eq!(list["live"], r2.as_str());
    let ids: Vec<&str> = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [r2.as_str(), r1.as_str()], "newest first");

    // The same files again: nothing swapped.
    let again = load(&app, json!({})).await;
    assert_eq!(again["result"]["unchanged"], true, "{again}");
    assert_eq!(again["result"]["release"], r2.as_str());
    let list = json_of(app.get("/releases").await).await;
    assert_eq!(list["releases"].as_array().unwrap().len(), 2);

    // Every record, pinned and live, is the file's, and names its release.
    let all_new = json_of(app.get("/data").await).await;
    assert!(all_new.as_array().unwrap() == &new.docs);
    let all_old = json_of(app.get(&format!("/data?release={r1}")).await).await;
    assert!(all_old.as_array().unwrap() == &old.docs);
    for d in old.docs.iter().step_by(50) {
        let id = d["hgnc_id"].as_str().unwrap();
        let r = app.get(&format!("/genes/{id}?release={r1}")).await;
        assert_eq!(r.headers()["x-hgnc-release"], r1.as_str());
        assert_eq!(json_of(r).await, *d);
        let sym = d["symbol"].as_str().unwrap();
        let r = app.get(&format!("/genes/symbol/{sym}?release={r1}")).await;
        assert_eq!(json_of(r).await, *d);
    }
    let r = app.get("/genes/HGNC:4463").await;
    assert_eq!(r.headers()["x-hgnc-release"], r2.as_str());
    assert_eq!(json_of(r).await, new.by_id["HGNC:4463"]);
    let genes = json_of(app.get(&format!("/genes?release={r1}")).await).await;
    assert_eq!(genes.as_array().unwrap().len(), old.docs.len());
    let info = json_of(app.get(&format!("/info?release={r1}")).await).await;
    assert_eq!(info["release"]["id"], r1.as_str());
    assert_eq!(info["records"], old.docs.len());

    // Unknown and malformed releases.
    assert_error(
        app.get("/genes/HGNC:5?release=1999-01-01-00000000").await,
        404,
        "release_not_found",
        &r2,
    )
    .await;
    assert_error(
        app.get("/genes/HGNC:5?release=a%2Fb").await,
        400,
        "bad_release",
        "release id",
    )
    .await;
    assert_error(
        app.get(&format!("/releases/{r1}/diff/{r1}")).await,
        400,
        "same_release",
        &r1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_ids_and_symbols_are_410_with_where_they_went() {
    let new = fixture(NEW);
    let app = app(&[]).await;
    let job = load(&app, json!({})).await;
    let release = job["result"]["release"].as_str().unwrap().to_string();
    let mut checked = 0;
    for id in &new.withdrawn_rows {
        if new.by_id.contains_key(id) {
            continue;
        }
        let (status, symbol, _) = &new.withdrawn[id];
        let r = app.get(&format!("/genes/{id}")).await;
        assert_eq!(r.status(), 410, "{id}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "gene_withdrawn");
        assert_eq!(body["release"], release.as_str());
        let w = &body["withdrawn"];
        assert_eq!(w["status"], status.as_str(), "{body}");
        assert_eq!(w["withdrawn_symbol"], symbol.as_str());
        let want = new.resolve(id);
        let got: Vec<(String, String, String)> = w["current"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let s = |f: &str| t[f].as_str().unwrap().to_string();
                (s("hgnc_id"), s("symbol"), s("status"))
            })
            .collect();
        assert_eq!(got, want, "{id}: {body}");
        let kind = match (status.as_str(), want.len()) {
            ("Entry Withdrawn", _) | (_, 0) => "withdrawn",
            (_, 1) => "merged",
            _ => "split",
        };
        assert_eq!(w["kind"], kind, "{body}");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} withdrawn ids in the fixture");
    // A chain (a merge into an id that is itself withdrawn) is followed to its end.
    let chained = new
        .withdrawn
        .iter()
        .find(|(_, (_, _, t))| {
            t.len() == 1
                && new
                    .withdrawn
                    .get(&t[0].0)
                    .is_some_and(|(s, _, next)| s == "Merged/Split" && next.len() == 1)
        })
        .map(|(id, _)| id.clone())
        .expect("the fixture keeps a chain");
    let body: Value = app
        .get(&format!("/genes/{chained}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["withdrawn"]["current"][0]["path"]
            .as_array()
            .unwrap()
            .len()
            >= 3,
        "{body}"
    );

    // A withdrawn symbol that no gene carries now: 410 by symbol too.
    let names: HashSet<String> = new
        .docs
        .iter()
        .flat_map(|d| {
            let mut n = vec![d["symbol"].as_str().unwrap().to_lowercase()];
            for f in ["prev_symbol", "alias_symbol"] {
                for s in d[f].as_array().into_iter().flatten() {
                    n.push(s.as_str().unwrap().to_lowercase());
                }
            }
            n
        })
        .collect();
    let (wid, (_, wsym, _)) = new
        .withdrawn
        .iter()
        .filter(|(id, (_, s, _))| {
            !names.contains(&s.to_lowercase()) && !new.by_id.contains_key(*id)
        })
        .filter(|(_, (_, s, _))| {
            new.withdrawn
                .values()
                .filter(|(_, o, _)| o.eq_ignore_ascii_case(s))
                .count()
                == 1
        })
        .min_by_key(|(id, _)| id.to_string())
        .unwrap();
    let r = app
        .get(&format!("/genes/symbol/{}", wsym.to_lowercase()))
        .await;
    assert_eq!(r.status(), 410);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["withdrawn"]["hgnc_id"], wid.as_str());

    // The lookup classifies each term as HGNC's multi-symbol checker does.
    let gpr1_now = &new.by_id["HGNC:4463"];
    let alias = new
        .docs
        .iter()
        .find_map(|d| {
            let a = d["alias_symbol"].as_array()?.first()?.as_str()?.to_string();
            // Only an alias no other gene carries in any role is unambiguous.
            let carriers = new
                .docs
                .iter()
                .filter(|o| {
                    ["symbol", "prev_symbol", "alias_symbol"]
                        .iter()
                        .any(|f| match &o[*f] {
                            Value::String(s) => s.eq_ignore_ascii_case(&a),
                            Value::Array(v) => v
                                .iter()
                                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&a))),
                            _ => false,
                        })
                })
                .count();
            (carriers == 1).then_some((a, d["hgnc_id"].clone()))
        })
        .unwrap();
    let terms = json!({"terms": [
        gpr1_now["symbol"], "GPR1", alias.0, wsym, wid, "certainly-not-a-gene"
    ]});
    let r = app
        .client
        .post(app.url("/genes/lookup"))
        .json(&terms)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-hgnc-release"], release.as_str());
    let answers: Vec<Value> = json_of(r).await.as_array().unwrap().clone();
    let types: Vec<&str> = answers
        .iter()
        .map(|a| a["match_type"].as_str().unwrap())
        .collect();
    let wkind = |id: &str| match new.withdrawn[id].2.len() {
        _ if new.withdrawn[id].0 == "Entry Withdrawn" => "withdrawn",
        0 => "withdrawn",
        1 => "merged",
        _ => "split",
    };
    assert_eq!(
        types,
        [
            "approved",
            "previous",
            "alias",
            wkind(wid),
            wkind(wid),
            "not_found"
        ],
        "{answers:?}"
    );
    assert_eq!(answers[1]["hgnc_id"], "HGNC:4463");
    assert_eq!(answers[2]["hgnc_id"], alias.1);
    let r = app
        .client
        .post(app.url("/genes/lookup?format=tsv"))
        .json(&terms)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/tab-separated-values"));
    let tsv = r.text().await.unwrap();
    let mut lines = tsv.lines();
    assert_eq!(
        lines.next(),
        Some("Input\tMatch type\tApproved symbol\tHGNC ID")
    );
    let first: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(
        first,
        [
            gpr1_now["symbol"].as_str().unwrap(),
            "Approved symbol",
            gpr1_now["symbol"].as_str().unwrap(),
            "HGNC:4463"
        ]
    );
    assert!(tsv
        .lines()
        .any(|l| l.starts_with("certainly-not-a-gene\tUnmatched")));

    // Search finds the withdrawn symbol only when asked.
    let s = json_of(app.get(&format!("/search?q={}", wsym.to_lowercase())).await).await;
    assert!(s.get("withdrawn").is_none());
    let s = json_of(
        app.get(&format!("/search?q={}&withdrawn=true", wsym.to_lowercase()))
            .await,
    )
    .await;
    assert!(
        s["withdrawn"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["hgnc_id"] == wid.as_str()),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_and_histories_say_what_the_files_say() {
    let (old, new) = (fixture(OLD), fixture(NEW));
    let app = app(&[]).await;
    let (r1, r2) = load_pair(&app).await;

    // What the test expects, from the files.
    let mut want: HashMap<String, &str> = HashMap::new();
    for (id, d) in &new.by_id {
        match old.by_id.get(id) {
            None => {
                want.insert(id.clone(), "added");
            }
            Some(o) if o["symbol"] != d["symbol"] => {
                want.insert(id.clone(), "renamed");
            }
            Some(o) if o != d => {
                want.insert(id.clone(), "changed");
            }
            _ => {}
        }
    }
    for id in old.by_id.keys().filter(|id| !new.by_id.contains_key(*id)) {
        let kind = match new.withdrawn.get(id) {
            None => "removed",
            Some((s, _, t)) if s == "Entry Withdrawn" || t.is_empty() => "withdrawn",
            Some((_, _, t)) if t.len() == 1 => "merged",
            Some(_) => "split",
        };
        want.insert(id.clone(), kind);
    }
    let d = json_of(
        app.get(&format!("/releases/{r1}/diff/{r2}?limit=50000"))
            .await,
    )
    .await;
    let got: HashMap<String, &str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["hgnc_id"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(d["total"], want.len());
    for kind in ["added", "renamed", "changed", "withdrawn", "merged"] {
        let n = want.values().filter(|k| **k == kind).count();
        assert!(n > 0, "the fixture has no {kind}");
        assert_eq!(d["summary"]["by_kind"][kind], n, "{kind}");
    }
    let by_group: u64 = d["summary"]["by_locus_group"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_group, want.len() as u64);
    // GPR1 -> CMKLR2, with each changed field's old and new value.
    let c = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["hgnc_id"] == "HGNC:4463")
        .unwrap();
    assert_eq!(
        (c["old_symbol"].as_str(), c["new_symbol"].as_str()),
        (Some("GPR1"), new.by_id["HGNC:4463"]["symbol"].as_str())
    );
    for f in c["fields"].as_array().unwrap() {
        let name = f["field"].as_str().unwrap();
        assert_eq!(
            f["old"],
            old.by_id["HGNC:4463"]
                .get(name)
                .cloned()
                .unwrap_or(Value::Null)
        );
        assert_eq!(
            f["new"],
            new.by_id["HGNC:4463"]
                .get(name)
                .cloned()
                .unwrap_or(Value::Null)
        );
    }

    // Filters and pages.
    let renamed = want.values().filter(|k| **k == "renamed").count();
    let r = app
        .get(&format!(
            "/releases/{r1}/diff/{r2}?kind=renamed&limit=3&offset=1"
        ))
        .await;
    assert_eq!(r.headers()["x-total-count"], renamed.to_string().as_str());
    let page = json_of(r).await;
    assert_eq!(
        page["changes"].as_array().unwrap().len(),
        3.min(renamed - 1)
    );
    assert!(page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["kind"] == "renamed"));
    let by_name = json_of(
        app.get(&format!("/releases/{r1}/diff/{r2}?field=name&limit=50000"))
            .await,
    )
    .await;
    // A field "changes" when its value differs, appearing (an added gene)
    // and disappearing (a gene gone) included.
    let ids: HashSet<&String> = old.by_id.keys().chain(new.by_id.keys()).collect();
    let name_changed = ids
        .iter()
        .filter(|id| {
            let name = |f: &Fixture| f.by_id.get(**id).and_then(|d| d.get("name")).cloned();
            name(&old) != name(&new)
        })
        .count();
    assert_eq!(by_name["total"], name_changed);
    let tsv = app
        .get(&format!(
            "/releases/{r1}/diff/{r2}?kind=renamed&field=symbol&limit=50000&format=tsv"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        tsv.lines().count(),
        renamed + 1,
        "a header and one row per renamed gene"
    );
    assert!(tsv
        .lines()
        .any(|l| l.starts_with("HGNC:4463\trenamed\tGPR1\t")));
    assert_error(
        app.get(&format!("/releases/{r1}/diff/{r2}?kind=moved"))
            .await,
        400,
        "bad_kind",
        "added",
    )
    .await;

    // Histories: the gene changed between the two releases, and the symbol's genes.
    let h = json_of(app.get("/genes/HGNC:4463/history").await).await;
    let hist = h["history"].as_array().unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(
        (hist[0]["release"].as_str(), hist[0]["symbol"].as_str()),
        (Some(r1.as_str()), Some("GPR1"))
    );
    assert_eq!(hist[1]["symbol"], new.by_id["HGNC:4463"]["symbol"]);
    assert_eq!(hist[1]["name"], new.by_id["HGNC:4463"]["name"]);
    let h = json_of(app.get("/genes/symbol/gpr1/history").await).await;
    assert_eq!(h["genes"][0]["hgnc_id"], "HGNC:4463");
    // An unchanged gene has one entry.
    let same = new
        .docs
        .iter()
        .find(|d| old.by_id.get(d["hgnc_id"].as_str().unwrap()) == Some(*d))
        .unwrap();
    let h = json_of(
        app.get(&format!(
            "/genes/{}/history",
            same["hgnc_id"].as_str().unwrap()
        ))
        .await,
    )
    .await;
    assert_eq!(h["history"].as_array().unwrap().len(), 1);
    assert_error(
        app.get("/genes/HGNC:999999999/history").await,
        404,
        "gene_not_found",
        "no kept release",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_releases_are_dropped_their_records_collected_and_delete_clears_the_history() {
    let (old, new) = (fixture(OLD), fixture(NEW));
    let app = app(&[("GENE_API__DATA__KEEP_RELEASES", "2")]).await;
    let (r1, r2) = load_pair(&app).await;
    let mut conn = app.redis.conn(0);
    let distinct = |sets: &[&[Value]]| -> usize {
        sets.iter()
            .flat_map(|s| s.iter())
            .map(|d| d.to_string())
            .collect::<HashSet<_>>()
            .len()
    };
    let hlen = |conn: &mut redis::Connection| -> usize {
        redis::cmd("HLEN")
            .arg("gene-api:records")
            .query(conn)
            .unwrap()
    };
    assert_eq!(hlen(&mut conn), distinct(&[&old.docs, &new.docs]));
    // Keeping both costs far less than twice one: they share their records.
    assert!(hlen(&mut conn) < old.docs.len() + new.docs.len());

    // A third release (the sample, through the archive template's sibling:
    // a source the server names) pushes the oldest out.
    let sample_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        SAMPLE,
        sample_dir.path().join("hgnc_complete_set_2026-10-01.json"),
    )
    .unwrap();
    std::fs::copy(
        withdrawn_path(NEW),
        sample_dir.path().join("withdrawn_2026-10-01.txt"),
    )
    .unwrap();
    let app2 = crate::helpers::start((), Mode::Serve, {
        let mut env = crate::helpers::test_env(app.redis.port, Path::new(SAMPLE));
        env.insert("GENE_API__DATA__KEEP_RELEASES".into(), "2".into());
        env.insert(
            "GENE_API__DATA__ARCHIVE_SOURCE".into(),
            format!(
                "{}/hgnc_complete_set_{{date}}.json",
                sample_dir.path().display()
            ),
        );
        env.insert(
            "GENE_API__DATA__ARCHIVE_WITHDRAWN".into(),
            format!("{}/withdrawn_{{date}}.txt", sample_dir.path().display()),
        );
        env
    })
    .await;
    let j3 = {
        let r = app2
            .client
            .post(app2.url("/data"))
            .json(&json!({"release": "2026-10-01"}))
            .send()
            .await
            .unwrap();
        let job: Value = r.json().await.unwrap();
        app2.wait_job(job["id"].as_str().unwrap()).await
    };
    assert_eq!(j3["status"], "done", "{j3}");
    assert_eq!(j3["result"]["dropped"], json!([r1]));
    let r3 = j3["result"]["release"].as_str().unwrap().to_string();
    // Both replicas (one had the dropped release in memory) say it is gone.
    for a in [&app.addr, &app2.addr] {
        let r = app
            .client
            .get(format!("{a}/genes/HGNC:5?release={r1}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "release_not_kept");
        assert_eq!(body["kept"], json!([r2, r3]));
    }
    let sample: Vec<Value> = crate::helpers::sample_docs();
    assert_eq!(hlen(&mut conn), distinct(&[&new.docs, &sample]));
    // A diff with the dropped release, or with one never loaded.
    assert_error(
        app.get(&format!("/releases/{r1}/diff/{r2}")).await,
        410,
        "release_not_kept",
        &r3,
    )
    .await;
    assert_error(
        app.get("/releases/1999-01-01-00000000/diff/live").await,
        404,
        "release_not_found",
        &r2,
    )
    .await;
    let d = json_of(app.get(&format!("/releases/{r2}/diff/live?limit=1")).await).await;
    assert_eq!(d["to"], r3.as_str());

    // DELETE /data removes every release, and says so.
    let r = app.delete("/data").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["deleted"], sample.len());
    assert_eq!(body["releases_deleted"], 2);
    let list = json_of(app.get("/releases").await).await;
    assert_eq!(list["releases"], json!([]));
    assert_error(
        app.get(&format!("/genes/HGNC:5?release={r2}")).await,
        404,
        "no_data",
        "POST /data",
    )
    .await;
    assert_eq!(hlen(&mut conn), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_withdrawn_file_fails_the_load_and_keeps_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("withdrawn_bad.txt");
    std::fs::write(
        &bad,
        "HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tX\nHGNC:1\tGone\tA1\t\n",
    )
    .unwrap();
    let app = app(&[]).await;
    let good = load(&app, json!({})).await;
    let live = good["result"]["release"].as_str().unwrap().to_string();
    for (path, want) in [
        (bad.display().to_string(), "line 2"),
        (
            dir.path().join("missing.txt").display().to_string(),
            "missing.txt",
        ),
    ] {
        let other = crate::helpers::start((), Mode::Serve, {
            let mut env = crate::helpers::test_env(app.redis.port, Path::new(&set_path(OLD)));
            env.insert("GENE_API__DATA__WITHDRAWN".into(), path.clone());
            env
        })
        .await;
        let job = {
            let r = other.post("/data").await;
            let job: Value = r.json().await.unwrap();
            other.wait_job(job["id"].as_str().unwrap()).await
        };
        assert_eq!(job["status"], "failed", "{job}");
        assert!(job["error"].as_str().unwrap().contains(want), "{job}");
        let info = json_of(app.get("/data/info").await).await;
        assert_eq!(info["id"], live.as_str());
        let list = json_of(app.get("/releases").await).await;
        assert_eq!(list["releases"].as_array().unwrap().len(), 1);
    }
}

/// A source that sends an ETag and Last-Modified, answers 304 to a request
/// that names its ETag, and counts what it was asked.
async fn validating_source(
    body: Vec<u8>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&body))[..16]);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (body, etag, log) = (body.clone(), etag.clone(), log.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let conditional = head.contains(&format!("if-none-match: {}", etag.to_lowercase()));
                log.lock().unwrap().push(if conditional {
                    "conditional".into()
                } else {
                    "plain".into()
                });
                let mut r = if conditional {
                    format!(
                        "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\netag: {etag}\r\nlast-modified: Tue, 23 Jul 2024 10:00:00 GMT\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes()
                };
                if !conditional {
                    r.extend_from_slice(&body);
                }
                let _ = s.write_all(&r).await;
            });
        }
    });
    (
        format!("http://127.0.0.1:{port}/hgnc_complete_set.json"),
        seen,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_source_costs_one_conditional_request_and_no_swap() {
    let (url, seen) = validating_source(std::fs::read(set_path(NEW)).unwrap()).await;
    let app = spawn_app_with(
        Mode::Serve,
        Path::new(&url),
        &[("GENE_API__DATA__WITHDRAWN", &withdrawn_path(NEW))],
    )
    .await;
    let first = app.load().await;
    assert_eq!(first["status"], "done", "{first}");
    assert_eq!(first["result"]["unchanged"], false);
    let release = first["result"]["release"].as_str().unwrap().to_string();
    let info = json_of(app.get("/data/info").await).await;
    assert!(info["etag"].as_str().unwrap().starts_with('"'));
    assert_eq!(info["last_modified"], "Tue, 23 Jul 2024 10:00:00 GMT");
    // The URL has no date in its name: Last-Modified gives the as-of date.
    assert_eq!(info["as_of"], "2024-07-23");
    assert_eq!(info["as_of_from"], "last_modified");

    let second = app.load().await;
    assert_eq!(second["status"], "done", "{second}");
    assert_eq!(second["result"]["unchanged"], true, "{second}");
    assert_eq!(second["result"]["release"], release.as_str());
    assert_eq!(*seen.lock().unwrap(), ["plain", "conditional"]);
    let list = json_of(app.get("/releases").await).await;
    assert_eq!(list["releases"].as_array().unwrap().len(), 1);
    let info = json_of(app.get("/data/info").await).await;
    assert_eq!(
        info["job_id"], first["id"],
        "the live release is still the first load's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_set_of_the_layout_before_releases_reads_as_none_until_loaded_and_is_then_removed() {
    let app = app(&[]).await;
    // What 0.2 left in Redis: a records hash and its version's parts.
    let mut conn = app.redis.conn(0);
    let old = "0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d";
    let _: () = redis::cmd("SET")
        .arg("gene-api:data:current")
        .arg(old)
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("gene-api:genes")
        .arg("HGNC:5")
        .arg(r#"{"hgnc_id":"HGNC:5","symbol":"A1BG"}"#)
        .query(&mut conn)
        .unwrap();
    for part in ["blob", "ids", "stats", "meta", "index"] {
        let _: () = redis::cmd("SET")
            .arg(format!("gene-api:data:{old}:{part}"))
            .arg("x")
            .query(&mut conn)
            .unwrap();
    }
    assert_error(app.get("/genes/HGNC:5").await, 404, "no_data", "POST /data").await;
    assert_error(app.get("/data").await, 404, "no_data", "POST /data").await;
    let job = load(&app, json!({})).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(app.get("/genes/HGNC:5").await.status(), 200);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:data:*")
        .query(&mut conn)
        .unwrap();
    let mut left: Vec<&str> = left.iter().map(String::as_str).collect();
    left.sort();
    assert_eq!(
        left,
        ["gene-api:data:current"],
        "the old layout's keys are gone"
    );
    let genes: bool = redis::cmd("EXISTS")
        .arg("gene-api:genes")
        .query(&mut conn)
        .unwrap();
    assert!(!genes);
}
