//! Application assembly: config → stores, credentials, listener. `App::build` binds the
//! listener (port 0 works) so tests know the address before serving; `App::run` serves until
//! the shutdown future resolves, then drains.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::links::LinkKeys;
use crate::auth::{AuthPolicy, Credential, Credentials, SecretKey};
use crate::config::{Config, ConfigError};
use crate::metadata::accounts::AccountStore;
use crate::metadata::batch::{Batcher, Commits, Mints, Pendings};
use crate::metadata::control::ControlStore;
use crate::metadata::mysql::MySqlStore;
use crate::metadata::postgres::PgStore;
use crate::metadata::sqlite::SqliteStore;
use crate::metadata::{MetaError, MetadataStore};
use crate::metrics::Metrics;
use crate::state::{AppState, CleanupTracker};
use crate::storage::Storage;
use crate::tls::TlsState;

/// Errors that stop the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("metadata: {0}")]
    Metadata(#[from] MetaError),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Setup(String),
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("mail: {0}")]
    Mail(String),
}

/// Where the root credentials came from (so `main` can print a generated pair exactly once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSource {
    /// Given by the caller (environment).
    Provided,
    /// Read from the configured files or the data directory.
    Stored,
    /// Generated now and stored in the data directory.
    Generated,
}

/// A built, bound, not yet serving gateway.
pub struct App {
    state: Arc<AppState>,
    webhooks: crate::events::Deliverer,
    listener: TcpListener,
    admin: Option<TcpListener>,
    tls: Option<Arc<TlsState>>,
    root: Credential,
    root_source: RootSource,
}

