//! Reports over HTTP: every bucket and metric aggregation checked against numbers computed here,
//! independently, from the orders the test creates (calendar arithmetic by chrono, not by the
//! service); Elasticsearch's answer shape (epoch-ms keys with key_as_string, empty buckets only
//! between the first and last non-empty one, range keys and bounds); reports over saved searches;
//! and every error naming the offending part of the request.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_KEY as A};

struct Sale {
    id: &'static str,
    customer: &'static str,
    total: Option<f64>,
    qty: i64,
    placed: Option<&'static str>,
    status: &'static str,
    region: &'static str,
    source: &'static str,
}

#[rustfmt::skip]
fn orders() -> Vec<Sale> {
    let o = |id, customer, total, qty, placed, status, region, source| Sale { id, customer, total, qty, placed, status, region, source };
    vec![
        o("r01", "k1", Some(120.0), 1, Some("2025-01-05T08:00:00Z"), "Placed", "North", "Web"),
        o("r02", "k1", Some(80.5), 2, Some("2025-01-05T15:30:00Z"), "Returned", "South", "Store"),
        o("r03", "k1", Some(250.0), 3, Some("2025-01-20T10:00:00Z"), "Placed", "North", "Web"),
        o("r04", "k1", Some(40.0), 1, Some("2025-01-31T23:59:59Z"), "Placed", "East", "Phone"),
        o("r05", "k1", Some(300.0), 2, Some("2025-03-01T00:00:00Z"), "Placed", "South", "Web"),
        o("r06", "k2", Some(15.25), 1, Some("2025-03-03T06:00:00Z"), "Returned", "North", "Store"),
        o("r07", "k2", Some(99.99), 4, Some("2025-03-03T11:59:59Z"), "Placed", "North", "Web"),
        o("r08", "k2", Some(100.0), 1, Some("2025-03-03T12:00:00Z"), "Placed", "East", "Web"),
        o("r09", "k2", Some(500.0), 5, Some("2025-03-04T18:00:00Z"), "Cancelled", "South", "Phone"),
        o("r10", "k2", Some(60.0), 2, Some("2025-03-31T12:00:00Z"), "Placed", "West", "Store"),
        o("r11", "k3", Some(220.0), 3, Some("2025-04-01T00:00:00Z"), "Placed", "North", "Web"),
        o("r12", "k3", Some(75.0), 1, Some("2025-04-15T09:00:00Z"), "Returned", "West", "Web"),
        o("r13", "k3", Some(180.0), 2, Some("2025-04-30T23:00:00Z"), "PLACED", "East", "Store"),
        o("r14", "k3", None, 1, Some("2025-04-10T10:00:00Z"), "Placed", "South", "Phone"),
        o("r15", "k3", None, 1, None, "Placed", "NORTH", "Web"),
    ]
}

async fn fixture(t: &TestApp) {
    t.post("/v1/klasses", A, json!({"name": "order", "attributes": [
        {"name": "totalNum", "type": "number"}, {"name": "qtyInt", "type": "integer"}, {"name": "placedAt", "type": "date"},
        {"name": "statusStr", "type": "string"}, {"name": "regionStr", "type": "string"},
        {"name": "sourceEnum", "type": "enum", "values": ["Web", "Store", "Phone"]}, {"name": "noteTxt", "type": "text"}]}))
        .await
        .expect(201);
    for (id, tier) in [("k1", "gold"), ("k2", "silver"), ("k3", "gold"), ("k4", "bronze")] {
        t.create(A, "customer", json!({"id": id, "custom": {"tierStr": tier}}))
            .await;
    }
    for o in orders() {
        let mut custom = json!({"qtyInt": o.qty, "statusStr": o.status, "regionStr": o.region, "sourceEnum": o.source, "noteTxt": "left at the door"});
        if let Some(v) = o.total {
            custom["totalNum"] = json!(v);
        }
        if let Some(p) = o.placed {
            custom["placedAt"] = json!(p);
        }
        let created = o.placed.unwrap_or("2025-05-01T00:00:00Z");
        t.create(
            A,
            "order",
            json!({"id": o.id, "customer": o.customer, "createdAt": created, "custom": custom}),
        )
        .await;
    }
}

async fn report(t: &TestApp, body: Value) -> Value {
    let r = t.post("/v1/reports", A, body.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{body}: {}", r.text);
    r.body
}

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn day_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
}

/// Start of the calendar unit holding `t` (weeks start on Monday, as in Elasticsearch).
fn cal_floor(t: i64, unit: &str) -> i64 {
    let d = DateTime::<Utc>::from_timestamp_millis(t).unwrap().date_naive();
    let start = match unit {
        "day" => d,
        "week" => d - chrono::Duration::days(d.weekday().num_days_from_monday() as i64),
        "month" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap(),
        "quarter" => NaiveDate::from_ymd_opt(d.year(), (d.month() - 1) / 3 * 3 + 1, 1).unwrap(),
        "year" => NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap(),
        u => panic!("{u}"),
    };
    day_ms(start)
}

fn cal_next(t: i64, unit: &str) -> i64 {
    let d = DateTime::<Utc>::from_timestamp_millis(t).unwrap().date_naive();
    let next = match unit {
        "day" => d + chrono::Duration::days(1),
        "week" => d + chrono::Duration::days(7),
        "month" => d.checked_add_months(Months::new(1)).unwrap(),
        "quarter" => d.checked_add_months(Months::new(3)).unwrap(),
        "year" => d.checked_add_months(Months::new(12)).unwrap(),
        u => panic!("{u}"),
    };
    day_ms(next)
}

