//! Index settings, read from `index-config/index.json` (embedded in the binary; a directory given
//! with `--index-config` overrides it). The file is versioned: `"version": 1`.

use serde::Deserialize;

use super::error::{IndexError, Result};

/// The settings file shipped with this version.
pub const DEFAULT_FILE: &str = include_str!("../../index-config/index.json");

/// Index settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSettings {
    /// Writer memory for live indexing, bytes.
    pub writer_memory: usize,
    /// Indexing threads for live indexing.
    pub writer_threads: usize,
    /// Writer memory for imports and reindexing, bytes.
    pub bulk_memory: usize,
    /// Indexing threads for imports and reindexing.
    pub bulk_threads: usize,
    /// A writer unused this long is closed (merges finished first).
    pub idle_close_secs: u64,
    /// Longest time a write waits to be committed when nobody waits for it.
    pub commit_interval_ms: u64,
    /// Most change-log records applied per commit.
    pub batch_max_ops: usize,
    /// Merge policy.
    pub merge: MergeSettings,
    /// Largest id set filtered with a term set; larger sets use a fast-field predicate.
    pub term_set_max: usize,
    /// Threads a search spreads its segments over (shared by every org's index): the cores.
    pub search_threads: usize,
}

/// Log merge policy settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeSettings {
    /// Fewest segments merged at once.
    pub min_num_segments: usize,
    /// Segments below this many docs count as one layer.
    pub min_layer_docs: u32,
    /// Segments above this many docs are not merged.
    pub max_docs_before_merge: usize,
    /// Deleted-doc ratio that makes a segment worth merging.
    pub del_docs_ratio_before_merge: f32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileV1 {
    #[allow(dead_code)]
    version: u64,
    writer: WriterV1,
    commit_interval_ms: u64,
    batch_max_ops: usize,
    merge: MergeSettings,
    joins: JoinsV1,
    #[serde(default)]
    search: SearchV1,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchV1 {
    /// 0: one per core.
    #[serde(default)]
    threads: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WriterV1 {
    memory_mb: usize,
    threads: usize,
    bulk_memory_mb: usize,
    bulk_threads: usize,
    idle_close_secs: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinsV1 {
    term_set_max: usize,
}

impl IndexSettings {
    /// Parses and validates a settings file.
    ///
    /// # Errors
    /// Unknown version, unknown or missing keys, or values out of range.
    pub fn parse(text: &str) -> Result<IndexSettings> {
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| IndexError::Settings(format!("not JSON: {e}")))?;
        match raw.get("version").and_then(serde_json::Value::as_u64) {
            Some(1) => {}
            Some(v) => {
                return Err(IndexError::Settings(format!(
                    "unknown version {v} (this build reads 1)"
                )))
            }
            None => return Err(IndexError::Settings("`version` is missing".into())),
        }
        let f: FileV1 = serde_path_to_error::deserialize(raw)
            .map_err(|e| IndexError::Settings(format!("`{}`: {}", e.path(), e.inner())))?;
        let s = IndexSettings {
            writer_memory: f.writer.memory_mb << 20,
            writer_threads: f.writer.threads,
            bulk_memory: f.writer.bulk_memory_mb << 20,
            bulk_threads: f.writer.bulk_threads,
            idle_close_secs: f.writer.idle_close_secs,
            commit_interval_ms: f.commit_interval_ms,
            batch_max_ops: f.batch_max_ops,
            merge: f.merge,
            term_set_max: f.joins.term_set_max,
            search_threads: match f.search.threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(IndexError::Settings(m.to_string()));
        if !(1..=8).contains(&self.writer_threads) || !(1..=8).contains(&self.bulk_threads) {
            return bad("`writer.threads` and `writer.bulkThreads` must be 1..8");
        }
        if self.writer_memory < (15 * self.writer_threads) << 20 || self.bulk_memory < (15 * self.bulk_threads) << 20 {
            return bad("writer memory must be at least 15 MB per thread");
        }
        if self.commit_interval_ms == 0 || self.commit_interval_ms > 60_000 {
            return bad("`commitIntervalMs` must be 1..60000");
        }
        if !(1..=64).contains(&self.search_threads) {
            return bad("`search.threads` must be 0 (one per core) to 64");
        }
        if self.batch_max_ops == 0 {
            return bad("`batchMaxOps` must be positive");
        }
        Ok(())
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings::parse(DEFAULT_FILE).expect("the shipped index settings are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_settings_parse() {
        let s = IndexSettings::default();
        assert_eq!(s.writer_threads, 1);
        assert!(s.commit_interval_ms <= 1000);
    }

    #[test]
    fn a_misspelled_key_is_named() {
        let broken = DEFAULT_FILE.replace("commitIntervalMs", "commitIntervalMillis");
        let err = IndexSettings::parse(&broken).unwrap_err().to_string();
        assert!(err.contains("commitIntervalMillis"), "{err}");
    }

    #[test]
    fn unknown_versions_are_refused() {
        let err = IndexSettings::parse(&DEFAULT_FILE.replace("\"version\": 1", "\"version\": 2")).unwrap_err();
        assert!(err.to_string().contains("version 2"));
    }
}
