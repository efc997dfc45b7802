//! `POST /v1/bulk`: NDJSON in, NDJSON out, both streamed. Lines are applied in order as they
//! arrive; answers are sent in batches once the batch is durable, so memory stays flat however
//! long the body is. Only a line over the per-line limit is refused (413 for that line).

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
        let mut out: Vec<u8> = Vec::with_capacity(64 << 10);
        let mut pending = 0usize;
        let mut skipping = false;
        let mut eof = false;
        while !eof {
            match input.next().await {
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
                            push(&mut out, &too_long(line_no, limit));
                            pending += 1;
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
                let result = if trimmed.len() > limit {
                    too_long(line_no, limit)
                } else {
                    match serde_json::from_slice::<serde_json::Value>(trimmed) {
                        Ok(v) => app.apply_line(&caller, &v).await.to_json(line_no, problem_json),
                        Err(e) => LineResult {
                            status: 400,
                            id: None,
                            errors: vec![Problem::bad_request(
                                "malformed_json",
                                format!("line {line_no} is not valid JSON: {e}"),
                            )],
                        }
                        .to_json(line_no, problem_json),
                    }
                };
                push(&mut out, &result);
                pending += 1;
                if pending >= BATCH && !flush(&app, &tx, &mut out, &mut pending).await {
                    return;
                }
            }
        }
        if !flush(&app, &tx, &mut out, &mut pending).await {
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

/// Waits for the batch to be durable, then sends its answers. False when the client is gone.
async fn flush(
    app: &crate::service::App,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    out: &mut Vec<u8>,
    pending: &mut usize,
) -> bool {
    if *pending == 0 {
        return true;
    }
    if let Err(e) = app.store().durable().await {
        tracing::error!(error = %e, "bulk flush failed");
        let _ = tx.send(Err(std::io::Error::other("storage flush failed"))).await;
        return false;
    }
    *pending = 0;
    tx.send(Ok(Bytes::from(std::mem::take(out)))).await.is_ok()
}