impl App {
    /// Builds everything the config describes and binds the listener. `root` overrides the
    /// stored/generated root credentials (from `UPGATE_ROOT_*`).
    pub async fn build(config: Config, root: Option<Credential>) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.storage.data_dir)?;
        let (root, root_source) = match root {
            Some(c) => (c, RootSource::Provided),
            None => load_or_generate_root(&config)?,
        };
        let metrics = Arc::new(Metrics::new());
        let storage = Storage::for_config(&config)?.with_metrics(Arc::clone(&metrics));
        let (meta, control, account_store) = open_metadata(&config).await?;
        let link_keys = LinkKeys::load(control.as_ref()).await?;
        let accounts = if config.accounts.enabled {
            Some(open_accounts(&config, account_store).await?)
        } else {
            None
        };
        let mut webhooks = crate::events::Deliverer::new(&config.webhooks)
            .map_err(StartError::Webhooks)?
            .with_metrics(Arc::clone(&metrics));
        if let Some(mailer) = crate::events::mail::Mailer::new(&config.mail)
            .map_err(|problems| StartError::Mail(problems.join("; ")))?
        {
            webhooks = webhooks.with_mail(mailer);
        }
        if let Some(a) = &accounts {
            webhooks = webhooks.with_receipts(Arc::clone(&a.signing));
        }
        let limiter = crate::ratelimit::RateLimiter::new(&config.ratelimit, &config.redis)
            .map_err(|e| StartError::Setup(format!("rate limiter: {e}")))?;
        let jwt = crate::auth::jwt::JwtVerifier::new(&config.jwt)
            .map_err(|e| StartError::Setup(format!("jwt: {e}")))?;
        let jwt = jwt.is_enabled().then_some(jwt);
        let admin_token = if config.api.admin_token_file.is_empty() {
            None
        } else {
            Some(read_secret_file(&config.api.admin_token_file)?)
        };
        let mut bucket_created = HashMap::new();
        for name in config.buckets.keys() {
            let created = meta.ensure_bucket(name, crate::clock::now_ms()).await?;
            bucket_created.insert(name.clone(), created);
        }
        let auth_policy = AuthPolicy {
            region: config.s3.region.clone(),
            max_presign_expiry: config.s3.max_presign_expiry(),
            max_skew: config.s3.max_clock_skew(),
            allow_sigv2: config.s3.allow_sigv2,
        };
        let mut credentials =
            Credentials::new(&root, link_keys, jwt, admin_token, Arc::clone(&control));
        if let Some(a) = accounts {
            credentials = credentials.with_accounts(a);
        }
        let clamd = if config.scan.clamd.is_empty() {
            None
        } else {
            let address = crate::scan::clamd::Address::parse(&config.scan.clamd)
                .map_err(|e| StartError::Setup(format!("scan.clamd: {e}")))?;
            Some(Arc::new(crate::scan::clamd::Clamd::new(
                address,
                Duration::from_secs(config.scan.timeout_secs),
                config.scan.max_concurrent,
            )))
        };
        let tls = if config.tls.enabled {
            Some(Arc::new(TlsState::new(&config.tls)?))
        } else {
            None
        };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let admin = match config.admin.addr() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let extractions = Arc::new(tokio::sync::Semaphore::new(config.search.max_concurrent));
        let pendings = Batcher::start(Pendings {
            store: Arc::clone(&meta),
            metrics: Arc::clone(&metrics),
        });
        let commits = meta.single_writer().then(|| {
            Batcher::start(Commits {
                store: Arc::clone(&meta),
                metrics: Arc::clone(&metrics),
            })
        });
        Ok(Self {
            webhooks,
            state: Arc::new(AppState {
                config,
                storage,
                meta,
                mints: Batcher::start(Mints {
                    store: Arc::clone(&control),
                    metrics: Arc::clone(&metrics),
                }),
                pendings,
                commits,
                control,
                credentials,
                clamd,
                limiter,
                auth_policy,
                metrics,
                cleanup: Arc::new(CleanupTracker::default()),
                bucket_created,
                runtime_buckets: Default::default(),
                rewrites: tokio::sync::Semaphore::new(crate::state::MAX_REWRITES),
                extractions,
                readiness: tokio::sync::Mutex::new(None),
            }),
            listener,
            admin,
            tls,
            root,
            root_source,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound admin address, if the admin listener is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS state (tests trigger reloads through it).
    pub fn tls(&self) -> Option<Arc<TlsState>> {
        self.tls.clone()
    }

    /// The root credential in force.
    pub fn root(&self) -> &Credential {
        &self.root
    }

    /// Where the root credential came from.
    pub fn root_source(&self) -> RootSource {
        self.root_source
    }

    /// Shared state (tests inspect storage and metadata through it).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests
    /// for up to the configured grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let mut background = vec![
            tokio::spawn(crate::sweeper::run(Arc::clone(&self.state))),
            tokio::spawn(crate::sweeper::reconcile_loop(Arc::clone(&self.state))),
        ];
        if let Some(tls) = &self.tls {
            let every = Duration::from_secs(self.state.config.tls.reload_interval_secs);
            background.push(tokio::spawn(Arc::clone(tls).watch(every)));
        }
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(admin) = self.admin {
            background.push(tokio::spawn(crate::server::serve_admin(
                admin,
                Arc::clone(&self.state),
                async move {
                    let _ = admin_stopped.await;
                },
            )));
        }
        // The outbox worker always runs (with no endpoints it just marks events delivered).
        let (stop_webhooks, webhooks_stopped) = tokio::sync::oneshot::channel::<()>();
        let webhooks = tokio::spawn(crate::events::run(
            Arc::clone(&self.state.control),
            self.webhooks,
            async move {
                let _ = webhooks_stopped.await;
            },
        ));
        crate::server::serve(self.listener, self.state, self.tls, shutdown, grace).await;
        let _ = stop_admin.send(());
        // Stopped after the drain, so events of requests that finished during it still go out;
        // deliveries in flight are abandoned and re-sent after the next start.
        let _ = stop_webhooks.send(());
        let _ = webhooks.await;
        for task in background {
            task.abort();
        }
    }
}

/// Loads the config (defaults, `file`, `env`) and adds the problems only the mechanisms can
/// find (webhook secrets and URLs, encryption key files), so every problem is reported at once.
pub fn load_config(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let config = Config::load(file, env)?;
    check_config(&config)?;
    Ok(config)
}

