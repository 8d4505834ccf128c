//! Envelope encryption at rest, as a wrapper store: [`EncryptedStore`] encrypts what it is given
//! before the inner store sees it and decrypts what it reads, so every backend (local, memory,
//! GCS, Azure, S3) can hold ciphertext only.
//!
//! # Format
//!
//! Each object gets a fresh random 256-bit *data key*. The object's bytes are stored as a
//! sequence of AES-256-GCM chunks, each `chunk_bytes` of plaintext (the last one 0..=chunk_bytes)
//! followed by its 16-byte tag; nothing else is in the object, so the ciphertext size is
//! `n + 16 * max(1, ceil(n / chunk_bytes))` and the plaintext size follows from it. Chunk `i` uses
//! the nonce `prefix(4 random bytes) || i (u64, big endian)` and the AAD `[last]` (1 when it is
//! the final chunk): reordering, dropping or appending chunks, and truncating at a chunk
//! boundary all fail authentication. A range read fetches and decrypts only the chunks that
//! cover it.
//!
//! The data key, wrapped (AES-256-GCM) by a *master key*, lives in a small sidecar object at
//! `{path}.dek`:
//!
//! ```text
//! "UPGK" | version 1 | chunk_bytes u32 | nonce prefix [4] | key id len u8 | key id | wrap nonce [12] | wrapped key [48]
//! ```
//!
//! The wrap's AAD is every header byte before the wrap nonce plus the object's path, so a
//! sidecar cannot be moved to another object, nor its chunk size or nonce prefix changed.
//! Master keys have ids so several can be configured; the active one wraps new data keys, the
//! others still unwrap old ones. Rotation ([`rotate`]) re-wraps every sidecar with the active
//! key and rewrites only the sidecars, never the objects.
//!
//! Failure is loud: a missing or altered sidecar, an unknown key id, or a chunk that does not
//! authenticate is an [`IntegrityError`], never different bytes.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, UploadPart,
};
use zeroize::Zeroizing;

use super::config::EncryptionConfig;

const MAGIC: &[u8; 4] = b"UPGK";
const VERSION: u8 = 1;
const TAG: u64 = 16;
/// Suffix of the sidecar holding an object's wrapped data key.
pub const SIDECAR_SUFFIX: &str = ".dek";
const STORE: &str = "Encrypted";

/// The stored bytes are not what upgate wrote (or cannot be decrypted with the configured keys).
#[derive(Debug, thiserror::Error)]
#[error("integrity check failed for {path}: {what}")]
pub struct IntegrityError {
    /// The object.
    pub path: String,
    /// What did not check out.
    pub what: &'static str,
}

fn integrity(path: &Path, what: &'static str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(IntegrityError {
            path: path.to_string(),
            what,
        }),
    }
}

/// A requested range that does not overlap the object.
#[derive(Debug, thiserror::Error)]
#[error("range not satisfiable")]
pub struct RangeError;

/// One master key.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

/// The configured master keys, by id, and which one wraps new data keys.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<MasterKey>,
    active: usize,
}

