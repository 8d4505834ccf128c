//! Streaming ingest: the pipe every uploaded byte goes through.
//!
//! ```text
//! socket frames -> [aws-chunked decoder] -> byte limit -> SHA-256 (+ MD5 / CRC when asked)
//!               -> sniff the first bytes -> staging write -> (end) verify digests -> commit
//! ```
//!
//! Nothing is buffered whole: at most one socket frame (or one signed chunk, or the
//! [`sniff::SNIFF_LEN`]-byte prefix) is held per upload. The limit is checked *before* a piece
//! is written, so a body that streams past it is cut at the first frame that crosses it. The
//! staging write is invisible until the caller commits, which it does only when [`Pipe::finish`]
//! returned `Ok`: every digest matched, the length was right and the type was allowed.

pub mod aws_chunked;
pub mod checksum;
pub mod sniff;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::Staging;
use aws_chunked::{Decoder, Trailers};
use checksum::{ChecksumAlgorithm, Checksummer};

/// What the request declared; the pipe holds the body to it.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Hard byte limit of the bucket.
    pub max_bytes: u64,
    /// Smallest acceptable size (POST policy `content-length-range`); 0 = none.
    pub min_bytes: u64,
    /// Exact decoded length, when known in advance.
    pub length: Option<u64>,
    /// Allowed canonical content types.
    pub allowed_types: Vec<String>,
    /// Declared, normalised content type; `None` if absent or generic.
    pub declared_type: Option<String>,
    /// Refuse the body unless its first bytes sniff as an allowed type matching the declared
    /// one. Off for multipart parts after the first (they start mid-file); their sniffed type
    /// is only recorded.
    pub enforce_type: bool,
    /// Signed `x-amz-content-sha256` value.
    pub sha256: Option<[u8; 32]>,
    /// Decoded `Content-MD5`.
    pub md5: Option<[u8; 16]>,
    /// Compute the MD5 even without `Content-MD5` (bucket `etag = "md5"`).
    pub want_md5: bool,
    /// A checksum given in a header (`x-amz-checksum-*`), decoded.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
    /// A checksum announced for the aws-chunked trailer.
    pub trailer_checksum: Option<ChecksumAlgorithm>,
    /// Whole-object content checks to run on the body (`None` for a body that is only a piece
    /// of an object, such as a multipart part: its object is inspected when assembled).
    pub checks: Option<crate::scan::Policy>,
}

/// What the pipe established about a body that passed every check.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub size: u64,
    pub sha256: [u8; 32],
    pub md5: Option<[u8; 16]>,
    /// The sniffed type: allowed (and matching the declared one) when `enforce_type` was set;
    /// whatever was recognised, if anything, otherwise.
    pub content_type: Option<&'static str>,
    /// The verified client checksum, if one was sent.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
    /// The content check that ran and passed, if one did.
    pub passed: Option<crate::scan::Passed>,
}

/// The per-upload pipe state (see module docs).
///
/// Boxed: a pipe moves through several nested upload futures, and each would otherwise keep
/// room for its own copy of it (the per-upload memory of a held upload).
pub struct Pipe(Box<State>);

impl std::ops::Deref for Pipe {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for Pipe {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

#[doc(hidden)]
pub struct State {
    exp: Expectations,
    size: u64,
    sha256: Sha256,
    md5: Option<Md5>,
    checksum: Option<Checksummer>,
    prefix: Vec<Bytes>,
    prefix_len: usize,
    content_type: Option<&'static str>,
    /// Whether the type decision was made (the prefix was flushed).
    decided: bool,
    /// The content check of the sniffed type, fed every byte after the decision.
    inspector: Option<crate::scan::Inspector>,
}

impl Pipe {
    /// Checks what can be checked before reading a byte (declared length and type) and sets up
    /// the hashers.
    pub fn new(exp: Expectations) -> Result<Self> {
        if let Some(len) = exp.length
            && len > exp.max_bytes
        {
            return Err(Error::EntityTooLarge);
        }
        if let Some(t) = &exp.declared_type
            && !exp.allowed_types.iter().any(|a| a == t)
        {
            return Err(Error::ContentTypeNotAllowed);
        }
        let checksum_alg = exp
            .checksum
            .as_ref()
            .map(|(a, _)| *a)
            .or(exp.trailer_checksum);
        Ok(Self(Box::new(State {
            md5: (exp.md5.is_some() || exp.want_md5).then(Md5::new),
            checksum: checksum_alg.map(Checksummer::new),
            exp,
            size: 0,
            sha256: Sha256::new(),
            prefix: Vec::new(),
            prefix_len: 0,
            content_type: None,
            decided: false,
            inspector: None,
        })))
    }

