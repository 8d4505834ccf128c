//! The `upgate` binary: CLI only. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upgate::app::{App, RootSource};
use upgate::auth::{Credential, SecretKey};
use upgate::config::Config;

#[derive(Parser)]
#[command(name = "upgate", version, about = "S3-compatible upload gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// TOML file layered over the embedded defaults (see config/upgate.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format, overriding `[log] format`: "text" (human) or "json" (one object per line).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Print the effective configuration check result and exit.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Operator commands against the same config and database as `serve`.
    Admin {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant with an API key and an S3 access key; prints one JSON object with
    /// tenant_id, api_key, access_key_id and secret_access_key (shown only once).
    CreateTenant { name: String },
    /// Add an API key to a tenant; prints JSON.
    CreateApiKey { tenant_id: String },
    /// Add an S3 access key to a tenant; prints JSON.
    CreateAccessKey { tenant_id: String },
    /// Set a tenant's quota overrides (0: unlimited; omit a flag to fall back to the default).
    SetQuota {
        tenant_id: String,
        #[arg(long)]
        max_bytes: Option<i64>,
        #[arg(long)]
        max_objects: Option<i64>,
    },
    /// Start signing links with a new key; older keys keep verifying links already minted.
    /// With --retire-others, every other key stops verifying at once (after a leak).
    RotateLinkKey {
        #[arg(long)]
        retire_others: bool,
    },
    /// Re-wrap every object's data key (envelope encryption) with the active master key
    /// (storage.encryption.active_key); rewrites only the small key sidecars, never objects.
    /// Safe to run again after an interruption.
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
    let (_, control) = upgate::app::open_metadata(&config)
        .await
        .map_err(|e| e.to_string())?;
    let c = control.as_ref();
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