impl Keyring {
    /// Reads the keys (`id:base64` entries) from `keys_file` and `keys`. Errors never echo a key.
    pub fn load(cfg: &EncryptionConfig) -> Result<Self, String> {
        let mut text = Zeroizing::new(String::new());
        if !cfg.keys_file.as_os_str().is_empty() {
            let file = Zeroizing::new(
                std::fs::read_to_string(&cfg.keys_file)
                    .map_err(|e| format!("keys_file {}: {e}", cfg.keys_file.display()))?,
            );
            for line in file.lines() {
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text.push_str(cfg.keys.expose());
        let mut keys: Vec<MasterKey> = Vec::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let Some((id, b64)) = entry.split_once(':') else {
                return Err("a key entry is not of the form id:base64key".into());
            };
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!("key id {id:?} must be 1-64 of A-Z a-z 0-9 - _ ."));
            }
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| format!("key {id:?} is not valid base64"))?,
            );
            let key: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| format!("key {id:?} must be 32 bytes (base64 of 32 random bytes)"))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key id {id:?} is listed twice"));
            }
            keys.push(MasterKey {
                id: id.to_string(),
                key: Zeroizing::new(key),
            });
        }
        if keys.is_empty() {
            return Err("no master key configured".into());
        }
        let active = if cfg.active_key.is_empty() {
            keys.len() - 1
        } else {
            keys.iter()
                .position(|k| k.id == cfg.active_key)
                .ok_or_else(|| format!("active_key {:?} is not among the keys", cfg.active_key))?
        };
        Ok(Self { keys, active })
    }

    /// The key that wraps new data keys.
    pub fn active_id(&self) -> &str {
        &self.keys[self.active].id
    }

    fn active(&self) -> &MasterKey {
        &self.keys[self.active]
    }

    fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals a small secret (a signing key) with the active master key, bound to `aad`:
    /// `keyid:base64(nonce[12] || ciphertext || tag)`. The same keys and rotation as the data
    /// keys; [`Keyring::open`] reverses it with whichever configured key sealed it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, String> {
        let master = self.active();
        let nonce = random::<12>().map_err(|e| e.to_string())?;
        let mut buf = plaintext.to_vec();
        Aes256Gcm::new((&*master.key).into())
            .encrypt_in_place(Nonce::from_slice(&nonce), aad, &mut buf)
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{}:{}",
            master.id,
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens what [`Keyring::seal`] sealed under the same `aad`. Fails (without detail) on an
    /// unknown master key id, a changed value or a different `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let (id, b64) = sealed.split_once(':').ok_or("malformed sealed value")?;
        let master = self
            .get(id)
            .ok_or_else(|| format!("sealed with master key {id:?}, which is not configured"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "malformed sealed value".to_string())?;
        if raw.len() < 12 + 16 {
            return Err("malformed sealed value".into());
        }
        let (nonce, ct) = raw.split_at(12);
        let mut buf = Zeroizing::new(ct.to_vec());
        Aes256Gcm::new((&*master.key).into())
            .decrypt_in_place(Nonce::from_slice(nonce), aad, &mut *buf)
            .map_err(|_| "the sealed value does not open (altered or moved)".to_string())?;
        Ok(buf)
    }
}

fn random<const N: usize>() -> Result<[u8; N], object_store::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| object_store::Error::Generic {
        store: STORE,
        source: format!("no randomness: {e}").into(),
    })?;
    Ok(b)
}

/// The decoded sidecar of one object.
struct Envelope {
    chunk: u32,
    prefix: [u8; 4],
    key_id: String,
    data_key: Zeroizing<[u8; 32]>,
}

