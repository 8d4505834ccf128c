//! TLS for the main listener: rustls (TLS 1.2 and 1.3 only), ALPN `h2` and `http/1.1`, and a
//! certificate that is reloaded without restart.
//!
//! The server config resolves its certificate through [`ReloadingResolver`], which hands out
//! whatever pair was loaded last. [`TlsState::watch`] polls the PEM files' modification times
//! (and reacts to SIGHUP); a new pair is loaded, checked (the key must match the certificate)
//! and swapped in atomically. A broken new pair is logged and the old one stays in use, so a
//! half-written renewal never takes the listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate and key do not belong together: {0}")]
    Mismatch(String),
    #[error("tls setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// Hands out the most recently loaded certificate.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// The TLS acceptor plus what is needed to reload its certificate.
pub struct TlsState {
    resolver: Arc<ReloadingResolver>,
    acceptor: TlsAcceptor,
    cert_file: PathBuf,
    key_file: PathBuf,
    /// Last observed modification times of (cert, key).
    seen: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads and checks a certificate chain and its private key.
pub fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_file.to_path_buf(),
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(ck)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsState {
    /// Loads the configured pair and builds the acceptor.
    pub fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let ck = load_pair(&cfg.cert_file, &cfg.key_file)?;
        let resolver = Arc::new(ReloadingResolver {
            current: RwLock::new(Arc::new(ck)),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            cert_file: cfg.cert_file.clone(),
            key_file: cfg.key_file.clone(),
            seen: RwLock::new((mtime(&cfg.cert_file), mtime(&cfg.key_file))),
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Loads the files again and swaps the pair in if it is valid.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = load_pair(&self.cert_file, &self.key_file)?;
        if let Ok(mut cur) = self.resolver.current.write() {
            *cur = Arc::new(ck);
        }
        Ok(())
    }

    /// Reloads when either file's modification time changed since the last look.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = (mtime(&self.cert_file), mtime(&self.key_file));
        let changed = self.seen.read().map(|s| *s != now).unwrap_or(true);
        if !changed {
            return None;
        }
        let r = self.reload();
        if r.is_ok()
            && let Ok(mut s) = self.seen.write()
        {
            *s = now;
        }
        Some(r)
    }

    /// Polls for changes every `interval` and reloads on SIGHUP, forever.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = tick.tick() => false,
                    _ = h.recv() => true,
                },
                None => {
                    tick.tick().await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tick.tick().await;
                false
            };
            let result = if forced {
                Some(self.reload())
            } else {
                self.reload_if_changed()
            };
            match result {
                Some(Ok(())) => tracing::info!("tls certificate reloaded"),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "tls certificate reload failed; keeping the previous one")
                }
                None => {}
            }
        }
    }
}