    /// Takes one decoded piece: limit, hashes, sniff, then the staging write.
    pub async fn push(&mut self, piece: Bytes, staging: &mut Staging) -> Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        self.size += piece.len() as u64;
        if self.size > self.exp.max_bytes {
            return Err(Error::EntityTooLarge);
        }
        if let Some(len) = self.exp.length
            && self.size > len
        {
            return Err(Error::IncompleteBody);
        }
        self.sha256.update(&piece);
        if let Some(m) = &mut self.md5 {
            m.update(&piece);
        }
        if let Some(c) = &mut self.checksum {
            c.update(&piece);
        }
        if self.decided {
            if let Some(i) = &mut self.inspector {
                i.push(&piece);
            }
            return staging.write(piece).await.map_err(Error::from);
        }
        self.prefix_len += piece.len();
        self.prefix.push(piece);
        if self.prefix_len >= sniff::SNIFF_LEN {
            self.decide_type()?;
            for p in std::mem::take(&mut self.prefix) {
                if let Some(i) = &mut self.inspector {
                    i.push(&p);
                }
                staging.write(p).await?;
            }
        }
        Ok(())
    }

    fn decide_type(&mut self) -> Result<()> {
        if !self.exp.enforce_type {
            let mut head = Vec::with_capacity(sniff::SNIFF_LEN);
            for p in &self.prefix {
                let take = (sniff::SNIFF_LEN - head.len()).min(p.len());
                head.extend_from_slice(&p[..take]);
            }
            self.content_type = sniff::sniff(&head);
            self.decided = true;
            // Unchecked types still get the content checks of what the bytes are.
            self.inspector = match (&self.exp.checks, self.content_type) {
                (Some(p), Some(t)) => crate::scan::Inspector::for_object(p, t),
                _ => None,
            };
            return Ok(());
        }
        let mut head = Vec::with_capacity(sniff::SNIFF_LEN);
        for p in &self.prefix {
            let take = (sniff::SNIFF_LEN - head.len()).min(p.len());
            head.extend_from_slice(&p[..take]);
            if head.len() == sniff::SNIFF_LEN {
                break;
            }
        }
        let sniffed = match sniff::sniff(&head) {
            Some(s) => s,
            // Text has no magic, and an Office document's only says "zip": a declared type of
            // either kind stands, and its content check reads every byte.
            None => self
                .exp
                .declared_type
                .as_deref()
                .and_then(|d| crate::mime::declared_only_types().find(|t| *t == d))
                .filter(|t| {
                    !crate::mime::office_types().contains(t) || head.starts_with(b"PK\x03\x04")
                })
                .ok_or(Error::ContentTypeMismatch)?,
        };
        match &self.exp.declared_type {
            Some(declared) if declared != sniffed => return Err(Error::ContentTypeMismatch),
            Some(_) => {}
            None => {
                if !self.exp.allowed_types.iter().any(|a| a == sniffed) {
                    return Err(Error::ContentTypeNotAllowed);
                }
            }
        }
        self.content_type = Some(sniffed);
        self.decided = true;
        self.inspector = self
            .exp
            .checks
            .as_ref()
            .and_then(|p| crate::scan::Inspector::for_object(p, sniffed));
        Ok(())
    }