impl Envelope {
    fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(16 + self.key_id.len());
        h.extend_from_slice(MAGIC);
        h.push(VERSION);
        h.extend_from_slice(&self.chunk.to_be_bytes());
        h.extend_from_slice(&self.prefix);
        // Key ids are at most 64 bytes (checked when loading).
        h.push(u8::try_from(self.key_id.len()).unwrap_or(u8::MAX));
        h.extend_from_slice(self.key_id.as_bytes());
        h
    }

    fn wrap_aad(header: &[u8], path: &Path) -> Vec<u8> {
        let mut aad = header.to_vec();
        aad.extend_from_slice(path.as_ref().as_bytes());
        aad
    }

    /// Serialises the sidecar for `path`, wrapping the data key with `master`.
    fn seal(&self, master: &MasterKey, path: &Path) -> Result<Bytes, object_store::Error> {
        let header = self.header();
        let nonce = random::<12>()?;
        let mut wrapped = self.data_key.to_vec();
        Aes256Gcm::new((&*master.key).into())
            .encrypt_in_place(
                Nonce::from_slice(&nonce),
                &Self::wrap_aad(&header, path),
                &mut wrapped,
            )
            .map_err(|_| integrity(path, "wrapping the data key failed"))?;
        let mut out = header;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
        Ok(Bytes::from(out))
    }

    /// Parses and unwraps the sidecar of `path`.
    fn open(bytes: &[u8], keys: &Keyring, path: &Path) -> Result<Self, object_store::Error> {
        let bad = || integrity(path, "malformed key sidecar");
        if bytes.len() < 14 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(bad());
        }
        let chunk = u32::from_be_bytes(bytes[5..9].try_into().map_err(|_| bad())?);
        let prefix: [u8; 4] = bytes[9..13].try_into().map_err(|_| bad())?;
        let id_len = usize::from(bytes[13]);
        let rest = &bytes[14..];
        if rest.len() != id_len + 12 + 48 || chunk == 0 {
            return Err(bad());
        }
        let key_id = std::str::from_utf8(&rest[..id_len]).map_err(|_| bad())?;
        let header_len = 14 + id_len;
        let nonce = &rest[id_len..id_len + 12];
        let master = keys
            .get(key_id)
            .ok_or_else(|| integrity(path, "the data key is wrapped by an unknown master key"))?;
        let mut key = Zeroizing::new(rest[id_len + 12..].to_vec());
        Aes256Gcm::new((&*master.key).into())
            .decrypt_in_place(
                Nonce::from_slice(nonce),
                &Self::wrap_aad(&bytes[..header_len], path),
                &mut *key,
            )
            .map_err(|_| integrity(path, "the data key does not unwrap (altered or moved)"))?;
        let data_key: [u8; 32] = key.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self {
            chunk,
            prefix,
            key_id: key_id.to_string(),
            data_key: Zeroizing::new(data_key),
        })
    }

    fn fresh(keys: &Keyring, chunk: u32) -> Result<Self, object_store::Error> {
        Ok(Self {
            chunk,
            prefix: random::<4>()?,
            key_id: keys.active_id().to_string(),
            data_key: Zeroizing::new(random::<32>()?),
        })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.data_key).into())
    }

    fn nonce(&self, index: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.prefix);
        n[4..].copy_from_slice(&index.to_be_bytes());
        n
    }
}

/// Ciphertext size of `n` plaintext bytes in chunks of `chunk`.
pub fn ciphertext_len(n: u64, chunk: u64) -> u64 {
    n + TAG * n.div_ceil(chunk).max(1)
}

/// Plaintext size of a `m`-byte ciphertext, `None` if no plaintext has that ciphertext size.
pub fn plaintext_len(m: u64, chunk: u64) -> Option<u64> {
    let full = chunk + TAG;
    let chunks = m.div_ceil(full).max(1);
    let last = m.checked_sub((chunks - 1) * full)?;
    let ok = if chunks == 1 { last >= TAG } else { last > TAG };
    ok.then(|| m - chunks * TAG)
}

/// The wrapper store; see the module docs for the format.
#[derive(Debug)]
pub struct EncryptedStore {
    inner: Arc<dyn ObjectStore>,
    keys: Arc<Keyring>,
    chunk: u32,
}

impl fmt::Display for EncryptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encrypted({})", self.inner)
    }
}

/// The sidecar path of `path`.
pub fn sidecar(path: &Path) -> Path {
    Path::from(format!("{path}{SIDECAR_SUFFIX}"))
}

fn is_sidecar(path: &Path) -> bool {
    path.as_ref().ends_with(SIDECAR_SUFFIX)
}

impl EncryptedStore {
    /// Wraps `inner`; new objects use chunks of `chunk` plaintext bytes.
    pub fn new(inner: Arc<dyn ObjectStore>, keys: Arc<Keyring>, chunk: u32) -> Self {
        Self { inner, keys, chunk }
    }

