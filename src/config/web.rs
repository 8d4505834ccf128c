//! `[web]`: the pages upgate serves itself — the drop page for upload tokens, the files page
//! for signed-in users — and the Uppy (Companion-compatible) routes. Plain data; defaults and
//! what each setting is for are documented in `config/upgate.toml`.

use serde::Deserialize;

/// The first path segments the pages use under their prefix.
pub const PAGE_SEGMENTS: [&str; 4] = ["drop", "files", "uppy", "static"];

/// `[web]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the pages and the Uppy routes (default on). Off: their paths are S3 paths again.
    pub enabled: bool,
    /// The path the pages live under, starting and ending with `/` (default `/`: `/drop`,
    /// `/files`, `/uppy/…`, `/static/…`). With `/`, no bucket may be named like a page.
    pub prefix: String,
}

impl WebConfig {
    /// Whether the pages' paths would hide a bucket named `bucket` (so no such bucket may be
    /// configured or created).
    pub fn hides(&self, bucket: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let first = self
            .prefix
            .trim_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        (first.is_empty() && PAGE_SEGMENTS.contains(&bucket)) || bucket == first
    }

    /// Adds every problem with the section to `problems`; `buckets` are the configured names.
    pub fn validate<'a>(
        &self,
        buckets: impl Iterator<Item = &'a String>,
        problems: &mut Vec<String>,
    ) {
        let p = &self.prefix;
        let segments_ok = p
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .all(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                    && s != "v1"
                    && s != "."
                    && s != ".."
            });
        if !p.starts_with('/') || !p.ends_with('/') || p.contains("//") || !segments_ok {
            problems.push(format!(
                "web.prefix must start and end with '/' and hold plain path segments (not v1), got {p:?}"
            ));
            return;
        }
        for b in buckets {
            if self.hides(b) {
                problems.push(format!(
                    "bucket {b:?} would be hidden by the web pages under web.prefix {p:?}: rename \
                     the bucket or set another web.prefix"
                ));
            }
        }
    }
}
