//! The `upgate` binary: CLI only. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upgate::app::{App, RootSource};
use upgate::auth::{Credential, SecretKey};
use upgate::config::Config;

#[derive(Parser)]
#[command(
    name = "upgate",
    version,
    about = "S3-compatible upload gateway",
    after_help = "Examples:\n  upgate serve\n  upgate admin create-tenant acme\n  upgate check-config --config upgate.toml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    #[command(after_help = "Example:\n  upgate serve
  upgate serve --config /etc/upgate/upgate.toml --log-format json")]
    Serve {
        /// TOML file layered over the embedded defaults (see config/upgate.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format, overriding `[log] format`: "text" (human) or "json" (one object per line).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Print the effective configuration check result and exit.
    #[command(after_help = "Example:\n  upgate check-config --config /etc/upgate/upgate.toml")]
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Signed upload receipts.
    #[command(
        after_help = "Example:\n  upgate receipt verify receipt.json --jwks https://uploads.example.com/.well-known/jwks.json"
    )]
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// Operator commands against the same config and database as `serve`.
    #[command(
        after_help = "Example:\n  upgate admin create-tenant acme --config /etc/upgate/upgate.toml"
    )]
    Admin {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Verify a receipt (the `receipt` object of GET /v1/uploads/{id}, or a document holding
    /// one) against upgate's JWKS; exit 0 and print the receipt when it verifies, 1 otherwise.
    #[command(after_help = "Example:\n  upgate receipt verify receipt.json --jwks jwks.json")]
    Verify {
        /// The receipt JSON file.
        receipt: PathBuf,
        /// The JWKS: an http(s) URL (`.../.well-known/jwks.json`) or a file.
        #[arg(long)]
        jwks: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user of a tenant (accounts enabled); reads the password from standard input
    /// (first line) and prints the user as one JSON object with user_id.
    #[command(
        after_help = "Example:\n  echo 'a long passphrase here' | upgate admin create-user t_0123 alice@example.com --role admin"
    )]
    CreateUser {
        tenant_id: String,
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// admin or member.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Start signing access tokens and receipts with a new key; the others verify for
    /// accounts.signing_key_grace_secs more (tokens they signed expire first), then stop.
    #[command(
        after_help = "Example:\n  upgate admin rotate-signing-key --config /etc/upgate/upgate.toml"
    )]
    RotateSigningKey,
    /// Create a tenant with an API key and an S3 access key; prints one JSON object with
    /// tenant_id, api_key, access_key_id and secret_access_key (shown only once).
    #[command(after_help = "Example:\n  upgate admin create-tenant acme")]
    CreateTenant { name: String },
    /// Add an API key to a tenant; prints JSON.
    #[command(after_help = "Example:\n  upgate admin create-api-key t_0123")]
    CreateApiKey { tenant_id: String },
    /// Add an S3 access key to a tenant; prints JSON.
    #[command(after_help = "Example:\n  upgate admin create-access-key t_0123")]
    CreateAccessKey { tenant_id: String },
    /// Set a tenant's quota overrides (0: unlimited; omit a flag to fall back to the default).
    #[command(
        after_help = "Example:\n  upgate admin set-quota t_0123 --max-bytes 107374182400 --max-objects 100000"
    )]
    SetQuota {
        tenant_id: String,
        #[arg(long)]
        max_bytes: Option<i64>,
        #[arg(long)]
        max_objects: Option<i64>,
    },
    /// Start signing links with a new key; older keys keep verifying links already minted.
    /// With --retire-others, every other key stops verifying at once (after a leak).
    #[command(after_help = "Example:\n  upgate admin rotate-link-key --retire-others")]
    RotateLinkKey {
        #[arg(long)]
        retire_others: bool,
    },
    /// Re-wrap every object's data key (envelope encryption) with the active master key
    /// (storage.encryption.active_key); rewrites only the small key sidecars, never objects.
    /// Safe to run again after an interruption.
    #[command(after_help = "Example:\n  upgate admin rotate-key")]
    RotateKey {
        /// Also re-wrap keys already wrapped by the active key.
        #[arg(long)]
        all: bool,
    },
}

