//! Minting SigV4 presigned URLs (query auth) that [`crate::auth::parse`] accepts.

use std::time::{Duration, SystemTime};

use super::{
    ALGORITHM, SERVICE, UNSIGNED_PAYLOAD, credential_scope, format_amz_date, signing_key,
    string_to_sign, uri_encode,
};
use crate::auth::SecretKey;

/// What a presigned URL covers.
#[derive(Debug, Clone)]
pub struct PresignParams {
    /// The method the URL is for (the signature binds it).
    pub method: http::Method,
    /// The `Host` the client will send, e.g. `uploads.example.com` or `127.0.0.1:9000`.
    pub host: String,
    /// The *decoded* path, e.g. `/bucket/my key.pdf`. The URL's path must be
    /// [`PresignParams::encoded_path`] (`uri_encode(path, false)`).
    pub path: String,
    /// Extra query pairs, decoded (e.g. `("partNumber", "1")`); they become signed.
    pub query: Vec<(String, String)>,
    /// Headers the client must send with exactly these values (e.g. `content-type`,
    /// `content-length`); they become signed. Names are lower-cased; `host` is always signed and
    /// need not be listed. Including `x-amz-content-sha256` binds the payload hash too.
    pub headers: Vec<(String, String)>,
    /// Lifetime (`X-Amz-Expires`, whole seconds). Must be 1 s ..= the verifier's maximum, or the
    /// URL will be refused.
    pub expires: Duration,
    /// Credential-scope region; must equal the verifier's `AuthPolicy::region`.
    pub region: String,
    /// Signing time (`X-Amz-Date`).
    pub time: SystemTime,
    /// The access key id whose secret signs the URL.
    pub access_key_id: String,
}

impl PresignParams {
    /// The path to put in the URL: `path` encoded with [`uri_encode`] keeping `/`.
    pub fn encoded_path(&self) -> String {
        uri_encode(&self.path, false)
    }
}

/// Signs `params` with `secret` and returns the query string (without `?`) carrying
/// `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
/// the extra query pairs and, last, `X-Amz-Signature`.
///
/// The URL is `<scheme>://<host><params.encoded_path()>?<returned query>`; the client must send
/// the listed headers unchanged. The payload is `UNSIGNED-PAYLOAD` unless `x-amz-content-sha256`
/// is among the headers.
pub fn presign_url(params: &PresignParams, secret: &SecretKey) -> String {
    let amz_date = format_amz_date(params.time);
    let date = &amz_date[..8];
    let scope = credential_scope(date, &params.region, SERVICE);

    // Lower-cased (name, value) list including host; names sorted, repeated names joined in the
    // given order, exactly as the verifier will canonicalise them.
    let mut headers: Vec<(String, &str)> = vec![("host".to_owned(), params.host.as_str())];
    headers.extend(
        params
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str())),
    );
    headers.sort_by(|a, b| a.0.cmp(&b.0)); // stable: keeps the order of repeated names
    let mut signed_names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    signed_names.dedup();
    let signed_headers = signed_names.join(";");

    let mut canonical_headers = String::new();
    for name in &signed_names {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| {
                v.split(' ')
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = headers
        .iter()
        .find(|(n, _)| n == "x-amz-content-sha256")
        .map_or(UNSIGNED_PAYLOAD, |(_, v)| v.trim_matches(' '));

    let credential = format!("{}/{scope}", params.access_key_id);
    let expires = params.expires.as_secs().to_string();
    let mut query: Vec<(String, String)> = params
        .query
        .iter()
        .map(|(n, v)| (uri_encode(n, true), uri_encode(v, true)))
        .collect();
    for (name, value) in [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", amz_date.as_str()),
        ("X-Amz-Expires", expires.as_str()),
        ("X-Amz-SignedHeaders", signed_headers.as_str()),
    ] {
        query.push((name.to_owned(), uri_encode(value, true)));
    }
    query.sort_unstable();
    let canonical_query = query
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        params.method.as_str(),
        params.encoded_path(),
    );
    let sts = string_to_sign(&amz_date, &scope, canonical_request.as_bytes());
    let key = signing_key(secret, date, &params.region, SERVICE);
    let signature = key.sign_hex(sts.as_bytes());
    format!("{canonical_query}&X-Amz-Signature={signature}")
}
