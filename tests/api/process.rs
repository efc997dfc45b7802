//! Process-level tests: the real `kindred` binary on a socket — a clean restart keeps everything
//! (store and index), the first start writes the admin key file, and a SIGKILL loses no
//! acknowledged write.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KEY: &str = "kdr_process_test_admin_key_0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_kindred");

/// A running `kindred serve`.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A command for the binary with a clean `KINDRED_*` environment.
fn kindred() -> Command {
    let mut c = Command::new(BIN);
    for v in [
        "KINDRED_ADMIN_KEY",
        "KINDRED_DATA",
        "KINDRED_LISTEN",
        "KINDRED_BODY_LIMIT",
        "KINDRED_INDEX_CONFIG",
        "KINDRED_STORE_CACHE_MB",
        "KINDRED_SMTP_LISTEN",
        "KINDRED_SMTP_DOMAIN",
        "KINDRED_HTTP_ALLOW",
        "KINDRED_LOG_FORMAT",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c
}

impl Server {
    /// Starts `kindred serve --data DIR` on a free port and waits for `/health`.
    async fn start(data: &Path, admin_key: Option<&str>, log: &Path) -> Server {
        let port = free_port();
        let out = OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = kindred();
        cmd.args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(k) = admin_key {
            cmd.env("KINDRED_ADMIN_KEY", k);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let child = cmd.spawn().expect("spawning kindred");
        let mut s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        s.wait_healthy().await;
        s
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "kindred exited before answering /health: {st}\n--- log ---\n{}",
                    log_text(&self.log)
                );
            }
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await {
                if r.status().as_u16() == 200 {
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body, json!({"status": "ok"}));
                    return;
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "kindred did not answer /health in time\n--- log ---\n{}",
                    log_text(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit.
    async fn terminate(mut self) -> ExitStatus {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -TERM failed");
        self.wait_exit(Duration::from_secs(20)).await
    }

    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("kindred did not exit in time\n--- log ---\n{}", log_text(&self.log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reaps the process.
    fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A panicking test must not leave the server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A small JSON client.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> reqwest::Result<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// A call that must answer `status`.
    async fn expect(&self, method: &str, path: &str, key: &str, body: Option<Value>, status: u16) -> Value {
        let (st, v) = self
            .send(method, path, key, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(st, status, "{method} {path}: {v}");
        v
    }

    async fn search_ids(&self, key: &str, body: Value) -> Vec<String> {
        let r = self.expect("POST", "/v1/search", key, Some(body), 200).await;
        let mut ids: Vec<String> = r["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    async fn count(&self, key: &str, body: Value) -> u64 {
        self.expect("POST", "/v1/search/count", key, Some(body), 200).await["total"]
            .as_u64()
            .unwrap()
    }
}

// ---- (1) clean restart ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_after_sigterm_keeps_every_object_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let server = Server::start(&data, Some(KEY), &log).await;
    let api = Api::new(&server.base);

    // Schema and directory.
    api.expect(
        "POST",
        "/v1/klasses",
        KEY,
        Some(json!({"name": "order", "attributes": [
        {"name": "totalNum", "type": "number"}, {"name": "placedBy", "type": "reference", "klass": "customer"}]})),
        201,
    )
    .await;
    api.expect(
        "PATCH",
        "/v1/klasses/customer",
        KEY,
        Some(json!({"attributes": [{"name": "tier", "type": "enum", "values": ["gold", "silver"]}]})),
        200,
    )
    .await;
    api.expect(
        "POST",
        "/v1/teams",
        KEY,
        Some(json!({"id": "support", "name": "Support"})),
        201,
    )
    .await;
    api.expect(
        "POST",
        "/v1/users",
        KEY,
        Some(json!({"id": "ann", "name": "Ann", "email": "ann@x.io", "role": "agent", "teams": ["support"]})),
        201,
    )
    .await;
    let agent_key = api
        .expect("POST", "/v1/users/ann/keys", KEY, Some(json!({})), 201)
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let org_b = api
        .expect("POST", "/v1/orgs", KEY, Some(json!({"name": "org-b"})), 201)
        .await["adminKey"]
        .as_str()
        .unwrap()
        .to_string();

    // Objects: the last answer for each id is what must come back.
    let mut expected: HashMap<(String, String), Value> = HashMap::new();
    for i in 0..30 {
        // Most writes without refresh, so the index has to be committed at shutdown.
        let refresh = if i % 10 == 0 { "?refresh=wait_for" } else { "" };
        let tier = if i % 3 == 0 { "gold" } else { "silver" };
        let body = json!({"id": format!("c{i}"), "externalId": format!("ext-{i}"), "name": format!("Customer {i}"),
                          "emails": [format!("c{i}@example.com")], "tags": ["restart"],
                          "custom": {"tier": tier, "ltvNum": i * 10, "noteTxt": format!("needle{i} haystack")}});
        let v = api
            .expect(
                "POST",
                &format!("/v1/objects/customer{refresh}"),
                &agent_key,
                Some(body),
                201,
            )
            .await;
        expected.insert(("customer".into(), format!("c{i}")), v);
    }
    for i in 0..10 {
        let v = api.expect("POST", "/v1/objects/conversation", KEY,
            Some(json!({"id": format!("v{i}"), "customer": format!("c{i}"), "subject": format!("Refund request {i}"), "assignedTeam": "support", "priority": 1 + i % 5})), 201).await;
        expected.insert(("conversation".into(), format!("v{i}")), v);
        let m = api.expect("POST", "/v1/objects/message", KEY, Some(json!({"id": format!("m{i}"), "conversation": format!("v{i}"), "body": "hello there", "direction": "in"})), 201).await;
        expected.insert(("message".into(), format!("m{i}")), m);
        let o = api.expect("POST", "/v1/objects/order", KEY, Some(json!({"id": format!("o{i}"), "customer": format!("c{i}"), "custom": {"totalNum": i as f64 + 0.5, "placedBy": format!("c{i}")}})), 201).await;
        expected.insert(("order".into(), format!("o{i}")), o);
    }
    // Updates and deletes, the last of them right before the stop.
    for i in 0..5 {
        let v = api
            .expect(
                "PATCH",
                &format!("/v1/objects/customer/c{i}"),
                KEY,
                Some(json!({"name": format!("Renamed {i}"), "custom": {"tier": "gold"}})),
                200,
            )
            .await;
        expected.insert(("customer".into(), format!("c{i}")), v);
    }
    let v = api
        .expect(
            "PUT",
            "/v1/objects/conversation/v0",
            KEY,
            Some(json!({"customer": "c1", "subject": "Replaced", "status": "done"})),
            200,
        )
        .await;
    expected.insert(("conversation".into(), "v0".into()), v);
    let v = api
        .expect(
            "PUT",
            "/v1/objects/customer/by-external-id/ext-new",
            KEY,
            Some(json!({"id": "c-new", "name": "Upserted"})),
            201,
        )
        .await;
    expected.insert(("customer".into(), "c-new".into()), v);
    api.expect("DELETE", "/v1/objects/customer/c29", KEY, None, 204).await;
    expected.remove(&("customer".to_string(), "c29".to_string()));
    api.expect("DELETE", "/v1/objects/order/o9", KEY, None, 204).await;
    expected.remove(&("order".to_string(), "o9".to_string()));
    let b_obj = api
        .expect(
            "POST",
            "/v1/objects/customer",
            &org_b,
            Some(json!({"id": "b1", "name": "In org B"})),
            201,
        )
        .await;

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "SIGTERM must exit 0; log:\n{}", log_text(&log));
    assert!(
        !data.join("admin-key").is_file(),
        "KINDRED_ADMIN_KEY was given; no admin-key file expected"
    );
    // New orgs (the default one, org-b) tail their log from the start: writes right after an
    // index is created are not mistaken for objects the index lost.
    assert!(
        !log_text(&log).contains("rebuilding from the store"),
        "a new org's index was rebuilt; log:\n{}",
        log_text(&log)
    );

    // Start again (another port) and read everything back.
    let server = Server::start(&data, Some(KEY), &log).await;
    let api = Api::new(&server.base);
    // The index committed at shutdown: searches find everything at once.
    let customers = expected.keys().filter(|(k, _)| k == "customer").count() as u64;
    assert_eq!(api.count(KEY, json!({"queryContext": "customer"})).await, customers);
    assert_eq!(api.count(KEY, json!({"queryContext": "conversation"})).await, 10);
    assert_eq!(api.count(KEY, json!({"queryContext": "message"})).await, 10);
    assert_eq!(api.count(KEY, json!({"queryContext": "order"})).await, 9);
    let gold = api
        .search_ids(
            KEY,
            json!({"queryContext": "customer", "and": [{"custom.tier": {"equals": "gold"}}], "pageSize": 100}),
        )
        .await;
    let mut want: Vec<String> = (0..29)
        .filter(|i| i % 3 == 0 || *i < 5)
        .map(|i| format!("c{i}"))
        .collect();
    want.sort();
    assert_eq!(gold, want);
    assert_eq!(
        api.search_ids(KEY, json!({"queryContext": "customer", "text": "needle7"}))
            .await,
        ["c7"]
    );
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "customer", "and": [{"name": {"equals": "renamed 3"}}]})
        )
        .await,
        ["c3"]
    );
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "customer", "and": [{"custom.ltvNum": {"gte": 270}}]})
        )
        .await,
        ["c27", "c28"]
    );
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "conversation", "and": [{"status": {"equals": "done"}}]})
        )
        .await,
        ["v0"]
    );
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "order", "and": [{"custom.totalNum": {"gt": 7}}]})
        )
        .await,
        ["o7", "o8"]
    );
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "customer", "and": [{"externalId": {"equals": "ext-new"}}]})
        )
        .await,
        ["c-new"]
    );
    // Every object reads back exactly as last acknowledged.
    for ((klass, id), v) in &expected {
        let got = api
            .expect("GET", &format!("/v1/objects/{klass}/{id}"), KEY, None, 200)
            .await;
        assert_eq!(&got, v, "{klass}/{id} after restart");
    }
    api.expect("GET", "/v1/objects/customer/c29", KEY, None, 404).await;
    api.expect("GET", "/v1/objects/order/o9", KEY, None, 404).await;
    assert_eq!(
        api.expect("GET", "/v1/objects/customer/by-external-id/ext-12", KEY, None, 200)
            .await["id"],
        "c12"
    );
    assert_eq!(
        api.expect("GET", "/v1/objects/customer/by-email/C13@EXAMPLE.COM", KEY, None, 200)
            .await["id"],
        "c13"
    );
    // Schema, directory, keys and the other org survived too.
    let k = api.expect("GET", "/v1/klasses/order", KEY, None, 200).await;
    assert!(
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "placedBy" && a["type"] == "reference"),
        "{k}"
    );
    let c = api.expect("GET", "/v1/klasses/customer", KEY, None, 200).await;
    for n in ["tier", "ltvNum", "noteTxt"] {
        assert!(
            c["attributes"].as_array().unwrap().iter().any(|a| a["name"] == n),
            "{n} missing: {c}"
        );
    }
    assert_eq!(api.expect("GET", "/v1/me", &agent_key, None, 200).await["id"], "ann");
    assert_eq!(
        api.expect("GET", "/v1/teams/support", KEY, None, 200).await["members"],
        json!(["ann"])
    );
    assert_eq!(
        api.expect("GET", "/v1/objects/customer/b1", &org_b, None, 200).await,
        b_obj
    );
    api.expect("GET", "/v1/objects/customer/b1", KEY, None, 404).await;
    assert_eq!(
        api.search_ids(&org_b, json!({"queryContext": "customer"})).await,
        ["b1"]
    );
    // Writes work after the restart, and ids continue without clashes.
    let n = api
        .expect(
            "POST",
            "/v1/objects/customer?refresh=wait_for",
            KEY,
            Some(json!({"name": "After restart"})),
            201,
        )
        .await;
    assert_eq!(
        api.search_ids(
            KEY,
            json!({"queryContext": "customer", "and": [{"name": {"equals": "after restart"}}]})
        )
        .await,
        [n["id"].as_str().unwrap()]
    );
    // A second clean stop also exits 0.
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text(&log));
    assert!(!log_text(&log).contains("rebuilding from the store"));

    // An org whose index directory is gone gets it rebuilt from the store.
    let orgs: Vec<_> = std::fs::read_dir(data.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(orgs.len(), 2, "{orgs:?}");
    let b_dir = orgs.iter().max().unwrap();
    std::fs::remove_dir_all(b_dir).unwrap();
    let server = Server::start(&data, Some(KEY), &log).await;
    let api = Api::new(&server.base);
    let mut found = Vec::new();
    for _ in 0..200 {
        found = api.search_ids(&org_b, json!({"queryContext": "customer"})).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(found, ["b1"], "log:\n{}", log_text(&log));
    assert!(
        log_text(&log).contains("rebuilding from the store"),
        "log:\n{}",
        log_text(&log)
    );
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text(&log));
}

