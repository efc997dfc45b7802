//! Disk-format compatibility: a data directory written by format v1 still opens and answers.

use std::path::Path;

use serde_json::json;

use crate::helpers::{ids, TestApp};

const KEY: &str = "kdr_compat_fixture_key_0123456789";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_data_directory_still_opens_reads_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compat_v1"),
        dir.path(),
    );
    let t = TestApp::open(dir).await;
    let c = t.get("/v1/objects/customer/customer-3", KEY).await.expect(200);
    assert_eq!(c["id"], "customer-3");
    assert!(c["emails"][0].as_str().unwrap().contains('@'));
    let n = t
        .post("/v1/search/count", KEY, json!({"queryContext": "customer"}))
        .await
        .expect(200);
    assert_eq!(n["total"], 20);
    let orders = t
        .post(
            "/v1/search/count",
            KEY,
            json!({"queryContext": "order", "and": [{"custom.totalNum": {"gte": 0}}]}),
        )
        .await
        .expect(200);
    assert!(orders["total"].as_u64().unwrap() > 0);
    // Its index was built with an earlier schema: it was rebuilt before the first answer, so
    // free text (scored per attribute since) finds names and bios at once.
    let first_name = c["name"].as_str().unwrap().split(' ').next().unwrap().to_string();
    let r = t
        .post(
            "/v1/search",
            KEY,
            json!({"queryContext": "customer", "text": first_name.clone()}),
        )
        .await
        .expect(200);
    assert!(ids(&r).iter().any(|id| id == "customer-3"), "{first_name}: {r}");
    assert!(r["data"][0]["_score"].as_f64().unwrap() > 0.0, "{r}");
    let rt = t.app.runtime_by_name("default").unwrap();
    let report = t.app.verify(&rt).await.unwrap();
    assert!(report.ok(), "{}", report.to_json());
    // And it still takes writes.
    t.create(KEY, "customer", json!({"id": "new-one", "custom": {"tierStr": "gold"}}))
        .await;
}
