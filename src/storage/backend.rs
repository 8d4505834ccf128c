//! Building one backend's store stack from its config.
//!
//! ```text
//! EncryptedStore            (encrypt = true: envelope encryption, any kind)
//!   └ SpooledStore          (remote kinds: parts via the local spool, bounded memory)
//!       └ PrefixStore       (prefix = "...": a sub-tree of the bucket)
//!           └ SplitStore    (remote kinds: reads and writes on differently timed clients)
//!               └ AmazonS3 / GoogleCloudStorage / MicrosoftAzure / LocalFileSystem / InMemory
//! ```
//!
//! Remote clients get two HTTP clients with the same settings but different timeouts: writes
//! (PUT, parts, complete, delete) are bounded as a whole by `request_timeout_secs`; reads are
//! bounded by `read_idle_timeout_secs` between two reads, so a slow downloader is not cut off
//! while a stalled backend still is. Both retry per `max_retries` / `retry_timeout_secs`
//! (object_store retries 5xx, 429, timeouts and connection errors with backoff).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig,
};

use super::config::{BackendConfig, S3BackendConfig, S3Sse, StorageConfig, resolve_secret};
use super::crypto::{EncryptedStore, Keyring};
use super::local::Files;
use super::spool::{Spool, SpooledStore};

/// A built backend.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The name buckets refer to.
    pub name: String,
    /// The kind ("local", "s3", ...).
    pub kind: &'static str,
    /// The whole stack; what [`super::Storage`] reads and writes through.
    pub store: Arc<dyn ObjectStore>,
    /// The stack below the encryption (ciphertext); key rotation works on it.
    pub raw: Arc<dyn ObjectStore>,
    /// Whether objects are envelope-encrypted.
    pub encrypted: bool,
    /// Root directory of a local backend (for its staging files).
    pub local_root: Option<PathBuf>,
    /// The spool of a remote backend.
    pub spool: Option<Arc<Spool>>,
    /// A plain (unencrypted) local backend's staged files, written from the upload's task
    /// (`direct_writes`).
    pub files: Option<Arc<Files>>,
}

fn generic(
    store: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> object_store::Error {
    object_store::Error::Generic {
        store,
        source: Box::new(e),
    }
}

fn config_error(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "config",
        source: msg.into(),
    }
}

fn clients(sc: &StorageConfig, allow_http: bool) -> (ClientOptions, ClientOptions, RetryConfig) {
    let base = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_millis(sc.connect_timeout_ms))
        .with_pool_idle_timeout(Duration::from_secs(30));
    let writes = base
        .clone()
        .with_timeout(Duration::from_secs(sc.request_timeout_secs));
    let reads = base
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(sc.read_idle_timeout_secs));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: sc.max_retries,
        retry_timeout: Duration::from_secs(sc.retry_timeout_secs),
    };
    (reads, writes, retry)
}

fn s3_builder(s: &S3BackendConfig) -> Result<AmazonS3Builder, object_store::Error> {
    // The AWS environment (AWS_ACCESS_KEY_ID, web identity, ECS/EC2 metadata) unless the config
    // names credentials; explicit settings below win over the environment.
    let mut b = AmazonS3Builder::from_env()
        .with_region(&s.region)
        .with_bucket_name(&s.bucket)
        .with_virtual_hosted_style_request(s.virtual_hosted_style);
    if !s.endpoint.is_empty() {
        b = b
            .with_endpoint(&s.endpoint)
            .with_allow_http(s.endpoint.starts_with("http://"));
    }
    let id = resolve_secret(&s.access_key_id, &s.access_key_id_file, "access_key_id")
        .map_err(config_error)?;
    let secret = resolve_secret(
        &s.secret_access_key,
        &s.secret_access_key_file,
        "secret_access_key",
    )
    .map_err(config_error)?;
    if let (Some(id), Some(secret)) = (id, secret) {
        b = b
            .with_access_key_id(id.expose())
            .with_secret_access_key(secret.expose());
    }
    let key = |name: &str| {
        name.parse::<AmazonS3ConfigKey>()
            .map_err(|e| config_error(format!("{name}: {e}")))
    };
    match s.sse {
        S3Sse::Aes256 => {
            b = b.with_config(key("aws_server_side_encryption")?, "AES256");
        }
        S3Sse::Kms => {
            b = b.with_config(key("aws_server_side_encryption")?, "aws:kms");
            if !s.kms_key_id.is_empty() {
                b = b.with_config(key("aws_sse_kms_key_id")?, &s.kms_key_id);
            }
            b = b.with_bucket_key(s.bucket_key);
        }
        S3Sse::None => {}
    }
    Ok(b)
}