// ---- (2) the first start's admin key ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_without_an_admin_key_writes_a_private_admin_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let server = Server::start(&data, None, &log).await;
    let path = data.join("admin-key");
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}; log:\n{}", path.display(), log_text(&log)));
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "admin-key mode is {:o}",
        meta.permissions().mode() & 0o777
    );
    let key = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(key.len() >= 32, "{key:?}");
    assert!(
        log_text(&log).contains(&key),
        "the generated key is printed once to stderr"
    );
    let api = Api::new(&server.base);
    let me = api.expect("GET", "/v1/me", &key, None, 200).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org"]["id"], "default");
    // It is the platform key.
    let org = api
        .expect("POST", "/v1/orgs", &key, Some(json!({"name": "second"})), 201)
        .await;
    assert!(org["adminKey"].is_string());
    api.expect(
        "GET",
        "/v1/me",
        "kdr_wrong_key_000000000000000000000000000000",
        None,
        401,
    )
    .await;
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text(&log));

    // A later start keeps the key (and ignores KINDRED_ADMIN_KEY, which only seeds a first start).
    let server = Server::start(&data, Some(KEY), &log).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let api = Api::new(&server.base);
    api.expect("GET", "/v1/me", &key, None, 200).await;
    api.expect("POST", "/v1/orgs", &key, Some(json!({"name": "third"})), 201)
        .await;
    api.expect("GET", "/v1/me", KEY, None, 401).await;
    assert_eq!(
        log_text(&log).matches(key.as_str()).count(),
        1,
        "the key is printed only on the first start"
    );
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text(&log));
}

