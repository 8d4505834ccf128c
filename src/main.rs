//! The `upgate` binary: CLI only. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use upgate::app::{App, RootSource};
use upgate::auth::{Credential, SecretKey};
use upgate::config::Config;

/// mimalloc instead of glibc's malloc. A request's buffers (body frames, 256 KiB file reads)
/// are often freed on another thread than the one that allocated them; glibc then hands the
/// pages of its per-thread arenas back with `madvise` and faults them in again on the next
/// request (`scripts/bench-vs-nginx.sh`, presigned GET 2 MiB, the two binaries alternated:
/// 2.75–2.95 ms of CPU per request with glibc, 1.86–1.94 with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Upload files to a gateway: resumable (tus), SHA-256 computed here and pinned, progress
    /// bars, retries with backoff; run the same command again after Ctrl-C or a lost network
    /// and each upload continues where it stopped. The receipt is checked when one is issued.
    /// Exit codes: 0 done, 1 refused by the gateway, 2 local problem, 3 gateway unreachable,
    /// 130 interrupted.
    #[command(
        after_help = "Example:\n  upgate upload scan.pdf photo.jpg --endpoint https://uploads.example.com --token ugt_...\n  \
        UPGATE_API_KEY=ugk_... upgate upload --json --endpoint http://127.0.0.1:9000 *.pdf"
    )]
    Upload {
        #[command(flatten)]
        remote: Remote,
        /// The files to upload.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON line per file on standard output (no progress bars).
        #[arg(long)]
        json: bool,
        /// Bytes per append (each is resent whole if it is interrupted).
        #[arg(long, default_value_t = 8 * 1024 * 1024)]
        chunk_bytes: u64,
        /// Where unfinished uploads are remembered (default: $XDG_STATE_HOME/upgate/uploads.json).
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// Attempts after a network failure or an overloaded gateway, with backoff.
        #[arg(long, default_value_t = 6)]
        retries: u32,
        /// Stop once this many bytes of a file were sent, as an interruption would (for tests).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
        /// Upload into this bucket over the S3 API with the keys in AWS_ACCESS_KEY_ID and
        /// AWS_SECRET_ACCESS_KEY (presigned PUT, or multipart with parts in parallel), instead
        /// of tus with a token or an API key.
        #[arg(long)]
        bucket: Option<String>,
        /// With --bucket: prepended to each file's name to make its key.
        #[arg(long, default_value = "")]
        key_prefix: String,
        /// With --bucket: parts sent at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// With --bucket: the SigV4 region.
        #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Your files on a gateway: list, download (SHA-256 checked), delete, versions.
    #[command(
        after_help = "Example:\n  upgate files ls --endpoint http://127.0.0.1:9000 --api-key ugk_...\n  \
        upgate files get 0f3c... -o scan.pdf"
    )]
    Files {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: FilesCommand,
    },
    /// Drop links (upload tokens with a policy) for people without an account.
    #[command(
        after_help = "Example:\n  upgate link create --files 3 --max-file-mb 20 --types application/pdf \\\n    \
        --note 'Your contract, please' --endpoint http://127.0.0.1:9000 --api-key ugk_..."
    )]
    Link {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: LinkCommand,
    },
}

/// Where the gateway is and who calls it.
#[derive(clap::Args)]
struct Remote {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "UPGATE_ENDPOINT",
        global = true,
        default_value = "http://127.0.0.1:9000"
    )]
    endpoint: String,
    /// An upload token (`ugt_...`).
    #[arg(long, env = "UPGATE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// An API key (`ugk_...`) or an access token.
    #[arg(
        long,
        env = "UPGATE_API_KEY",
        global = true,
        hide_env_values = true,
        conflicts_with = "token"
    )]
    api_key: Option<String>,
}

