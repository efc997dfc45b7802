//! `kindred bench`: loads the DATASET.md org if needed, starts the service as a child process,
//! and measures Q1-Q7 and the other floors of the issues over HTTP on loopback, with concurrency
//! 1 (p50/p99 latency) and 16 (throughput). Prints a Markdown table for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Data directory (imported into when empty).
    pub data: PathBuf,
    /// Customers to generate when the data directory is empty.
    pub customers: u64,
    /// Measured iterations per query at concurrency 1.
    pub iterations: usize,
    /// Skip the write benchmarks (creates, bulk), which add objects to a separate org.
    pub skip_writes: bool,
}

const KEY: &str = "kdr_bench_admin_key_0123456789";
const NOW: &str = "2026-01-01T00:00:00Z";

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Row {
    name: String,
    p50: f64,
    p99: f64,
    c16: f64,
    note: String,
}

/// Runs the benchmark and prints the table.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut report: Vec<String> = Vec::new();
    if !opts.data.join("store").is_dir() {
        let gen_dir = opts.data.with_extension("ndjson");
        if !gen_dir.is_dir() {
            eprintln!(
                "bench: generating {} customers into {}",
                opts.customers,
                gen_dir.display()
            );
            let o = super::gen::GenOptions {
                customers: opts.customers,
                seed: 42,
                out: gen_dir.clone(),
            };
            tokio::task::spawn_blocking(move || super::gen::generate(&o)).await??;
        }
        let ndjson = dir_size(&gen_dir);
        eprintln!("bench: importing {}", gen_dir.display());
        let started = Instant::now();
        let out = std::process::Command::new(&exe)
            .args(["import", "--data"])
            .arg(&opts.data)
            .arg(&gen_dir)
            .env("KINDRED_ADMIN_KEY", KEY)
            .output()?;
        let secs = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("import failed: {stderr}");
        }
        let summary = stderr
            .lines()
            .filter(|l| l.starts_with("imported") || l.starts_with("time:"))
            .collect::<Vec<_>>()
            .join("; ");
        report.push(format!(
            "import: {summary} (wall {secs:.1}s); NDJSON {:.0} MiB",
            ndjson as f64 / 1048576.0
        ));
    }
    // Let the kernel write back what the generator and the import left dirty, so that the
    // durable writes measured below do not queue their fsyncs behind gigabytes of it.
    let _ = std::process::Command::new("sync").status();
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let child = std::process::Command::new(&exe)
        .args(["serve", "--data"])
        .arg(&opts.data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KINDRED_ADMIN_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the service")?;
    let mut server = Server { child, base };
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let started = Instant::now();
    loop {
        // A service that exits at start (a bad setting, say) has said why on stderr.
        if let Some(status) = server.child.try_wait()? {
            bail!("the service exited at start ({status})");
        }
        if client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the service did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wait until the index has caught up (a restart replays the log).
    let key = std::fs::read_to_string(opts.data.join("admin-key"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| KEY.to_string());
    let auth = format!("Bearer {key}");
    let total_customers = loop {
        let r: Value = client
            .post(format!("{}/v1/search/count", server.base))
            .header("authorization", &auth)
            .json(&json!({"queryContext": "customer"}))
            .send()
            .await?
            .json()
            .await?;
        if let Some(n) = r["total"].as_u64() {
            if n > 0 {
                break n;
            }
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the index did not catch up: {r}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let store = dir_size(&opts.data.join("store"));
    let index = dir_size(&opts.data.join("index"));
    report.push(format!(
        "data: {total_customers} customers; store {:.0} MiB, index {:.0} MiB",
        store as f64 / 1048576.0,
        index as f64 / 1048576.0
    ));

    let b = &server.base;
    let customer: Value = client
        .get(format!("{b}/v1/objects/customer/customer-123"))
        .header("authorization", &auth)
        .send()
        .await?
        .json()
        .await?;
    let email = customer["emails"][0].as_str().unwrap_or("none@example.com").to_string();
    // The busiest customer of the first thousand, for the timeline.
    let busy = busiest_customer(&client, b, &auth).await?;
    type Req = (&'static str, String, Option<Value>);
    let queries: Vec<(&str, Vec<Req>)> = vec![
        (
            "Q1 queue",
            vec![(
                "POST",
                format!("{b}/v1/search"),
                Some(
                    json!({"queryContext": "conversation", "now": NOW, "and": [{"status": {"equals": "open"}}, {"assignedTeam": {"equals": "team-3"}}, {"priority": {"gte": 3}}], "sort": [{"updatedAt": "desc"}], "pageSize": 50}),
                ),
            )],
        ),
        (
            "Q2 segment",
            vec![(
                "POST",
                format!("{b}/v1/search"),
                Some(
                    json!({"queryContext": "customer", "now": NOW, "and": [{"custom.tierStr": {"equals": "gold"}}, {"custom.countryStr": {"in": ["US", "CA"]}}, {"custom.ltvNum": {"gte": 500}}], "sort": [{"custom.ltvNum": "desc"}], "pageSize": 50}),
                ),
            )],
        ),
        (
            "Q3 join segment",
            vec![(
                "POST",
                format!("{b}/v1/search"),
                Some(
                    json!({"queryContext": "customer", "now": NOW, "and": [{"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": 200}}, {"custom.placedAt": {"gte": "2025-12-01"}}]}}], "pageSize": 50}),
                ),
            )],
        ),
        (
            "Q4 full text",
            vec![(
                "POST",
                format!("{b}/v1/search"),
                Some(
                    json!({"queryContext": "message", "now": NOW, "and": [{"body": {"contains": "refund delayed"}}, {"createdAt": {"gte": "2025-10-01"}}], "sort": [{"createdAt": "desc"}], "pageSize": 20}),
                ),
            )],
        ),
        (
            "Q5 timeline",
            vec![(
                "GET",
                format!("{b}/v1/objects/customer/{busy}/timeline?klasses=conversation,message,order&pageSize=50"),
                None,
            )],
        ),
        (
            "Q6a channel x status",
            vec![(
                "POST",
                format!("{b}/v1/reports"),
                Some(
                    json!({"queryContext": "conversation", "aggs": {"channel": {"terms": {"field": "channel", "size": 10}, "aggs": {"status": {"terms": {"field": "status", "size": 5}}}}}}),
                ),
            )],
        ),
        (
            "Q6b monthly sums",
            vec![(
                "POST",
                format!("{b}/v1/reports"),
                Some(
                    json!({"queryContext": "order", "and": [{"custom.placedAt": {"between": ["2025-01-01", "2025-12-31T23:59:59.999Z"]}}], "aggs": {"month": {"date_histogram": {"field": "custom.placedAt", "calendar_interval": "month"}, "aggs": {"total": {"sum": {"field": "custom.totalNum"}}}}}}),
                ),
            )],
        ),
        (
            "Q7 customer by id",
            vec![("GET", format!("{b}/v1/objects/customer/customer-123"), None)],
        ),
        (
            "Q7 customer by email",
            vec![("GET", format!("{b}/v1/objects/customer/by-email/{email}"), None)],
        ),
    ];
    let mut rows = Vec::new();
    for (name, reqs) in &queries {
        let (method, url, body) = &reqs[0];
        let (p50, p99, note) = latency(&client, &auth, method, url, body.as_ref(), opts.iterations).await?;
        let c16 = throughput(&client, &auth, method, url, body.as_ref(), 16, Duration::from_secs(3)).await?;
        rows.push(Row {
            name: name.to_string(),
            p50,
            p99,
            c16,
            note,
        });
    }
    // Saved search vs ad hoc, segments of one customer against 100 saved searches, export.
    rows.extend(saved_search_rows(&client, b, &auth, opts.iterations).await?);
    rows.push(export_row(&client, b, &auth).await?);
    if !opts.skip_writes {
        rows.extend(write_rows(&client, b, &auth, opts.iterations).await?);
        rows.extend(automation_rows(&client, b, &auth, opts.iterations).await?);
    }
    let rss = peak_rss_kb(server.child.id());
    report.push(format!("peak RSS of the service: {:.0} MiB", rss as f64 / 1024.0));
    println!("| query | p50 ms | p99 ms | c16 req/s | result |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.3} | {:.3} | {:.0} | {} |",
            r.name, r.p50, r.p99, r.c16, r.note
        );
    }
    println!();
    for l in report {
        println!("- {l}");
    }
    Ok(())
}

