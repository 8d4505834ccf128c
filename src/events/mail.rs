//! E-mail notices over SMTP: a delivery kind of the outbox worker ([`super::Deliverer`]).
//!
//! # Flow
//!
//! ```text
//! event row (upload.completed, token.exhausted, quota.warning)
//!   └─ worker, before its webhooks: one mail row per recipient ──(idempotent insert)──▶ outbox
//! mail row (event "mail") ─▶ render (subject, text, HTML) ─▶ SMTP ─▶ delivered | retried
//! ```
//!
//! A notice becomes mail rows in the outbox rather than being sent on the spot, so a mail has
//! its own retries (the `[webhooks]` backoff, attempts and parking): an SMTP outage does not
//! make webhooks be sent again, nor the reverse. Each row's id is the event's id plus a digest
//! of the recipient, so a fan-out that runs again (the event's webhooks failed and it is
//! retried) inserts nothing new. Delivery is at least once: a mail whose acceptance was not
//! recorded is sent again, with the same `Message-ID` (`<row id@upgate>`), by which mail
//! clients recognise the copy. Each recipient gets a message of their own: no recipient sees
//! who else is told.
//!
//! A mail row holds the recipient and the facts of the notice (JSON); the message is rendered
//! when it is sent. Facts are what the event reports (file name, size, SHA-256, content type,
//! time, tenant, bucket; token and quota figures), never file contents, keys, tokens or any
//! secret. Every value is HTML-escaped in the HTML body and stripped of control characters in
//! the subject.
//!
//! Mail rows that are due while mail is disabled (it was enabled when they were written) are
//! dropped: marked delivered without a message.
//!
//! # Per-link recipients
//!
//! [`Mailer::letters`] takes one more recipient for a single event (`extra_to`): the address a
//! drop link was created for (`notify_email` of its upload token). The worker looks it up for
//! `upload.completed` (through the event's link) and `token.exhausted` events and passes it.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::mail::{MailConfig, TlsMode};
use crate::metadata::control::OutboxEvent;

/// The outbox event name of a mail row.
pub const MAIL: &str = "mail";

/// The notices that can be mailed (event names).
pub const NOTICES: [&str; 3] = [
    super::UPLOAD_COMPLETED,
    super::TOKEN_EXHAUSTED,
    super::QUOTA_WARNING,
];

/// Longest subject line, in characters (a long file name is cut).
const MAX_SUBJECT: usize = 120;

impl MailConfig {
    /// Every problem with this section, one line each (empty: valid). Reads the password file.
    pub fn problems(&self) -> Vec<String> {
        match Mailer::new(self) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }
}

/// A notice's recipients, parsed.
#[derive(Debug, Default)]
struct Recipients {
    upload_completed: Vec<Mailbox>,
    token_exhausted: Vec<Mailbox>,
    quota_warning: Vec<Mailbox>,
}

/// Sends the mail rows of the outbox. Built once from the config; `None` when mail is off.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    recipients: Recipients,
    timeout: Duration,
    /// `host:port`, for logs.
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why one mail was not accepted; its `Display` is what `last_error` records (no address, no
/// server text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFailure {
    /// No answer within `timeout_ms`.
    Timeout,
    /// No connection, or TLS (handshake, certificate, STARTTLS not offered) failed.
    Connect,
    /// The server refused (status code): 4xx for now, 5xx for good (still retried; parked
    /// after the last attempt).
    Refused(u16),
    /// The conversation broke off or the server answered nonsense.
    Smtp,
    /// The row could not be made into a message (it is not a mail row of this version).
    Invalid,
}

