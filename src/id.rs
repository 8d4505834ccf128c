//! Unguessable identifiers (object versions, request ids, generated keys).

/// `n` random bytes from the OS CSPRNG, hex-encoded.
///
/// # Panics
/// Only if the operating system's random source is unavailable, in which case nothing upgate
/// could do would be safe.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("OS random source unavailable");
    hex::encode(buf)
}

/// A 128-bit object/version id (32 hex chars).
pub fn object_id() -> String {
    random_hex(16)
}

/// A request id, echoed in `x-amz-request-id` and log lines.
pub fn request_id() -> String {
    random_hex(8).to_ascii_uppercase()
}
