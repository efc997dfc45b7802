//! The dependency rule of ARCHITECTURE.md, enforced: only `api` imports axum, tower or HTTP
//! status codes; only `storage` imports sled; only `index` and `query/compile.rs` import tantivy;
//! `model` imports no engine, web or async crate.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of code, without comments.
fn code(p: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with("/*") || t.starts_with('*'))
        })
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn violations(allowed: impl Fn(&str) -> bool, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if allowed(&rel) {
            continue;
        }
        for (n, line) in code(&f) {
            if needles.iter().any(|needle| line.contains(needle)) {
                out.push(format!("src/{rel}:{n}: {}", line.trim()));
            }
        }
    }
    out
}

#[test]
fn only_the_api_speaks_http() {
    let v = violations(
        |f| f.starts_with("api/") || f == "main.rs",
        &["axum", "StatusCode", "tower::", "tower_http", "http::"],
    );
    assert!(v.is_empty(), "HTTP outside src/api:\n{}", v.join("\n"));
}

#[test]
fn only_storage_touches_sled() {
    let v = violations(|f| f.starts_with("storage/"), &["sled::", "use sled"]);
    assert!(v.is_empty(), "sled outside src/storage:\n{}", v.join("\n"));
}

#[test]
fn only_the_index_and_the_compiler_touch_tantivy() {
    let v = violations(
        |f| f.starts_with("index/") || f == "query/compile.rs",
        &["tantivy::", "use tantivy"],
    );
    assert!(
        v.is_empty(),
        "tantivy outside src/index and src/query/compile.rs:\n{}",
        v.join("\n")
    );
}

#[test]
fn the_model_does_no_io() {
    let v = violations(
        |f| !f.starts_with("model/"),
        &[
            "tokio",
            "sled",
            "tantivy",
            "axum",
            "std::fs",
            "std::net",
            "crate::storage",
            "crate::index",
            "crate::service",
            "crate::api",
        ],
    );
    assert!(v.is_empty(), "the model reaches out:\n{}", v.join("\n"));
}

#[test]
fn the_service_reads_no_environment() {
    let v = violations(|f| f == "config.rs", &["std::env::var", "env::var("]);
    assert!(
        v.is_empty(),
        "environment read outside src/config.rs:\n{}",
        v.join("\n")
    );
}