impl fmt::Display for MailFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailFailure::Timeout => f.write_str("smtp timeout"),
            MailFailure::Connect => f.write_str("smtp connect failed"),
            MailFailure::Refused(code) => write!(f, "smtp status {code}"),
            MailFailure::Smtp => f.write_str("smtp failed"),
            MailFailure::Invalid => f.write_str("invalid mail row"),
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mailer {
    /// Most time one mail may take, connecting included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Validates `cfg` (reading the password file) and builds the SMTP transport; `Ok(None)`
    /// when mail is disabled. The error lists every problem.
    pub fn new(cfg: &MailConfig) -> Result<Option<Self>, Vec<String>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let mut problems = Vec::new();
        if cfg.host.is_empty() {
            problems.push("mail.host is required when mail is enabled".to_string());
        }
        if cfg.port == 0 {
            problems.push("mail.port must be 1..=65535".to_string());
        }
        if !(1..=600_000).contains(&cfg.timeout_ms) {
            problems.push("mail.timeout_ms must be 1..=600000".to_string());
        }
        let from = match cfg.from.parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(_) if cfg.from.is_empty() => {
                problems.push("mail.from is required when mail is enabled".to_string());
                None
            }
            Err(_) => {
                problems.push("mail.from: not an e-mail address".to_string());
                None
            }
        };
        let password = match (cfg.password.is_empty(), cfg.password_file.is_empty()) {
            (false, false) => {
                problems.push("mail.password: set password or password_file, not both".into());
                None
            }
            (true, true) => None,
            (false, true) => Some(Zeroizing::new(cfg.password.0.to_string())),
            (true, false) => match super::read_secret_file(&cfg.password_file) {
                Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
                    Ok(s) => Some(Zeroizing::new(s)),
                    Err(_) => {
                        problems.push("mail.password_file: not UTF-8".into());
                        None
                    }
                },
                Err(p) => {
                    // "secret_file: cannot read …" names the field of the webhooks.
                    let detail = p.strip_prefix("secret_file").unwrap_or(&p);
                    problems.push(format!("mail.password_file{detail}"));
                    None
                }
            },
        };
        if password.is_some() && cfg.user.is_empty() {
            problems.push("mail.password is set but mail.user is empty".into());
        }
        if password.is_some() && cfg.tls == TlsMode::None {
            problems.push(
                "mail.tls = \"none\" with a password would send it in the clear: use \
                 \"starttls\" or \"tls\""
                    .into(),
            );
        }
        let mut parse = |field: &str, list: &[String]| -> Vec<Mailbox> {
            list.iter()
                .enumerate()
                .filter_map(|(i, a)| match a.parse::<Mailbox>() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        problems.push(format!(
                            "mail.recipients.{field}[{i}]: not an e-mail address"
                        ));
                        None
                    }
                })
                .collect()
        };
        let recipients = Recipients {
            upload_completed: parse("upload_completed", &cfg.recipients.upload_completed),
            token_exhausted: parse("token_exhausted", &cfg.recipients.token_exhausted),
            quota_warning: parse("quota_warning", &cfg.recipients.quota_warning),
        };
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let builder = match cfg.tls {
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host),
            TlsMode::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &cfg.host,
            )),
        };
        let builder = match builder {
            Ok(b) => Some(b),
            Err(_) => {
                problems.push("mail.host: cannot set up TLS for this host".into());
                None
            }
        };
        match (builder, from) {
            (Some(builder), Some(from)) if problems.is_empty() => {
                let mut builder = builder.port(cfg.port).timeout(Some(timeout));
                if let Some(password) = password {
                    builder = builder
                        .credentials(Credentials::new(cfg.user.clone(), password.to_string()));
                }
                Ok(Some(Self {
                    transport: builder.build(),
                    from,
                    recipients,
                    timeout,
                    server: format!("{}:{}", cfg.host, cfg.port),
                }))
            }
            _ => Err(problems),
        }
    }

    fn recipients_of(&self, notice: &str) -> &[Mailbox] {
        match notice {
            super::UPLOAD_COMPLETED => &self.recipients.upload_completed,
            super::TOKEN_EXHAUSTED => &self.recipients.token_exhausted,
            super::QUOTA_WARNING => &self.recipients.quota_warning,
            _ => &[],
        }
    }

    /// Whether event `e` may become mail (it is a notice; recipients are decided by
    /// [`Mailer::letters`], which may add one).
    pub fn notices(&self, e: &OutboxEvent) -> bool {
        NOTICES.contains(&e.event.as_str())
    }

    /// The mail rows for event `e`, one per recipient: the configured ones for its notice, and
    /// `extra_to` for this event only (see the module docs). `facts` are the notice's facts
    /// (see [`facts`]). Empty when nobody is to be told. An `extra_to` that is not an address
    /// is skipped (and logged without the address).
    pub fn letters(
        &self,
        e: &OutboxEvent,
        facts: &Value,
        extra_to: Option<&str>,
    ) -> Vec<OutboxEvent> {
        let mut to: Vec<String> = self
            .recipients_of(&e.event)
            .iter()
            .map(|m| m.email.to_string())
            .collect();
        if let Some(extra) = extra_to {
            match extra.parse::<Mailbox>() {
                Ok(m) => to.push(m.email.to_string()),
                Err(_) => {
                    tracing::warn!(event_id = %e.id, "per-event mail recipient is not an address")
                }
            }
        }
        to.sort();
        to.dedup();
        to.into_iter()
            .map(|address| {
                let digest = hex::encode(&Sha256::digest(address.as_bytes())[..8]);
                OutboxEvent {
                    id: format!("{}.mail.{digest}", e.id),
                    tenant_id: e.tenant_id.clone(),
                    event: MAIL.to_string(),
                    payload: json!({"notice": e.event, "to": address, "facts": facts}).to_string(),
                    created_at_ms: e.created_at_ms,
                    attempts: 0,
                }
            })
            .collect()
    }

    /// Sends one mail row.
    pub async fn send(&self, row: &OutboxEvent) -> Result<(), MailFailure> {
        let message = self.message(row)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(MailFailure::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(if e.is_timeout() {
                MailFailure::Timeout
            } else if let Some(code) = e.status() {
                // `Code` displays as its three digits.
                MailFailure::Refused(code.to_string().parse().unwrap_or(0))
            } else if e.is_response() || e.is_client() {
                MailFailure::Smtp
            } else {
                // Connecting, the network, TLS, or a transport that shut down.
                MailFailure::Connect
            }),
        }
    }

    /// The message of a mail row: to its recipient, from the configured sender, with a
    /// `Message-ID` that stays the same on every retry.
    fn message(&self, row: &OutboxEvent) -> Result<Message, MailFailure> {
        let v: Value = serde_json::from_str(&row.payload).map_err(|_| MailFailure::Invalid)?;
        let to: Mailbox = v["to"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(MailFailure::Invalid)?;
        let letter = render(
            v["notice"].as_str().ok_or(MailFailure::Invalid)?,
            &v["facts"],
        )
        .ok_or(MailFailure::Invalid)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject)
            .message_id(Some(format!("<{}@upgate>", row.id)))
            .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
            .map_err(|_| MailFailure::Invalid)
    }
}

