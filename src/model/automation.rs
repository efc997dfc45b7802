//! Automation: business rules (synchronous, inside a write), workflows (asynchronous, durable
//! runs of steps), hooks (inbound web and email endpoints), and the events that start workflows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::{format_time, Millis};

/// A business rule: conditions on the object being written, then actions that change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessRule {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Klass whose writes it runs in.
    pub klass: String,
    /// `created` and/or `updated`.
    pub on: Vec<String>,
    /// `{"and":[...],"or":[...],"not":[...]}` in the search clause syntax.
    pub conditions: Value,
    /// Actions: `{"set":{...}}`, `{"addTags":[...]}`, `{"removeTags":[...]}`, `{"assign":{"team","user"}}`.
    pub actions: Vec<Value>,
    /// Rules run in ascending order.
    pub order: i64,
    /// Disabled rules do not run.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl BusinessRule {
    /// API JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "klass": self.klass, "on": self.on, "conditions": self.conditions,
            "actions": self.actions, "order": self.order, "enabled": self.enabled,
            "createdAt": format_time(self.created_at), "updatedAt": format_time(self.updated_at),
        })
    }
}

/// A workflow: a trigger and steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Disabled workflows start no runs.
    pub enabled: bool,
    /// What starts it: `{"event":..., "conditions"?, "cron"?, "timezone"?, "klass"?, "field"?, "offset"?}`.
    pub trigger: Value,
    /// Steps: `{"id","if"?,"action","params"}`.
    pub steps: Vec<Value>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Workflow {
    /// API JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "enabled": self.enabled, "trigger": self.trigger, "steps": self.steps,
            "createdAt": format_time(self.created_at), "updatedAt": format_time(self.updated_at),
        })
    }

    /// The event type of its trigger.
    pub fn event(&self) -> &str {
        self.trigger.get("event").and_then(Value::as_str).unwrap_or("")
    }
}

/// What starts runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `{klass}.created`, `hook.{id}`, `app.x.y`, `schedule`, `date_reached`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Payload.
    pub data: Value,
    /// When it happened.
    pub at: Millis,
    /// Automation hops that led to it (loop protection).
    #[serde(default)]
    pub depth: u8,
}

impl Event {
    /// API JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"type": self.kind, "data": self.data, "at": format_time(self.at), "depth": self.depth})
    }
}

/// Status of a run or step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Stored, not started.
    Pending,
    /// Executing.
    Running,
    /// Delayed or backing off until `resume_at`.
    Waiting,
    /// Finished.
    Succeeded,
    /// Gave up; the error is kept.
    Failed,
    /// Skipped (`if` false, or after `stop`).
    Skipped,
}

impl RunStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Skipped)
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    /// Step id.
    pub id: String,
    /// Status.
    pub status: RunStatus,
    /// Rendered params.
    pub input: Value,
    /// Action output.
    pub output: Value,
    /// Last error.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// A run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Id (time-ordered).
    pub id: String,
    /// Workflow id.
    pub workflow: String,
    /// Status.
    pub status: RunStatus,
    /// The event that started it.
    pub trigger: Event,
    /// Steps, in order.
    pub steps: Vec<StepRun>,
    /// The workflow's step definitions when the run started (later edits do not change it).
    #[serde(default)]
    pub definition: Vec<Value>,
    /// Index of the next step to execute.
    pub next_step: usize,
    /// When a waiting run resumes.
    pub resume_at: Option<Millis>,
    /// Run-level error.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Run {
    /// API JSON.
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({"id": s.id, "status": s.status.name(), "input": s.input, "output": s.output,
                    "error": s.error, "attempts": s.attempts})
            })
            .collect();
        serde_json::json!({
            "id": self.id, "workflow": self.workflow, "status": self.status.name(), "trigger": self.trigger.to_json(),
            "steps": steps, "error": self.error, "resumeAt": self.resume_at.map(format_time),
            "createdAt": format_time(self.created_at), "updatedAt": format_time(self.updated_at),
        })
    }
}

/// An inbound endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `web` or `email`.
    pub kind: String,
    /// Secret in its URL.
    pub secret: String,
    /// Creation time.
    pub created_at: Millis,
}

impl Hook {
    /// API JSON (with the secret: only admins read hooks).
    pub fn to_json(&self, smtp_domain: &str) -> Value {
        let mut v = serde_json::json!({
            "id": self.id, "name": self.name, "type": self.kind, "secret": self.secret,
            "url": format!("/hooks/{}/{}/{}", self.kind, self.id, self.secret), "createdAt": format_time(self.created_at),
        });
        if self.kind == "email" {
            v["address"] = Value::String(format!("hook-{}@{}", self.id, smtp_domain));
        }
        v
    }
}
