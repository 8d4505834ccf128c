//! The `upgate` binary: CLI only. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upgate::app::{App, Credential, RootSource};
use upgate::auth::SecretKey;
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
    },
    /// Print the effective configuration check result and exit.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<&PathBuf>) -> Result<Config, ExitCode> {
    Config::load(config.map(PathBuf::as_path), std::env::vars()).map_err(|e| {
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
        Command::CheckConfig { config } => match load(config.as_ref()) {
            Ok(_) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { config } => {
            let cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
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
