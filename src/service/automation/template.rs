//! Step params and `if` conditions over a run's context (`trigger...`, `steps.s1.output...`).
//!
//! A param that is exactly one `{{ path }}` keeps the JSON type of the value it names; any other
//! string is rendered with minijinja, with undefined values an error. A template that names a
//! missing value fails its step with an error naming the path.

use serde_json::Value;

use crate::query::ast::{parse_list, Clause};

/// Looks up a dot path (`trigger.data.after.custom.totalNum`, `steps.s1.output.items.0`).
pub fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = ctx;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn single_placeholder(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(inner)
}

/// Renders every string of `params` against `ctx`.
///
/// # Errors
/// A message naming the missing path or the template error.
pub fn render(params: &Value, ctx: &Value) -> Result<Value, String> {
    Ok(match params {
        Value::String(s) => {
            if let Some(path) = single_placeholder(s) {
                return lookup(ctx, path)
                    .cloned()
                    .ok_or_else(|| format!("`{path}` is missing from the run context"));
            }
            if !s.contains("{{") && !s.contains("{%") {
                return Ok(params.clone());
            }
            let mut env = minijinja::Environment::new();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            let out = env.render_str(s, ctx).map_err(|e| format!("template `{s}`: {e}"))?;
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| render(i, ctx)).collect::<Result<_, _>>()?),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(k.clone(), render(v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Evaluates `{"and":[...],"or":[...],"not":[...]}` (or a list of clauses) against a JSON context.
///
/// # Errors
/// A malformed clause or an unknown operator.
pub fn eval_conditions(conds: &Value, ctx: &Value) -> Result<bool, String> {
    let (and, or, not) = match conds {
        Value::Null => return Ok(true),
        Value::Array(_) => (parse_list(conds, "/if").map_err(|p| p.title)?, vec![], vec![]),
        Value::Object(m) => {
            let get = |k: &str| {
                m.get(k)
                    .map(|v| parse_list(v, &format!("/{k}")).map_err(|p| p.title))
                    .unwrap_or(Ok(vec![]))
            };
            if m.keys().any(|k| !matches!(k.as_str(), "and" | "or" | "not")) {
                (
                    vec![crate::query::ast::parse_clause(conds, "/if").map_err(|p| p.title)?],
                    vec![],
                    vec![],
                )
            } else {
                (get("and")?, get("or")?, get("not")?)
            }
        }
        _ => return Err("conditions must be an object with and/or/not".into()),
    };
    for c in &and {
        if !eval_clause(c, ctx)? {
            return Ok(false);
        }
    }
    if !or.is_empty() {
        let mut any = false;
        for c in &or {
            if eval_clause(c, ctx)? {
                any = true;
                break;
            }
        }
        if !any {
            return Ok(false);
        }
    }
    for c in &not {
        if eval_clause(c, ctx)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn eval_clause(c: &Clause, ctx: &Value) -> Result<bool, String> {
    match c {
        Clause::And(cs) => {
            for c in cs {
                if !eval_clause(c, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Clause::Or(cs) => {
            if cs.is_empty() {
                return Ok(true);
            }
            for c in cs {
                if eval_clause(c, ctx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Clause::Not(cs) => {
            for c in cs {
                if eval_clause(c, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Clause::Has(_) => Err("`has` is not available in step conditions".into()),
        Clause::Field { path, ops, .. } => {
            let v = lookup(ctx, path);
            for (op, arg) in ops {
                if !eval_op(v, op, arg)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

fn elements(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .filter(|i| !i.is_null() && *i != &Value::String(String::new()))
            .collect(),
        Some(Value::String(s)) if s.is_empty() => vec![],
        Some(other) => vec![other],
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => {
            let t = |s: &str| crate::model::time::parse_time(s, 0).ok();
            match (t(x), t(y)) {
                (Some(p), Some(q)) => Some(p.cmp(&q)),
                _ => Some(x.cmp(y)),
            }
        }
        _ => None,
    }
}

fn eval_op(v: Option<&Value>, op: &str, arg: &Value) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    let els = elements(v);
    let any = |f: &dyn Fn(&Value) -> bool| els.iter().any(|e| f(e));
    Ok(match op {
        "equals" => any(&|e| same(e, arg)),
        "not_equals" => !any(&|e| same(e, arg)),
        "in" | "not_in" => {
            let list = arg.as_array().ok_or_else(|| format!("`{op}` takes a list"))?;
            let hit = any(&|e| list.iter().any(|x| same(e, x)));
            if op == "in" {
                hit
            } else {
                !hit
            }
        }
        "contains" | "not_contains" => {
            let words = crate::index::analysis::word_tokens(arg.as_str().unwrap_or_default());
            let have: Vec<String> = els
                .iter()
                .filter_map(|e| e.as_str())
                .flat_map(crate::index::analysis::word_tokens)
                .collect();
            let hit = !words.is_empty() && words.iter().all(|w| have.contains(w));
            if op == "contains" {
                hit
            } else {
                !hit
            }
        }
        "starts_with" => {
            let p = arg.as_str().unwrap_or_default().to_lowercase();
            any(&|e| e.as_str().is_some_and(|s| s.to_lowercase().starts_with(&p)))
        }
        "gt" => any(&|e| order(e, arg) == Some(Greater)),
        "gte" => any(&|e| matches!(order(e, arg), Some(Greater | Equal))),
        "lt" => any(&|e| order(e, arg) == Some(Less)),
        "lte" => any(&|e| matches!(order(e, arg), Some(Less | Equal))),
        "between" => {
            let pair = arg
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or("`between` takes [low, high]")?;
            any(&|e| {
                matches!(order(e, &pair[0]), Some(Greater | Equal)) && matches!(order(e, &pair[1]), Some(Less | Equal))
            })
        }
        "set" => arg.as_bool().ok_or("`set` takes true or false")? != els.is_empty(),
        other => return Err(format!("unknown operator `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"trigger": {"data": {"after": {"status": "done", "custom": {"totalNum": 250.5}, "tags": ["vip"]}}},
               "steps": {"s1": {"output": {"id": "c-1", "items": [{"n": 1}]}}}})
    }

    #[test]
    fn a_single_placeholder_keeps_its_json_type() {
        let out = render(&json!({"total": "{{ trigger.data.after.custom.totalNum }}", "id": "{{steps.s1.output.id}}", "n": "{{steps.s1.output.items.0.n}}"}), &ctx()).unwrap();
        assert_eq!(out, json!({"total": 250.5, "id": "c-1", "n": 1}));
    }

    #[test]
    fn mixed_strings_are_rendered() {
        let out = render(
            &json!("order {{ steps.s1.output.id }} is {{ trigger.data.after.status }}"),
            &ctx(),
        )
        .unwrap();
        assert_eq!(out, json!("order c-1 is done"));
    }

    #[test]
    fn a_missing_value_is_an_error_naming_it() {
        let err = render(&json!("{{ steps.s2.output.id }}"), &ctx()).unwrap_err();
        assert!(err.contains("steps.s2.output.id"), "{err}");
        assert!(render(&json!("x {{ steps.nope }}"), &ctx()).is_err());
    }

    #[test]
    fn conditions_read_the_context() {
        let c = ctx();
        assert!(eval_conditions(&json!({"and": [{"trigger.data.after.status": {"equals": "DONE"}}]}), &c).unwrap());
        assert!(eval_conditions(
            &json!({"and": [{"trigger.data.after.custom.totalNum": {"gte": 200}}]}),
            &c
        )
        .unwrap());
        assert!(!eval_conditions(&json!({"not": [{"trigger.data.after.tags": {"equals": "vip"}}]}), &c).unwrap());
        assert!(eval_conditions(
            &json!({"or": [{"steps.s1.output.id": {"in": ["x", "c-1"]}}, {"x": {"set": true}}]}),
            &c
        )
        .unwrap());
        assert!(eval_conditions(&json!({"trigger.data.after.missing": {"set": false}}), &c).unwrap());
        assert!(eval_conditions(&json!({"and": [{"x": {"explode": 1}}]}), &c).is_err());
    }
}