    async fn envelope(&self, path: &Path) -> object_store::Result<Envelope> {
        match self.inner.get(&sidecar(path)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Envelope::open(&bytes, &self.keys, path)
            }
            Err(object_store::Error::NotFound { .. }) => {
                // No key: either nothing is there at all, or the key went missing.
                self.inner.head(path).await?;
                Err(integrity(path, "the object's key sidecar is missing"))
            }
            Err(e) => Err(e),
        }
    }

    fn plain_meta(&self, mut meta: ObjectMeta, chunk: u64) -> object_store::Result<ObjectMeta> {
        meta.size = plaintext_len(meta.size, chunk)
            .ok_or_else(|| integrity(&meta.location, "ciphertext size is impossible"))?;
        Ok(meta)
    }
}

/// Encrypts whole chunks of `pending` (keeping the last `keep` bytes back) into `out`.
fn seal_chunks(
    env: &Envelope,
    cipher: &Aes256Gcm,
    next: &mut u64,
    pending: &mut BytesMut,
    last: bool,
    out: &mut Vec<Bytes>,
    path: &Path,
) -> object_store::Result<()> {
    let chunk = env.chunk as usize;
    loop {
        let take = if pending.len() > chunk {
            chunk
        } else if last {
            pending.len()
        } else {
            return Ok(());
        };
        let is_last = last && take == pending.len();
        let mut buf = Vec::with_capacity(take + TAG as usize);
        buf.extend_from_slice(&pending.split_to(take));
        let nonce = env.nonce(*next);
        cipher
            .encrypt_in_place(Nonce::from_slice(&nonce), &[u8::from(is_last)], &mut buf)
            .map_err(|_| integrity(path, "encryption failed"))?;
        *next += 1;
        out.push(Bytes::from(buf));
        if is_last {
            return Ok(());
        }
    }
}

/// An encrypting multipart upload: holds back at most one chunk of plaintext, because only
/// `complete` knows which chunk is the last.
struct EncryptingUpload {
    inner: Box<dyn MultipartUpload>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    env: Envelope,
    cipher: Aes256Gcm,
    keys: Arc<Keyring>,
    next: u64,
    pending: BytesMut,
}

impl fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptingUpload({})", self.path)
    }
}

#[async_trait]
impl MultipartUpload for EncryptingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        for b in data.iter() {
            self.pending.extend_from_slice(b);
        }
        let mut out = Vec::new();
        if let Err(e) = seal_chunks(
            &self.env,
            &self.cipher,
            &mut self.next,
            &mut self.pending,
            false,
            &mut out,
            &self.path,
        ) {
            return Box::pin(futures_util::future::ready(Err(e)));
        }
        if out.is_empty() {
            return Box::pin(futures_util::future::ready(Ok(())));
        }
        self.inner.put_part(out.into_iter().collect())
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let mut out = Vec::new();
        seal_chunks(
            &self.env,
            &self.cipher,
            &mut self.next,
            &mut self.pending,
            true,
            &mut out,
            &self.path,
        )?;
        self.inner.put_part(out.into_iter().collect()).await?;
        // The key first: an object that is visible always has its key.
        let side = sidecar(&self.path);
        let sealed = self.env.seal(self.keys.active(), &self.path)?;
        self.store.put(&side, sealed.into()).await?;
        match self.inner.complete().await {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.store.delete(&side).await;
                Err(e)
            }
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// Decrypts chunks `first..` of a ciphertext stream of a `total_chunks`-chunk object and yields
/// plaintext bytes `skip..skip+len` of that run.
struct Decryptor {
    env: Envelope,
    cipher: Aes256Gcm,
    path: Path,
    index: u64,
    total_chunks: u64,
    skip: usize,
    remaining: u64,
    buf: BytesMut,
}

