//! The aws-chunked signature chain (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`).

use std::fmt;

use super::{EMPTY_SHA256_HEX, SigningKey, sha256_hex};
use crate::auth::verify::ProvidedSignature;

/// SHA-256 of the empty string: the data hash of the final, 0-byte chunk.
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Data chunks are expected.
    Chunks,
    /// The final 0-byte chunk verified; a trailer may follow (trailer mode only).
    FinalChunk,
    /// The trailer verified; nothing more is accepted.
    Trailer,
    /// A verification failed or a call came out of order; every later call fails.
    Failed,
}

/// Chained aws-chunked signature state, seeded with the request signature.
///
/// Each chunk signs
/// `AWS4-HMAC-SHA256-PAYLOAD\n<amz date>\n<scope>\n<previous signature>\n<sha256("")>\n<sha256(data)>`
/// and the trailer signs
/// `AWS4-HMAC-SHA256-TRAILER\n<amz date>\n<scope>\n<previous signature>\n<sha256(trailer)>`,
/// where "previous" starts as the seed (request) signature.
///
/// Contract: the chain only moves forward. A failed check, a chunk after the final 0-byte chunk,
/// or a trailer before it (or without trailer mode) poisons the signer: every later call returns
/// `false`. [`ChunkSigner::is_complete`] tells whether the stream may be committed. The signing
/// key is zeroized on drop; `Debug` shows neither key nor signatures.
pub struct ChunkSigner {
    key: SigningKey,
    amz_date: String,
    scope: String,
    previous: [u8; 32],
    trailer: bool,
    state: State,
}

impl ChunkSigner {
    /// A chain seeded with `seed_signature` (the verified request signature).
    ///
    /// Request handling gets its signer from [`crate::auth::PayloadMode::StreamingSigned`]; this
    /// constructor exists for tests of body decoders. `trailer` says whether a signed trailer
    /// follows the final chunk.
    pub fn new(
        key: SigningKey,
        amz_date: String,
        scope: String,
        seed_signature: [u8; 32],
        trailer: bool,
    ) -> Self {
        Self {
            key,
            amz_date,
            scope,
            previous: seed_signature,
            trailer,
            state: State::Chunks,
        }
    }

    fn check(&mut self, string_to_sign: &str, provided_hex: &[u8]) -> bool {
        let signature = self.key.sign(string_to_sign.as_bytes());
        let provided = ProvidedSignature::new(provided_hex.to_vec());
        if provided.matches(hex::encode(signature).as_bytes()) {
            self.previous = signature;
            true
        } else {
            self.state = State::Failed;
            false
        }
    }

    /// Verifies one chunk's signature (constant time) given the SHA-256 of that chunk's decoded
    /// data; on success advances the chain. The final 0-byte chunk goes through this too (its
    /// data hash is SHA-256 of the empty string) and closes the data part of the chain.
    pub fn verify_chunk(&mut self, data_sha256: &[u8; 32], provided_hex: &[u8]) -> bool {
        if self.state != State::Chunks {
            self.state = State::Failed;
            return false;
        }
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256_HEX}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(self.previous),
            hex::encode(data_sha256)
        );
        let ok = self.check(&string_to_sign, provided_hex);
        if ok && *data_sha256 == EMPTY_SHA256 {
            self.state = State::FinalChunk;
        }
        ok
    }

    /// Verifies `x-amz-trailer-signature` over the canonical trailer bytes (e.g.
    /// `b"x-amz-checksum-crc32:AAAAAA==\n"`), chained after the final chunk. Fails unless the
    /// signer is in trailer mode and the final chunk has verified.
    pub fn verify_trailer(&mut self, canonical_trailer: &[u8], provided_hex: &[u8]) -> bool {
        if !self.trailer || self.state != State::FinalChunk {
            self.state = State::Failed;
            return false;
        }
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(self.previous),
            sha256_hex(canonical_trailer)
        );
        let ok = self.check(&string_to_sign, provided_hex);
        if ok {
            self.state = State::Trailer;
        }
        ok
    }

    /// Whether the whole chain verified: the final 0-byte chunk, and the trailer in trailer
    /// mode. A body whose signer is not complete at end of stream must not be committed.
    pub fn is_complete(&self) -> bool {
        match self.state {
            State::FinalChunk => !self.trailer,
            State::Trailer => true,
            State::Chunks | State::Failed => false,
        }
    }
}

