//! Decoder for `Content-Encoding: aws-chunked` bodies (SigV4 streaming uploads).
//!
//! Wire format, per chunk: `<hex size>[;chunk-signature=<64 hex>]\r\n<data>\r\n`, ended by a
//! zero-size chunk, then optional trailer lines `name:value\r\n` (and for signed trailers an
//! `x-amz-trailer-signature:<sig>\r\n`), then an empty line.
//!
//! The decoder is a pure state machine fed with whatever slices the socket yields, so it is
//! tested byte by byte. Limits are enforced before allocation: header and trailer lines are
//! capped at [`MAX_LINE`] bytes, a chunk size is at most 16 hex digits and, for signed chunks,
//! at most the configured cap. A **signed** chunk is held until its signature verifies, so no
//! unverified byte leaves the decoder; unsigned chunks stream straight through (their integrity
//! is the trailer checksum, checked before commit).

use bytes::{Buf, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::auth::ChunkSigner;
use crate::error::Error;

/// Longest chunk header or trailer line accepted (MinIO uses the same bound).
pub const MAX_LINE: usize = 4096;
/// Most trailer lines accepted.
pub const MAX_TRAILERS: usize = 8;

/// Why a chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Framing is malformed (bad size, missing CRLF, bare LF, garbage after the end, EOF early).
    #[error("malformed aws-chunked framing")]
    Malformed,
    /// A header or trailer line exceeds [`MAX_LINE`].
    #[error("chunk line too long")]
    LineTooLong,
    /// A chunk exceeds the configured cap or the declared decoded length.
    #[error("chunk too large")]
    ChunkTooLarge,
    /// A chunk or the trailer signature does not verify.
    #[error("chunk signature mismatch")]
    SignatureMismatch,
    /// Decoded bytes differ from `x-amz-decoded-content-length`.
    #[error("decoded length mismatch")]
    LengthMismatch,
    /// The announced trailer is missing, or an undeclared trailer was sent.
    #[error("trailer missing or unexpected")]
    Trailer,
}

impl From<ChunkError> for Error {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::SignatureMismatch => Error::SignatureDoesNotMatch,
            ChunkError::LengthMismatch => Error::IncompleteBody,
            ChunkError::ChunkTooLarge => Error::EntityTooLarge,
            ChunkError::Malformed | ChunkError::LineTooLong | ChunkError::Trailer => {
                Error::InvalidChunkEncoding
            }
        }
    }
}

/// Whether chunks carry signatures.
pub enum ChunkMode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: every chunk (and the trailer) signed.
    Signed(ChunkSigner),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, checksum in the trailer.
    Unsigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data,
    DataCrlf,
    Trailer,
    Done,
}

/// What arrived after the final chunk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trailers {
    /// The announced checksum trailer: (lower-case header name, value).
    pub checksum: Option<(String, String)>,
}

/// Incremental aws-chunked decoder.
pub struct Decoder {
    mode: ChunkMode,
    /// Lower-case trailer header announced in `x-amz-trailer`, if any.
    announced: Option<String>,
    max_signed_chunk: usize,
    declared: u64,
    decoded: u64,
    state: State,
    line: Vec<u8>,
    remaining: u64,
    pending_sig: Vec<u8>,
    chunk: BytesMut,
    crlf_seen: usize,
    trailers: Vec<(String, String)>,
}

impl Decoder {
    /// A decoder for a body that must decode to exactly `declared` bytes.
    pub fn new(
        mode: ChunkMode,
        announced_trailer: Option<String>,
        declared: u64,
        max_signed_chunk: usize,
    ) -> Self {
        Self {
            mode,
            announced: announced_trailer.map(|t| t.to_ascii_lowercase()),
            max_signed_chunk,
            declared,
            decoded: 0,
            state: State::Header,
            line: Vec::new(),
            remaining: 0,
            pending_sig: Vec::new(),
            chunk: BytesMut::new(),
            crlf_seen: 0,
            trailers: Vec::new(),
        }
    }