impl Decryptor {
    /// Decrypts the chunk at the head of `buf` if it is complete (`eof`: the stream ended).
    fn next_plain(&mut self, eof: bool) -> object_store::Result<Option<Bytes>> {
        let full = self.env.chunk as usize + TAG as usize;
        let last = self.index + 1 == self.total_chunks;
        let ready = self.buf.len() >= full || (eof && !self.buf.is_empty());
        if !ready || self.remaining == 0 {
            if eof && self.remaining > 0 {
                return Err(integrity(&self.path, "ciphertext ends early"));
            }
            return Ok(None);
        }
        let take = self.buf.len().min(full);
        if take <= TAG as usize && !(last && take == TAG as usize) {
            return Err(integrity(&self.path, "ciphertext ends early"));
        }
        let mut chunk = self.buf.split_to(take);
        let nonce = self.env.nonce(self.index);
        let body_len = take - TAG as usize;
        let (body, tag) = chunk.split_at_mut(body_len);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &[u8::from(last)],
                body,
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| {
                integrity(
                    &self.path,
                    "a chunk does not authenticate (altered or truncated)",
                )
            })?;
        chunk.truncate(body_len);
        self.index += 1;
        let mut plain = chunk.freeze();
        let skip = self.skip.min(plain.len());
        plain = plain.slice(skip..);
        self.skip = 0;
        let keep = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(plain.len());
        plain.truncate(keep);
        self.remaining -= keep as u64;
        Ok(Some(plain))
    }
}

fn decrypt_stream(
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    dec: Decryptor,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures_util::stream::try_unfold(
        (inner, dec, false),
        |(mut inner, mut dec, mut eof)| async move {
            loop {
                if let Some(p) = dec.next_plain(eof)? {
                    if p.is_empty() && dec.remaining > 0 {
                        continue;
                    }
                    return Ok(Some((p, (inner, dec, eof))));
                }
                if eof || dec.remaining == 0 {
                    return Ok(None);
                }
                match inner.next().await {
                    Some(b) => dec.buf.extend_from_slice(&b?),
                    None => eof = true,
                }
            }
        },
    )
    .try_filter(|b| futures_util::future::ready(!b.is_empty()))
    .boxed()
}