impl fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("trailer", &self.trailer)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::auth::SecretKey;
    use crate::auth::sigv4::signing_key;

    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const CHUNK1: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
    const CHUNK2: &str = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
    const FINAL: &str = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";

    fn example_signer(trailer: bool) -> ChunkSigner {
        let secret = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into());
        let key = signing_key(&secret, "20130524", "us-east-1", "s3");
        let mut seed = [0u8; 32];
        hex::decode_to_slice(SEED, &mut seed).unwrap();
        ChunkSigner::new(
            key,
            "20130524T000000Z".into(),
            "20130524/us-east-1/s3/aws4_request".into(),
            seed,
            trailer,
        )
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn empty_sha256_constant_is_right() {
        assert_eq!(EMPTY_SHA256, sha(b""));
        assert_eq!(hex::encode(EMPTY_SHA256), EMPTY_SHA256_HEX);
    }

    #[test]
    fn aws_streaming_example_chain_verifies() {
        let mut s = example_signer(false);
        assert!(s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
        assert!(!s.is_complete());
        assert!(s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
        assert!(s.verify_chunk(&sha(b""), FINAL.as_bytes()));
        assert!(s.is_complete());
        // Nothing after the final chunk.
        assert!(!s.verify_chunk(&sha(b""), FINAL.as_bytes()));
        assert!(!s.is_complete());
    }

    #[test]
    fn flipped_data_byte_fails_and_poisons() {
        let mut s = example_signer(false);
        let mut data = vec![b'a'; 65_536];
        data[100] = b'b';
        assert!(!s.verify_chunk(&sha(&data), CHUNK1.as_bytes()));
        // The correct chunk no longer helps: the chain is poisoned.
        assert!(!s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
    }

    #[test]
    fn forged_final_chunk_fails() {
        let mut s = example_signer(false);
        assert!(s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
        assert!(s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
        let mut forged = FINAL.as_bytes().to_vec();
        forged[0] = b'c';
        assert!(!s.verify_chunk(&sha(b""), &forged));
        assert!(!s.is_complete());
    }

    #[test]
    fn chunks_out_of_order_fail() {
        let mut s = example_signer(false);
        assert!(!s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
    }

    #[test]
    fn uppercase_or_truncated_signature_fails() {
        let mut s = example_signer(false);
        assert!(!s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.to_uppercase().as_bytes()));
        let mut s = example_signer(false);
        assert!(!s.verify_chunk(&sha(&[b'a'; 65_536]), &CHUNK1.as_bytes()[..63]));
    }

    #[test]
    fn trailer_chain() {
        // Build the expected trailer signature independently from the documented formula.
        let secret = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into());
        let key = signing_key(&secret, "20130524", "us-east-1", "s3");
        let trailer = b"x-amz-checksum-crc32:sOO8/Q==\n";
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{FINAL}\n{}",
            hex::encode(sha(trailer))
        );
        let expected = key.sign_hex(sts.as_bytes());

        let mut s = example_signer(true);
        assert!(
            !s.verify_trailer(trailer, expected.as_bytes()),
            "trailer before final chunk"
        );

        let mut s = example_signer(true);
        assert!(s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
        assert!(s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
        assert!(s.verify_chunk(&sha(b""), FINAL.as_bytes()));
        assert!(!s.is_complete(), "trailer still owed");
        assert!(s.verify_trailer(trailer, expected.as_bytes()));
        assert!(s.is_complete());
        assert!(
            !s.verify_trailer(trailer, expected.as_bytes()),
            "only one trailer"
        );

        let mut s = example_signer(true);
        assert!(s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
        assert!(s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
        assert!(s.verify_chunk(&sha(b""), FINAL.as_bytes()));
        assert!(!s.verify_trailer(b"x-amz-checksum-crc32:AAAAAA==\n", expected.as_bytes()));

        // Without trailer mode, a trailer is refused.
        let mut s = example_signer(false);
        assert!(s.verify_chunk(&sha(&[b'a'; 65_536]), CHUNK1.as_bytes()));
        assert!(s.verify_chunk(&sha(&[b'a'; 1024]), CHUNK2.as_bytes()));
        assert!(s.verify_chunk(&sha(b""), FINAL.as_bytes()));
        assert!(!s.verify_trailer(trailer, expected.as_bytes()));
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s = example_signer(false);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(SEED));
        assert!(dbg.contains("ChunkSigner"));
    }
}