    /// Consumes `input`, appending decoded (and, if signed, verified) data to `out`.
    pub fn feed(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkError> {
        while input.has_remaining() {
            match self.state {
                State::Header => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.start_chunk(&line)?;
                    }
                }
                State::Data => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let piece = input.split_to(n);
                    self.remaining -= n as u64;
                    match self.mode {
                        ChunkMode::Signed(_) => self.chunk.extend_from_slice(&piece),
                        ChunkMode::Unsigned => out.push(piece),
                    }
                    if self.remaining == 0 {
                        self.end_chunk_data(out)?;
                        self.state = State::DataCrlf;
                        self.crlf_seen = 0;
                    }
                }
                State::DataCrlf => {
                    let b = input.get_u8();
                    let want = if self.crlf_seen == 0 { b'\r' } else { b'\n' };
                    if b != want {
                        return Err(ChunkError::Malformed);
                    }
                    self.crlf_seen += 1;
                    if self.crlf_seen == 2 {
                        self.state = State::Header;
                    }
                }
                State::Trailer => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.trailer_line(line)?;
                    }
                }
                State::Done => return Err(ChunkError::Malformed),
            }
        }
        Ok(())
    }

    /// Called at end of body: the framing must be complete. Returns the trailers.
    pub fn finish(mut self) -> Result<Trailers, ChunkError> {
        if self.state != State::Done {
            return Err(ChunkError::Malformed);
        }
        if self.decoded != self.declared {
            return Err(ChunkError::LengthMismatch);
        }
        let mut out = Trailers::default();
        let mut signature = None;
        for (name, value) in std::mem::take(&mut self.trailers) {
            if name == "x-amz-trailer-signature" && matches!(self.mode, ChunkMode::Signed(_)) {
                if signature.replace(value).is_some() {
                    return Err(ChunkError::Trailer);
                }
            } else if Some(&name) == self.announced.as_ref() && out.checksum.is_none() {
                out.checksum = Some((name, value));
            } else {
                return Err(ChunkError::Trailer);
            }
        }
        if self.announced.is_some() && out.checksum.is_none() {
            return Err(ChunkError::Trailer);
        }
        if let ChunkMode::Signed(signer) = &mut self.mode
            && let Some((name, value)) = &out.checksum
        {
            let sig = signature.ok_or(ChunkError::SignatureMismatch)?;
            let canonical = format!("{name}:{value}\n");
            if !signer.verify_trailer(canonical.as_bytes(), sig.as_bytes()) {
                return Err(ChunkError::SignatureMismatch);
            }
        } else if signature.is_some() {
            return Err(ChunkError::Trailer);
        }
        Ok(out)
    }

    /// Accumulates one CRLF-terminated line; `None` until complete. Bare LF is malformed.
    fn take_line(&mut self, input: &mut Bytes) -> Result<Option<Vec<u8>>, ChunkError> {
        while input.has_remaining() {
            let b = input.get_u8();
            if b == b'\n' {
                if self.line.last() != Some(&b'\r') {
                    return Err(ChunkError::Malformed);
                }
                self.line.pop();
                return Ok(Some(std::mem::take(&mut self.line)));
            }
            if self.line.len() >= MAX_LINE {
                return Err(ChunkError::LineTooLong);
            }
            if b == b'\r' && self.line.last() == Some(&b'\r') {
                return Err(ChunkError::Malformed);
            }
            self.line.push(b);
        }
        Ok(None)
    }

    fn start_chunk(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let (size_part, ext) = match line.iter().position(|&b| b == b';') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if size_part.is_empty() || size_part.len() > 16 {
            return Err(ChunkError::Malformed);
        }
        let mut size: u64 = 0;
        for &c in size_part {
            let d = (c as char).to_digit(16).ok_or(ChunkError::Malformed)?;
            size = (size << 4) | u64::from(d);
        }
        match (&self.mode, ext) {
            (ChunkMode::Signed(_), Some(ext)) => {
                let sig = ext
                    .strip_prefix(b"chunk-signature=")
                    .ok_or(ChunkError::Malformed)?;
                if sig.len() != 64 || !sig.iter().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ChunkError::Malformed);
                }
                self.pending_sig = sig.to_vec();
                if size > self.max_signed_chunk as u64 {
                    return Err(ChunkError::ChunkTooLarge);
                }
            }
            (ChunkMode::Signed(_), None) => return Err(ChunkError::SignatureMismatch),
            (ChunkMode::Unsigned, None) => {}
            (ChunkMode::Unsigned, Some(_)) => return Err(ChunkError::Malformed),
        }
        if size > self.declared - self.decoded {
            return Err(ChunkError::LengthMismatch);
        }
        self.decoded += size;
        if size == 0 {
            // The final chunk: its (empty) data is "verified" now, then trailers follow.
            self.verify_signed(&[])?;
            self.state = State::Trailer;
        } else {
            self.remaining = size;
            if matches!(self.mode, ChunkMode::Signed(_)) {
                self.chunk = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
            }
            self.state = State::Data;
        }
        Ok(())
    }

    fn end_chunk_data(&mut self, out: &mut Vec<Bytes>) -> Result<(), ChunkError> {
        if matches!(self.mode, ChunkMode::Signed(_)) {
            let data = std::mem::take(&mut self.chunk).freeze();
            self.verify_signed(&data)?;
            out.push(data);
        }
        Ok(())
    }

    fn verify_signed(&mut self, data: &[u8]) -> Result<(), ChunkError> {
        if let ChunkMode::Signed(signer) = &mut self.mode {
            let digest: [u8; 32] = Sha256::digest(data).into();
            if !signer.verify_chunk(&digest, &self.pending_sig) {
                return Err(ChunkError::SignatureMismatch);
            }
        }
        Ok(())
    }

    fn trailer_line(&mut self, line: Vec<u8>) -> Result<(), ChunkError> {
        if line.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(ChunkError::Trailer);
        }
        let text = String::from_utf8(line).map_err(|_| ChunkError::Malformed)?;
        let (name, value) = text.split_once(':').ok_or(ChunkError::Malformed)?;
        self.trailers
            .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(
        body: &[u8],
        declared: u64,
        trailer: Option<&str>,
    ) -> Result<(Vec<u8>, Trailers), ChunkError> {
        // Feed one byte at a time: framing must not depend on how the socket splits input.
        let mut d = Decoder::new(
            ChunkMode::Unsigned,
            trailer.map(str::to_string),
            declared,
            1 << 20,
        );
        let mut out = Vec::new();
        for b in body {
            d.feed(Bytes::copy_from_slice(&[*b]), &mut out)?;
        }
        let t = d.finish()?;
        Ok((out.concat(), t))
    }

    #[test]
    fn unsigned_trailer_body_decodes() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        let (data, t) = unsigned(body, 11, Some("x-amz-checksum-crc32")).expect("decodes");
        assert_eq!(data, b"hello world");
        assert_eq!(
            t.checksum,
            Some(("x-amz-checksum-crc32".into(), "DUoRhQ==".into()))
        );
    }

    #[test]
    fn rejects_missing_announced_trailer() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            unsigned(body, 5, Some("x-amz-checksum-crc32")).unwrap_err(),
            ChunkError::Trailer
        );
    }

    #[test]
    fn rejects_undeclared_trailer() {
        let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-sha1:AAAA\r\n\r\n";
        assert_eq!(unsigned(body, 5, None).unwrap_err(), ChunkError::Trailer);
    }

    #[test]
    fn rejects_malformed_framing() {
        for body in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..], // data longer than size
            b"5\nhello\r\n0\r\n\r\n",         // bare LF
            b"zz\r\nhello\r\n0\r\n\r\n",      // not hex
            b"-5\r\nhello\r\n0\r\n\r\n",      // negative
            b"5\r\nhello\r\n",                // no terminating chunk
            b"5\r\nhel",                      // EOF mid-chunk
            b"5\r\nhello\r\n0\r\n\r\nextra",  // data after the end
            b"\r\nhello\r\n0\r\n\r\n",        // empty size
        ] {
            let r = unsigned(body, 5, None);
            assert!(r.is_err(), "accepted {:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn rejects_oversized_size_field_before_allocating() {
        let r = unsigned(b"1ffffffffffffffff\r\n", 5, None);
        assert_eq!(r.unwrap_err(), ChunkError::Malformed);
        let r = unsigned(b"ffffffff\r\n", 5, None);
        assert_eq!(r.unwrap_err(), ChunkError::LengthMismatch);
    }

    #[test]
    fn rejects_long_header_line() {
        let mut body = b"5;".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        assert_eq!(
            unsigned(&body, 5, None).unwrap_err(),
            ChunkError::LineTooLong
        );
    }

    #[test]
    fn rejects_decoded_length_mismatch() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            unsigned(body, 6, None).unwrap_err(),
            ChunkError::LengthMismatch
        );
        assert_eq!(
            unsigned(body, 4, None).unwrap_err(),
            ChunkError::LengthMismatch
        );
    }
}