async fn rotate_key(config: &Config, all: bool) -> Result<serde_json::Value, String> {
    let storage = upgate::storage::Storage::for_config(config).map_err(|e| e.to_string())?;
    let reports = storage
        .rotate_keys(&config.storage, all)
        .await
        .map_err(|e| format!("rotation stopped: {e} (it is safe to run again)"))?;
    let backends: Vec<serde_json::Value> = reports
        .into_iter()
        .map(|(backend, r)| {
            serde_json::json!({
                "backend": backend, "rewrapped": r.rewrapped, "current": r.current,
                "orphans_removed": r.orphans
            })
        })
        .collect();
    Ok(serde_json::json!({ "backends": backends }))
}

async fn admin(config: Config, command: AdminCommand) -> Result<serde_json::Value, String> {
    use upgate::api::admin;
    if let AdminCommand::RotateKey { all } = command {
        return rotate_key(&config, all).await;
    }
    std::fs::create_dir_all(&config.storage.data_dir).map_err(|e| e.to_string())?;
    let (_, control, accounts) = upgate::app::open_metadata(&config)
        .await
        .map_err(|e| e.to_string())?;
    let c = control.as_ref();
    if let AdminCommand::CreateUser {
        tenant_id,
        email,
        name,
        role,
    } = &command
    {
        return create_user(
            &config,
            c,
            accounts,
            tenant_id,
            email,
            name.as_deref(),
            role,
        )
        .await;
    }
    if let AdminCommand::RotateSigningKey = command {
        if !config.accounts.enabled {
            return Err("accounts are not enabled ([accounts] enabled = true)".into());
        }
        let keyring = upgate::app::master_keys(&config).map_err(|e| e.to_string())?;
        // Makes sure a first key exists, so that rotating retires something real.
        upgate::auth::signing::SigningKeys::load(
            accounts.as_ref(),
            keyring.clone(),
            &config.accounts.issuer,
        )
        .await
        .map_err(|e| e.to_string())?;
        let grace = std::time::Duration::from_secs(config.accounts.signing_key_grace_secs);
        let (id, retired) = upgate::auth::signing::rotate(accounts.as_ref(), &keyring, grace)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(serde_json::json!({
            "signing_key_id": id, "retired": retired, "grace_secs": grace.as_secs()
        }));
    }
    let err = |e: upgate::error::Error| format!("{}: {}", e.code(), e.message());
    match command {
        AdminCommand::CreateTenant { name } => {
            let t = admin::create_tenant(c, &name).await.map_err(err)?;
            serde_json::to_value(t).map_err(|e| e.to_string())
        }
        AdminCommand::CreateApiKey { tenant_id } => {
            let key = admin::create_api_key(c, &tenant_id).await.map_err(err)?;
            Ok(serde_json::json!({ "tenant_id": tenant_id, "api_key": key }))
        }
        AdminCommand::CreateAccessKey { tenant_id } => {
            let (id, secret) = admin::create_access_key(c, &tenant_id).await.map_err(err)?;
            Ok(serde_json::json!({
                "tenant_id": tenant_id, "access_key_id": id, "secret_access_key": secret
            }))
        }
        AdminCommand::SetQuota {
            tenant_id,
            max_bytes,
            max_objects,
        } => {
            if !c
                .set_quota(&tenant_id, max_bytes, max_objects)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("no such tenant".into());
            }
            let (bytes, objects) = c.usage(&tenant_id).await.map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "tenant_id": tenant_id, "max_bytes": max_bytes, "max_objects": max_objects,
                "used_bytes": bytes, "used_objects": objects
            }))
        }
        AdminCommand::RotateKey { all } => rotate_key(&config, all).await,
        AdminCommand::CreateUser { .. } | AdminCommand::RotateSigningKey => {
            Err("handled above".into())
        }
        AdminCommand::RotateLinkKey { retire_others } => {
            let id = upgate::auth::links::rotate(c)
                .await
                .map_err(|e| e.to_string())?;
            let retired = if retire_others {
                c.retire_link_keys_except(&id, upgate::clock::now_ms())
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                0
            };
            Ok(serde_json::json!({ "link_key_id": id, "retired": retired }))
        }
    }
}