#[async_trait]
impl ObjectStore for EncryptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let env = Envelope::fresh(&self.keys, self.chunk)?;
        let cipher = env.cipher();
        let mut pending = BytesMut::new();
        for b in payload.iter() {
            pending.extend_from_slice(b);
        }
        let mut out = Vec::new();
        let mut next = 0;
        seal_chunks(
            &env,
            &cipher,
            &mut next,
            &mut pending,
            true,
            &mut out,
            location,
        )?;
        let sealed = env.seal(self.keys.active(), location)?;
        self.inner.put(&sidecar(location), sealed.into()).await?;
        self.inner
            .put_opts(location, out.into_iter().collect(), opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let env = Envelope::fresh(&self.keys, self.chunk)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(EncryptingUpload {
            inner,
            store: Arc::clone(&self.inner),
            path: location.clone(),
            cipher: env.cipher(),
            env,
            keys: Arc::clone(&self.keys),
            next: 0,
            pending: BytesMut::new(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            let r = self.inner.get_opts(location, options).await?;
            let env = self.envelope(location).await?;
            let meta = self.plain_meta(r.meta, u64::from(env.chunk))?;
            return Ok(GetResult {
                range: 0..meta.size,
                meta,
                payload: GetResultPayload::Stream(futures_util::stream::empty().boxed()),
                attributes: r.attributes,
                extensions: r.extensions,
            });
        }
        let env = self.envelope(location).await?;
        let chunk = u64::from(env.chunk);
        let full = chunk + TAG;
        let mut options = options;
        // The wanted plaintext range, with `None` as end meaning "to the end".
        let (start, end) = match options.range.take() {
            None => (0, None),
            Some(GetRange::Bounded(r)) => (r.start, Some(r.end)),
            Some(GetRange::Offset(o)) => (o, None),
            Some(GetRange::Suffix(s)) => {
                let n = self.head(location).await?.size;
                (n.saturating_sub(s), None)
            }
        };
        if end.is_some_and(|e| e <= start) {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: Box::new(RangeError),
            });
        }
        let first = start / chunk;
        let ct_range = match end {
            Some(e) => GetRange::Bounded(first * full..(e - 1) / chunk * full + full),
            None => GetRange::Offset(first * full),
        };
        options.range = (first > 0 || end.is_some()).then_some(ct_range);
        let r = match self.inner.get_opts(location, options).await {
            Ok(r) => r,
            Err(e @ object_store::Error::NotFound { .. }) => return Err(e),
            Err(e) => {
                // Stores word a range past the end differently; decide by the size instead.
                return match self.inner.head(location).await {
                    Ok(m) if first * full >= m.size && first > 0 => {
                        Err(object_store::Error::Generic {
                            store: STORE,
                            source: Box::new(RangeError),
                        })
                    }
                    _ => Err(e),
                };
            }
        };
        let meta = self.plain_meta(r.meta, chunk)?;
        let n = meta.size;
        let end = end.unwrap_or(n).min(n);
        if start >= end && !(n == 0 && start == 0 && end == 0) {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: Box::new(RangeError),
            });
        }
        let total_chunks = n.div_ceil(chunk).max(1);
        let stream = match r.payload {
            GetResultPayload::Stream(s) => s,
            // The local store hands out a file; read it as a stream like any other.
            other => GetResult {
                payload: other,
                meta: meta.clone(),
                range: r.range.clone(),
                attributes: Default::default(),
                extensions: Default::default(),
            }
            .into_stream(),
        };
        let dec = Decryptor {
            cipher: env.cipher(),
            env,
            path: location.clone(),
            index: first,
            total_chunks,
            skip: usize::try_from(start - first * chunk).unwrap_or(usize::MAX),
            remaining: end - start,
            buf: BytesMut::new(),
        };
        let mut plain = decrypt_stream(stream, dec);
        // Authenticate the first chunk before answering, so a tampered object fails the
        // request instead of a response already under way.
        let head = plain.try_next().await?;
        let payload = futures_util::stream::iter(head.map(Ok))
            .chain(plain)
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            range: start..end,
            meta,
            attributes: r.attributes,
            extensions: r.extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        locations
            .and_then(move |p| {
                let inner = Arc::clone(&inner);
                async move {
                    match inner.delete(&p).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    // The key last: an object whose delete failed keeps its key.
                    match inner.delete(&sidecar(&p)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(p),
                        Err(e) => Err(e),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let chunk = u64::from(self.chunk);
        self.inner
            .list(prefix)
            .try_filter(|m| futures_util::future::ready(!is_sidecar(&m.location)))
            .and_then(move |mut m| async move {
                // Sizes assume the configured chunk size; objects written with another one
                // report their exact size on `head`.
                m.size = plaintext_len(m.size, chunk).unwrap_or(m.size);
                Ok(m)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        let chunk = u64::from(self.chunk);
        r.objects.retain(|m| !is_sidecar(&m.location));
        for m in &mut r.objects {
            m.size = plaintext_len(m.size, chunk).unwrap_or(m.size);
        }
        Ok(r)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        // The key is bound to the path: re-wrap it for the destination.
        let env = self.envelope(from).await?;
        let sealed = env.seal(self.keys.active(), to)?;
        self.inner.put(&sidecar(to), sealed.into()).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// What a rotation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    /// Sidecars re-wrapped with the active key.
    pub rewrapped: u64,
    /// Sidecars already wrapped by the active key.
    pub current: u64,
    /// Sidecars whose object is gone (removed).
    pub orphans: u64,
}

/// Re-wraps every data key under `prefix` of the raw (ciphertext) store `raw` with the active
/// master key; rewrites only the sidecars. `all`: re-wrap those already under the active key too.
pub async fn rotate(
    raw: &Arc<dyn ObjectStore>,
    keys: &Keyring,
    prefix: Option<&Path>,
    all: bool,
) -> object_store::Result<RotationReport> {
    let mut report = RotationReport::default();
    let mut listing = raw.list(prefix);
    while let Some(meta) = listing.try_next().await? {
        let Some(object) = meta.location.as_ref().strip_suffix(SIDECAR_SUFFIX) else {
            continue;
        };
        let object = Path::from(object);
        let bytes = raw.get(&meta.location).await?.bytes().await?;
        let env = Envelope::open(&bytes, keys, &object)?;
        if env.key_id == keys.active_id() && !all {
            report.current += 1;
            continue;
        }
        let fresh = Envelope {
            key_id: keys.active_id().to_string(),
            ..env
        };
        let sealed = fresh.seal(keys.active(), &object)?;
        raw.put(&meta.location, sealed.into()).await?;
        // A delete racing with the rotation may have removed the object meanwhile.
        match raw.head(&object).await {
            Ok(_) => report.rewrapped += 1,
            Err(object_store::Error::NotFound { .. }) => {
                let _ = raw.delete(&meta.location).await;
                report.orphans += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Whether `e` (or what it wraps) is an [`IntegrityError`].
pub fn is_integrity(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => {
            source.downcast_ref::<IntegrityError>().is_some()
        }
        _ => false,
    }
}

/// Whether `e` is a range that does not overlap the object.
pub fn is_range(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => {
            source.downcast_ref::<RangeError>().is_some()
        }
        _ => false,
    }
}

/// The plaintext range `r` of an `n`-byte object, in ciphertext chunk coordinates (for tests).
pub fn chunk_span(r: Range<u64>, chunk: u64) -> Range<u64> {
    r.start / chunk..r.end.div_ceil(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn keyring(spec: &str, active: &str) -> Keyring {
        Keyring::load(&EncryptionConfig {
            keys: super::super::config::ConfigSecret::new(spec),
            keys_file: Default::default(),
            active_key: active.into(),
            chunk_bytes: 4096,
        })
        .expect("keys")
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

    #[test]
    fn sizes_round_trip() {
        for chunk in [4096u64, 65536] {
            for n in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3 * chunk + 7] {
                let m = ciphertext_len(n, chunk);
                assert_eq!(plaintext_len(m, chunk), Some(n), "n={n} chunk={chunk}");
            }
            assert_eq!(plaintext_len(15, chunk), None);
            assert_eq!(plaintext_len(chunk + 16 + 16, chunk), None);
        }
    }

    #[test]
    fn keys_load_and_reject_bad_entries() {
        let k = keyring(&format!("{K1}, {K2}"), "");
        assert_eq!(k.active_id(), "k2");
        let k = keyring(&format!("{K1}\n{K2}"), "k1");
        assert_eq!(k.active_id(), "k1");
        let cfg = |s: &str| EncryptionConfig {
            keys: super::super::config::ConfigSecret::new(s),
            keys_file: Default::default(),
            active_key: String::new(),
            chunk_bytes: 4096,
        };
        assert!(Keyring::load(&cfg("k1:AAEC")).is_err());
        assert!(Keyring::load(&cfg("nocolon")).is_err());
        assert!(Keyring::load(&cfg(&format!("{K1},{K1}"))).is_err());
        let err = Keyring::load(&cfg("k1:AAEC")).expect_err("short");
        assert!(!err.contains("AAEC"), "{err}");
    }

    #[tokio::test]
    async fn a_moved_sidecar_does_not_unwrap() {
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = EncryptedStore::new(Arc::clone(&raw), Arc::new(keyring(K1, "")), 4096);
        let a = Path::from("b/aa/aa01");
        let b = Path::from("b/bb/bb01");
        store
            .put(&a, Bytes::from_static(b"hello").into())
            .await
            .expect("put");
        let obj = raw
            .get(&a)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let key = raw
            .get(&sidecar(&a))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        raw.put(&b, obj.into()).await.expect("put");
        raw.put(&sidecar(&b), key.into()).await.expect("put");
        let err = store.get(&b).await.expect_err("moved");
        assert!(is_integrity(&err), "{err}");
        assert_eq!(
            store
                .get(&a)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes"),
            Bytes::from_static(b"hello")
        );
    }
}