// ---- (3) SIGKILL ----

/// What one worker knows: acknowledged contents by id, and the one write whose outcome is unknown.
#[derive(Default)]
struct WorkerLog {
    acked: HashMap<String, (String, i64, u64)>,
    /// (id, name, seq, rev, was_create) of the write in flight when the connection broke.
    uncertain: Option<(String, String, i64, u64, bool)>,
    failures: Vec<String>,
    writes: usize,
}

async fn worker(api: Api, w: usize, stop: Arc<AtomicBool>) -> WorkerLog {
    let mut log = WorkerLog::default();
    let mut own: Vec<String> = Vec::new();
    let mut i: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let update = i % 4 == 0 && !own.is_empty();
        let (method, path, id, name, rev_after, body) = if update {
            let id = own[(i as usize * 7) % own.len()].clone();
            let name = format!("w{w} update {i}");
            let rev = log.acked[&id].2 + 1;
            (
                "PATCH",
                format!("/v1/objects/customer/{id}"),
                id,
                name.clone(),
                rev,
                json!({"name": name, "custom": {"seqNum": i}}),
            )
        } else {
            let id = format!("w{w}-{i}");
            let name = format!("w{w} create {i}");
            let body = json!({"id": id, "name": name, "tags": [format!("worker{w}")], "custom": {"seqNum": i, "workerStr": format!("w{w}")}});
            ("POST", "/v1/objects/customer".to_string(), id, name, 1, body)
        };
        match api.send(method, &path, KEY, Some(body)).await {
            Ok((st, v)) if (200..300).contains(&st) => {
                log.writes += 1;
                let rev = v["rev"].as_u64().unwrap_or(0);
                if rev != rev_after || v["name"] != name.as_str() || v["custom"]["seqNum"] != i {
                    log.failures
                        .push(format!("{method} {path}: acknowledged {v}, expected rev {rev_after}"));
                }
                log.acked.insert(id.clone(), (name, i, rev));
                if !update {
                    own.push(id);
                }
            }
            Ok((st, v)) => log.failures.push(format!("{method} {path}: {st} {v}")),
            Err(e) => {
                // The server went away: this write may or may not have been applied.
                if !e.is_connect() {
                    log.uncertain = Some((id, name, i, rev_after, !update));
                }
                break;
            }
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_acknowledged_before_a_sigkill_survives_and_the_index_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let server = Server::start(&data, Some(KEY), &log).await;
    let api = Api::new(&server.base);
    // Declare the suffix attributes once, with an object that is there before the storm.
    api.expect(
        "POST",
        "/v1/objects/customer?refresh=wait_for",
        KEY,
        Some(json!({"id": "seed", "custom": {"seqNum": 0, "workerStr": "seed"}})),
        201,
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(worker(api.clone(), w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill_hard();
    stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for w in workers {
        logs.push(w.await.unwrap());
    }
    let failures: Vec<&String> = logs.iter().flat_map(|l| &l.failures).collect();
    assert!(failures.is_empty(), "writes refused before the kill: {failures:?}");
    let acked: usize = logs.iter().map(|l| l.writes).sum();
    eprintln!(
        "kill test: {acked} writes acknowledged before SIGKILL; {} in flight",
        logs.iter().filter(|l| l.uncertain.is_some()).count()
    );
    assert!(
        acked >= 30,
        "only {acked} writes were acknowledged in 1.5 s; log:\n{}",
        log_text(&log)
    );

    // Restart on the same data directory.
    let server = Server::start(&data, Some(KEY), &log).await;
    let api = Api::new(&server.base);
    let mut present: u64 = 1; // seed
    let mut present_by_worker: Vec<u64> = vec![0; logs.len()];
    for (w, l) in logs.iter().enumerate() {
        for (id, (name, seq, rev)) in &l.acked {
            present_by_worker[w] += 1;
            let (st, got) = api
                .send("GET", &format!("/v1/objects/customer/{id}"), KEY, None)
                .await
                .unwrap();
            assert_eq!(st, 200, "acknowledged {id} is lost after SIGKILL: {got}");
            present += 1;
            let matches_acked = got["name"] == name.as_str() && got["custom"]["seqNum"] == *seq && got["rev"] == *rev;
            let matches_inflight = l.uncertain.as_ref().is_some_and(|(uid, uname, useq, urev, _)| {
                uid == id && got["name"] == uname.as_str() && got["custom"]["seqNum"] == *useq && got["rev"] == *urev
            });
            assert!(
                matches_acked || matches_inflight,
                "worker {w}: {id} is {got}, but the last acknowledged write was name={name} seqNum={seq} rev={rev}"
            );
            assert_eq!(got["custom"]["workerStr"], format!("w{w}"), "{got}");
        }
        // A create in flight at the kill either happened completely or not at all.
        if let Some((id, name, seq, _, true)) = &l.uncertain {
            let (st, got) = api
                .send("GET", &format!("/v1/objects/customer/{id}"), KEY, None)
                .await
                .unwrap();
            match st {
                404 => {}
                200 => {
                    present += 1;
                    present_by_worker[w] += 1;
                    assert_eq!(got["name"], name.as_str(), "{got}");
                    assert_eq!(got["custom"]["seqNum"], *seq, "{got}");
                    assert_eq!(got["rev"], 1, "{got}");
                }
                other => panic!("GET {id} after restart: {other} {got}"),
            }
        }
    }
    // The index catches up with the store: every stored customer becomes searchable.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = api.count(KEY, json!({"queryContext": "customer"})).await;
        if n == present {
            break;
        }
        assert!(n <= present, "the index holds {n} customers, the store {present}");
        assert!(
            Instant::now() < deadline,
            "index stuck at {n} of {present} customers after restart; log:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...with the acknowledged contents.
    for (w, l) in logs.iter().enumerate() {
        let (id, (_, seq, _)) = l
            .acked
            .iter()
            .max_by_key(|(_, (_, s, _))| *s)
            .expect("each worker wrote");
        if l.uncertain.as_ref().is_some_and(|u| &u.0 == id) {
            continue;
        }
        let found = api.search_ids(KEY, json!({"queryContext": "customer", "and": [{"custom.seqNum": {"equals": seq}}, {"custom.workerStr": {"equals": format!("w{w}")}}]})).await;
        assert_eq!(found, std::slice::from_ref(id), "worker {w}");
        let tagged = api
            .count(
                KEY,
                json!({"queryContext": "customer", "and": [{"tags": {"equals": format!("worker{w}")}}]}),
            )
            .await;
        assert_eq!(tagged, present_by_worker[w], "worker {w}");
    }
    // New writes work after the restart.
    api.expect(
        "POST",
        "/v1/objects/customer",
        KEY,
        Some(json!({"id": "after-kill", "name": "after"})),
        201,
    )
    .await;

    // Stop cleanly (sled allows one process per data dir), then `kindred verify` agrees.
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text(&log));
    let out = kindred()
        .args(["verify", "--data"])
        .arg(&data)
        .output()
        .expect("running kindred verify");
    assert!(
        out.status.success(),
        "kindred verify exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(report["ok"], true, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["storeObjects"], present + 1, "{report}");
}