/// The mechanism-level checks of [`load_config`], for a config built another way.
pub fn check_config(config: &Config) -> Result<(), ConfigError> {
    let mut problems = config.webhooks.problems();
    problems.extend(config.mail.problems());
    problems.extend(crate::storage::problems(&config.storage));
    if !config.scan.clamd.is_empty()
        && let Err(e) = crate::scan::clamd::Address::parse(&config.scan.clamd)
    {
        problems.push(format!("scan.clamd: {e}"));
    }
    if config.accounts.enabled {
        problems.extend(crate::auth::password::params_problem(&config.accounts));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}

/// The metadata database as each of its store traits.
pub type Stores = (
    Arc<dyn MetadataStore>,
    Arc<dyn ControlStore>,
    Arc<dyn AccountStore>,
);

/// Opens the metadata database the config names, as every store trait.
pub async fn open_metadata(config: &Config) -> Result<Stores, StartError> {
    let url = config.metadata.resolved_url(&config.storage.data_dir);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = Arc::new(if config.metadata.schema.is_empty() {
            PgStore::open(&url).await?
        } else {
            PgStore::open_with_schema(&url, &config.metadata.schema).await?
        });
        Ok((store.clone(), store.clone(), store))
    } else if url.starts_with("mysql://") {
        let store = Arc::new(MySqlStore::open(&url).await?);
        Ok((store.clone(), store.clone(), store))
    } else {
        let store = Arc::new(SqliteStore::open_with(&url, config.metadata.fsync).await?);
        Ok((store.clone(), store.clone(), store))
    }
}

/// The master keys that seal upgate's signing keys (`storage.encryption`).
pub fn master_keys(config: &Config) -> Result<Arc<crate::storage::crypto::Keyring>, StartError> {
    crate::storage::crypto::Keyring::load(&config.storage.encryption)
        .map(Arc::new)
        .map_err(|e| StartError::Setup(format!("accounts: master keys: {e}")))
}

/// upgate's accounts: the signing keys (created on first start), password hashing and the
/// `/me` cache.
pub async fn open_accounts(
    config: &Config,
    store: Arc<dyn AccountStore>,
) -> Result<crate::auth::keys::Accounts, StartError> {
    let keyring = master_keys(config)?;
    let signing =
        crate::auth::signing::SigningKeys::load(store.as_ref(), keyring, &config.accounts.issuer)
            .await
            .map_err(|e| StartError::Setup(format!("accounts: signing keys: {e}")))?;
    let hasher = crate::auth::password::Hasher::new(&config.accounts)
        .map_err(|e| StartError::Setup(format!("accounts: {e}")))?;
    let cache = crate::auth::cache::MeCache::new(&config.redis, config.accounts.me_cache_ttl_secs)
        .map_err(|e| StartError::Setup(format!("accounts: {e}")))?
        .map(Arc::new);
    Ok(crate::auth::keys::Accounts {
        signing: Arc::new(signing),
        store,
        hasher,
        cache,
    })
}

fn read_secret_file(path: &str) -> Result<String, StartError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartError::Credentials(format!("cannot read {path}: {e}")))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(StartError::Credentials(format!("{path} is empty")));
    }
    Ok(line)
}

fn load_or_generate_root(config: &Config) -> Result<(Credential, RootSource), StartError> {
    let a = &config.auth;
    if !a.root_access_key_file.is_empty() || !a.root_secret_key_file.is_empty() {
        if a.root_access_key_file.is_empty() || a.root_secret_key_file.is_empty() {
            return Err(StartError::Credentials(
                "set both auth.root_access_key_file and auth.root_secret_key_file".into(),
            ));
        }
        let cred = Credential {
            access_key_id: read_secret_file(&a.root_access_key_file)?,
            secret: SecretKey::new(read_secret_file(&a.root_secret_key_file)?),
        };
        return Ok((cred, RootSource::Stored));
    }
    let path = config.storage.data_dir.join("root-credentials");
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        let mut it = text.lines().map(str::trim).filter(|l| !l.is_empty());
        return match (it.next(), it.next()) {
            (Some(id), Some(secret)) => Ok((
                Credential {
                    access_key_id: id.to_string(),
                    secret: SecretKey::new(secret.to_string()),
                },
                RootSource::Stored,
            )),
            _ => Err(StartError::Credentials(format!(
                "{} is malformed (want two lines: access key id, secret)",
                path.display()
            ))),
        };
    }
    let cred = Credential {
        access_key_id: format!("UG{}", crate::id::random_hex(9).to_ascii_uppercase()),
        secret: SecretKey::new(crate::id::random_hex(20)),
    };
    write_private(
        &path,
        &format!("{}\n{}\n", cred.access_key_id, cred.secret.expose()),
    )?;
    Ok((cred, RootSource::Generated))
}

/// Writes `content` to a new file readable only by its owner.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}