async fn busiest_customer(client: &reqwest::Client, b: &str, auth: &str) -> anyhow::Result<String> {
    let r: Value = client
        .post(format!("{b}/v1/reports"))
        .header("authorization", auth)
        .json(&json!({"queryContext": "order", "aggs": {"c": {"terms": {"field": "customer", "size": 1}}}}))
        .send()
        .await?
        .json()
        .await?;
    Ok(r["aggs"]["c"]["buckets"][0]["key"]
        .as_str()
        .unwrap_or("customer-1")
        .to_string())
}

/// One request and its answer's status and bytes; an empty `auth` sends no authorization header.
async fn request(
    client: &reqwest::Client,
    auth: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    let mut req = match method {
        "GET" => client.get(url),
        "PATCH" => client.patch(url),
        _ => client.post(url),
    };
    if !auth.is_empty() {
        req = req.header("authorization", auth);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?))
}

/// One request with its answer parsed (Null when not JSON).
async fn send(
    client: &reqwest::Client,
    auth: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let (status, bytes) = request(client, auth, method, url, body).await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// One request whose answer is read but not parsed: what the timed loops use, so a figure is the
/// service's time plus the round trip, not the client's JSON decoding.
async fn send_unparsed(
    client: &reqwest::Client,
    auth: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<u16> {
    Ok(request(client, auth, method, url, body).await?.0)
}

async fn latency(
    client: &reqwest::Client,
    auth: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
    n: usize,
) -> anyhow::Result<(f64, f64, String)> {
    let (status, first) = send(client, auth, method, url, body).await?;
    if status >= 300 {
        bail!("{url} answered {status}: {first}");
    }
    for _ in 0..(n / 10).max(5) {
        send_unparsed(client, auth, method, url, body).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        send_unparsed(client, auth, method, url, body).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let note = match first.get("total") {
        Some(t) => format!("total {t}"),
        None => String::new(),
    };
    Ok((percentile(&times, 0.5), percentile(&times, 0.99), note))
}

async fn throughput(
    client: &reqwest::Client,
    auth: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
    conc: usize,
    dur: Duration,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, auth, method, url, body) = (
            client.clone(),
            auth.to_string(),
            method.to_string(),
            url.to_string(),
            body.cloned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < dur {
                if send_unparsed(&client, &auth, &method, &url, body.as_ref())
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn saved_search_rows(client: &reqwest::Client, b: &str, auth: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    let q2 = json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}, {"custom.countryStr": {"in": ["US", "CA"]}}, {"custom.ltvNum": {"gte": 500}}], "sort": [{"custom.ltvNum": "desc"}], "pageSize": 50});
    let (_, ss) = send(
        client,
        auth,
        "POST",
        &format!("{b}/v1/saved-searches"),
        Some(&json!({"name": "bench Q2", "query": q2, "visibility": "org"})),
    )
    .await?;
    let id = ss["id"].as_str().context("saved search id")?.to_string();
    let mut rows = Vec::new();
    // The saved search and the same search ad hoc, request by request in turn, so that both see
    // the same machine (their difference is a few percent; drift between rows is more).
    let saved_url = format!("{b}/v1/saved-searches/{id}/results");
    let search_url = format!("{b}/v1/search");
    let (mut saved, mut adhoc) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 20 {
        let t = Instant::now();
        send_unparsed(client, auth, "GET", &saved_url, None).await?;
        let ts = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        send_unparsed(client, auth, "POST", &search_url, Some(&q2)).await?;
        let ta = t.elapsed().as_secs_f64() * 1e3;
        if i >= 20 {
            saved.push(ts);
            adhoc.push(ta);
        }
    }
    for v in [&mut saved, &mut adhoc] {
        v.sort_by(f64::total_cmp);
    }
    let (p50, p50_adhoc) = (percentile(&saved, 0.5), percentile(&adhoc, 0.5));
    rows.push(Row {
        name: "saved search (Q2) results".into(),
        p50,
        p99: percentile(&saved, 0.99),
        c16: 0.0,
        note: format!(
            "the same search ad hoc, in turn: p50 {p50_adhoc:.3} ms; saved {:+.1}%",
            (p50 / p50_adhoc - 1.0) * 100.0
        ),
    });
    // 100 saved searches over customers, a mix of attribute and join conditions.
    let tiers = ["gold", "silver", "bronze", "platinum"];
    let countries = ["US", "CA", "GB", "DE", "FR"];
    for i in 0..100 {
        let mut and = vec![
            json!({"custom.tierStr": {"equals": tiers[i % 4]}}),
            json!({"custom.countryStr": {"in": [countries[i % 5]]}}),
        ];
        if i % 3 == 0 {
            and.push(json!({"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": (i * 10) as f64}}]}}));
        }
        if i % 5 == 0 {
            and.push(json!({"custom.ltvNum": {"gte": (i * 7) as f64}}));
        }
        send(client, auth, "POST", &format!("{b}/v1/saved-searches"), Some(&json!({"name": format!("segment {i}"), "query": {"queryContext": "customer", "and": and}, "visibility": "org"}))).await?;
    }
    let (p50, p99, note) = latency(
        client,
        auth,
        "GET",
        &format!("{b}/v1/objects/customer/customer-123/saved-searches"),
        None,
        n,
    )
    .await?;
    rows.push(Row {
        name: "segments of one customer (101 saved searches)".into(),
        p50,
        p99,
        c16: 0.0,
        note: if note.is_empty() {
            "matched segments listed".into()
        } else {
            note
        },
    });
    Ok(rows)
}