async fn create_user(
    config: &Config,
    control: &dyn upgate::metadata::control::ControlStore,
    store: std::sync::Arc<dyn upgate::metadata::accounts::AccountStore>,
    tenant_id: &str,
    email: &str,
    name: Option<&str>,
    role: &str,
) -> Result<serde_json::Value, String> {
    use upgate::metadata::accounts::Role;
    if !config.accounts.enabled {
        return Err("accounts are not enabled ([accounts] enabled = true)".into());
    }
    let role = Role::parse(role).ok_or("--role is admin or member")?;
    control
        .tenant(tenant_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no such tenant")?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password =
        upgate::auth::password::Password::new(line.trim_end_matches(['\r', '\n']).to_string());
    let accounts = upgate::app::open_accounts(config, store)
        .await
        .map_err(|e| e.to_string())?;
    let u = upgate::accounts::create_user(&accounts, tenant_id, email, password, name, role)
        .await
        .map_err(|e| format!("{}: {}", e.code(), e.message()))?;
    serde_json::to_value(upgate::accounts::UserView::from(&u)).map_err(|e| e.to_string())
}

/// Reads a JWKS from an http(s) URL or a file.
async fn read_jwks(source: &str) -> Result<serde_json::Value, String> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        fetch(source).await?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("the JWKS is not JSON: {e}"))
}

async fn fetch(url: &str) -> Result<String, String> {
    use http_body_util::BodyExt;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            use rustls_platform_verifier::BuilderVerifierExt;
            b.with_platform_verifier()
        })
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(https);
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

async fn verify_receipt(path: &PathBuf, jwks: &str) -> Result<serde_json::Value, String> {
    use upgate::auth::signing::SignedReceipt;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the receipt is not JSON: {e}"))?;
    let inner = doc.get("receipt").cloned().unwrap_or(doc);
    let receipt = SignedReceipt::from_json(&inner).map_err(|_| {
        "the receipt does NOT verify: not a receipt (members missing, added or mistyped)"
            .to_string()
    })?;
    let set = read_jwks(jwks).await?;
    upgate::auth::signing::verify_receipt(&receipt, &set)
        .map_err(|e| format!("the receipt does NOT verify: {e}"))?;
    Ok(serde_json::json!({ "verified": true, "receipt": receipt }))
}

fn load(config: Option<&PathBuf>) -> Result<Config, ExitCode> {
    upgate::app::load_config(config.map(PathBuf::as_path), std::env::vars()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn root_from_env() -> Result<Option<Credential>, ExitCode> {
    match (
        std::env::var("UPGATE_ROOT_ACCESS_KEY").ok(),
        std::env::var("UPGATE_ROOT_SECRET_KEY").ok(),
    ) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Some(Credential {
            access_key_id: id,
            secret: SecretKey::new(secret),
        })),
        (None, None) => Ok(None),
        _ => {
            eprintln!("set both UPGATE_ROOT_ACCESS_KEY and UPGATE_ROOT_SECRET_KEY, or neither");
            Err(ExitCode::from(2))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Receipt {
            command: ReceiptCommand::Verify { receipt, jwks },
        } => match verify_receipt(&receipt, &jwks).await {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("upgate receipt verify: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Admin { config, command } => {
            let cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match admin(cfg, command).await {
                Ok(v) => {
                    println!("{v}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("upgate admin: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config } => match load(config.as_ref()) {
            Ok(_) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { config, log_format } => {
            let mut cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match log_format.as_deref() {
                Some("json") => cfg.log.format = upgate::config::LogFormat::Json,
                Some("text") => cfg.log.format = upgate::config::LogFormat::Text,
                _ => {}
            }
            upgate::telemetry::init(&cfg.log);
            let root = match root_from_env() {
                Ok(r) => r,
                Err(code) => return code,
            };
            let app = match App::build(cfg, root).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("upgate: cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if app.root_source() == RootSource::Generated {
                // Printed once, to stdout only; never logged.
                println!(
                    "Generated root credentials (stored in the data directory, mode 0600):\n  \
                     access key id:     {}\n  secret access key: {}",
                    app.root().access_key_id,
                    app.root().secret.expose()
                );
            }
            match app.local_addr() {
                Ok(addr) => tracing::info!(%addr, "upgate listening"),
                Err(e) => tracing::warn!(error = %e, "cannot read listener address"),
            }
            app.run(shutdown_signal()).await;
            ExitCode::SUCCESS
        }
    }
}
