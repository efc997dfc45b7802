//! What workflow steps do. Writes go through the same use cases as the API (validation, business
//! rules, the change log), as an automation caller, one hop deeper than the event that started
//! the run (loop protection). Every action is safe to repeat: a step interrupted by a crash runs
//! again, so creates get an id derived from the run and step, and upserts merge.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::ErrorKind;
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::service::objects::{Mode, WriteOptions};
use crate::service::{App, OrgRuntime};
use crate::storage::StorageError;

/// Why a step failed, and whether trying again may help.
#[derive(Debug, Clone)]
pub struct StepError {
    /// What went wrong.
    pub message: String,
    /// Transient (network, 5xx, busy store): retried with backoff.
    pub retryable: bool,
}

impl StepError {
    fn permanent(m: impl Into<String>) -> StepError {
        StepError {
            message: m.into(),
            retryable: false,
        }
    }
}

impl From<ServiceError> for StepError {
    fn from(e: ServiceError) -> Self {
        let retryable = matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal);
        let message = match e.problems() {
            Some(ps) => ps
                .iter()
                .map(|p| match &p.source {
                    Some(crate::error::ProblemSource::Pointer(ptr)) => format!("{} ({ptr})", p.title),
                    _ => p.title.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            None => e.to_string(),
        };
        StepError { message, retryable }
    }
}

fn param<'a>(params: &'a Value, name: &str) -> Result<&'a Value, StepError> {
    params
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| StepError::permanent(format!("param `{name}` is required")))
}

fn str_param<'a>(params: &'a Value, name: &str) -> Result<&'a str, StepError> {
    param(params, name)?
        .as_str()
        .ok_or_else(|| StepError::permanent(format!("param `{name}` must be a string")))
}

fn not_found(e: &ServiceError) -> bool {
    e.kind() == ErrorKind::NotFound
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client")
    })
}