/// Exports every customer three times: the row shows the median (p50) and slowest (p99) run, so
/// a first run on a cold page cache does not stand for the export's speed.
async fn export_row(client: &reqwest::Client, b: &str, auth: &str) -> anyhow::Result<Row> {
    let mut runs = Vec::new();
    let mut lines = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let resp = client
            .post(format!("{b}/v1/search/export?format=ndjson"))
            .header("authorization", auth)
            .json(&json!({"queryContext": "customer"}))
            .send()
            .await?;
        let bytes = resp.bytes().await?;
        runs.push(t.elapsed().as_secs_f64());
        lines = bytes.iter().filter(|c| **c == b'\n').count();
    }
    runs.sort_by(f64::total_cmp);
    let (median, slowest) = (runs[1], runs[2]);
    Ok(Row {
        name: "export all customers (NDJSON), 3 runs".into(),
        p50: median * 1e3,
        p99: slowest * 1e3,
        c16: 0.0,
        note: format!("{lines} objects, {:.0} objects/s (median run)", lines as f64 / median),
    })
}

async fn write_rows(client: &reqwest::Client, b: &str, auth: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    let (_, org) = send(
        client,
        auth,
        "POST",
        &format!("{b}/v1/orgs"),
        Some(&json!({"name": format!("bench-{}", std::process::id())})),
    )
    .await?;
    let key = format!("Bearer {}", org["adminKey"].as_str().context("org key")?);
    let mut rows = Vec::new();
    // Single-object creates, durable, 16 clients.
    let started = Instant::now();
    let dur = Duration::from_secs(5);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (client, key, b) = (client.clone(), key.clone(), b.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut i = 0u64;
            while started.elapsed() < dur {
                let body = json!({"id": format!("w{w}-{i}"), "name": "Bench Customer", "emails": [format!("w{w}-{i}@bench.example")], "custom": {"tierStr": "gold", "ltvNum": 12.5}});
                if send(&client, &key, "POST", &format!("{b}/v1/objects/customer"), Some(&body)).await.is_ok_and(|(s, _)| s == 201) {
                    ok += 1;
                }
                i += 1;
            }
            ok
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await?;
    }
    let rate = created as f64 / started.elapsed().as_secs_f64();
    rows.push(Row {
        name: "create customer (durable), 16 clients".into(),
        p50: 0.0,
        p99: 0.0,
        c16: rate,
        note: format!("{created} created"),
    });
    let (p50, p99, _) = latency(client, &key, "GET", &format!("{b}/v1/objects/customer/w0-0"), None, n).await?;
    rows.push(Row {
        name: "GET object by id".into(),
        p50,
        p99,
        c16: 0.0,
        note: String::new(),
    });
    // A write without wait_for: time until searchable.
    let mut lags = Vec::new();
    for i in 0..20 {
        let id = format!("lag-{i}");
        send(
            client,
            &key,
            "POST",
            &format!("{b}/v1/objects/customer"),
            Some(&json!({"id": id})),
        )
        .await?;
        let t = Instant::now();
        loop {
            let (_, r) = send(
                client,
                &key,
                "POST",
                &format!("{b}/v1/search/count"),
                Some(&json!({"queryContext": "customer", "and": [{"id": {"equals": id}}]})),
            )
            .await?;
            if r["total"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lags.sort_by(f64::total_cmp);
    rows.push(Row {
        name: "write to searchable (no wait_for)".into(),
        p50: percentile(&lags, 0.5),
        p99: percentile(&lags, 0.99),
        c16: 0.0,
        note: String::new(),
    });
    // Bulk: 50,000 customers in one streamed body.
    let mut body = String::with_capacity(8 << 20);
    for i in 0..50_000 {
        body.push_str(&json!({"op": "create", "klass": "customer", "id": format!("bulk-{i}"), "object": {"name": "Bulk Customer", "custom": {"tierStr": "silver", "ltvNum": i as f64}}}).to_string());
        body.push('\n');
    }
    let t = Instant::now();
    let resp = client
        .post(format!("{b}/v1/bulk"))
        .header("authorization", &key)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    let out = resp.text().await?;
    let secs = t.elapsed().as_secs_f64();
    let ok = out.lines().filter(|l| l.contains("\"status\":201")).count();
    rows.push(Row {
        name: "POST /v1/bulk, 50,000 creates".into(),
        p50: secs * 1e3,
        p99: secs * 1e3,
        c16: 0.0,
        note: format!("{ok} created, {:.0} objects/s", ok as f64 / secs),
    });
    Ok(rows)
}

/// The automation floors: a hook post until its workflow run (one upsert step) has succeeded;
/// a conversation write with 20 enabled business rules against none; hook posts per second with
/// 16 clients, and whether every accepted post became a run.
async fn automation_rows(client: &reqwest::Client, b: &str, auth: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    let (_, org) = send(
        client,
        auth,
        "POST",
        &format!("{b}/v1/orgs"),
        Some(&json!({"name": format!("bench-automation-{}", std::process::id())})),
    )
    .await?;
    let key = format!("Bearer {}", org["adminKey"].as_str().context("org key")?);
    let mut rows = Vec::new();
    let (_, hook) = send(
        client,
        &key,
        "POST",
        &format!("{b}/v1/hooks"),
        Some(&json!({"name": "form", "type": "web"})),
    )
    .await?;
    let hook_id = hook["id"].as_str().context("hook id")?.to_string();
    let hook_url = format!("{b}{}", hook["url"].as_str().context("hook url")?);
    let (status, wf) = send(
        client,
        &key,
        "POST",
        &format!("{b}/v1/workflows"),
        Some(&json!({"name": "contact form", "enabled": true, "trigger": {"event": format!("hook.{hook_id}")},
            "steps": [{"id": "s1", "action": "customers.upsert", "params": {"email": "{{trigger.data.body.email}}", "object": {"name": "{{trigger.data.body.name}}"}}}]})),
    )
    .await?;
    if status != 201 {
        bail!("workflow: {status} {wf}");
    }
    let wf_id = wf["id"].as_str().context("workflow id")?.to_string();
    let runs_url = format!("{b}/v1/workflows/{wf_id}/runs");
    let run_count = |client: reqwest::Client, key: String, url: String| async move {
        let (_, r) = send(&client, &key, "GET", &format!("{url}?pageSize=1"), None).await?;
        anyhow::Ok(r["total"].as_u64().unwrap_or(0))
    };
    // One at a time: post, then poll the newest run until it succeeded.
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let before = run_count(client.clone(), key.clone(), runs_url.clone()).await?;
        let t = Instant::now();
        let s = send_unparsed(
            client,
            "",
            "POST",
            &hook_url,
            Some(&json!({"email": format!("lat{i}@bench.example"), "name": "Latency"})),
        )
        .await?;
        if s != 202 {
            bail!("hook post answered {s}");
        }
        loop {
            let (_, r) = send(client, &key, "GET", &format!("{runs_url}?pageSize=1"), None).await?;
            let done = r["total"].as_u64().unwrap_or(0) > before && r["data"][0]["status"] == "succeeded";
            if done {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("hook run did not finish: {r}");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    rows.push(Row {
        name: "hook post -> workflow run succeeded (one upsert)".into(),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        c16: 0.0,
        note: "polling the run every 0.5 ms".into(),
    });

    // Hook posts, 16 clients for 5 s; then every accepted post must become a run.
    let before = run_count(client.clone(), key.clone(), runs_url.clone()).await?;
    let started = Instant::now();
    let dur = Duration::from_secs(5);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (client, url) = (client.clone(), hook_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut i = 0u64;
            while started.elapsed() < dur {
                let body = json!({"email": format!("h{w}-{}@bench.example", i % 50), "name": "Load"});
                if send_unparsed(&client, "", "POST", &url, Some(&body))
                    .await
                    .is_ok_and(|s| s == 202)
                {
                    ok += 1;
                }
                i += 1;
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await?;
    }
    let rate = accepted as f64 / started.elapsed().as_secs_f64();
    let drain = Instant::now();
    let mut runs;
    loop {
        runs = run_count(client.clone(), key.clone(), runs_url.clone()).await? - before;
        if runs >= accepted || drain.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rows.push(Row {
        name: "hook posts, 16 clients, 5 s".into(),
        p50: 0.0,
        p99: 0.0,
        c16: rate,
        note: format!(
            "{accepted} accepted, {runs} runs ({}), all runs done {:.1} s after the last post",
            if runs == accepted { "none lost" } else { "MISMATCH" },
            drain.elapsed().as_secs_f64()
        ),
    });

    // A conversation write (durable, one client) without rules and with 20 enabled rules, in
    // alternating rounds (the rules disabled, then enabled) so that drift of the machine or of
    // the store's size over the run weighs on both sides alike.
    send(
        client,
        &key,
        "POST",
        &format!("{b}/v1/objects/customer"),
        Some(&json!({"id": "rules-cu", "name": "Rules"})),
    )
    .await?;
    let write = |tag: &'static str, count: usize| {
        let (client, key, b) = (client.clone(), key.clone(), b.to_string());
        async move {
            let mut times = Vec::with_capacity(count);
            for i in 0..count + 5 {
                let body = json!({"customer": "rules-cu", "subject": format!("{tag} {i} refund"), "priority": 2, "channel": "email"});
                let t = Instant::now();
                let s = send_unparsed(
                    &client,
                    &key,
                    "POST",
                    &format!("{b}/v1/objects/conversation"),
                    Some(&body),
                )
                .await?;
                if s != 201 {
                    bail!("conversation create answered {s}");
                }
                if i >= 5 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            anyhow::Ok(times)
        }
    };
    let mut rule_ids = Vec::new();
    for r in 0..20 {
        // Half match every conversation (and tag it), half test a condition that does not hold.
        let conditions = if r % 2 == 0 {
            json!({"and": [{"subject": {"contains": "refund"}}, {"priority": {"lte": 3}}]})
        } else {
            json!({"and": [{"subject": {"contains": format!("never{r}")}}]})
        };
        let (s, v) = send(client, &key, "POST", &format!("{b}/v1/business-rules"),
            Some(&json!({"name": format!("rule {r}"), "klass": "conversation", "order": r, "enabled": false, "conditions": conditions, "actions": [{"addTags": [format!("t{r}")]}]}))).await?;
        if s != 201 {
            bail!("business rule: {s} {v}");
        }
        rule_ids.push(v["id"].as_str().context("rule id")?.to_string());
    }
    // Many short rounds of many writes: a write's p50 is mostly its wait for the group fsync,
    // whose jitter would otherwise outweigh the rules' own cost.
    const ROUNDS: usize = 8;
    let per_round = (4 * n).div_ceil(ROUNDS);
    let (mut plain, mut ruled) = (Vec::new(), Vec::new());
    let set_rules = |enabled: bool| {
        let (client, key, b, ids) = (client.clone(), key.clone(), b.to_string(), rule_ids.clone());
        async move {
            for id in &ids {
                send(
                    &client,
                    &key,
                    "PATCH",
                    &format!("{b}/v1/business-rules/{id}"),
                    Some(&json!({"enabled": enabled})),
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    for _ in 0..ROUNDS {
        plain.extend(write("plain", per_round).await?);
        set_rules(true).await?;
        ruled.extend(write("ruled", per_round).await?);
        set_rules(false).await?;
    }
    let p = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (percentile(v, 0.5), percentile(v, 0.99))
    };
    let (p50_none, p99_none) = p(&mut plain);
    let (p50_rules, p99_rules) = p(&mut ruled);
    rows.push(Row {
        name: "conversation create (durable), no rules".into(),
        p50: p50_none,
        p99: p99_none,
        c16: 0.0,
        note: String::new(),
    });
    rows.push(Row {
        name: "conversation create (durable), 20 enabled rules".into(),
        p50: p50_rules,
        p99: p99_rules,
        c16: 0.0,
        note: format!("{:+.1}% at p50", (p50_rules / p50_none - 1.0) * 100.0),
    });
    Ok(rows)
}
