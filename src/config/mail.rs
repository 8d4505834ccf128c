//! `[mail]`: e-mail notifications over SMTP, sent by the outbox worker (`crate::events::mail`).
//! Plain data; the worker validates and resolves it (`MailConfig::problems`).

use serde::Deserialize;

/// The SMTP password as configured: zeroized on drop, redacted in `Debug`.
pub type MailPassword = super::secret::Secret;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP, no TLS at all: only for a relay on the same host or network segment. Refused
    /// together with a password (credentials would cross the network in the clear).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (a server that does not
    /// offer it is a failure, never a silent fallback to plain text). Usually port 587.
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS). Usually port 465.
    Tls,
}

/// Who receives which notice. Each list is of plain addresses (`ops@example.com`); empty means
/// no mail for that notice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailRecipients {
    /// A link upload completed (`upload.completed`). Default none.
    pub upload_completed: Vec<String>,
    /// An upload token has no uploads or bytes left (`token.exhausted`). Default none.
    pub token_exhausted: Vec<String>,
    /// A tenant's usage crossed `quotas.warn_percent` of a limit (`quota.warning`). Default
    /// none.
    pub quota_warning: Vec<String>,
}

/// `[mail]`: the SMTP server, the sender, and the recipients of each notice.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Whether notices are mailed at all (default false). When false the rest is not checked.
    pub enabled: bool,
    /// SMTP server host name (or address). Required when enabled; also the name its TLS
    /// certificate must carry.
    pub host: String,
    /// SMTP server port (default 587, the submission port).
    pub port: u16,
    /// `none`, `starttls` (default) or `tls`.
    pub tls: TlsMode,
    /// SMTP AUTH user name (default empty: no authentication).
    pub user: String,
    /// SMTP AUTH password (default empty). Prefer `password_file`: secrets in config files end
    /// up in backups and diffs. At most one of the two.
    pub password: MailPassword,
    /// File whose first line (trimmed) is the password, e.g. a mounted Kubernetes secret.
    /// Default empty. Read once at start.
    pub password_file: String,
    /// The sender, `upgate@example.com` or `upgate <upgate@example.com>`. Required when enabled.
    pub from: String,
    /// Most milliseconds one delivery may take, connecting included (default 10000). A hung
    /// server holds one delivery slot this long, not forever.
    pub timeout_ms: u64,
    /// Recipients of each notice.
    pub recipients: MailRecipients,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: String::new(),
            port: 587,
            tls: TlsMode::Starttls,
            user: String::new(),
            password: MailPassword::default(),
            password_file: String::new(),
            from: String::new(),
            timeout_ms: 10_000,
            recipients: MailRecipients::default(),
        }
    }
}