/// The facts a notice reports, from its event's payload (and, for an upload, the file's display
/// name and bucket): a fixed set of members, nothing else of the payload (its receipt claims,
/// scan details) goes into mail.
pub fn facts(e: &OutboxEvent, filename: Option<&str>, bucket: Option<&str>) -> Value {
    let p: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
    let pick = |names: &[&str]| -> serde_json::Map<String, Value> {
        names
            .iter()
            .filter_map(|n| p.get(*n).map(|v| ((*n).to_string(), v.clone())))
            .collect()
    };
    let mut f = match e.event.as_str() {
        super::UPLOAD_COMPLETED => pick(&["size", "sha256", "content_type", "at", "file_id"]),
        super::TOKEN_EXHAUSTED => pick(&[
            "token_id",
            "client_id",
            "uploads_used",
            "max_uploads",
            "bytes_used",
            "max_bytes",
            "at",
        ]),
        super::QUOTA_WARNING => pick(&["bytes", "max_bytes", "objects", "max_objects", "at"]),
        _ => serde_json::Map::new(),
    };
    f.insert("tenant_id".into(), Value::String(e.tenant_id.clone()));
    if let Some(name) = filename {
        f.insert("filename".into(), Value::String(name.to_string()));
    }
    if let Some(b) = bucket {
        f.insert("bucket".into(), Value::String(b.to_string()));
    }
    Value::Object(f)
}