#[derive(Subcommand)]
enum FilesCommand {
    /// List files, newest first.
    #[command(after_help = "Example:\n  upgate files ls --name invoice --type application/pdf")]
    Ls {
        /// Only names containing this.
        #[arg(long)]
        name: Option<String>,
        /// Only this content type.
        #[arg(long = "type")]
        content_type: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Download a file (or one version) through a short-lived link; the SHA-256 is checked.
    #[command(after_help = "Example:\n  upgate files get 0f3c... -o scan.pdf")]
    Get {
        id: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Delete a file.
    #[command(after_help = "Example:\n  upgate files rm 0f3c...")]
    Rm { id: String },
    /// A file's versions, newest first (JSON lines).
    #[command(after_help = "Example:\n  upgate files versions 0f3c...")]
    Versions { id: String },
}

#[derive(Subcommand)]
enum LinkCommand {
    /// Create a drop link; prints its URL (the token is in the fragment, shown once).
    #[command(
        after_help = "Example:\n  upgate link create --files 2 --types application/pdf --types image/jpeg --expires-in 86400"
    )]
    Create {
        /// A label for the uploads (their `client_id`).
        #[arg(long, default_value = "drop-link")]
        client_id: String,
        /// How many files may be sent.
        #[arg(long, default_value_t = 1)]
        files: i64,
        /// Most megabytes (10^6 bytes) per file.
        #[arg(long)]
        max_file_mb: Option<u64>,
        /// Most megabytes in total.
        #[arg(long)]
        max_total_mb: Option<u64>,
        /// Accepted content types (repeat; default: the bucket's).
        #[arg(long = "types")]
        types: Vec<String>,
        /// Seconds the link works.
        #[arg(long, default_value_t = 86400)]
        expires_in: u64,
        /// A note shown on the drop page.
        #[arg(long)]
        note: Option<String>,
        /// Who asks, as the drop page names it.
        #[arg(long)]
        requester: Option<String>,
        /// An address notified about uploads through the link.
        #[arg(long)]
        notify_email: Option<String>,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Your drop links (JSON lines, never their secrets).
    #[command(after_help = "Example:\n  upgate link ls")]
    Ls,
    /// Revoke a drop link by its token_id.
    #[command(after_help = "Example:\n  upgate link revoke 5f2a9c01d3e4b6a7")]
    Revoke { id: String },
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
    /// Show what retention would delete (dry run, nothing is deleted): the files whose expiry
    /// is due at the given time (default now) and the versions the buckets' version rules
    /// would remove, none under legal hold, as one JSON document.
    #[command(
        after_help = "Example:\n  upgate admin expiring --in-days 7 --config /etc/upgate/upgate.toml"
    )]
    Expiring {
        /// Look this many days ahead.
        #[arg(long, default_value_t = 0)]
        in_days: u32,
        /// At most this many files.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Compare the bytes in the backends with the records: remove the blobs no record refers
    /// to (older than metadata.reconcile_grace_secs) and report committed records whose bytes
    /// are missing, per bucket, as one JSON document. Safe while the gateway runs.
    #[command(
        after_help = "Example:\n  upgate admin reconcile --dry-run --config /etc/upgate/upgate.toml"
    )]
    Reconcile {
        /// Report only; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave unreferenced blobs younger than this alone (default:
        /// metadata.reconcile_grace_secs). Below 60 only while no upload is in flight.
        #[arg(long)]
        grace_secs: Option<u64>,
    },
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

async fn reconcile(
    config: &Config,
    meta: &dyn upgate::metadata::MetadataStore,
    dry_run: bool,
    grace_secs: Option<u64>,
) -> Result<serde_json::Value, String> {
    use upgate::upload::reconcile as r;
    let storage = upgate::storage::Storage::for_config(config).map_err(|e| e.to_string())?;
    let buckets = r::buckets(meta, config).await.map_err(|e| e.to_string())?;
    let opts = r::Options::new(config, dry_run, grace_secs);
    let reports = r::run(meta, &storage, &buckets, opts, None)
        .await
        .map_err(|e| format!("{}: {} (it is safe to run again)", e.code(), e.message()))?;
    Ok(serde_json::json!({ "dry_run": dry_run, "buckets": reports }))
}