/// Builds the backend `name` described by `cfg`.
pub fn build(
    name: &str,
    cfg: &BackendConfig,
    sc: &StorageConfig,
    spool: &Arc<Spool>,
    keys: Option<&Arc<Keyring>>,
) -> Result<Backend, object_store::Error> {
    let mut local_root = None;
    let mut files = None;
    let (base, prefix): (Arc<dyn ObjectStore>, &str) = match cfg {
        BackendConfig::Memory(_) => (Arc::new(object_store::memory::InMemory::new()), ""),
        BackendConfig::Local(l) => {
            let root = if l.root.as_os_str().is_empty() {
                sc.data_dir.join("objects")
            } else {
                l.root.clone()
            };
            std::fs::create_dir_all(&root).map_err(|e| generic("LocalFileSystem", e))?;
            local_root = Some(root.clone());
            let fs = Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(root)?
                    .with_automatic_cleanup(true)
                    .with_fsync(l.fsync),
            );
            if l.direct_writes && !l.encrypt {
                files = Some(Arc::new(Files::new(Arc::clone(&fs), l.fsync)));
            }
            (fs, "")
        }
        BackendConfig::S3(s) => {
            let (reads, writes, retry) = clients(sc, s.endpoint.starts_with("http://"));
            let r = s3_builder(s)?
                .with_client_options(reads)
                .with_retry(retry.clone())
                .build()?;
            let w = s3_builder(s)?
                .with_client_options(writes)
                .with_retry(retry)
                .build()?;
            (
                Arc::new(SplitStore::new(Arc::new(r), Arc::new(w))),
                &s.prefix,
            )
        }
        BackendConfig::Gcs(g) => {
            let http = g.base_url.starts_with("http://");
            let (reads, writes, retry) = clients(sc, http);
            let make = |opts: ClientOptions| {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&g.bucket)
                    .with_client_options(opts)
                    .with_retry(retry.clone());
                if !g.base_url.is_empty() {
                    b = b.with_base_url(&g.base_url);
                }
                if !g.service_account_file.as_os_str().is_empty() {
                    b = b.with_service_account_path(g.service_account_file.display().to_string());
                }
                if g.anonymous {
                    // object_store still sends a bearer token on writes: give it a dummy one.
                    let token = object_store::gcp::GcpCredential {
                        bearer: "anonymous".into(),
                    };
                    b = b.with_skip_signature(true).with_credentials(Arc::new(
                        object_store::StaticCredentialProvider::new(token),
                    ));
                }
                b.build()
            };
            let r = make(reads)?;
            let w = make(writes)?;
            (
                Arc::new(SplitStore::new(Arc::new(r), Arc::new(w))),
                &g.prefix,
            )
        }
        BackendConfig::Azure(a) => {
            let http = a.endpoint.starts_with("http://");
            let (reads, writes, retry) = clients(sc, http);
            let key = resolve_secret(&a.access_key, &a.access_key_file, "access_key")
                .map_err(config_error)?;
            let make = |opts: ClientOptions| {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_account(&a.account)
                    .with_container_name(&a.container)
                    .with_client_options(opts)
                    .with_retry(retry.clone())
                    .with_allow_http(http);
                if !a.endpoint.is_empty() {
                    b = b.with_endpoint(a.endpoint.clone());
                }
                if let Some(k) = &key {
                    b = b.with_access_key(k.expose());
                }
                b.build()
            };
            let r = make(reads)?;
            let w = make(writes)?;
            (
                Arc::new(SplitStore::new(Arc::new(r), Arc::new(w))),
                &a.prefix,
            )
        }
    };
    let prefixed: Arc<dyn ObjectStore> = if prefix.is_empty() {
        base
    } else {
        Arc::new(PrefixStore::new(base, prefix))
    };
    let remote = cfg.is_remote();
    let raw: Arc<dyn ObjectStore> = if remote {
        Arc::new(SpooledStore::new(
            prefixed,
            Arc::clone(spool),
            sc.part_bytes,
        ))
    } else {
        prefixed
    };
    let encrypted = cfg.encrypt();
    let store: Arc<dyn ObjectStore> = match (encrypted, keys) {
        (true, Some(k)) => Arc::new(EncryptedStore::new(
            Arc::clone(&raw),
            Arc::clone(k),
            sc.encryption.chunk_bytes,
        )),
        (true, None) => {
            // Never store plaintext where ciphertext was asked for.
            return Err(config_error(format!(
                "backend {name} has encrypt = true but no master keys are configured"
            )));
        }
        (false, _) => Arc::clone(&raw),
    };
    Ok(Backend {
        name: name.to_string(),
        kind: cfg.kind(),
        store,
        raw,
        encrypted,
        local_root,
        spool: remote.then(|| Arc::clone(spool)),
        files,
    })
}

/// Reads on one client, everything else on another (see the module docs).
#[derive(Debug)]
pub struct SplitStore {
    reads: Arc<dyn ObjectStore>,
    writes: Arc<dyn ObjectStore>,
}

impl SplitStore {
    /// `reads` serves `get`/`head`; `writes` everything else.
    pub fn new(reads: Arc<dyn ObjectStore>, writes: Arc<dyn ObjectStore>) -> Self {
        Self { reads, writes }
    }
}

impl fmt::Display for SplitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.writes, f)
    }
}

#[async_trait]
impl ObjectStore for SplitStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.writes.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.writes.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.reads.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.writes.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.reads.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.reads.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.writes.copy_opts(from, to, options).await
    }
}
