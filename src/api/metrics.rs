//! Request metrics and the Prometheus text exposition at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::service::App;

const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// Counters of requests by route and status, and latency histograms by route.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut m = self.inner.lock().expect("metrics lock");
        *m.requests
            .entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
        let h = m.latency.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition, with the service's gauges.
    pub fn render(&self, app: &App) -> String {
        let mut out = String::new();
        {
            let m = self.inner.lock().expect("metrics lock");
            out.push_str("# HELP kindred_http_requests_total HTTP requests by method, route and status.\n");
            out.push_str("# TYPE kindred_http_requests_total counter\n");
            for ((method, route, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "kindred_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    esc(route)
                );
            }
            out.push_str("# HELP kindred_http_request_duration_seconds HTTP request latency by route.\n");
            out.push_str("# TYPE kindred_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                let r = esc(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "kindred_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "kindred_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "kindred_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "kindred_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                    h.count
                );
            }
        }
        out.push_str(
            "# HELP kindred_changelog_length Change-log records kept (not yet processed by every consumer).\n",
        );
        out.push_str("# TYPE kindred_changelog_length gauge\n");
        out.push_str("# HELP kindred_index_lag Change-log records written but not yet searchable.\n");
        out.push_str("# TYPE kindred_index_lag gauge\n");
        let mut lag_lines = String::new();
        for rt in app.open_runtimes() {
            let store = app.store();
            let (Ok(last), Ok(first)) = (store.last_seq(rt.org.num), store.first_seq(rt.org.num)) else {
                continue;
            };
            // Read one after the other: a trim in between may pass `last`.
            let kept = if first == 0 {
                0
            } else {
                (last + 1).saturating_sub(first)
            };
            let _ = writeln!(out, "kindred_changelog_length{{org=\"{}\"}} {kept}", esc(&rt.org.id));
            let lag = last.saturating_sub(rt.indexer.indexed());
            let _ = writeln!(lag_lines, "kindred_index_lag{{org=\"{}\"}} {lag}", esc(&rt.org.id));
        }
        out.push_str(&lag_lines);
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
