//! In-process timings of the search hot paths on a loaded org (no HTTP): query validation and
//! compilation, the top-K collector, counts, joins, document mapping. Run against a data
//! directory made by `kindred bench` or `kindred import` (service stopped):
//!
//! `KINDRED_BENCH_DATA=/path/to/data cargo bench --bench search_paths`
//!
//! A regression shows as a higher µs figure for the same query on the same data.

use std::time::Instant;

// The service's allocator, so object decoding and rendering cost what they cost in the service.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kindred::query::ast::SearchRequest;
use kindred::query::compile::sort_keys;
use kindred::query::validate::Validator;
use kindred::service::{App, AppOptions};
use serde_json::{json, Value};

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        last = f();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], last)
}

fn main() {
    let data = std::env::var("KINDRED_BENCH_DATA").unwrap_or_else(|_| "target/bench-data".into());
    if !std::path::Path::new(&data).join("store").is_dir() {
        eprintln!("no data at {data}: set KINDRED_BENCH_DATA to a loaded data directory");
        return;
    }
    let mut opts = AppOptions::new(&data);
    opts.announce_admin_key = false;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.enter();
    let app = App::open(opts).unwrap();
    let org = app.runtime_by_name("default").unwrap();
    let schema = org.schema();
    let now = kindred::model::time::parse_time("2026-01-01T00:00:00Z", 0).unwrap();
    let queries: Vec<(&str, Value)> = vec![
        (
            "Q1",
            json!({"queryContext": "conversation", "and": [{"status": {"equals": "open"}}, {"assignedTeam": {"equals": "team-3"}}, {"priority": {"gte": 3}}], "sort": [{"updatedAt": "desc"}]}),
        ),
        (
            "Q2",
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}, {"custom.countryStr": {"in": ["US", "CA"]}}, {"custom.ltvNum": {"gte": 500}}], "sort": [{"custom.ltvNum": "desc"}]}),
        ),
        (
            "Q3",
            json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": 200}}, {"custom.placedAt": {"gte": "2025-12-01"}}]}}]}),
        ),
        (
            "Q4",
            json!({"queryContext": "message", "and": [{"body": {"contains": "refund delayed"}}, {"createdAt": {"gte": "2025-10-01"}}], "sort": [{"createdAt": "desc"}]}),
        ),
        (
            "Q4 words only",
            json!({"queryContext": "message", "and": [{"body": {"contains": "refund delayed"}}]}),
        ),
        (
            "Q4 split words",
            json!({"queryContext": "message", "and": [{"body": {"contains": "refund"}}, {"body": {"contains": "delayed"}}]}),
        ),
        ("customers", json!({"queryContext": "customer"})),
    ];
    let snap = app.snapshot(&org);
    println!("| query | validate µs | compile µs | count µs | top 50 µs | total |");
    println!("|---|---|---|---|---|---|");
    let only = std::env::var("KINDRED_BENCH_ONLY").ok();
    for (name, body) in queries {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let (tv, (filter, keys)) = time(200, || {
            let req = SearchRequest::parse(&body).unwrap();
            let v = Validator::new(&schema, now);
            let k = v.context(&req).unwrap();
            let f = v.request_filter(k, &req).unwrap();
            let keys = sort_keys(&v.sort(k, &req, false).unwrap());
            (f, keys)
        });
        let klass = body["queryContext"].as_str().unwrap();
        let n = if name == "Q3" { 20 } else { 200 };
        let (tc, compiled) = time(n, || snap.compile(klass, &filter).unwrap());
        let (tn, total) = time(n, || compiled.count(&snap).unwrap());
        let (tt, _) = time(n, || compiled.top(&snap, keys.clone(), 51, None).unwrap());
        println!("| {name} | {tv:.1} | {tc:.1} | {tn:.1} | {tt:.1} | {total} |");
    }
    // A page of 50 objects read from the store, decoded, and rendered as a search page is.
    for start in [20000u64, 1_500_000] {
        let nums: Vec<u64> = (start..start + 50).collect();
        let (tf, objs) = time(200, || {
            nums.iter()
                .map(|n| app.store().object(org.org.num, *n).unwrap().unwrap())
                .collect::<Vec<_>>()
        });
        let encoded: Vec<Vec<u8>> = objs.iter().map(kindred::storage::codec::encode_positional).collect();
        let (td, _) = time(200, || {
            encoded
                .iter()
                .map(|b| kindred::storage::codec::decode::<kindred::model::Object>(b, "object").unwrap())
                .collect::<Vec<_>>()
        });
        let page: Vec<_> = objs.iter().map(|o| (o.clone(), None)).collect();
        let (tr, bytes) = time(200, || kindred::service::search::page_json(&schema, &page, 50, None));
        println!(
            "\n50 objects ({}): fetch+decode {tf:.1} µs (decode {td:.1}), render page {tr:.1} µs ({} bytes)",
            objs[0].klass,
            bytes.0.len()
        );
    }
    let obj = app.store().object(org.org.num, 1000).unwrap().unwrap();
    let k = schema.klass(&obj.klass).unwrap();
    let (tm, _) = time(2000, || {
        kindred::index::mapper::to_document(org.index.schema(), k, &obj)
    });
    println!("\ndocument mapping ({}): {tm:.2} µs", obj.klass);
}