async fn admin(config: Config, command: AdminCommand) -> Result<serde_json::Value, String> {
    use upgate::api::admin;
    if let AdminCommand::RotateKey { all } = command {
        return rotate_key(&config, all).await;
    }
    std::fs::create_dir_all(&config.storage.data_dir).map_err(|e| e.to_string())?;
    let (meta, control, accounts) = upgate::app::open_metadata(&config)
        .await
        .map_err(|e| e.to_string())?;
    if let AdminCommand::Reconcile {
        dry_run,
        grace_secs,
    } = command
    {
        return reconcile(&config, meta.as_ref(), dry_run, grace_secs).await;
    }
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
        AdminCommand::Expiring { in_days, limit } => {
            let at = upgate::clock::now_ms().saturating_add(i64::from(in_days) * 86_400_000);
            let due = c
                .due_expired_files(at, limit)
                .await
                .map_err(|e| e.to_string())?;
            let files: Vec<serde_json::Value> = due
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "file_id": f.id, "tenant_id": f.tenant_id, "owner": f.owner,
                        "filename": f.filename, "size": f.size, "versions": f.versions,
                        "expires_at": f.expires_at_ms.map(|ms| upgate::clock::iso8601(upgate::clock::from_ms(ms))),
                    })
                })
                .collect();
            // The versions the buckets' version rules would remove by then.
            let mut versions = Vec::new();
            for (name, b) in &config.buckets {
                let Some((keep, before)) = upgate::upload::delete::version_rule(b, at) else {
                    continue;
                };
                for l in c
                    .retired_versions(name, keep, before, limit)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    versions.push(serde_json::json!({
                        "file_id": l.file_id, "tenant_id": l.tenant_id, "bucket": l.bucket,
                        "version_id": l.key.rsplit('/').next().unwrap_or(""), "size": l.size,
                    }));
                }
            }
            Ok(serde_json::json!({
                "dry_run": true,
                "at": upgate::clock::iso8601(upgate::clock::from_ms(at)),
                "files": files,
                "versions": versions,
            }))
        }
        AdminCommand::RotateKey { all } => rotate_key(&config, all).await,
        AdminCommand::CreateUser { .. }
        | AdminCommand::RotateSigningKey
        | AdminCommand::Reconcile { .. } => Err("handled above".into()),
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
    let http = upgate::client::http::Http::new(url, None)?;
    let body = http
        .download(url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
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

/// Runs a client command: errors are one line on standard error, with the gateway's code.
async fn client(
    remote: Remote,
    run: impl AsyncFnOnce(&upgate::client::http::Http) -> Result<(), upgate::client::Failure>,
) -> ExitCode {
    let bearer = remote.token.or(remote.api_key);
    let http = match upgate::client::http::Http::new(&remote.endpoint, bearer) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("upgate: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&http).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upgate: {e}");
            ExitCode::from(e.code())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // The server's config is read before its runtime starts: it sizes the blocking pool.
    let mut serve_config = None;
    if let Command::Serve { config, .. } = &cli.command {
        match load(config.as_ref()) {
            Ok(c) => {
                runtime.max_blocking_threads(c.server.blocking_threads);
                serve_config = Some(c);
            }
            Err(code) => return code,
        }
    }
    match runtime.build() {
        Ok(rt) => rt.block_on(dispatch(cli, serve_config)),
        Err(e) => {
            eprintln!("upgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli, serve_config: Option<Config>) -> ExitCode {
    match cli.command {
        Command::Upload {
            remote,
            files,
            json,
            chunk_bytes,
            state_file,
            retries,
            stop_after,
            bucket,
            key_prefix,
            parallel,
            region,
        } => {
            let s3 = match bucket {
                None => None,
                Some(bucket) => {
                    let (Ok(id), Ok(secret)) = (
                        std::env::var("AWS_ACCESS_KEY_ID"),
                        std::env::var("AWS_SECRET_ACCESS_KEY"),
                    ) else {
                        eprintln!(
                            "upgate: --bucket needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        );
                        return ExitCode::from(2);
                    };
                    Some(upgate::client::s3::S3Target {
                        access_key_id: id,
                        secret: SecretKey::new(secret),
                        region,
                        bucket,
                        prefix: key_prefix,
                        parallel,
                    })
                }
            };
            let o = upgate::client::UploadOptions {
                files,
                json,
                chunk_bytes: chunk_bytes.max(64 * 1024),
                state_file: state_file.unwrap_or_else(upgate::client::default_state_file),
                retries,
                stop_after,
                s3,
            };
            client(remote, async move |h| upgate::client::upload(h, o).await).await
        }
        Command::Files { remote, command } => {
            client(remote, async move |h| match command {
                FilesCommand::Ls {
                    name,
                    content_type,
                    json,
                } => {
                    upgate::client::files_ls(h, name.as_deref(), content_type.as_deref(), json)
                        .await
                }
                FilesCommand::Get {
                    id,
                    output,
                    version,
                } => upgate::client::files_get(h, &id, output.as_deref(), version.as_deref()).await,
                FilesCommand::Rm { id } => upgate::client::files_rm(h, &id).await,
                FilesCommand::Versions { id } => upgate::client::files_versions(h, &id).await,
            })
            .await
        }
        Command::Link { remote, command } => {
            client(remote, async move |h| match command {
                LinkCommand::Create {
                    client_id,
                    files,
                    max_file_mb,
                    max_total_mb,
                    types,
                    expires_in,
                    note,
                    requester,
                    notify_email,
                    json,
                } => {
                    let mut p = serde_json::json!({
                        "client_id": client_id, "max_uploads": files, "expires_in": expires_in,
                    });
                    if let Some(mb) = max_file_mb {
                        p["max_file_bytes"] = (mb.saturating_mul(1_000_000)).into();
                    }
                    if let Some(mb) = max_total_mb {
                        p["max_bytes"] = (mb.saturating_mul(1_000_000)).into();
                    }
                    if !types.is_empty() {
                        p["allowed_types"] = types.into();
                    }
                    for (k, v) in [
                        ("note", note),
                        ("requester", requester),
                        ("notify_email", notify_email),
                    ] {
                        if let Some(v) = v {
                            p[k] = v.into();
                        }
                    }
                    upgate::client::link_create(h, p, json).await
                }
                LinkCommand::Ls => upgate::client::link_ls(h).await,
                LinkCommand::Revoke { id } => upgate::client::link_revoke(h, &id).await,
            })
            .await
        }
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
            let mut cfg = match serve_config.map_or_else(|| load(config.as_ref()), Ok) {
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
