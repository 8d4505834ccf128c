//! `[search]`: full-text search of document contents (`GET /v1/files?q=`). Plain data;
//! defaults and what each setting is for are documented in `config/upgate.toml`.

use serde::Deserialize;

/// `[search]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Extract and index the text of committed documents (default on).
    pub enabled: bool,
    /// Characters of a document's text kept in the index (its beginning).
    pub max_text_chars: usize,
    /// Extractions running at once (each holds one document in memory).
    pub max_concurrent: usize,
    /// Most milliseconds one extraction may take; a slower one is abandoned (nothing indexed).
    pub timeout_ms: u64,
}

impl SearchConfig {
    /// Adds every problem with the section to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        // PostgreSQL's tsvector holds at most 1 MiB; text beyond ~250,000 characters of short
        // words can exceed it.
        if !(1_000..=250_000).contains(&self.max_text_chars) {
            problems.push("search.max_text_chars must be 1000..=250000".into());
        }
        if !(1..=64).contains(&self.max_concurrent) {
            problems.push("search.max_concurrent must be 1..=64".into());
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            problems.push("search.timeout_ms must be 100..=600000".into());
        }
    }
}