    /// End of body: flushes a short prefix, then verifies length and every digest, in a fixed
    /// order. `trailers` are those of an aws-chunked body.
    pub async fn finish(mut self, trailers: Trailers, staging: &mut Staging) -> Result<Ingested> {
        if !self.decided {
            self.decide_type()?;
            for p in std::mem::take(&mut self.prefix) {
                if let Some(i) = &mut self.inspector {
                    i.push(&p);
                }
                staging.write(p).await?;
            }
        }
        let mut this = *self.0;
        if let Some(len) = this.exp.length
            && this.size != len
        {
            return Err(Error::IncompleteBody);
        }
        if this.size < this.exp.min_bytes {
            return Err(Error::EntityTooSmall);
        }
        let sha256: [u8; 32] = this.sha256.finalize().into();
        if let Some(expected) = this.exp.sha256
            && expected != sha256
        {
            return Err(Error::ContentSha256Mismatch);
        }
        let md5: Option<[u8; 16]> = this.md5.map(|m| m.finalize().into());
        if let (Some(expected), Some(got)) = (this.exp.md5, md5)
            && expected != got
        {
            return Err(Error::BadDigest);
        }
        // Integrity first (a corrupt body is a transport problem), then the content's verdict.
        let verdict = this.inspector.take().map(crate::scan::Inspector::finish);
        let checksum = match this.checksum {
            Some(c) => {
                let alg = c.algorithm();
                let got = c.finalize();
                let expected = match (&this.exp.checksum, &trailers.checksum) {
                    (Some((_, v)), _) => v.clone(),
                    (None, Some((_, b64))) => alg.decode(b64).map_err(|_| Error::InvalidDigest)?,
                    (None, None) => return Err(Error::InvalidChunkEncoding),
                };
                if expected != got {
                    return Err(Error::BadDigest);
                }
                Some((alg, got))
            }
            None => None,
        };
        let passed = match verdict {
            Some(Err(refusal)) => return Err(Error::ContentRejected(refusal.reason)),
            Some(Ok(passed)) => Some(passed),
            None => None,
        };
        Ok(Ingested {
            size: this.size,
            sha256,
            md5,
            content_type: this.content_type,
            checksum,
            passed,
        })
    }
}

/// How long an upload gathering its body by copy waits for the client's next frame before it
/// writes what it gathered.
///
/// A connection's body arrives in socket reads of at most 16 KiB, and the next one is seldom
/// ready the instant the last was taken: the connection's own task reads it, after the upload
/// yields. Writing whenever no frame was ready made each read a write of its own (and, when
/// writes go to the blocking pool, two thread wake-ups) per 16 KiB. Waiting this long first lets
/// back-to-back frames fill the staging's larger writes (see [`Staging::wants_next`]), and still
/// writes out what a paused upload gathered within a few milliseconds.
pub const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Drives a raw body through the optional aws-chunked decoder and `pipe` into `staging`.
/// Each read waits at most `idle` (a stalled client is cut off with `RequestTimeout`).
pub async fn run_pipe<S>(
    mut body: S,
    mut decoder: Option<Decoder>,
    mut pipe: Pipe,
    staging: &mut Staging,
    idle: Duration,
) -> Result<Ingested>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    let mut decoded = Vec::new();
    loop {
        // Frames that are ready are taken at once, and so are those that follow within
        // GATHER_WAIT (the staging gathers them into larger writes); before waiting longer on
        // the client, what is gathered is written.
        let next = match futures_util::FutureExt::now_or_never(body.next()) {
            Some(next) => next,
            None => {
                let soon = if staging.wants_next() {
                    tokio::time::timeout(GATHER_WAIT, body.next()).await.ok()
                } else {
                    None
                };
                match soon {
                    Some(next) => next,
                    None => {
                        staging.settle().await?;
                        tokio::time::timeout(idle, body.next())
                            .await
                            .map_err(|_| Error::RequestTimeout)?
                    }
                }
            }
        };
        let Some(frame) = next else { break };
        let frame = frame?;
        match &mut decoder {
            Some(d) => {
                d.feed(frame, &mut decoded)?;
                for piece in decoded.drain(..) {
                    pipe.push(piece, staging).await?;
                }
            }
            None => pipe.push(frame, staging).await?,
        }
    }
    let trailers = match decoder {
        Some(d) => d.finish()?,
        None => Trailers::default(),
    };
    pipe.finish(trailers, staging).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::Storage;

    fn store() -> Storage {
        Storage::from_store(Arc::new(object_store::memory::InMemory::new()), 0)
    }

    fn exp(max: u64) -> Expectations {
        Expectations {
            max_bytes: max,
            enforce_type: true,
            allowed_types: vec!["application/pdf".into()],
            ..Default::default()
        }
    }

    fn pdf(n: usize) -> Bytes {
        let mut v = b"%PDF-1.7\n".to_vec();
        v.resize(n, b'x');
        Bytes::from(v)
    }

    #[tokio::test]
    async fn a_body_streaming_past_the_limit_is_cut_at_the_crossing_piece() {
        let s = store();
        let path = Storage::path_for("b", "0011");
        let mut staging = s.begin(&path).await.expect("begin");
        let mut pipe = Pipe::new(exp(100)).expect("pipe");
        pipe.push(pdf(100), &mut staging)
            .await
            .expect("exactly the limit is fine");
        let err = pipe
            .push(Bytes::from_static(b"x"), &mut staging)
            .await
            .expect_err("limit + 1");
        assert!(matches!(err, Error::EntityTooLarge));
        staging.abort().await;
        assert!(!s.exists(&path).await.expect("exists"));
    }

    #[tokio::test]
    async fn declared_length_and_type_are_refused_before_any_byte() {
        let mut e = exp(100);
        e.length = Some(101);
        assert!(matches!(Pipe::new(e), Err(Error::EntityTooLarge)));
        let mut e = exp(100);
        e.declared_type = Some("image/png".into());
        assert!(matches!(Pipe::new(e), Err(Error::ContentTypeNotAllowed)));
    }

    #[tokio::test]
    async fn digests_are_checked_at_end_of_stream() {
        let s = store();
        let body = pdf(5000);
        let sha: [u8; 32] = Sha256::digest(&body).into();
        let md5: [u8; 16] = Md5::digest(&body).into();
        for (sha256, md5v, want_ok) in [
            (Some(sha), Some(md5), true),
            (Some([0u8; 32]), None, false),
            (None, Some([0u8; 16]), false),
        ] {
            let path = Storage::path_for("b", "0022");
            let mut staging = s.begin(&path).await.expect("begin");
            let mut e = exp(10_000);
            e.sha256 = sha256;
            e.md5 = md5v;
            let pieces = futures_util::stream::iter(
                body.chunks(700)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            );
            let r = run_pipe(
                pieces,
                None,
                Pipe::new(e).expect("pipe"),
                &mut staging,
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(r.is_ok(), want_ok, "{r:?}");
            if let Ok(i) = r {
                assert_eq!(i.size, 5000);
                assert_eq!(i.sha256, sha);
                assert_eq!(i.md5, Some(md5));
                assert_eq!(i.content_type, Some("application/pdf"));
            }
            staging.abort().await;
        }
    }
}