/// (key, doc_count, sum of totals) from the first non-empty bucket to the last, empty ones between.
fn expected_calendar(subset: &[&Sale], unit: &str) -> Vec<(i64, u64, f64)> {
    let mut m: BTreeMap<i64, (u64, f64)> = BTreeMap::new();
    for o in subset {
        if let Some(p) = o.placed {
            let e = m.entry(cal_floor(ms(p), unit)).or_default();
            e.0 += 1;
            e.1 += o.total.unwrap_or(0.0);
        }
    }
    let (Some(first), Some(last)) = (m.keys().next().copied(), m.keys().last().copied()) else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut k = first;
    while k <= last {
        let (n, s) = m.get(&k).copied().unwrap_or_default();
        out.push((k, n, s));
        k = cal_next(k, unit);
    }
    out
}

/// (key, doc_count) of a fixed-width histogram from the first non-empty bucket to the last.
fn expected_fixed(values: &[f64], interval: f64) -> Vec<(f64, u64)> {
    let mut m: BTreeMap<i64, u64> = BTreeMap::new();
    for v in values {
        *m.entry((v / interval).floor() as i64).or_default() += 1;
    }
    let (Some(first), Some(last)) = (m.keys().next().copied(), m.keys().last().copied()) else {
        return vec![];
    };
    (first..=last)
        .map(|i| (i as f64 * interval, m.get(&i).copied().unwrap_or(0)))
        .collect()
}

fn buckets(v: &Value) -> &Vec<Value> {
    v["buckets"].as_array().unwrap_or_else(|| panic!("no buckets: {v}"))
}

#[track_caller]
fn close(got: &Value, want: f64, what: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (g - want).abs() < 1e-6 * want.abs().max(1.0),
        "{what}: got {g}, want {want}"
    );
}

