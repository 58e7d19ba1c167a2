//! Retriever settings: a plain `Deserialize` struct (binaries load it with figment) and the
//! enums its keys take.

use serde::{Deserialize, Serialize};

use redrec_core::hybrid::Fusion;

/// How the fields of candidates are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FetchMode {
    /// `RETURN` the fields in each search (one round trip). Measured faster, the default.
    #[default]
    Return,
    /// Search for ids and distances only, then `HMGET` the winners' fields (one more round trip).
    IdsThenHmget,
}

/// How filtered KNN combines the filter with the HNSW graph (`HYBRID_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// Brute force over the filtered documents.
    AdhocBf,
    /// Walk the graph in batches of `batch_size`, filtering each batch.
    Batches,
    /// Per query: `batches` when a sample of the items says the filter keeps at least
    /// `auto_batches_above` of them, else the server's own choice (see `selectivity.rs`). The
    /// sample is taken in the background, never inside a request. The default.
    Auto,
    /// Send no `HYBRID_POLICY`: the server decides (the same as leaving the key out before
    /// `auto` became the default).
    Server,
}

/// Retriever settings (a plain struct; binaries load it with figment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrieverConfig {
    /// `EF_RUNTIME` of every KNN query (HNSW beam width; recall vs latency), raised to the k of
    /// the query when that is larger. With `recall_target` and a measured curve, the curve's EF
    /// is used instead.
    pub ef_runtime: u32,
    /// Recall@k that unfiltered KNN should reach: the `EF_RUNTIME` sent is the smallest one the
    /// serving index's measured curve (`redrec-ingest calibrate`, read in the background with
    /// the index lookups) says reaches it, or the largest measured when none does. Without a
    /// curve for the serving index, `ef_runtime` is used. Unset (the default): `ef_runtime`.
    pub recall_target: Option<f64>,
    /// Largest k a request may ask for, and the cap on over-fetching.
    pub max_k: usize,
    /// Per-query `TIMEOUT` in ms sent to RediSearch (0 = the server's own default). What happens
    /// at the deadline is the server's `ON_TIMEOUT` policy: `fail` (an error, reported as
    /// [`Error::Unavailable`](crate::Error::Unavailable)) or `return` (partial results, flagged in [`Retrieval::partial`](crate::Retrieval::partial)
    /// from the RESP3 warning).
    pub query_timeout_ms: u64,
    /// Fusion of BM25 and KNN lists for text sources.
    pub fusion: Fusion,
    /// Use `FT.HYBRID` when the server has it (else the client-side fusion always runs).
    pub use_ft_hybrid: bool,
    /// Scorer of the BM25 side (`BM25` on RediSearch 2.x; 8.x also knows `BM25STD`).
    pub text_scorer: String,
    pub fetch: FetchMode,
    /// Hash fields returned with candidates; empty = every non-vector field of the schema.
    pub return_fields: Vec<String>,
    /// `HYBRID_POLICY` for filtered KNN: `auto` (default), `adhoc_bf`, `batches`, or `server`
    /// (none sent: the server decides).
    pub hybrid_policy: Option<PolicyName>,
    pub batch_size: Option<u32>,
    /// With `hybrid_policy = "auto"`: the estimated share of items a filter must keep for
    /// `BATCHES` to be used.
    pub auto_batches_above: f64,
    /// A profile's exclusion rules (non-merchandise, zero price) that the sample says remove
    /// less than this share of the items are checked on the candidates instead of being sent
    /// with every search (a negated filter turns a plain KNN into a filtered one: ~3x its Redis
    /// time measured on 20k x 128); larger ones stay in the search. 0 keeps every exclusion in
    /// the search.
    pub post_filter_below: f64,
    /// A request whose only sources are KNN and whose filter the sample says keeps at least
    /// this share of the items searches without the filter, over-fetching by 1/share, and checks
    /// the filter on the hits (RediSearch's `BATCHES` pays for evaluating a broad numeric filter:
    /// 3x an unfiltered KNN at 1M items); when that leaves fewer than k, it searches again with
    /// the filter. 0 turns it off.
    pub post_filter_above: f64,
    /// With `auto`: items sampled (`SCAN` over item keys) to estimate filter selectivity.
    pub sample_size: usize,
    /// With `auto`: age after which the background sampler takes the sample again.
    pub sample_max_age_secs: u64,
    /// With `auto`: seconds between the background sampler's checks of the serving index
    /// (`FT.INFO`: document count and index name); a change takes a new sample.
    pub sample_check_secs: u64,
    /// Age after which the serving index's collaborative vector field is looked up again
    /// (`FT.INFO`, on the next request with a collaborative source), so a field added by
    /// `redrec-ingest cf` while serving is used without a restart.
    pub cf_recheck_secs: u64,
    /// Milliseconds between the background lookups of the serving index (`FT.INFO`: its build
    /// progress, flagged in responses while under 100%, and the collaborative field); a quarter
    /// of that while the index is being built.
    pub index_check_ms: u64,
    /// Route a request whose filter lies inside a partition of the serving index
    /// (`redrec-ingest partitions`) to that partition's index. The partitions are read with the
    /// background index lookups; without any, nothing changes.
    pub partitions: bool,
}

