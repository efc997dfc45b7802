//! The offline commands on the real binary: `kindred gen` -> `import` -> `export` -> `import` into
//! a fresh directory -> `export` gives the same lines; an import killed with SIGKILL resumes and
//! writes every object exactly once; Kustomer's export shape; `verify`; the service then serves
//! what was imported.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::ids;

const KEY: &str = "kdr_import_test_admin_key_0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_kindred");

/// The binary with a clean `KINDRED_*` environment and this test's admin key (which seeds the
/// first admin of a fresh data directory, whichever command opens it first).
fn kindred() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("KINDRED_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("KINDRED_ADMIN_KEY", KEY);
    c.stdin(Stdio::null());
    c
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(4000)
            .collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
            .chars()
            .take(8000)
            .collect::<String>()
    )
}

/// Runs a command to its end; asserts the exit code.
#[track_caller]
fn run(args: &[&str], paths: &[&Path], code: i32) -> Output {
    let mut c = kindred();
    c.args(args).args(paths);
    let out = c.output().expect("running kindred");
    assert_eq!(
        out.status.code(),
        Some(code),
        "kindred {args:?} {paths:?}: {}",
        show(&out)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn generate(dir: &Path, customers: u64, seed: u64) {
    run(
        &[
            "gen",
            "--customers",
            &customers.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ],
        &[dir],
        0,
    );
}

fn import(data: &Path, inputs: &[&Path], code: i32) -> Output {
    let mut paths = vec![data];
    paths.extend_from_slice(inputs);
    let mut c = kindred();
    c.args(["import", "--data"]).args(&paths);
    let out = c.output().expect("running kindred import");
    assert_eq!(out.status.code(), Some(code), "kindred import: {}", show(&out));
    out
}

fn export(data: &Path, out_file: &Path) -> Vec<String> {
    let mut c = kindred();
    c.args(["export", "--data"]).arg(data).arg("--out").arg(out_file);
    let out = c.output().expect("running kindred export");
    assert_eq!(out.status.code(), Some(0), "kindred export: {}", show(&out));
    std::fs::read_to_string(out_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn verify(data: &Path) -> Value {
    let out = run(&["verify", "--data"], &[data], 0);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify prints JSON ({e}): {}", show(&out)));
    assert_eq!(report["ok"], true, "{report}");
    report
}

/// Writes each list of lines to `dir/<i>.ndjson`, in order; returns the paths.
fn write_files(dir: &Path, files: &[Vec<Value>]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (i, lines) in files.iter().enumerate() {
        let path = dir.join(format!("{i}.ndjson"));
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        paths.push(path);
    }
    paths
}

/// The `N` in "... N <what>" of the import summary line.
fn summary_count(text: &str, what: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("imported "))?;
    let words: Vec<&str> = line.split([' ', ',', ':']).filter(|w| !w.is_empty()).collect();
    words.windows(2).find(|w| w[1] == what).and_then(|w| w[0].parse().ok())
}

/// The lines of every `*.ndjson` file of a directory, in name order.
fn read_dir_lines(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// Object lines per klass.
fn per_klass(lines: &[Value]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines.iter().filter(|l| l.get("klass").is_some()) {
        *m.entry(l["klass"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

/// A running `kindred serve`.
struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Server {
    async fn start(data: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = data.with_extension("serve.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = kindred();
        cmd.args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        cmd.stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let child = cmd.spawn().expect("spawning kindred serve");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!(
                    "kindred serve exited: {st}\n{}",
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                );
            }
            if let Ok(r) = s.http.get(format!("{}/health", s.base)).send().await {
                if r.status().as_u16() == 200 {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kindred serve did not become healthy\n{}",
                std::fs::read_to_string(&s.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(KEY, method, path, body).await
    }

    async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let st = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (st, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn expect(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let (st, v) = self.call(method, path, body).await;
        assert_eq!(st, status, "{method} {path}: {v}");
        v
    }

    async fn count(&self, klass: &str) -> u64 {
        self.expect("POST", "/v1/search/count", Some(json!({"queryContext": klass})), 200)
            .await["total"]
            .as_u64()
            .unwrap()
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(mut self) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(
                    st.code(),
                    Some(0),
                    "{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                return;
            }
            assert!(Instant::now() < deadline, "kindred serve did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// JSON equality where numbers compare by value (`168.00` written by gen is `168` on output).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Asserts that every field the generated line gave is what the object holds.
#[track_caller]
fn assert_fields(expected: &Value, got: &Value, what: &str) {
    for (k, v) in expected.as_object().unwrap() {
        assert!(same(&got[k], v), "{what}: field `{k}`; generated {expected}, got {got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_import_export_import_export_round_trips_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    generate(&gen_dir, 300, 5);
    let generated = read_dir_lines(&gen_dir);
    let gen_counts = per_klass(&generated);
    assert_eq!(gen_counts.get("customer"), Some(&300), "{gen_counts:?}");
    for k in ["company", "order", "conversation", "message"] {
        assert!(
            gen_counts.get(k).is_some_and(|n| *n > 0),
            "gen writes {k}: {gen_counts:?}"
        );
    }
    // The same seed gives the same bytes.
    let again = tmp.path().join("gen-again");
    generate(&again, 300, 5);
    assert_eq!(read_dir_lines(&again), generated, "gen is deterministic");

    // Import the generated directory.
    let d1 = tmp.path().join("d1");
    let out = import(&d1, &[&gen_dir], 0);
    let text = stderr(&out);
    let objects: u64 = gen_counts.values().sum();
    assert_eq!(summary_count(&text, "created"), Some(objects), "{text}");
    assert_eq!(summary_count(&text, "failed"), Some(0), "{text}");
    assert_eq!(summary_count(&text, "lines"), Some(generated.len() as u64), "{text}");
    verify(&d1);

    // Export, import the export into a fresh directory, export again.
    let e1 = export(&d1, &tmp.path().join("e1.ndjson"));
    let d2 = tmp.path().join("d2");
    let e1_path = tmp.path().join("e1.ndjson");
    let out = import(&d2, &[&e1_path], 0);
    assert_eq!(summary_count(&stderr(&out), "failed"), Some(0), "{}", stderr(&out));
    let report = verify(&d2);
    assert_eq!(report["storeObjects"], objects, "{report}");
    assert_eq!(report["indexDocuments"], objects, "{report}");
    let e2 = export(&d2, &tmp.path().join("e2.ndjson"));
    let set1: HashSet<&String> = e1.iter().collect();
    let set2: HashSet<&String> = e2.iter().collect();
    assert_eq!(set1.len(), e1.len(), "the export has no duplicate lines");
    assert_eq!(e1.len(), e2.len());
    let only1: Vec<&&String> = set1.difference(&set2).take(5).collect();
    let only2: Vec<&&String> = set2.difference(&set1).take(5).collect();
    assert!(
        only1.is_empty() && only2.is_empty(),
        "exports differ:\nonly in the first: {only1:?}\nonly in the second: {only2:?}"
    );

    // The export: definitions first, then objects as upsert lines, counts per klass as generated.
    let e1v: Vec<Value> = e1.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first_object = e1v.iter().position(|l| l.get("klass").is_some()).unwrap();
    assert!(
        e1v[..first_object].iter().all(|l| l.get("resource").is_some()),
        "definitions come first"
    );
    assert!(
        e1v[first_object..]
            .iter()
            .all(|l| l.get("klass").is_some() && l["op"] == "upsert" && l["id"].is_string()),
        "then objects as upserts"
    );
    assert_eq!(per_klass(&e1v), gen_counts);
    for l in generated
        .iter()
        .filter(|l| l.get("resource").is_some_and(|r| r != "klass"))
    {
        let id = &l["object"]["id"];
        assert!(
            e1v.iter()
                .any(|e| e["resource"] == l["resource"] && &e["object"]["id"] == id),
            "definition {l} is exported"
        );
    }
    // Every generated object is exported with the fields it was generated with.
    let exported: std::collections::HashMap<(String, String), &Value> = e1v[first_object..]
        .iter()
        .map(|l| {
            (
                (
                    l["klass"].as_str().unwrap().to_string(),
                    l["id"].as_str().unwrap().to_string(),
                ),
                l,
            )
        })
        .collect();
    for g in generated.iter().filter(|l| l.get("klass").is_some()) {
        let key = (
            g["klass"].as_str().unwrap().to_string(),
            g["id"].as_str().unwrap().to_string(),
        );
        let e = exported.get(&key).unwrap_or_else(|| panic!("{key:?} is not exported"));
        assert_fields(&g["object"], &e["object"], &format!("{key:?}"));
        if let Some(ext) = g.get("externalId") {
            assert_eq!(&e["object"]["externalId"], ext, "{key:?}");
        }
    }

    // Serve the second directory: counts per klass and objects as generated.
    let server = Server::start(&d2).await;
    for (klass, n) in &gen_counts {
        assert_eq!(server.count(klass).await, *n, "{klass}");
    }
    let objects_only: Vec<&Value> = generated.iter().filter(|l| l.get("klass").is_some()).collect();
    for g in objects_only.iter().step_by(97) {
        let (klass, id) = (g["klass"].as_str().unwrap(), g["id"].as_str().unwrap());
        let got = server
            .expect("GET", &format!("/v1/objects/{klass}/{id}"), None, 200)
            .await;
        assert_fields(&g["object"], &got, &format!("{klass}/{id}"));
        assert_eq!(got["rev"], 1, "one import, one revision: {got}");
        if let Some(ext) = g["externalId"].as_str() {
            let by_ext = server
                .expect("GET", &format!("/v1/objects/{klass}/by-external-id/{ext}"), None, 200)
                .await;
            assert_eq!(by_ext["id"], id);
        }
    }
    let c0 = generated.iter().find(|l| l["klass"] == "customer").unwrap();
    let email = c0["object"]["emails"][0].as_str().unwrap();
    assert_eq!(
        server
            .expect("GET", &format!("/v1/objects/customer/by-email/{email}"), None, 200)
            .await["id"],
        c0["id"]
    );
    let cid = c0["id"].as_str().unwrap();
    let orders = gen_counts_for(&generated, "order", "customer", cid);
    let found = server
        .expect(
            "POST",
            "/v1/search/count",
            Some(json!({"queryContext": "order", "and": [{"customer": {"equals": cid}}]})),
            200,
        )
        .await;
    assert_eq!(found["total"], orders, "orders of {cid}");
    // Timelines follow the customer nums that references resolved to at import, also across
    // batches (a message names a conversation and a customer written batches before it).
    for c in generated.iter().filter(|l| l["klass"] == "customer").step_by(37) {
        let cid = c["id"].as_str().unwrap();
        let linked: u64 = ["conversation", "order", "message"]
            .iter()
            .map(|k| gen_counts_for(&generated, k, "customer", cid))
            .sum();
        let tl = server
            .expect(
                "GET",
                &format!("/v1/objects/customer/{cid}/timeline?klasses=conversation,order,message&pageSize=1"),
                None,
                200,
            )
            .await;
        assert_eq!(tl["total"], linked, "timeline of {cid}: {tl}");
    }
    let k = server.expect("GET", "/v1/klasses/order", None, 200).await;
    assert!(
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "totalNum"),
        "{k}"
    );
    server.stop().await;
}

fn gen_counts_for(lines: &[Value], klass: &str, field: &str, id: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l["klass"] == klass && l["object"][field] == id)
        .count() as u64
}

/// An import line refused for its values declares none of its suffix attributes; a valid one
/// declares them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_line_refused_for_its_values_declares_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    let lines = [
        r#"{"op":"create","klass":"customer","id":"c1","object":{"name":"A","custom":{"badNum":"ten","otherStr":"x"}}}"#,
        r#"{"op":"create","klass":"customer","id":"c2","object":{"name":"B","custom":{"goodNum":10}}}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let data = tmp.path().join("d");
    let out = import(&data, &[&input], 1);
    let text = stderr(&out);
    assert_eq!(summary_count(&text, "failed"), Some(1), "{text}");
    assert!(text.contains("/object/custom/badNum"), "{text}");
    let exported = export(&data, &tmp.path().join("e.ndjson")).join("\n");
    assert!(exported.contains("goodNum"), "{exported}");
    assert!(
        !exported.contains("badNum") && !exported.contains("otherStr"),
        "{exported}"
    );
}

/// The platform key may be revoked (it leaked) or its user deleted; `kindred platform-key` then
/// makes a new one, creating the user again, and org creation works with it after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_key_makes_a_new_platform_key_after_the_old_one_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let server = Server::start(&data).await;
    let admin2 = server
        .expect(
            "POST",
            "/v1/users",
            Some(json!({"id": "admin2", "name": "Two", "email": "two@example.com", "role": "admin"})),
            201,
        )
        .await;
    assert_eq!(admin2["id"], "admin2");
    let k2 = server
        .expect("POST", "/v1/users/admin2/keys", Some(json!({})), 201)
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = server.call_as(&k2, "DELETE", "/v1/users/admin", None).await;
    assert_eq!(st, 204);
    assert_eq!(
        server.call("POST", "/v1/orgs", Some(json!({"name": "lost"}))).await.0,
        401
    );
    assert_eq!(
        server
            .call_as(&k2, "POST", "/v1/orgs", Some(json!({"name": "lost"})))
            .await
            .0,
        403
    );
    server.stop().await;

    // A directory without a store is refused, not given a new store and key.
    let empty = tmp.path().join("empty");
    let out = run(&["platform-key", "--data"], &[&empty], 2);
    assert!(stderr(&out).contains("no store"), "{}", show(&out));
    assert!(!empty.join("store").try_exists().unwrap());
    let out = run(&["platform-key", "--data"], &[&data], 0);
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(secret.starts_with("kdr_"), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(data.join("admin-key")).unwrap().trim(), secret);

    let server = Server::start(&data).await;
    let (st, org) = server
        .call_as(&secret, "POST", "/v1/orgs", Some(json!({"name": "found"})))
        .await;
    assert_eq!(st, 201, "{org}");
    let (st, me) = server.call_as(&secret, "GET", "/v1/me", None).await;
    assert_eq!(
        (st, me["id"].clone(), me["role"].clone()),
        (200, json!("admin"), json!("admin")),
        "{me}"
    );
    // The other admin's key is still no platform key, and the old one stays revoked.
    assert_eq!(
        server
            .call_as(&k2, "POST", "/v1/orgs", Some(json!({"name": "x"})))
            .await
            .0,
        403
    );
    assert_eq!(server.call("GET", "/v1/me", None).await.0, 401);
    server.stop().await;
}

/// Objects whose links point to klasses exported after theirs (`crate` names `shipment`, later in
/// the alphabet), to their own klass (a zone's parent zone, created after it) or to klasses that
/// name each other (zones and sites) still round trip: the export orders klasses by what they
/// name and sets the links it cannot order with `update` lines at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_with_forward_self_and_cyclic_links_imports_again_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    let lines = [
        r#"{"op":"upsert","resource":"klass","object":{"name":"shipment","attributes":[{"name":"weight","type":"number"}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"crate","relationships":[{"name":"contents","klass":"shipment","cardinality":"many"}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"order","relationships":[{"name":"shipment","klass":"shipment","cardinality":"one"},{"name":"parcels","klass":"shipment","cardinality":"many"}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"zone"}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"site","attributes":[{"name":"zone","type":"reference","klass":"zone"}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"zone","attributes":[{"name":"parent","type":"reference","klass":"zone"}],"relationships":[{"name":"sites","klass":"site","cardinality":"many"}]}}"#,
        r#"{"op":"create","klass":"shipment","id":"sh-1","object":{"custom":{"weight":1}}}"#,
        r#"{"op":"create","klass":"shipment","id":"sh-2","object":{"custom":{"weight":2}}}"#,
        r#"{"op":"create","klass":"shipment","id":"sh-3","object":{"custom":{"weight":3}}}"#,
        r#"{"op":"create","klass":"crate","id":"cr-1","object":{"relationships":{"contents":["sh-1","sh-2"]}}}"#,
        r#"{"op":"create","klass":"order","id":"or-1","object":{"relationships":{"shipment":"sh-1","parcels":["sh-2","sh-3"]}}}"#,
        r#"{"op":"create","klass":"zone","id":"z-1","object":{}}"#,
        r#"{"op":"create","klass":"zone","id":"z-2","object":{"custom":{"parent":"z-1"}}}"#,
        r#"{"op":"update","klass":"zone","id":"z-1","object":{"custom":{"parent":"z-2"}}}"#,
        r#"{"op":"create","klass":"site","id":"s-1","object":{"custom":{"zone":"z-1"}}}"#,
        r#"{"op":"update","klass":"zone","id":"z-2","object":{"relationships":{"sites":["s-1"]}}}"#,
        // A cycle with a required side: a bill needs its area, an area may name its latest bill.
        r#"{"op":"upsert","resource":"klass","object":{"name":"area"}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"bill","attributes":[{"name":"area","type":"reference","klass":"area","required":true}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"area","attributes":[{"name":"latestBill","type":"reference","klass":"bill"}]}}"#,
        r#"{"op":"create","klass":"area","id":"ar-1","object":{}}"#,
        r#"{"op":"create","klass":"bill","id":"bi-1","object":{"custom":{"area":"ar-1"}}}"#,
        r#"{"op":"update","klass":"area","id":"ar-1","object":{"custom":{"latestBill":"bi-1"}}}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let d1 = tmp.path().join("d1");
    let out = import(&d1, &[&input], 0);
    assert_eq!(summary_count(&stderr(&out), "failed"), Some(0), "{}", stderr(&out));

    let e1_path = tmp.path().join("e1.ndjson");
    let e1 = export(&d1, &e1_path);
    let e1v: Vec<Value> = e1.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pos = |op: &str, id: &str| {
        e1v.iter()
            .position(|l| l["op"] == op && l["id"] == id)
            .unwrap_or_else(|| panic!("no {op} line for {id}:\n{}", e1.join("\n")))
    };
    // Klasses that name others come after them, whatever their names.
    for named in ["cr-1", "or-1"] {
        assert!(pos("upsert", "sh-3") < pos("upsert", named), "{}", e1.join("\n"));
    }
    assert!(pos("upsert", "z-1") < pos("upsert", "z-2"));
    // What no order can put first is set at the end, with the object's updatedAt.
    let z1 = &e1v[pos("update", "z-1")];
    assert_eq!(z1["object"]["custom"]["parent"], "z-2", "{z1}");
    assert_eq!(
        z1["object"]["updatedAt"],
        e1v[pos("upsert", "z-1")]["object"]["updatedAt"]
    );
    assert!(e1v[pos("upsert", "z-1")]["object"]["custom"].get("parent").is_none());
    // Of two klasses that name each other, the first by name (`site`) has its link set last.
    assert_eq!(e1v[pos("update", "s-1")]["object"]["custom"]["zone"], "z-1");
    assert_eq!(
        e1v[pos("upsert", "z-2")]["object"]["relationships"]["sites"],
        serde_json::json!(["s-1"])
    );
    let first_update = e1v.iter().position(|l| l["op"] == "update").unwrap();
    assert!(
        e1v[first_update..].iter().all(|l| l["op"] == "update"),
        "updates come last"
    );
    let updated: Vec<&str> = e1v[first_update..].iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        updated,
        ["ar-1", "s-1", "z-1"],
        "one update per object with a late link, in export order"
    );

    // The export imports again without a failure and exports the same lines.
    let d2 = tmp.path().join("d2");
    let out = import(&d2, &[&e1_path], 0);
    assert_eq!(summary_count(&stderr(&out), "failed"), Some(0), "{}", stderr(&out));
    let report = verify(&d2);
    assert_eq!(report["storeObjects"], 10, "{report}");
    // The side that can wait is the area's optional link, whatever the names' order.
    assert!(pos("upsert", "ar-1") < pos("upsert", "bi-1"));
    assert_eq!(e1v[pos("update", "ar-1")]["object"]["custom"]["latestBill"], "bi-1");
    let e2 = export(&d2, &tmp.path().join("e2.ndjson"));
    assert_eq!(e1, e2, "the second export is the first");
    let or1 = &e1v[pos("upsert", "or-1")]["object"]["relationships"];
    assert_eq!(or1["shipment"], "sh-1", "{or1}");
    assert_eq!(or1["parcels"], serde_json::json!(["sh-2", "sh-3"]), "{or1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_resumes_and_writes_every_object_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    generate(&gen_dir, 3000, 9);
    let generated = read_dir_lines(&gen_dir);
    let gen_counts = per_klass(&generated);
    let objects: u64 = gen_counts.values().sum();
    let data = tmp.path().join("data");

    // Start the import and SIGKILL it midway; then once more, while it resumes.
    for round in 1..=2 {
        let mut c = kindred();
        c.args(["import", "--data"])
            .arg(&data)
            .arg(&gen_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("spawning kindred import");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let running = child.try_wait().unwrap().is_none();
        child.kill().expect("SIGKILL");
        let st = child.wait().unwrap();
        assert!(
            running,
            "round {round}: the import of {objects} objects finished within 1 s ({st}); the kill tested nothing"
        );
    }

    // Run it again to completion.
    let out = import(&data, &[&gen_dir], 0);
    let text = stderr(&out);
    assert_eq!(summary_count(&text, "failed"), Some(0), "{text}");
    // Batches and their resume markers commit together: nothing is applied twice.
    assert_eq!(
        summary_count(&text, "updated"),
        Some(0),
        "a resumed import re-applies nothing: {text}"
    );
    let created = summary_count(&text, "created").unwrap();
    assert!(created <= objects, "{text}");
    if created < objects {
        assert!(
            text.contains("resumed "),
            "the rerun resumed after the interrupted batches: {text}"
        );
    }
    eprintln!("interrupted import: the rerun created {created} of {objects} objects");
    let report = verify(&data);
    assert_eq!(
        report["storeObjects"], objects,
        "every generated object is stored exactly once: {report}"
    );
    assert_eq!(report["indexDocuments"], objects, "{report}");

    // The export holds every generated object once.
    let e = export(&data, &tmp.path().join("export.ndjson"));
    let ev: Vec<Value> = e.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(per_klass(&ev), gen_counts);
    let ids: HashSet<&str> = ev.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(ids.len() as u64, objects);
    for g in generated.iter().filter(|l| l.get("klass").is_some()) {
        assert!(ids.contains(g["id"].as_str().unwrap()), "{} is missing", g["id"]);
    }

    // Served: counts per klass from the index, and a few objects.
    let server = Server::start(&data).await;
    for (klass, n) in &gen_counts {
        assert_eq!(server.count(klass).await, *n, "{klass}");
    }
    for g in generated.iter().filter(|l| l.get("klass").is_some()).step_by(1999) {
        let (klass, id) = (g["klass"].as_str().unwrap(), g["id"].as_str().unwrap());
        let got = server
            .expect("GET", &format!("/v1/objects/{klass}/{id}"), None, 200)
            .await;
        assert_fields(&g["object"], &got, &format!("{klass}/{id}"));
    }
    server.stop().await;
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomer_export_lines_import_with_skipped_fields_counted_and_bad_attributes_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomer.ndjson");
    let lines = [
        /* 1 */
        json!({"data": {"type": "company", "id": "co1", "attributes": {"name": "Acme", "domains": ["acme.io"], "custom": {"industryStr": "retail"}}}}),
        /* 2 */
        json!({"data": {"type": "customer", "id": "cu1", "attributes": {
            "name": "Ada Lovelace", "externalId": "crm-1",
            "emails": [{"type": "home", "email": "ada@acme.io"}, {"type": "work", "email": "ada@work.io"}],
            "phones": [{"type": "mobile", "phone": "+15551234"}],
            "birthdayAt": "1815-12-10", "createdAt": "2024-02-03T04:05:06.789Z", "tags": ["vip"],
            "custom": {"tierStr": "gold", "ltvNum": 12.5, "signupAt": "2024-01-01T00:00:00.000Z", "vipBool": true}},
            "relationships": {"company": {"data": {"type": "company", "id": "co1"}}, "org": {"data": {"type": "org", "id": "o1"}}}}}),
        /* 3 */
        json!({"data": {"type": "customer", "id": "cu2", "attributes": {"name": "Bad Custom", "custom": {"loyalty": "x"}}}}),
        /* 4 */
        json!({"data": {"type": "conversation", "id": "cv1", "attributes": {"name": "Where is my order", "status": "open", "channels": ["email"], "messageCount": 3},
            "relationships": {"customer": {"data": {"type": "customer", "id": "cu1"}}}}}),
        /* 5 */
        json!({"data": {"type": "message", "id": "m1", "attributes": {"direction": "in", "channel": "email", "body": "hello there, where is it?"},
            "relationships": {"conversation": {"data": {"type": "conversation", "id": "cv1"}}, "customer": {"data": {"type": "customer", "id": "cu1"}}}}}),
        /* 6 */
        json!({"data": {"type": "kobject", "id": "k1", "attributes": {"title": "Order 1", "custom": {"totalNum": 42, "skuStr": "SKU-9"}},
            "relationships": {"klass": {"data": {"type": "klass", "id": "order"}}, "customer": {"data": {"type": "customer", "id": "cu1"}}}}}),
        /* 7 */
        json!({"data": {"type": "kobject", "id": "k2", "attributes": {"title": "Order 2", "custom": {"totalNum": 7}},
            "relationships": {"klass": {"data": {"type": "klass", "id": "order"}}, "customer": {"data": {"type": "customer", "id": "cu1"}}}}}),
        /* 8 */
        json!({"data": {"type": "note", "id": "n1", "attributes": {"body": "Called back"}, "relationships": {"customer": {"data": {"type": "customer", "id": "cu1"}}}}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, body).unwrap();
    let data = tmp.path().join("data");
    // One line fails: the import goes on and exits 1.
    let out = import(&data, &[&file], 1);
    let text = stderr(&out);
    assert_eq!(summary_count(&text, "lines"), Some(8), "{text}");
    for skipped in [
        "customer.birthdayAt: 1",
        "conversation.messageCount: 1",
        "customer.relationships.org: 1",
    ] {
        assert!(
            text.contains(&format!("skipped Kustomer field {skipped}")),
            "summary names {skipped}: {text}"
        );
    }
    let failure = text
        .lines()
        .find(|l| l.starts_with("failed "))
        .unwrap_or_else(|| panic!("no failure reported: {text}"));
    assert!(
        failure.contains("kustomer.ndjson:3: 422") && failure.contains("/object/custom/loyalty"),
        "{failure}"
    );
    verify(&data);

    let server = Server::start(&data).await;
    let cu1 = server.expect("GET", "/v1/objects/customer/cu1", None, 200).await;
    assert_eq!(cu1["name"], "Ada Lovelace");
    assert_eq!(cu1["externalId"], "crm-1");
    assert_eq!(cu1["emails"], json!(["ada@acme.io", "ada@work.io"]));
    assert_eq!(cu1["phones"], json!(["+15551234"]));
    assert_eq!(cu1["company"], "co1");
    assert_eq!(cu1["tags"], json!(["vip"]));
    assert_eq!(cu1["createdAt"], "2024-02-03T04:05:06.789Z");
    assert!(
        same(
            &cu1["custom"],
            &json!({"tierStr": "gold", "ltvNum": 12.5, "signupAt": "2024-01-01T00:00:00.000Z", "vipBool": true})
        ),
        "{cu1}"
    );
    assert!(cu1.get("birthdayAt").is_none(), "{cu1}");
    server.expect("GET", "/v1/objects/customer/cu2", None, 404).await;
    assert_eq!(
        server
            .expect("GET", "/v1/objects/customer/by-email/ADA@work.io", None, 200)
            .await["id"],
        "cu1"
    );
    let co1 = server.expect("GET", "/v1/objects/company/co1", None, 200).await;
    assert_eq!(
        (
            co1["name"].clone(),
            co1["domains"].clone(),
            co1["custom"]["industryStr"].clone()
        ),
        (json!("Acme"), json!(["acme.io"]), json!("retail"))
    );
    let cv1 = server.expect("GET", "/v1/objects/conversation/cv1", None, 200).await;
    assert_eq!(cv1["subject"], "Where is my order", "{cv1}");
    assert_eq!(cv1["customer"], "cu1");
    assert_eq!(cv1["status"], "open");
    assert_eq!(cv1["channel"], "email");
    let m1 = server.expect("GET", "/v1/objects/message/m1", None, 200).await;
    assert_eq!(
        (
            m1["conversation"].as_str(),
            m1["customer"].as_str(),
            m1["direction"].as_str()
        ),
        (Some("cv1"), Some("cu1"), Some("in")),
        "{m1}"
    );
    assert_eq!(m1["body"], "hello there, where is it?");
    let n1 = server.expect("GET", "/v1/objects/note/n1", None, 200).await;
    assert_eq!(
        (n1["customer"].as_str(), n1["body"].as_str()),
        (Some("cu1"), Some("Called back")),
        "{n1}"
    );
    // The suffixed custom attributes were declared with their types.
    let cust = server.expect("GET", "/v1/klasses/customer", None, 200).await;
    let ty = |k: &Value, n: &str| {
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .map(|a| a["type"].clone())
    };
    assert_eq!(ty(&cust, "tierStr"), Some(json!("string")));
    assert_eq!(ty(&cust, "ltvNum"), Some(json!("number")));
    assert_eq!(ty(&cust, "signupAt"), Some(json!("date")));
    assert_eq!(ty(&cust, "vipBool"), Some(json!("boolean")));
    assert_eq!(ty(&cust, "loyalty"), None);
    // Searchable: the conversation by its subject, the customer by tier.
    let r = server
        .expect(
            "POST",
            "/v1/search",
            Some(json!({"queryContext": "conversation", "text": "order"})),
            200,
        )
        .await;
    assert_eq!(r["data"][0]["id"], "cv1", "{r}");
    let r = server
        .expect(
            "POST",
            "/v1/search",
            Some(json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "GOLD"}}]})),
            200,
        )
        .await;
    assert_eq!(r["total"], 1, "{r}");
    // The kobjects' klass was created on first sight, with their custom attributes.
    let order = server.expect("GET", "/v1/klasses/order", None, 200).await;
    assert_eq!(ty(&order, "totalNum"), Some(json!("number")), "{order}");
    let k1 = server.expect("GET", "/v1/objects/order/k1", None, 200).await;
    assert_eq!(
        (k1["title"].as_str(), k1["customer"].as_str()),
        (Some("Order 1"), Some("cu1")),
        "{k1}"
    );
    assert!(same(&k1["custom"], &json!({"totalNum": 42, "skuStr": "SKU-9"})), "{k1}");
    assert_eq!(server.count("order").await, 2);
    server.stop().await;
    assert_eq!(summary_count(&text, "failed"), Some(1), "{text}");
    assert_eq!(summary_count(&text, "created"), Some(7), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_exit_codes_bulk_lines_with_failures_and_fatal_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("lines.ndjson");
    let lines = [
        /* 1 */ json!({"op": "upsert", "resource": "klass", "object": {"name": "order", "attributes": [{"name": "totalNum", "type": "number"}]}}).to_string(),
        /* 2 */ json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Ada"}}).to_string(),
        /* 3 */ String::new(),
        /* 4 */ "{broken".to_string(),
        /* 5 */ json!({"op": "create", "klass": "order", "id": "o1", "object": {"customer": "c1", "custom": {"totalNum": "many"}}}).to_string(),
        /* 6 */ json!({"op": "create", "klass": "order", "id": "o2", "object": {"customer": "c1", "custom": {"totalNum": 3}}}).to_string(),
        /* 7 */ json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Dup"}}).to_string(),
        /* 8 */ json!({"op": "update", "klass": "customer", "id": "c1", "object": {"name": "Ada L."}}).to_string(),
        /* 9 */ json!({"op": "delete", "klass": "order", "id": "o2"}).to_string(),
        /* 10 */ json!({"op": "upsert", "klass": "order", "id": "o3", "object": {"customer": "c1", "custom": {"totalNum": 4}}}).to_string(),
        /* 11 */ json!({"op": "create", "klass": "nosuchklass", "id": "x1", "object": {}}).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = import(&data, &[&file], 1);
    let text = stderr(&out);
    assert_eq!(
        summary_count(&text, "lines"),
        Some(10),
        "blank lines are not counted: {text}"
    );
    assert_eq!(summary_count(&text, "definitions"), Some(1), "{text}");
    assert_eq!(summary_count(&text, "failed"), Some(4), "{text}");
    for want in [
        "lines.ndjson:4: 400",
        "lines.ndjson:5: 422",
        "lines.ndjson:7: 409",
        "lines.ndjson:11: ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with("failed ") && l.contains(want)),
            "{want}: {text}"
        );
    }
    assert!(text.contains("/object/custom/totalNum"), "{text}");
    verify(&data);

    // A missing input file is fatal: exit 2.
    let out = import(&data, &[&tmp.path().join("missing.ndjson")], 2);
    assert!(stderr(&out).contains("missing.ndjson"), "{}", stderr(&out));
    // So is an unknown org.
    let mut c = kindred();
    let out = c
        .args(["import", "--org", "nosuchorg", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    verify(&data);

    // Everything good applied, in order: c1 updated, o3 there, o2 created then deleted.
    let e = export(&data, &tmp.path().join("out.ndjson"));
    let ev: Vec<Value> = e.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let c1 = ev.iter().find(|l| l["id"] == "c1").expect("c1 exported");
    assert_eq!(c1["object"]["name"], "Ada L.");
    assert!(ev.iter().any(|l| l["id"] == "o3"), "{e:?}");
    assert!(!ev.iter().any(|l| l["id"] == "o1"), "{e:?}");
    assert!(
        !ev.iter().any(|l| l["id"] == "o2"),
        "o2 was deleted by line 9 but is exported: {e:?}"
    );
    // An unknown klass answers as `POST /v1/bulk` does (404), since import validates like the API.
    let unknown = text.lines().find(|l| l.contains("lines.ndjson:11: ")).unwrap();
    assert!(unknown.contains("lines.ndjson:11: 404"), "{unknown}");

    // Creates of ids and externalIds already stored by an earlier import are refused by the
    // store when their batch is written; the batch then goes line by line, naming each clash,
    // and the other lines of the batch are written.
    let again = tmp.path().join("again.ndjson");
    let lines = [
        json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Clash"}}).to_string(),
        json!({"op": "create", "klass": "customer", "id": "c2", "externalId": "ext-2", "object": {"name": "Bea"}})
            .to_string(),
        json!({"op": "create", "klass": "order", "id": "o3", "object": {"customer": "c2"}}).to_string(),
        json!({"op": "create", "klass": "customer", "id": "c4", "object": {"name": "Cy"}}).to_string(),
    ];
    std::fs::write(&again, lines.join("\n")).unwrap();
    let text = stderr(&import(&data, &[&again], 1));
    assert_eq!(summary_count(&text, "failed"), Some(2), "{text}");
    for want in ["again.ndjson:1: 409", "again.ndjson:3: 409"] {
        assert!(text.lines().any(|l| l.contains(want)), "{want}: {text}");
    }
    let more = tmp.path().join("more.ndjson");
    let lines = [
        json!({"op": "create", "klass": "customer", "externalId": "ext-2", "object": {"name": "Bea again"}})
            .to_string(),
    ];
    std::fs::write(&more, lines.join("\n")).unwrap();
    let text = stderr(&import(&data, &[&more], 1));
    assert!(text.lines().any(|l| l.contains("more.ndjson:1: 409")), "{text}");
    verify(&data);
    let e = export(&data, &tmp.path().join("out2.ndjson"));
    let ev: Vec<Value> = e.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let name = |id: &str| ev.iter().find(|l| l["id"] == id).map(|l| l["object"]["name"].clone());
    assert_eq!(name("c1"), Some(json!("Ada L.")), "a refused create changes nothing");
    assert_eq!(name("c2"), Some(json!("Bea")));
    assert_eq!(name("c4"), Some(json!("Cy")));
    assert_eq!(ev.iter().filter(|l| l["klass"] == "customer").count(), 3, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_files_of_an_import_update_reference_and_recreate_what_earlier_ones_wrote() {
    // Each file ends its batch, so these lines meet objects written by earlier batches of the same
    // import into an org that had none (which the import remembers instead of reading the store).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let files = [
        vec![
            json!({"op": "create", "klass": "company", "id": "co1", "object": {"name": "Acme"}}),
            json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"name": "Ada", "company": "co1"}}),
            json!({"op": "upsert", "klass": "customer", "id": "c2", "object": {"name": "Bob"}}),
            json!({"op": "upsert", "klass": "customer", "id": "c5", "externalId": "crm-5", "object": {"name": "Eve"}}),
        ],
        vec![
            json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"name": "Ada L."}}),
            json!({"op": "upsert", "klass": "customer", "id": "c3", "object": {"name": "Cy", "company": "co1"}}),
            json!({"op": "upsert", "klass": "customer", "id": "c4", "object": {"name": "Di", "company": "co-missing"}}),
            json!({"op": "delete", "klass": "customer", "id": "c2"}),
            // By externalId alone: the stored object is found and updated, an unknown one created.
            json!({"op": "upsert", "klass": "customer", "externalId": "crm-5", "object": {"name": "Eve B."}}),
            json!({"op": "upsert", "klass": "customer", "externalId": "crm-6", "object": {"name": "Fay"}}),
        ],
        vec![
            json!({"op": "upsert", "klass": "customer", "id": "c2", "object": {"name": "Bob again"}}),
            // Deleted and created again within one batch: one replacement, nothing merged.
            json!({"op": "delete", "klass": "customer", "id": "c1"}),
            json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"name": "Ada anew"}}),
            json!({"op": "delete", "klass": "customer", "id": "c3"}),
            json!({"op": "create", "klass": "customer", "id": "c3", "object": {"name": "Cy again", "company": "co1"}}),
            json!({"op": "update", "klass": "customer", "externalId": "crm-5", "object": {"phones": ["+15550000005"]}}),
        ],
    ];
    let paths = write_files(tmp.path(), &files);
    let inputs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = import(&data, &inputs, 1);
    let text = stderr(&out);
    assert_eq!(
        summary_count(&text, "created"),
        Some(9),
        "co1, c1, c2, c3, c5, crm-6, then c2, c1 and c3 again: {text}"
    );
    assert_eq!(summary_count(&text, "updated"), Some(3), "c1, c5 twice: {text}");
    assert_eq!(summary_count(&text, "deleted"), Some(3), "c2, c1, c3: {text}");
    assert_eq!(
        summary_count(&text, "failed"),
        Some(1),
        "c4 names a missing company: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("failed ") && l.contains("1.ndjson:3: ")),
        "{text}"
    );
    verify(&data);

    let server = Server::start(&data).await;
    let c1 = server.expect("GET", "/v1/objects/customer/c1", None, 200).await;
    assert_eq!(
        (c1["name"].as_str(), c1["rev"].as_u64()),
        (Some("Ada anew"), Some(1)),
        "{c1}"
    );
    assert_eq!(
        c1.get("company"),
        None,
        "a new object, not merged into the deleted one: {c1}"
    );
    let c3 = server.expect("GET", "/v1/objects/customer/c3", None, 200).await;
    assert_eq!(c3["name"], "Cy again", "{c3}");
    // The replacement takes API updates (it is stored under the num its id names).
    server
        .expect("PATCH", "/v1/objects/customer/c3", Some(json!({"name": "Cy 3"})), 200)
        .await;
    let c2 = server.expect("GET", "/v1/objects/customer/c2", None, 200).await;
    assert_eq!(
        (c2["name"].as_str(), c2["rev"].as_u64()),
        (Some("Bob again"), Some(1)),
        "{c2}"
    );
    server.expect("GET", "/v1/objects/customer/c4", None, 404).await;
    let c5 = server.expect("GET", "/v1/objects/customer/c5", None, 200).await;
    assert_eq!(
        (c5["name"].as_str(), c5["phones"][0].as_str(), c5["rev"].as_u64()),
        (Some("Eve B."), Some("+15550000005"), Some(3)),
        "{c5}"
    );
    let by_ext = server
        .expect(
            "POST",
            "/v1/search",
            Some(json!({"queryContext": "customer", "and": [{"externalId": {"in": ["crm-5", "crm-6"]}}], "sort": [{"name": "asc"}]})),
            200,
        )
        .await;
    let found: Vec<(&str, &str)> = by_ext["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["externalId"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [("crm-5", "Eve B."), ("crm-6", "Fay")], "{by_ext}");
    let at_acme = server
        .expect(
            "POST",
            "/v1/search",
            Some(json!({"queryContext": "customer", "and": [{"company": {"equals": "co1"}}], "sort": [{"id": "asc"}]})),
            200,
        )
        .await;
    assert_eq!(ids(&at_acme), ["c3"], "{at_acme}");
    server.stop().await;
}

#[tokio::test]
async fn an_import_refuses_emails_and_external_ids_its_earlier_batches_took() {
    // Into an org without objects the import checks keys it has not written without reading the
    // store; keys it has written are read, and the batch writing them may still be on its way to
    // the store when the next batch is checked.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let customer = |id: &str, email: &str, ext: &str| json!({"op": "create", "klass": "customer", "id": id, "externalId": ext, "object": {"name": id, "emails": [email]}});
    let files = [
        vec![customer("ca", "a@x.io", "crm-a"), customer("cb", "b@x.io", "crm-b")],
        // Only keys of the batch before clash here, so this batch is not written line by line
        // (which reads every key).
        vec![
            customer("cc", "A@X.io", "crm-c"),
            customer("cd", "d@x.io", "crm-a"),
            customer("ch", "h@x.io", "crm-h"),
        ],
        vec![
            customer("ce", "e@x.io", "crm-e"),
            customer("cf", "E@x.io", "crm-f"),
            customer("cg", "g@x.io", "crm-e"),
        ],
    ];
    let paths = write_files(tmp.path(), &files);
    let inputs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = import(&data, &inputs, 1);
    let text = stderr(&out);
    assert_eq!(summary_count(&text, "created"), Some(4), "ca, cb, ch, ce: {text}");
    assert_eq!(summary_count(&text, "failed"), Some(4), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("failed ")).collect();
    for (at, what) in [
        ("1.ndjson:1", "email `a@x.io`"),
        ("1.ndjson:2", "externalId `crm-a`"),
        ("2.ndjson:2", "email `e@x.io`"),
        ("2.ndjson:3", "externalId `crm-e`"),
    ] {
        assert!(
            failed
                .iter()
                .any(|l| l.contains(&format!("{at}: 409")) && l.contains(what)),
            "{at} refused for {what}: {text}"
        );
    }
    verify(&data);
    let server = Server::start(&data).await;
    assert_eq!(server.count("customer").await, 4);
    server.expect("GET", "/v1/objects/customer/cd", None, 404).await;
    server.expect("GET", "/v1/objects/customer/cc", None, 404).await;
    server.expect("GET", "/v1/objects/customer/cf", None, 404).await;
    let e = server.expect("GET", "/v1/objects/customer/ce", None, 200).await;
    assert_eq!(e["emails"], json!(["e@x.io"]), "{e}");
    server.stop().await;

    // Listed twice, a file is read once: the second time resumes after its last line.
    let twice = tmp.path().join("twice");
    let out = import(&twice, &[paths[0].as_path(), paths[0].as_path()], 0);
    let text = stderr(&out);
    assert_eq!(summary_count(&text, "created"), Some(2), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("resumed ") && l.ends_with("0.ndjson after line 2")),
        "{text}"
    );
    verify(&twice);
}