/// Runs one action. `step_key` is unique to the run and step (for derived ids).
pub async fn run_action(
    app: &App,
    rt: &OrgRuntime,
    caller: &Caller,
    action: &str,
    params: &Value,
    step_key: &str,
    depth: u8,
) -> Result<Value, StepError> {
    let opts = WriteOptions {
        depth: depth.saturating_add(1),
        ..WriteOptions::default()
    };
    match action {
        "noop" => Ok(params.clone()),
        "objects.create" => {
            let klass = str_param(params, "klass")?;
            let mut object = param(params, "object")?.clone();
            let Some(m) = object.as_object_mut() else {
                return Err(StepError::permanent("param `object` must be an object"));
            };
            if !m.contains_key("id") {
                let digest = Sha256::digest(step_key.as_bytes());
                m.insert("id".into(), json!(format!("wf-{}", &hex::encode(digest)[..32])));
            }
            let id = m["id"].as_str().unwrap_or_default().to_string();
            match app.create_object(caller, klass, &object, opts).await {
                Ok(v) => Ok(v),
                // Created by an earlier attempt of this very step.
                Err(ServiceError::Storage(StorageError::Duplicate { what: "id", .. })) => {
                    Ok(app.get_object(caller, klass, &id).map_err(StepError::from)?.0)
                }
                Err(e) => Err(e.into()),
            }
        }
        "objects.update" => {
            let (klass, id) = (str_param(params, "klass")?, str_param(params, "id")?);
            Ok(app
                .update_object(caller, klass, id, param(params, "object")?, Mode::Patch, opts)
                .await?)
        }
        "objects.upsert" => {
            let (klass, ext) = (str_param(params, "klass")?, str_param(params, "externalId")?);
            Ok(app
                .upsert_by_external_id(caller, klass, ext, param(params, "object")?, opts)
                .await?
                .1)
        }
        "objects.delete" => {
            let (klass, id) = (str_param(params, "klass")?, str_param(params, "id")?);
            match app.delete_object(caller, klass, id, opts).await {
                Ok(()) => Ok(json!({"deleted": true})),
                Err(e) if not_found(&e) => Ok(json!({"deleted": true, "existed": false})),
                Err(e) => Err(e.into()),
            }
        }
        "customers.lookup" => {
            let found = match (
                params.get("email").and_then(Value::as_str),
                params.get("externalId").and_then(Value::as_str),
            ) {
                (Some(email), _) => app.get_customer_by_email(caller, email),
                (None, Some(ext)) => app.get_by_external_id(caller, "customer", ext),
                _ => return Err(StepError::permanent("`customers.lookup` takes `email` or `externalId`")),
            };
            match found {
                Ok((v, _)) => Ok(v),
                Err(e) if not_found(&e) => Ok(Value::Null),
                Err(e) => Err(e.into()),
            }
        }
        "customers.upsert" => {
            let email = str_param(params, "email")?;
            let mut object = params.get("object").cloned().unwrap_or_else(|| json!({}));
            if !object.is_object() {
                return Err(StepError::permanent("param `object` must be an object"));
            }
            match app.get_customer_by_email(caller, email) {
                Ok((existing, _)) => {
                    let id = existing["id"].as_str().unwrap_or_default().to_string();
                    Ok(app
                        .update_object(caller, "customer", &id, &object, Mode::Patch, opts)
                        .await?)
                }
                Err(e) if not_found(&e) => {
                    let mut emails: Vec<Value> = object
                        .get("emails")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if !emails
                        .iter()
                        .any(|e| e.as_str().is_some_and(|s| s.eq_ignore_ascii_case(email)))
                    {
                        emails.insert(0, json!(email));
                    }
                    object["emails"] = Value::Array(emails);
                    match app.create_object(caller, "customer", &object, opts).await {
                        Ok(v) => Ok(v),
                        // Created meanwhile (or by an earlier attempt): merge into it.
                        Err(ServiceError::Storage(StorageError::Duplicate { what: "email", .. })) => {
                            let (existing, _) = app.get_customer_by_email(caller, email)?;
                            let id = existing["id"].as_str().unwrap_or_default().to_string();
                            Ok(app
                                .update_object(caller, "customer", &id, &object, Mode::Patch, opts)
                                .await?)
                        }
                        Err(e) => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            }
        }
        "conversations.assign" => {
            let id = str_param(params, "id")?;
            let mut patch = serde_json::Map::new();
            if let Some(t) = params.get("team") {
                patch.insert("assignedTeam".into(), t.clone());
            }
            if let Some(u) = params.get("user") {
                patch.insert("assignedUser".into(), u.clone());
            }
            if patch.is_empty() {
                return Err(StepError::permanent(
                    "`conversations.assign` takes `team` and/or `user`",
                ));
            }
            Ok(app
                .update_object(caller, "conversation", id, &Value::Object(patch), Mode::Patch, opts)
                .await?)
        }
        "tags.add" | "tags.remove" => {
            let (klass, id) = (str_param(params, "klass")?, str_param(params, "id")?);
            let tags: Vec<String> = match param(params, "tags")? {
                Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
                Value::String(s) => vec![s.clone()],
                _ => return Err(StepError::permanent("param `tags` must be a list of strings")),
            };
            let (current, _) = app.get_object(caller, klass, id)?;
            let mut now: Vec<String> = current["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            if action == "tags.add" {
                for t in tags {
                    if !now.contains(&t) {
                        now.push(t);
                    }
                }
            } else {
                now.retain(|t| !tags.contains(t));
            }
            Ok(app
                .update_object(caller, klass, id, &json!({"tags": now}), Mode::Patch, opts)
                .await?)
        }
        "http.request" => http_request(app, params).await,
        other => Err(StepError::permanent(format!("unknown action `{other}`"))),
    }
    .inspect_err(|e| tracing::debug!(org = %rt.org.id, action, error = %e.message, "step failed"))
}

async fn http_request(app: &App, params: &Value) -> Result<Value, StepError> {
    let method = params
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_uppercase();
    let url = str_param(params, "url")?;
    let parsed = reqwest::Url::parse(url).map_err(|e| StepError::permanent(format!("`url`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(StepError::permanent("`url` must be http or https"));
    }
    let host = parsed.host_str().unwrap_or_default().to_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let allowed = app.options().http_allow.iter().any(|a| {
        let a = a.to_lowercase();
        a == host || a == format!("{host}:{port}")
    });
    if !allowed {
        return Err(StepError::permanent(format!(
            "host `{host}:{port}` is not allowed (start the service with --http-allow)"
        )));
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| StepError::permanent("`method` is not an HTTP method"))?;
    let mut req = http_client().request(method, parsed);
    if let Some(Value::Object(h)) = params.get("headers") {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            req = req.header(k.as_str(), v);
        }
    }
    match params.get("body") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => req = req.body(s.clone()),
        Some(other) => req = req.json(other),
    }
    let resp = req.send().await.map_err(|e| StepError {
        message: format!("request failed: {e}"),
        retryable: true,
    })?;
    let status = resp.status().as_u16();
    let mut headers = serde_json::Map::new();
    for (k, v) in resp.headers() {
        headers.insert(k.as_str().to_lowercase(), json!(v.to_str().unwrap_or_default()));
    }
    let text = resp.text().await.map_err(|e| StepError {
        message: format!("reading the response failed: {e}"),
        retryable: true,
    })?;
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if status >= 500 || status == 429 {
        return Err(StepError {
            message: format!("the server answered {status}"),
            retryable: true,
        });
    }
    if status >= 400 {
        return Err(StepError::permanent(format!("the server answered {status}: {body}")));
    }
    Ok(json!({"status": status, "headers": headers, "body": body}))
}
