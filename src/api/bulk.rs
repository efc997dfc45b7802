//! `POST /v1/bulk`: NDJSON in, NDJSON out, both streamed. Lines are applied in order as they
//! arrive; answers are sent in batches once the batch is durable (a batch is applied while the one
//! before it is made durable), so memory stays flat however long the body is. A batch is also
//! applied when no input has come for 20 ms, so a client that waits for answers gets them. Only a line over
//! the per-line limit is refused (413 for that line).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::error::{problem_json, ApiResult};
use super::extract::{refresh, Auth};
use super::search::stream_response;
use super::ApiState;
use crate::error::{ErrorKind, Problem};
use crate::service::bulk::LineResult;
use crate::service::objects::WAIT_FOR_TIMEOUT;

/// Lines answered per durability wait.
const BATCH: usize = 512;
/// How long lines wait for more input before they are applied and answered without a full
/// batch: a client that waits for an answer before it sends more is answered, and one that
/// streams fast still fills batches.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(20);

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/bulk", post(bulk).layer(DefaultBodyLimit::disable()))
}

async fn bulk(
    State(s): State<ApiState>,
    Auth(caller): Auth,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult<Response> {
    let wait = refresh(&q)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let limit = s.opts.bulk_line_limit;
    let app = s.app.clone();
    tokio::spawn(async move {
        let mut input = body.into_data_stream();
        let mut buf = BytesMut::new();
        let mut line_no = 0u64;
        // Lines wait here (parsed, or already answered) until a batch is full.
        let mut pending: Vec<(u64, Slot)> = Vec::with_capacity(BATCH);
        let mut skipping = false;
        let mut eof = false;
        // The previous batch's answers, sent once it is durable, while this batch is applied.
        let mut answering: Option<Answering> = None;
        while !eof {
            let next = if pending.is_empty() {
                input.next().await
            } else {
                match tokio::time::timeout(IDLE_FLUSH, input.next()).await {
                    Ok(next) => next,
                    // Nothing more for now: answer what came (`next` is cancel-safe).
                    Err(_) => {
                        if !flush(&app, &caller, &tx, &mut pending, &mut answering).await {
                            return;
                        }
                        input.next().await
                    }
                }
            };
            match next {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "bulk body read failed");
                    break;
                }
                None => eof = true,
            }
            loop {
                let newline = buf.iter().position(|b| *b == b'\n');
                let line = match (newline, eof) {
                    (Some(i), _) => buf.split_to(i + 1).freeze(),
                    (None, true) if !buf.is_empty() => buf.split().freeze(),
                    _ => {
                        if buf.len() > limit && !skipping {
                            // Too long: answer it now, drop the rest of it as it arrives.
                            line_no += 1;
                            pending.push((line_no, Slot::Answer(too_long(line_no, limit))));
                            skipping = true;
                            buf.clear();
                        } else if skipping {
                            buf.clear();
                        }
                        break;
                    }
                };
                if skipping {
                    skipping = false;
                    continue;
                }
                line_no += 1;
                let trimmed = trim(&line);
                if trimmed.is_empty() {
                    continue;
                }
                let slot = if trimmed.len() > limit {
                    Slot::Answer(too_long(line_no, limit))
                } else {
                    match serde_json::from_slice::<serde_json::Value>(trimmed) {
                        Ok(v) => Slot::Line(v),
                        Err(e) => Slot::Answer(
                            LineResult {
                                status: 400,
                                id: None,
                                errors: vec![Problem::bad_request(
                                    "malformed_json",
                                    format!("line {line_no} is not valid JSON: {e}"),
                                )],
                            }
                            .to_json(line_no, problem_json),
                        ),
                    }
                };
                pending.push((line_no, slot));
                if pending.len() >= BATCH && !flush(&app, &caller, &tx, &mut pending, &mut answering).await {
                    return;
                }
            }
        }
        if !flush(&app, &caller, &tx, &mut pending, &mut answering).await || !answered(answering).await {
            return;
        }
        if wait {
            if let Ok(rt) = app.runtime(&caller.org) {
                if let Ok(last) = app.store().last_seq(caller.org.num) {
                    if let Err(e) = rt.indexer.wait_for(last, WAIT_FOR_TIMEOUT).await {
                        tracing::warn!(error = %e, "bulk refresh=wait_for timed out");
                    }
                }
            }
        }
    });
    Ok(stream_response(rx, false))
}

fn trim(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let Some((last, rest)) = l.split_last() {
        if last.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    while let Some((first, rest)) = l.split_first() {
        if first.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    l
}

fn too_long(line: u64, limit: usize) -> serde_json::Value {
    LineResult {
        status: 413,
        id: None,
        errors: vec![Problem::new(
            ErrorKind::PayloadTooLarge,
            "line_too_large",
            format!("line {line} is longer than {limit} bytes"),
        )],
    }
    .to_json(line, problem_json)
}

fn push(out: &mut Vec<u8>, v: &serde_json::Value) {
    serde_json::to_writer(&mut *out, v).expect("json to vec");
    out.push(b'\n');
}

/// A line waiting for its batch.
enum Slot {
    /// Parsed, to apply.
    Line(serde_json::Value),
    /// Already answered (malformed or too long).
    Answer(serde_json::Value),
}

/// The task answering a batch: true once its answers are sent.
type Answering = tokio::task::JoinHandle<bool>;

/// Waits for the batch being answered; false when its client is gone or the store failed.
async fn answered(answering: Option<Answering>) -> bool {
    match answering {
        Some(h) => h.await.unwrap_or(false),
        None => true,
    }
}

/// Applies the batch's lines, then hands their answers to a task that sends them once the batch
/// is durable, so the next batch is applied while this one's fsync runs (a batch waited for its
/// fsync before the next could start). Answers stay in order: a batch's task starts only after
/// the previous batch's answers are sent. False when the client is gone or the store failed.
async fn flush(
    app: &crate::service::App,
    caller: &crate::service::auth::Caller,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    pending: &mut Vec<(u64, Slot)>,
    answering: &mut Option<Answering>,
) -> bool {
    if pending.is_empty() {
        return true;
    }
    let mut lines: Vec<serde_json::Value> = Vec::with_capacity(pending.len());
    // Each line's number, and its answer when it already has one.
    let order: Vec<(u64, Option<serde_json::Value>)> = pending
        .drain(..)
        .map(|(line_no, slot)| match slot {
            Slot::Line(v) => {
                lines.push(v);
                (line_no, None)
            }
            Slot::Answer(a) => (line_no, Some(a)),
        })
        .collect();
    let results = app.apply_lines(caller, lines).await;
    if !answered(answering.take()).await {
        return false;
    }
    let (app, tx) = (app.clone(), tx.clone());
    *answering = Some(tokio::spawn(async move {
        // A flush that starts after this batch was written covers it.
        if let Err(e) = app.store().durable().await {
            tracing::error!(error = %e, "bulk flush failed");
            let _ = tx.send(Err(std::io::Error::other("storage flush failed"))).await;
            return false;
        }
        let mut results = results.into_iter();
        let mut out: Vec<u8> = Vec::with_capacity(order.len() * 96);
        for (line_no, answer) in order {
            match answer {
                Some(v) => push(&mut out, &v),
                None => {
                    let r = results.next().expect("one result per line");
                    push(&mut out, &r.to_json(line_no, problem_json));
                }
            }
        }
        tx.send(Ok(Bytes::from(out))).await.is_ok()
    }));
    true
}