fn all() -> Vec<Sale> {
    orders()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_by_terms_count_what_the_data_holds() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let r = report(&t, json!({"queryContext": "order", "aggs": {
        "by_status": {"terms": {"field": "custom.statusStr"}, "aggs": {"by_region": {"terms": {"field": "custom.regionStr"}}}}}}))
    .await;
    assert_eq!(r["total"], 15);
    // String values are indexed lowercased, so "PLACED" and "Placed" (and "NORTH", "North") are one key.
    let mut want: BTreeMap<String, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for o in all() {
        let e = want.entry(o.status.to_lowercase()).or_default();
        e.0 += 1;
        *e.1.entry(o.region.to_lowercase()).or_default() += 1;
    }
    let mut got: BTreeMap<String, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let bs = buckets(&r["aggs"]["by_status"]);
    for b in bs {
        let inner = buckets(&b["by_region"]);
        let counts: Vec<u64> = inner.iter().map(|x| x["doc_count"].as_u64().unwrap()).collect();
        assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "terms buckets by doc_count desc: {b}"
        );
        let sub = inner
            .iter()
            .map(|x| (x["key"].as_str().unwrap().to_string(), x["doc_count"].as_u64().unwrap()))
            .collect();
        got.insert(
            b["key"].as_str().unwrap().to_string(),
            (b["doc_count"].as_u64().unwrap(), sub),
        );
    }
    assert_eq!(got, want);
    let counts: Vec<u64> = bs.iter().map(|x| x["doc_count"].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{r}");
    assert_eq!(bs[0]["key"], "placed");
    assert_eq!(bs[0]["doc_count"], 11);

    // Enum values keep their case; `size` keeps the largest buckets.
    let r = report(&t, json!({"queryContext": "order", "aggs": {"src": {"terms": {"field": "custom.sourceEnum"}}, "top2": {"terms": {"field": "custom.sourceEnum", "size": 2}}}})).await;
    let got: Vec<(String, u64)> = buckets(&r["aggs"]["src"])
        .iter()
        .map(|b| (b["key"].as_str().unwrap().to_string(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Web".to_string(), 8),
            ("Store".to_string(), 4),
            ("Phone".to_string(), 3)
        ]
    );
    let got: Vec<(String, u64)> = buckets(&r["aggs"]["top2"])
        .iter()
        .map(|b| (b["key"].as_str().unwrap().to_string(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, vec![("Web".to_string(), 8), ("Store".to_string(), 4)]);

    // With a filter, the buckets count only the matches; an analyst may run reports.
    let analyst = t.user_key(A, "ana", "analyst", &[]).await;
    let r = t
        .post("/v1/reports", &analyst, json!({"queryContext": "order", "and": [{"custom.statusStr": {"equals": "placed"}}], "not": [{"custom.regionStr": {"equals": "north"}}],
            "aggs": {"by_region": {"terms": {"field": "custom.regionStr"}, "aggs": {"avg_total": {"avg": {"field": "custom.totalNum"}}}}}}))
        .await
        .expect(200);
    let subset: Vec<Sale> = all()
        .into_iter()
        .filter(|o| o.status.eq_ignore_ascii_case("placed") && !o.region.eq_ignore_ascii_case("north"))
        .collect();
    assert_eq!(r["total"], subset.len());
    for b in buckets(&r["aggs"]["by_region"]) {
        let key = b["key"].as_str().unwrap();
        let mine: Vec<&Sale> = subset.iter().filter(|o| o.region.to_lowercase() == key).collect();
        assert_eq!(b["doc_count"], mine.len(), "{key}");
        let totals: Vec<f64> = mine.iter().filter_map(|o| o.total).collect();
        if totals.is_empty() {
            assert_eq!(b["avg_total"]["value"], Value::Null, "{key}");
        } else {
            close(
                &b["avg_total"]["value"],
                totals.iter().sum::<f64>() / totals.len() as f64,
                key,
            );
        }
    }
    assert_eq!(buckets(&r["aggs"]["by_region"]).len(), 3, "east, south, west: {r}");

    // Over customers, through related orders.
    let r = report(&t, json!({"queryContext": "customer", "and": [{"order.custom.totalNum": {"gte": 200}}], "aggs": {"tier": {"terms": {"field": "custom.tierStr"}}}})).await;
    assert_eq!(r["total"], 3);
    assert_eq!(
        r["aggs"]["tier"]["buckets"],
        json!([{"key": "gold", "doc_count": 2}, {"key": "silver", "doc_count": 1}])
    );
    // No aggs: just the total.
    let r = report(
        &t,
        json!({"queryContext": "order", "and": [{"custom.sourceEnum": {"equals": "Phone"}}]}),
    )
    .await;
    assert_eq!(r["total"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_histogram_has_an_empty_middle_month_and_no_empty_edges() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let aggs = json!({"by_month": {"date_histogram": {"field": "custom.placedAt", "calendar_interval": "month"}, "aggs": {"revenue": {"sum": {"field": "custom.totalNum"}}}}});
    let data = all();
    let check = |r: &Value, subset: Vec<&Sale>, what: &str| {
        let want = expected_calendar(&subset, "month");
        let got = buckets(&r["aggs"]["by_month"]);
        assert_eq!(got.len(), want.len(), "{what}: {r}");
        for (b, (key, n, sum)) in got.iter().zip(&want) {
            assert_eq!(b["key"], *key, "{what}: {b}");
            assert_eq!(b["key_as_string"], iso(*key), "{what}: {b}");
            assert_eq!(b["doc_count"], *n, "{what}: {b}");
            close(&b["revenue"]["value"], *sum, what);
        }
    };
    let r = report(&t, json!({"queryContext": "order", "aggs": aggs})).await;
    // The independent computation agrees with the eye: Jan, an empty Feb, Mar, Apr.
    let want = expected_calendar(&data.iter().collect::<Vec<_>>(), "month");
    let summary: Vec<(String, u64)> = want.iter().map(|(k, n, _)| (iso(*k), *n)).collect();
    assert_eq!(
        summary,
        vec![
            ("2025-01-01T00:00:00.000Z".to_string(), 4),
            ("2025-02-01T00:00:00.000Z".to_string(), 0),
            ("2025-03-01T00:00:00.000Z".to_string(), 6),
            ("2025-04-01T00:00:00.000Z".to_string(), 4)
        ]
    );
    assert_eq!(r["total"], 15, "r15 has no placedAt: counted in total, in no bucket");
    check(&r, data.iter().collect(), "all");
    assert_eq!(
        r["aggs"]["by_month"]["buckets"][1]["revenue"]["value"].as_f64(),
        Some(0.0),
        "an empty month sums to 0: {r}"
    );
    assert_eq!(r["aggs"]["by_month"]["buckets"][0]["key"], 1_735_689_600_000i64);

    // A filter bounding the date far wider than the data: still no empty edges.
    let r = report(&t, json!({"queryContext": "order", "and": [{"custom.placedAt": {"between": ["2024-11-01", "2025-07-31"]}}], "aggs": aggs})).await;
    check(
        &r,
        data.iter().filter(|o| o.placed.is_some()).collect(),
        "between 2024-11 and 2025-07",
    );
    let r = report(&t, json!({"queryContext": "order", "and": [{"custom.placedAt": {"gte": "2025-02-10"}}, {"custom.placedAt": {"lte": "2025-12-31"}}], "aggs": aggs})).await;
    check(
        &r,
        data.iter()
            .filter(|o| o.placed.is_some_and(|p| p >= "2025-02-10"))
            .collect(),
        "from 2025-02-10",
    );
    let r = report(&t, json!({"queryContext": "order", "and": [{"custom.placedAt": {"between": ["2025-01-10", "2025-03-02T23:59:59Z"]}}], "aggs": aggs})).await;
    check(
        &r,
        data.iter()
            .filter(|o| o.placed.is_some_and(|p| ("2025-01-10".."2025-03-03").contains(&p)))
            .collect(),
        "2025-01-10..2025-03-02",
    );
    // Per region: East has an empty February between Jan and Mar; West starts in March.
    for region in ["east", "west", "north", "south"] {
        let r = report(
            &t,
            json!({"queryContext": "order", "and": [{"custom.regionStr": {"equals": region}}], "aggs": aggs}),
        )
        .await;
        check(
            &r,
            data.iter().filter(|o| o.region.eq_ignore_ascii_case(region)).collect(),
            region,
        );
    }
    // Nested under terms, each bucket gets its own first and last month.
    let r = report(
        &t,
        json!({"queryContext": "order", "aggs": {"by_region": {"terms": {"field": "custom.regionStr"}, "aggs": aggs}}}),
    )
    .await;
    for b in buckets(&r["aggs"]["by_region"]) {
        let key = b["key"].as_str().unwrap().to_string();
        let sub = json!({"aggs": {"by_month": b["by_month"].clone()}});
        check(
            &sub,
            data.iter().filter(|o| o.region.to_lowercase() == key).collect(),
            &format!("nested {key}"),
        );
    }
    // Nothing matches: no buckets at all.
    let r = report(
        &t,
        json!({"queryContext": "order", "and": [{"id": {"equals": "none"}}], "aggs": aggs}),
    )
    .await;
    assert_eq!(r["total"], 0);
    assert_eq!(r["aggs"]["by_month"]["buckets"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_calendar_interval_buckets_like_elasticsearch() {
    let t = TestApp::new().await;
    fixture(&t).await;
    for unit in ["day", "week", "month", "quarter", "year"] {
        for (field, placed_only) in [("custom.placedAt", true), ("createdAt", false)] {
            let r = report(&t, json!({"queryContext": "order", "aggs": {"h": {"date_histogram": {"field": field, "calendar_interval": unit}, "aggs": {"s": {"sum": {"field": "custom.totalNum"}}}}}})).await;
            // createdAt is placedAt, or 2025-05-01 for the order without one.
            let subset: Vec<Sale> = orders()
                .into_iter()
                .map(|mut o| {
                    if !placed_only && o.placed.is_none() {
                        o.placed = Some("2025-05-01T00:00:00Z");
                    }
                    o
                })
                .collect();
            let want = expected_calendar(&subset.iter().collect::<Vec<_>>(), unit);
            let got: Vec<(i64, String, u64)> = buckets(&r["aggs"]["h"])
                .iter()
                .map(|b| {
                    (
                        b["key"]
                            .as_i64()
                            .unwrap_or_else(|| panic!("{unit} {field}: integer key: {b}")),
                        b["key_as_string"].as_str().unwrap().to_string(),
                        b["doc_count"].as_u64().unwrap(),
                    )
                })
                .collect();
            let want_keys: Vec<(i64, String, u64)> = want.iter().map(|(k, n, _)| (*k, iso(*k), *n)).collect();
            assert_eq!(got, want_keys, "{unit} on {field}");
            for (b, (_, _, s)) in buckets(&r["aggs"]["h"]).iter().zip(&want) {
                close(&b["s"]["value"], *s, &format!("{unit} on {field}"));
            }
        }
    }
    // Spot checks of the independent arithmetic: weeks start on Monday (2025-01-05 is a Sunday).
    assert_eq!(
        iso(cal_floor(ms("2025-01-05T08:00:00Z"), "week")),
        "2024-12-30T00:00:00.000Z"
    );
    assert_eq!(
        iso(cal_floor(ms("2025-04-30T23:00:00Z"), "quarter")),
        "2025-04-01T00:00:00.000Z"
    );
    // `1M`-style names are Elasticsearch's too.
    let r = report(&t, json!({"queryContext": "order", "aggs": {"h": {"date_histogram": {"field": "custom.placedAt", "calendar_interval": "1M"}}}})).await;
    assert_eq!(buckets(&r["aggs"]["h"]).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_intervals_and_numeric_histograms_bucket_from_first_to_last_value() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let data = all();
    let placed: Vec<f64> = data.iter().filter_map(|o| o.placed).map(|p| ms(p) as f64).collect();
    for (interval, width) in [
        ("12h", 43_200_000.0),
        ("1d", 86_400_000.0),
        ("7d", 7.0 * 86_400_000.0),
        ("90m", 5_400_000.0),
    ] {
        let r = report(&t, json!({"queryContext": "order", "aggs": {"h": {"date_histogram": {"field": "custom.placedAt", "fixed_interval": interval}}}})).await;
        let want = expected_fixed(&placed, width);
        let got: Vec<(i64, String, u64)> = buckets(&r["aggs"]["h"])
            .iter()
            .map(|b| {
                (
                    b["key"]
                        .as_i64()
                        .unwrap_or_else(|| panic!("{interval}: integer key: {b}")),
                    b["key_as_string"].as_str().unwrap().to_string(),
                    b["doc_count"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, String, u64)> = want.iter().map(|(k, n)| (*k as i64, iso(*k as i64), *n)).collect();
        assert_eq!(got, want, "fixed_interval {interval}");
    }
    // A narrow window by hand: 03-03 06:00 and 11:59:59 share a bucket, 12:00 starts the next, one
    // empty bucket, then 03-04 18:00.
    let r = report(&t, json!({"queryContext": "order", "and": [{"custom.placedAt": {"between": ["2025-03-03", "2025-03-04T23:59:59Z"]}}],
        "aggs": {"h": {"date_histogram": {"field": "custom.placedAt", "fixed_interval": "12h"}, "aggs": {"q": {"sum": {"field": "custom.qtyInt"}}}}}}))
    .await;
    let got: Vec<(String, u64, f64)> = buckets(&r["aggs"]["h"])
        .iter()
        .map(|b| {
            (
                b["key_as_string"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
                b["q"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("2025-03-03T00:00:00.000Z".to_string(), 2, 5.0),
            ("2025-03-03T12:00:00.000Z".to_string(), 1, 1.0),
            ("2025-03-04T00:00:00.000Z".to_string(), 0, 0.0),
            ("2025-03-04T12:00:00.000Z".to_string(), 1, 5.0)
        ]
    );

    // Numeric histograms.
    let totals: Vec<f64> = data.iter().filter_map(|o| o.total).collect();
    let qtys: Vec<f64> = data.iter().map(|o| o.qty as f64).collect();
    for (field, values, interval) in [
        ("custom.totalNum", &totals, 100.0),
        ("custom.totalNum", &totals, 50.0),
        ("custom.totalNum", &totals, 7.5),
        ("custom.qtyInt", &qtys, 2.0),
    ] {
        let r = report(
            &t,
            json!({"queryContext": "order", "aggs": {"h": {"histogram": {"field": field, "interval": interval}}}}),
        )
        .await;
        let got: Vec<(f64, u64)> = buckets(&r["aggs"]["h"])
            .iter()
            .map(|b| (b["key"].as_f64().unwrap(), b["doc_count"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, expected_fixed(values, interval), "{field} every {interval}");
    }
    let r = report(
        &t,
        json!({"queryContext": "order", "aggs": {"h": {"histogram": {"field": "custom.totalNum", "interval": 100}}}}),
    )
    .await;
    let got: Vec<(f64, u64)> = buckets(&r["aggs"]["h"])
        .iter()
        .map(|b| (b["key"].as_f64().unwrap(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![(0.0, 6), (100.0, 3), (200.0, 2), (300.0, 1), (400.0, 0), (500.0, 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_on_numbers_and_dates_carry_keys_and_bounds() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let data = all();
    let r = report(&t, json!({"queryContext": "order", "aggs": {"r": {"range": {"field": "custom.totalNum", "ranges": [{"to": 100}, {"from": 100, "to": 250}, {"from": 250}]},
        "aggs": {"s": {"sum": {"field": "custom.totalNum"}}}}}}))
    .await;
    let bs = buckets(&r["aggs"]["r"]);
    assert_eq!(bs.len(), 3, "{r}");
    let in_range = |lo: Option<f64>, hi: Option<f64>| -> Vec<f64> {
        data.iter()
            .filter_map(|o| o.total)
            .filter(|v| lo.is_none_or(|l| *v >= l) && hi.is_none_or(|h| *v < h))
            .collect()
    };
    let bounds = [(None, Some(100.0)), (Some(100.0), Some(250.0)), (Some(250.0), None)];
    for (b, (lo, hi)) in bs.iter().zip(bounds) {
        let vals = in_range(lo, hi);
        assert_eq!(b["doc_count"], vals.len(), "{b}");
        close(&b["s"]["value"], vals.iter().sum(), "range sum");
        match lo {
            Some(l) => close(&b["from"], l, "from"),
            None => assert!(b.get("from").is_none_or(Value::is_null), "{b}"),
        }
        match hi {
            Some(h) => close(&b["to"], h, "to"),
            None => assert!(b.get("to").is_none_or(Value::is_null), "{b}"),
        }
        let key = b["key"].as_str().unwrap_or_else(|| panic!("a string key: {b}"));
        let (k_lo, k_hi) = key.split_once('-').unwrap_or_else(|| panic!("key `from-to`: {key}"));
        let side = |s: &str, v: Option<f64>| match v {
            None => s == "*",
            Some(v) => s.parse::<f64>().ok() == Some(v),
        };
        assert!(side(k_lo, lo) && side(k_hi, hi), "key {key} for {lo:?}..{hi:?}");
    }
    assert_eq!(
        bs.iter().map(|b| b["doc_count"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![6, 4, 3]
    );

    // Dates given as strings; bounds come back as epoch ms with their RFC 3339 form.
    let r = report(
        &t,
        json!({"queryContext": "order", "aggs": {"r": {"range": {"field": "custom.placedAt", "ranges": [
        {"to": "2025-02-01"}, {"from": "2025-02-01", "to": "2025-04-01T00:00:00Z"}, {"from": "2025-04-01"}]}}}}),
    )
    .await;
    let bs = buckets(&r["aggs"]["r"]);
    let edges = [None, Some("2025-02-01T00:00:00Z"), Some("2025-04-01T00:00:00Z"), None];
    for (i, b) in bs.iter().enumerate() {
        let (lo, hi) = (edges[i].map(ms), edges[i + 1].map(ms));
        let n = data
            .iter()
            .filter_map(|o| o.placed)
            .map(ms)
            .filter(|v| lo.is_none_or(|l| *v >= l) && hi.is_none_or(|h| *v < h))
            .count();
        assert_eq!(b["doc_count"], n, "{b}");
        if let Some(l) = lo {
            close(&b["from"], l as f64, "from");
            assert_eq!(b["from_as_string"], iso(l), "{b}");
        }
        if let Some(h) = hi {
            close(&b["to"], h as f64, "to");
            assert_eq!(b["to_as_string"], iso(h), "{b}");
        }
        assert!(b["key"].is_string(), "{b}");
    }
    assert_eq!(
        bs.iter().map(|b| b["doc_count"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![4, 6, 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_data() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let data = all();
    let totals: Vec<f64> = data.iter().filter_map(|o| o.total).collect();
    let qty: Vec<f64> = data.iter().map(|o| o.qty as f64).collect();
    let r = report(
        &t,
        json!({"queryContext": "order", "aggs": {
            "st": {"stats": {"field": "custom.totalNum"}},
            "sum": {"sum": {"field": "custom.totalNum"}},
            "avg": {"avg": {"field": "custom.totalNum"}},
            "min": {"min": {"field": "custom.totalNum"}},
            "max": {"max": {"field": "custom.totalNum"}},
            "n": {"value_count": {"field": "custom.totalNum"}},
            "qsum": {"sum": {"field": "custom.qtyInt"}},
            "qavg": {"avg": {"field": "custom.qtyInt"}},
            "regions": {"cardinality": {"field": "custom.regionStr"}},
            "statuses": {"cardinality": {"field": "custom.statusStr"}},
            "sources": {"cardinality": {"field": "custom.sourceEnum"}},
            "first": {"min": {"field": "custom.placedAt"}},
            "last": {"max": {"field": "createdAt"}},
            "p": {"percentiles": {"field": "custom.totalNum", "percents": [50]}}
        }}),
    )
    .await;
    let a = &r["aggs"];
    let sum: f64 = totals.iter().sum();
    let min = totals.iter().copied().fold(f64::MAX, f64::min);
    let max = totals.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(a["st"]["count"], totals.len());
    assert_eq!(totals.len(), 13);
    close(&a["st"]["sum"], sum, "stats.sum");
    close(&a["st"]["min"], min, "stats.min");
    close(&a["st"]["max"], max, "stats.max");
    close(&a["st"]["avg"], sum / 13.0, "stats.avg");
    close(&a["sum"]["value"], sum, "sum");
    close(&a["avg"]["value"], sum / 13.0, "avg");
    close(&a["min"]["value"], 15.25, "min");
    close(&a["max"]["value"], 500.0, "max");
    close(&a["n"]["value"], 13.0, "value_count");
    close(&a["qsum"]["value"], qty.iter().sum(), "sum of qty");
    close(&a["qavg"]["value"], qty.iter().sum::<f64>() / 15.0, "avg of qty");
    close(
        &a["regions"]["value"],
        4.0,
        "regions: north, south, east, west (NORTH is north)",
    );
    close(&a["statuses"]["value"], 3.0, "statuses: placed, returned, cancelled");
    close(&a["sources"]["value"], 3.0, "sources");
    close(
        &a["first"]["value"],
        ms("2025-01-05T08:00:00Z") as f64,
        "first placedAt",
    );
    assert_eq!(a["first"]["value_as_string"], "2025-01-05T08:00:00.000Z");
    close(&a["last"]["value"], ms("2025-05-01T00:00:00Z") as f64, "last createdAt");
    // The median of the 13 totals is the 7th: 100 (percentiles are approximate: within 2%).
    let mut sorted = totals.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sorted[6], 100.0);
    let values = a["p"]["values"]
        .as_object()
        .unwrap_or_else(|| panic!("percentiles values: {r}"));
    assert_eq!(values.keys().collect::<Vec<_>>(), vec!["50.0"], "{r}");
    let p50 = values["50.0"].as_f64().unwrap();
    assert!((p50 - 100.0).abs() <= 2.0, "p50 {p50}");

    // With a filter, and inside buckets.
    let r = report(&t, json!({"queryContext": "order", "and": [{"custom.sourceEnum": {"equals": "Web"}}], "aggs": {
        "by_status": {"terms": {"field": "custom.statusStr"}, "aggs": {"st": {"stats": {"field": "custom.totalNum"}}, "q": {"max": {"field": "custom.qtyInt"}}}}}}))
    .await;
    let web: Vec<&Sale> = data.iter().filter(|o| o.source == "Web").collect();
    assert_eq!(r["total"], web.len());
    for b in buckets(&r["aggs"]["by_status"]) {
        let key = b["key"].as_str().unwrap();
        let mine: Vec<&&Sale> = web.iter().filter(|o| o.status.to_lowercase() == key).collect();
        let ts: Vec<f64> = mine.iter().filter_map(|o| o.total).collect();
        assert_eq!(b["doc_count"], mine.len(), "{key}");
        assert_eq!(b["st"]["count"], ts.len(), "{key}");
        close(&b["st"]["sum"], ts.iter().sum(), key);
        close(&b["q"]["value"], mine.iter().map(|o| o.qty).max().unwrap() as f64, key);
    }
    // Nothing matches: counts and sums are 0, the others null, as in Elasticsearch.
    let r = report(&t, json!({"queryContext": "order", "and": [{"id": {"equals": "none"}}], "aggs": {
        "st": {"stats": {"field": "custom.totalNum"}}, "s": {"sum": {"field": "custom.totalNum"}}, "a": {"avg": {"field": "custom.totalNum"}},
        "m": {"min": {"field": "custom.totalNum"}}, "n": {"value_count": {"field": "custom.totalNum"}}}}))
    .await;
    assert_eq!(r["total"], 0);
    assert_eq!(r["aggs"]["st"]["count"], 0);
    assert_eq!(r["aggs"]["st"]["min"], Value::Null);
    assert_eq!(r["aggs"]["s"]["value"].as_f64(), Some(0.0), "{r}");
    assert_eq!(r["aggs"]["a"]["value"], Value::Null, "{r}");
    assert_eq!(r["aggs"]["m"]["value"], Value::Null, "{r}");
    assert_eq!(r["aggs"]["n"]["value"].as_f64(), Some(0.0), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_a_saved_search_uses_its_filter_and_visibility() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let olive = t.user_key(A, "olive", "agent", &[]).await;
    let sam = t.user_key(A, "sam", "analyst", &[]).await;
    let query =
        json!({"queryContext": "order", "and": [{"custom.statusStr": {"equals": "placed"}}], "sort": [{"id": "asc"}]});
    t.post(
        "/v1/saved-searches",
        &olive,
        json!({"id": "placed", "name": "Placed", "query": query}),
    )
    .await
    .expect(201);
    let aggs = json!({"by_region": {"terms": {"field": "custom.regionStr"}}, "revenue": {"sum": {"field": "custom.totalNum"}}});
    let via_saved = t
        .post("/v1/reports", &olive, json!({"savedSearch": "placed", "aggs": aggs}))
        .await
        .expect(200);
    let inline = t
        .post(
            "/v1/reports",
            &olive,
            json!({"queryContext": "order", "and": [{"custom.statusStr": {"equals": "placed"}}], "aggs": aggs}),
        )
        .await
        .expect(200);
    assert_eq!(via_saved, inline);
    let placed: Vec<Sale> = all()
        .into_iter()
        .filter(|o| o.status.eq_ignore_ascii_case("placed"))
        .collect();
    assert_eq!(via_saved["total"], placed.len());
    close(
        &via_saved["aggs"]["revenue"]["value"],
        placed.iter().filter_map(|o| o.total).sum(),
        "revenue",
    );
    let count = t.get("/v1/saved-searches/placed/count", &olive).await.expect(200);
    assert_eq!(count["total"], via_saved["total"]);
    // Not visible to sam: 404, as everywhere; the admin may.
    let r = t
        .post("/v1/reports", &sam, json!({"savedSearch": "placed", "aggs": aggs}))
        .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(
        t.post("/v1/reports", A, json!({"savedSearch": "placed", "aggs": aggs}))
            .await
            .expect(200),
        inline
    );
    // Shared with sam: now it runs for sam too, and follows changes to the saved query.
    t.patch(
        "/v1/saved-searches/placed",
        &olive,
        json!({"visibility": "shared", "users": ["sam"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        t.post("/v1/reports", &sam, json!({"savedSearch": "placed", "aggs": aggs}))
            .await
            .expect(200),
        inline
    );
    t.patch(
        "/v1/saved-searches/placed",
        &olive,
        json!({"query": {"queryContext": "order", "and": [{"custom.regionStr": {"equals": "west"}}]}}),
    )
    .await
    .expect(200);
    let r = t
        .post("/v1/reports", &sam, json!({"savedSearch": "placed", "aggs": aggs}))
        .await
        .expect(200);
    assert_eq!(r["total"], 2);
    assert_eq!(
        r["aggs"]["by_region"]["buckets"],
        json!([{"key": "west", "doc_count": 2}])
    );
    // Either a saved search or filter keys; an unknown one is a 404.
    let r = t
        .post(
            "/v1/reports",
            &olive,
            json!({"savedSearch": "placed", "queryContext": "order", "aggs": aggs}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.pointer(), Some("/savedSearch"));
    let r = t
        .post(
            "/v1/reports",
            &olive,
            json!({"savedSearch": "placed", "and": [{"custom.regionStr": {"equals": "east"}}], "aggs": aggs}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    let r = t
        .post("/v1/reports", &olive, json!({"savedSearch": "nope", "aggs": aggs}))
        .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    // A report over a saved customer search, with relative dates against the saved `now`.
    t.post("/v1/saved-searches", &olive, json!({"id": "recent", "name": "Recent buyers", "query": {"queryContext": "customer", "now": "2025-04-20T00:00:00Z",
        "and": [{"has": {"klass": "order", "and": [{"custom.placedAt": {"within_last": "30d"}}]}}]}}))
        .await
        .expect(201);
    let r = t
        .post(
            "/v1/reports",
            &olive,
            json!({"savedSearch": "recent", "aggs": {"tier": {"terms": {"field": "custom.tierStr"}}}}),
        )
        .await
        .expect(200);
    // Orders placed 2025-03-21..2025-04-20: r10 (k2), r11, r12, r14 (k3).
    assert_eq!(r["total"], 2);
    assert_eq!(
        r["aggs"]["tier"]["buckets"],
        json!([{"key": "gold", "doc_count": 1}, {"key": "silver", "doc_count": 1}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_errors_are_400s_pointing_at_the_aggregation() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let pd = "custom.placedAt";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"x": {"terms": {"field": "custom.nope"}}}), "/aggs/x/terms/field"),
        (json!({"x": {"terms": {"field": "nope"}}}), "/aggs/x/terms/field"),
        (
            json!({"x": {"terms": {"field": "custom.noteTxt"}}}),
            "/aggs/x/terms/field",
        ),
        (json!({"x": {"avg": {"field": "custom.noteTxt"}}}), "/aggs/x/avg/field"),
        (
            json!({"x": {"cardinality": {"field": "custom.noteTxt"}}}),
            "/aggs/x/cardinality/field",
        ),
        (json!({"x": {"terms": {}}}), "/aggs/x/terms/field"),
        (
            json!({"x": {"terms": {"field": "custom.regionStr", "size": 0}}}),
            "/aggs/x/terms/size",
        ),
        (
            json!({"x": {"terms": {"field": "custom.regionStr", "size": 10001}}}),
            "/aggs/x/terms/size",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd, "calendar_interval": "fortnight"}}}),
            "/aggs/h/date_histogram/calendar_interval",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd, "calendar_interval": "2M"}}}),
            "/aggs/h/date_histogram/calendar_interval",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd, "fixed_interval": "soon"}}}),
            "/aggs/h/date_histogram/fixed_interval",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd, "fixed_interval": "0h"}}}),
            "/aggs/h/date_histogram/fixed_interval",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd}}}),
            "/aggs/h/date_histogram",
        ),
        (
            json!({"h": {"date_histogram": {"field": pd, "calendar_interval": "month", "fixed_interval": "1d"}}}),
            "/aggs/h/date_histogram",
        ),
        (
            json!({"h": {"date_histogram": {"field": "custom.totalNum", "calendar_interval": "month"}}}),
            "/aggs/h/date_histogram/field",
        ),
        (
            json!({"h": {"histogram": {"field": "custom.totalNum", "interval": 0}}}),
            "/aggs/h/histogram/interval",
        ),
        (
            json!({"h": {"histogram": {"field": "custom.totalNum", "interval": -5}}}),
            "/aggs/h/histogram/interval",
        ),
        (
            json!({"h": {"histogram": {"field": "custom.totalNum"}}}),
            "/aggs/h/histogram/interval",
        ),
        (
            json!({"h": {"histogram": {"field": "custom.statusStr", "interval": 10}}}),
            "/aggs/h/histogram/field",
        ),
        (
            json!({"r": {"range": {"field": "custom.totalNum", "ranges": []}}}),
            "/aggs/r/range/ranges",
        ),
        (
            json!({"r": {"range": {"field": "custom.totalNum"}}}),
            "/aggs/r/range/ranges",
        ),
        (
            json!({"r": {"range": {"field": pd, "ranges": [{"to": "2025-01-01"}, {"from": "someday"}]}}}),
            "/aggs/r/range/ranges/1/from",
        ),
        (
            json!({"r": {"range": {"field": "custom.totalNum", "ranges": [{"from": "ten"}]}}}),
            "/aggs/r/range/ranges/0/from",
        ),
        (
            json!({"x": {"sum": {"field": "custom.statusStr"}}}),
            "/aggs/x/sum/field",
        ),
        (
            json!({"x": {"percentiles": {"field": "custom.regionStr", "percents": [50]}}}),
            "/aggs/x/percentiles/field",
        ),
        (
            json!({"x": {"percentiles": {"field": "custom.totalNum", "percents": [50, 150]}}}),
            "/aggs/x/percentiles/percents/1",
        ),
        (
            json!({"x": {"percentiles": {"field": "custom.totalNum", "percents": 50}}}),
            "/aggs/x/percentiles/percents",
        ),
        (json!({"x": {"bogus": {"field": "custom.totalNum"}}}), "/aggs/x/bogus"),
        (
            json!({"x": {"terms": {"field": "custom.regionStr"}, "avg": {"field": "custom.totalNum"}}}),
            "/aggs/x/avg",
        ),
        (
            json!({"x": {"sum": {"field": "custom.totalNum"}, "aggs": {"y": {"max": {"field": "custom.totalNum"}}}}}),
            "/aggs/x",
        ),
        (
            json!({"a": {"terms": {"field": "custom.regionStr"}, "aggs": {"b": {"avg": {"field": "custom.nope"}}}}}),
            "/aggs/a/aggs/b/avg/field",
        ),
        (
            json!({"a": {"terms": {"field": "custom.regionStr"}, "aggs": {"b": {"date_histogram": {"field": pd, "calendar_interval": "decade"}}}}}),
            "/aggs/a/aggs/b/date_histogram/calendar_interval",
        ),
        (json!({"a": 5}), "/aggs/a"),
        (json!({"a": {}}), "/aggs/a"),
        (
            json!({"a/b": {"terms": {"field": "custom.nope"}}}),
            "/aggs/a~1b/terms/field",
        ),
        (json!([]), "/aggs"),
    ];
    for (aggs, pointer) in cases {
        let r = t
            .post("/v1/reports", A, json!({"queryContext": "order", "aggs": aggs}))
            .await;
        assert_eq!(r.status.as_u16(), 400, "{aggs}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{aggs}: {}", r.text);
        assert!(
            r.body["errors"][0]["title"].as_str().is_some_and(|s| !s.is_empty()),
            "{}",
            r.text
        );
    }
    // Text fields of standard klasses: a message body or subject.
    for field in ["body", "subject"] {
        let r = t
            .post(
                "/v1/reports",
                A,
                json!({"queryContext": "message", "aggs": {"b": {"terms": {"field": field}}}}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 400, "{field}: {}", r.text);
        assert_eq!(r.pointer(), Some("/aggs/b/terms/field"), "{}", r.text);
    }
    // More than 10,000 buckets, however they come about.
    let too_many = [
        json!({"h": {"date_histogram": {"field": pd, "calendar_interval": "minute"}}}),
        json!({"h": {"date_histogram": {"field": pd, "fixed_interval": "1m"}}}),
        json!({"h": {"histogram": {"field": "custom.totalNum", "interval": 0.01}}}),
        json!({"t": {"terms": {"field": "custom.regionStr"}, "aggs": {"h": {"histogram": {"field": "custom.totalNum", "interval": 0.02}}}}}),
    ];
    for aggs in too_many {
        let r = t
            .post("/v1/reports", A, json!({"queryContext": "order", "aggs": aggs}))
            .await;
        assert_eq!(r.status.as_u16(), 400, "{aggs}: {}", r.text);
        assert!(
            r.pointer().is_some_and(|p| p.starts_with("/aggs")),
            "{aggs}: {}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["code"], "too_many_buckets", "{aggs}: {}", r.text);
        assert!(
            r.body["errors"][0]["title"].as_str().unwrap().contains("10000 buckets"),
            "{aggs}: {}",
            r.text
        );
    }
    // At the limit is fine.
    report(
        &t,
        json!({"queryContext": "order", "aggs": {"x": {"terms": {"field": "custom.regionStr", "size": 10000}}}}),
    )
    .await;
    report(
        &t,
        json!({"queryContext": "order", "aggs": {"h": {"date_histogram": {"field": pd, "calendar_interval": "hour"}}}}),
    )
    .await;
    // Filter errors point into the filter.
    let bad_filters = [
        (
            json!({"queryContext": "order", "and": [{"custom.nope": {"equals": 1}}], "aggs": {}}),
            "/and/0/custom.nope",
        ),
        (json!({"queryContext": "unicorn", "aggs": {}}), "/queryContext"),
        (
            json!({"queryContext": "order", "now": "whenever", "and": [{"custom.placedAt": {"within_last": "3d"}}]}),
            "/now",
        ),
    ];
    for (body, pointer) in bad_filters {
        let r = t.post("/v1/reports", A, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body}: {}", r.text);
    }
    let r = t
        .raw("POST", "/v1/reports", Some(A), Some(b"{\"aggs\":".to_vec()), &[])
        .await;
    assert_eq!(r.status.as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_buckets_are_exactly_the_requested_ranges() {
    let t = TestApp::new().await;
    fixture(&t).await;
    // Ranges with holes between and around them: one bucket per requested range, nothing more.
    let r = report(&t, json!({"queryContext": "order", "aggs": {"r": {"range": {"field": "custom.totalNum", "ranges": [{"from": 10, "to": 50}, {"from": 200, "to": 300}]}}}})).await;
    let got: Vec<(Option<f64>, Option<f64>, u64)> = buckets(&r["aggs"]["r"])
        .iter()
        .map(|b| (b["from"].as_f64(), b["to"].as_f64(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![(Some(10.0), Some(50.0), 2), (Some(200.0), Some(300.0), 2)],
        "15.25 and 40; 220 and 250: {r}"
    );

    // Relative dates resolve against the body's `now`.
    let r = report(
        &t,
        json!({"queryContext": "order", "now": "2025-04-20T00:00:00Z",
        "aggs": {"r": {"range": {"field": "custom.placedAt", "ranges": [{"from": "now-30d"}]}}}}),
    )
    .await;
    assert_eq!(buckets(&r["aggs"]["r"]).len(), 1, "one bucket per requested range: {r}");
    assert_eq!(
        buckets(&r["aggs"]["r"])[0]["doc_count"],
        5,
        "03-31, 04-01, 04-10, 04-15, and 04-30 (after now, but a range has no upper bound): {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_over_a_string_field_is_refused_naming_the_field() {
    let t = TestApp::new().await;
    fixture(&t).await;
    for ranges in [json!([{"to": 1}]), json!([{"from": 1, "to": 2}]), json!([{}])] {
        let body =
            json!({"queryContext": "order", "aggs": {"r": {"range": {"field": "custom.statusStr", "ranges": ranges}}}});
        let r = t.post("/v1/reports", A, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some("/aggs/r/range/field"), "{body}: {}", r.text);
    }
}