/// The message for `notice` with `facts`: subject, plain text and HTML. `None` for a notice
/// this version does not know.
pub fn render(notice: &str, facts: &Value) -> Option<Letter> {
    // Every value on one line: a stored value cannot add lines (or headers) of its own.
    let s = |name: &str| -> String {
        match facts.get(name) {
            Some(Value::String(s)) => one_line(s),
            Some(Value::Null) | None => String::new(),
            Some(v) => one_line(&v.to_string()),
        }
    };
    let n = |name: &str| facts.get(name).and_then(Value::as_i64);
    let of = |used: Option<i64>, max: Option<i64>| match (used, max) {
        (Some(u), Some(m)) => format!("{u} of {m}"),
        (Some(u), None) => u.to_string(),
        _ => String::new(),
    };
    let (title, subject, rows): (&str, String, Vec<(&str, String)>) = match notice {
        super::UPLOAD_COMPLETED => (
            "Upload completed",
            format!("Upload completed: {}", s("filename")),
            vec![
                ("File", s("filename")),
                (
                    "Size",
                    n("size").map(|b| format!("{b} bytes")).unwrap_or_default(),
                ),
                ("SHA-256", s("sha256")),
                ("Type", s("content_type")),
                ("Bucket", s("bucket")),
                ("Tenant", s("tenant_id")),
                ("Time", s("at")),
            ],
        ),
        super::TOKEN_EXHAUSTED => (
            "Upload token used up",
            format!("Upload token used up: {}", s("token_id")),
            vec![
                ("Token", s("token_id")),
                ("Client", s("client_id")),
                ("Uploads", of(n("uploads_used"), n("max_uploads"))),
                ("Bytes", of(n("bytes_used"), n("max_bytes"))),
                ("Tenant", s("tenant_id")),
                ("Time", s("at")),
            ],
        ),
        super::QUOTA_WARNING => (
            "Quota warning",
            format!("Quota warning: tenant {}", s("tenant_id")),
            vec![
                ("Tenant", s("tenant_id")),
                ("Bytes", of(n("bytes"), n("max_bytes"))),
                ("Objects", of(n("objects"), n("max_objects"))),
                ("Time", s("at")),
            ],
        ),
        _ => return None,
    };
    let rows: Vec<(&str, String)> = rows.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut text = format!("{title}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n\
         <h1>{}</h1>\n<table>\n",
        escape_html(title),
        escape_html(title)
    );
    for (label, value) in &rows {
        text.push_str(&format!("{label}: {value}\n"));
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape_html(label),
            escape_html(value)
        ));
    }
    text.push_str("\nSent by upgate.\n");
    html.push_str("</table>\n<p>Sent by upgate.</p>\n</body></html>\n");
    Some(Letter {
        subject: subject_line(&subject),
        text,
        html,
    })
}

/// `s` with each control character (line breaks included) as a space.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A subject on one line (a file name cannot start another header), at most [`MAX_SUBJECT`]
/// characters.
fn subject_line(s: &str) -> String {
    let clean = one_line(s);
    if clean.chars().count() <= MAX_SUBJECT {
        clean
    } else {
        let mut cut: String = clean.chars().take(MAX_SUBJECT - 1).collect();
        cut.push('…');
        cut
    }
}