impl Default for RetrieverConfig {
    fn default() -> Self {
        RetrieverConfig {
            ef_runtime: 100,
            recall_target: None,
            max_k: 1000,
            query_timeout_ms: 500,
            fusion: Fusion::default(),
            use_ft_hybrid: true,
            text_scorer: "BM25".into(),
            fetch: FetchMode::Return,
            return_fields: Vec::new(),
            hybrid_policy: Some(PolicyName::Auto),
            batch_size: None,
            auto_batches_above: 0.05,
            post_filter_below: 0.05,
            post_filter_above: 0.5,
            sample_size: 1000,
            sample_max_age_secs: 600,
            sample_check_secs: 30,
            cf_recheck_secs: 60,
            index_check_ms: 1000,
            partitions: true,
        }
    }
}

impl RetrieverConfig {
    /// Rejects settings the background sampler cannot run with, naming the key.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.sample_check_secs == 0 {
            return Err(crate::Error::config(
                "retriever.sample_check_secs",
                "must be at least 1 (seconds between checks of the serving index)",
            ));
        }
        if self.index_check_ms == 0 {
            return Err(crate::Error::config(
                "retriever.index_check_ms",
                "must be at least 1 (milliseconds between lookups of the serving index)",
            ));
        }
        if self.sample_max_age_secs == 0 {
            return Err(crate::Error::config(
                "retriever.sample_max_age_secs",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.post_filter_below) {
            return Err(crate::Error::config(
                "retriever.post_filter_below",
                format!("is {}, expected a share in 0..=1", self.post_filter_below),
            ));
        }
        if !(0.0..=1.0).contains(&self.post_filter_above) {
            return Err(crate::Error::config(
                "retriever.post_filter_above",
                format!("is {}, expected a share in 0..=1", self.post_filter_above),
            ));
        }
        if let Some(t) = self.recall_target
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(crate::Error::config(
                "retriever.recall_target",
                format!("is {t}, expected a recall in (0, 1], e.g. 0.95"),
            ));
        }
        if !(0.0..=1.0).contains(&self.auto_batches_above) {
            return Err(crate::Error::config(
                "retriever.auto_batches_above",
                format!("is {}, expected a share in 0..=1", self.auto_batches_above),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fills_defaults_and_rejects_unknown_keys() {
        let c: RetrieverConfig = serde_json::from_str(
            r#"{"ef_runtime": 64, "fusion": {"method": "rrf", "constant": 10, "window": 5}}"#,
        )
        .unwrap();
        assert_eq!(c.ef_runtime, 64);
        assert_eq!(c.fetch, FetchMode::Return);
        assert_eq!(
            c.hybrid_policy,
            Some(PolicyName::Auto),
            "auto is the default"
        );
        assert_eq!(
            c.fusion,
            Fusion::Rrf {
                constant: 10.0,
                window: 5
            }
        );
        let e = serde_json::from_str::<RetrieverConfig>(r#"{"ef": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `ef`"), "{e}");
        let c: RetrieverConfig =
            serde_json::from_str(r#"{"hybrid_policy": "batches", "batch_size": 32}"#).unwrap();
        assert_eq!(c.hybrid_policy, Some(PolicyName::Batches));
        let c: RetrieverConfig = serde_json::from_str(r#"{"hybrid_policy": "server"}"#).unwrap();
        assert_eq!(c.hybrid_policy, Some(PolicyName::Server));
        let e =
            serde_json::from_str::<RetrieverConfig>(r#"{"hybrid_policy": "fast"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `fast`"), "{e}");
    }

    #[test]
    fn sampler_settings_are_validated_naming_the_key() {
        for (json, key) in [
            (r#"{"sample_check_secs": 0}"#, "retriever.sample_check_secs"),
            (
                r#"{"sample_max_age_secs": 0}"#,
                "retriever.sample_max_age_secs",
            ),
            (
                r#"{"auto_batches_above": 1.5}"#,
                "retriever.auto_batches_above",
            ),
            (r#"{"recall_target": 0}"#, "retriever.recall_target"),
            (r#"{"recall_target": 1.2}"#, "retriever.recall_target"),
        ] {
            let c: RetrieverConfig = serde_json::from_str(json).unwrap();
            let e = c.validate().unwrap_err();
            assert!(e.to_string().contains(key), "{json}: {e}");
        }
        RetrieverConfig::default().validate().unwrap();
    }
}
