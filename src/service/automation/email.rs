//! Inbound mail for email hooks: an RFC 822 message becomes the data of a `hook.{id}` event,
//! `{"from","fromName","to","subject","text","html","fields"}`, where `fields` holds structured
//! data from the body (a JSON object, or `key: value` lines). Also a small SMTP listener (RFC 5321
//! subset: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that accepts mail for `hook-{id}@domain`.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::service::App;

/// Largest message accepted over SMTP, bytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// The event data of a raw message (`None` when it is not a message).
pub fn parse_message(raw: &[u8]) -> Option<Value> {
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    let from = msg.from().and_then(|a| a.first());
    let to: Vec<Value> = msg
        .to()
        .map(|a| a.iter().filter_map(|x| x.address().map(|s| json!(s))).collect())
        .unwrap_or_default();
    let text = msg.body_text(0).map(|t| t.to_string()).unwrap_or_default();
    let html = msg.body_html(0).map(|t| t.to_string());
    Some(json!({
        "from": from.and_then(|a| a.address()).unwrap_or_default(),
        "fromName": from.and_then(|a| a.name()),
        "to": to,
        "subject": msg.subject().unwrap_or_default(),
        "text": text,
        "html": html,
        "fields": fields(&text),
    }))
}

/// Structured fields of a body: a JSON object, or `key: value` lines.
pub fn fields(text: &str) -> Value {
    let trimmed = text.trim();
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(trimmed) {
        return Value::Object(m);
    }
    let mut m = Map::new();
    for line in trimmed.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if !k.is_empty() && k.len() <= 64 && !k.contains(char::is_whitespace)
                || k.split_whitespace().count() <= 3 && !k.is_empty()
            {
                m.insert(k.to_string(), json!(v.trim()));
            }
        }
    }
    Value::Object(m)
}

/// The hook id of a recipient `hook-{id}@{domain}`.
pub fn hook_of(address: &str, domain: &str) -> Option<String> {
    let (local, host) = address.trim().trim_matches(|c| c == '<' || c == '>').rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    local
        .strip_prefix("hook-")
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// Serves SMTP on `listener` until the task is dropped.
pub async fn serve_smtp(listener: TcpListener, app: App) {
    let domain: Arc<str> = app.options().smtp_domain.clone().into();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (app, domain) = (app.clone(), domain.clone());
        tokio::spawn(async move {
            if let Err(e) = session(stream, &app, &domain).await {
                tracing::debug!(%peer, error = %e, "smtp session ended");
            }
        });
    }
}

async fn session(stream: tokio::net::TcpStream, app: &App, domain: &str) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(format!("220 {domain} Kindred ESMTP\r\n").as_bytes())
        .await?;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            format!("250-{domain}\r\n250-SIZE {MAX_MESSAGE}\r\n250 8BITMIME")
        } else if upper.starts_with("HELO") {
            format!("250 {domain}")
        } else if upper.starts_with("MAIL FROM:") {
            rcpts.clear();
            "250 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..].trim();
            match hook_of(addr, domain) {
                Some(id) if hook_exists(app, &id) => {
                    rcpts.push(id);
                    "250 OK".into()
                }
                _ => "550 no such mailbox".into(),
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "503 need RCPT first".into()
            } else {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut raw: Vec<u8> = Vec::new();
                let mut too_big = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    if raw.len() + l.len() > MAX_MESSAGE {
                        too_big = true;
                    } else {
                        raw.extend_from_slice(l.as_bytes());
                    }
                }
                if too_big {
                    "552 message too large".into()
                } else {
                    match deliver(app, &rcpts, &raw).await {
                        Ok(()) => "250 OK".into(),
                        Err(e) => {
                            tracing::warn!(error = %e, "smtp delivery failed");
                            "451 delivery failed; try again".into()
                        }
                    }
                }
            }
        } else if upper == "RSET" {
            rcpts.clear();
            "250 OK".into()
        } else if upper == "NOOP" {
            "250 OK".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 command not implemented".into()
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

fn hook_exists(app: &App, id: &str) -> bool {
    app.email_hook(id).is_some()
}

/// Delivers a message to its hooks; `250 OK` is sent only once their runs are durable.
async fn deliver(app: &App, hooks: &[String], raw: &[u8]) -> Result<(), String> {
    let data = parse_message(raw).ok_or("not an RFC 822 message")?;
    for id in hooks {
        let (rt, hook) = app.email_hook(id).ok_or("hook gone")?;
        app.deliver_hook(&rt, &hook, data.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"From: Ada Lovelace <ada@example.com>\r\nTo: hook-h1@hooks.localhost\r\nSubject: Contact us\r\nContent-Type: text/plain\r\n\r\nname: Ada Lovelace\r\nphone: +1 555 0100\r\nmessage: my order is late\r\n";

    #[test]
    fn a_message_becomes_event_data_with_fields() {
        let d = parse_message(RAW).unwrap();
        assert_eq!(d["from"], "ada@example.com");
        assert_eq!(d["fromName"], "Ada Lovelace");
        assert_eq!(d["to"], json!(["hook-h1@hooks.localhost"]));
        assert_eq!(d["subject"], "Contact us");
        assert_eq!(d["fields"]["phone"], "+1 555 0100");
        assert_eq!(d["fields"]["message"], "my order is late");
    }

    #[test]
    fn a_json_body_gives_its_fields() {
        assert_eq!(
            fields("{\"orderId\": \"ORD-1\", \"n\": 2}"),
            json!({"orderId": "ORD-1", "n": 2})
        );
    }

    #[test]
    fn recipients_name_their_hook() {
        assert_eq!(
            hook_of("<hook-abc@hooks.localhost>", "hooks.localhost").as_deref(),
            Some("abc")
        );
        assert_eq!(hook_of("hook-abc@other.example", "hooks.localhost"), None);
        assert_eq!(hook_of("abc@hooks.localhost", "hooks.localhost"), None);
    }
}