/// `s` as HTML text or attribute value: `& < > " '` as entities.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> MailConfig {
        MailConfig {
            enabled: true,
            host: "smtp.example.com".into(),
            from: "upgate <upgate@example.com>".into(),
            ..MailConfig::default()
        }
    }

    #[test]
    fn html_is_escaped_and_values_hold_no_line_breaks() {
        let facts = json!({
            "filename": "<img src=x onerror=\"alert('1')\">&\r\nBcc: evil@example.com.pdf",
            "size": 12,
            "sha256": "ab",
            "tenant_id": "t1",
        });
        let l = render(crate::events::UPLOAD_COMPLETED, &facts).unwrap();
        assert!(!l.html.contains("<img"), "{}", l.html);
        assert!(
            l.html
                .contains("&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;")
        );
        assert!(!l.subject.contains('\r') && !l.subject.contains('\n'));
        assert!(!l.text.contains("\nBcc:") && !l.html.contains("\nBcc:"));
        assert!(l.subject.starts_with("Upload completed: <img"));
        assert!(l.text.contains("Size: 12 bytes\n"));
        assert_eq!(render("file.deleted", &facts), None);
    }

    #[test]
    fn long_subjects_are_cut() {
        let l = render(
            crate::events::UPLOAD_COMPLETED,
            &json!({"filename": "x".repeat(500)}),
        )
        .unwrap();
        assert_eq!(l.subject.chars().count(), MAX_SUBJECT);
    }

    #[test]
    fn facts_take_only_the_listed_members() {
        let e = OutboxEvent {
            id: "e1".into(),
            tenant_id: "t1".into(),
            event: crate::events::UPLOAD_COMPLETED.into(),
            payload:
                json!({"size": 3, "sha256": "ab", "receipt": {"secret": "no"}, "upload_id": "u"})
                    .to_string(),
            created_at_ms: 0,
            attempts: 0,
        };
        assert_eq!(
            facts(&e, Some("a.pdf"), Some("uploads")),
            json!({"size": 3, "sha256": "ab", "tenant_id": "t1", "filename": "a.pdf", "bucket": "uploads"})
        );
    }

    #[test]
    fn one_row_per_recipient_with_stable_ids() {
        let mut cfg = enabled();
        cfg.recipients.upload_completed = vec!["a@example.com".into(), "b@example.com".into()];
        let m = Mailer::new(&cfg).unwrap().unwrap();
        let e = OutboxEvent {
            id: "e1".into(),
            tenant_id: "t1".into(),
            event: crate::events::UPLOAD_COMPLETED.into(),
            payload: "{}".into(),
            created_at_ms: 5,
            attempts: 3,
        };
        let rows = m.letters(&e, &json!({}), Some("a@example.com"));
        assert_eq!(rows.len(), 2, "the extra recipient is already on the list");
        let again = m.letters(&e, &json!({}), None);
        assert_eq!(
            rows.iter().map(|r| &r.id).collect::<Vec<_>>(),
            again.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        assert!(rows.iter().all(|r| r.event == MAIL && r.attempts == 0));
        assert_eq!(m.letters(&e, &json!({}), Some("c@example.com")).len(), 3);
        let quota = OutboxEvent {
            event: crate::events::QUOTA_WARNING.into(),
            ..e
        };
        assert!(m.letters(&quota, &json!({}), None).is_empty());
    }

    #[test]
    fn problems_are_listed_together_and_disabled_mail_is_not_checked() {
        let off = MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        };
        assert!(off.problems().is_empty());
        let cfg = MailConfig {
            enabled: true,
            tls: TlsMode::None,
            user: "u".into(),
            password: crate::config::mail::MailPassword::new("p".into()),
            from: "nope".into(),
            timeout_ms: 0,
            recipients: crate::config::mail::MailRecipients {
                quota_warning: vec!["x".into()],
                ..Default::default()
            },
            ..MailConfig::default()
        };
        let p = cfg.problems();
        for needle in [
            "mail.host",
            "mail.timeout_ms",
            "mail.from",
            "in the clear",
            "mail.recipients.quota_warning[0]",
        ] {
            assert!(p.iter().any(|l| l.contains(needle)), "{needle} in {p:?}");
        }
        assert!(
            !p.iter().any(|l| l.contains('p') && l.contains("\"p\"")),
            "no secret in problems"
        );
        assert!(enabled().problems().is_empty());
    }

    #[test]
    fn embedded_defaults_match_default_impl() {
        let root: toml::Table = match crate::config::DEFAULT_TOML.parse() {
            Ok(t) => t,
            Err(e) => panic!("embedded defaults: {e}"),
        };
        let file: MailConfig = match root.get("mail").cloned().map(toml::Value::try_into) {
            Some(Ok(c)) => c,
            other => panic!("[mail] in config/upgate.toml: {other:?}"),
        };
        let d = MailConfig::default();
        assert_eq!(
            (
                file.enabled,
                &file.host,
                file.port,
                file.tls,
                &file.user,
                file.password.is_empty(),
                &file.password_file,
                &file.from,
                file.timeout_ms,
                &file.recipients
            ),
            (
                d.enabled,
                &d.host,
                d.port,
                d.tls,
                &d.user,
                d.password.is_empty(),
                &d.password_file,
                &d.from,
                d.timeout_ms,
                &d.recipients
            )
        );
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let cfg = MailConfig {
            password: crate::config::mail::MailPassword::new("hunter2-secret".into()),
            ..enabled()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
