//! `FT.SEARCH` argument builders for retrieval: filtered KNN, vector range, sorted (popularity)
//! and BM25 text queries. Each builder yields a [`SearchArgs`]: the arguments as data (for
//! snapshot tests) and as a `redis::Cmd` (to send). Nothing here talks to Redis.
//!
//! Every query says `DIALECT 2` (the server default is 1, which has no KNN), an explicit
//! `LIMIT` (the server default is 10) and, when given, a per-query `TIMEOUT`.

use std::fmt::Write as _;

use crate::filter::text_terms;
use crate::vector;
use crate::{Error, Result};

/// One command argument: text, or a binary blob (a query vector).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Blob(Vec<u8>),
}

/// A rendered command: its name and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchArgs {
    pub command: &'static str,
    pub args: Vec<Arg>,
}

impl SearchArgs {
    pub(crate) fn new(command: &'static str) -> SearchArgs {
        SearchArgs {
            command,
            args: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, a: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(a.into()));
        self
    }

    pub(crate) fn push_blob(&mut self, b: Vec<u8>) -> &mut Self {
        self.args.push(Arg::Blob(b));
        self
    }

    /// The command ready to send (or to add to a pipeline).
    pub fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd(self.command);
        for a in &self.args {
            match a {
                Arg::Text(s) => cmd.arg(s.as_str()),
                Arg::Blob(b) => cmd.arg(b.as_slice()),
            };
        }
        cmd
    }

    /// One line for snapshots and logs: text arguments containing spaces are quoted, blobs are
    /// shown as `<blob N bytes>`.
    pub fn display(&self) -> String {
        let mut out = self.command.to_owned();
        for a in &self.args {
            out.push(' ');
            match a {
                Arg::Text(s) if s.is_empty() || s.contains(' ') => {
                    let _ = write!(out, "'{s}'");
                }
                Arg::Text(s) => out.push_str(s),
                Arg::Blob(b) => {
                    let _ = write!(out, "<blob {} bytes>", b.len());
                }
            }
        }
        out
    }
}

/// What a search returns with each id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Only the ids (and, for vector queries, the distance): `RETURN 1 <dist>` / `NOCONTENT`.
    IdsOnly,
    /// These hash fields (plus the distance for vector queries).
    Fields(Vec<String>),
    /// These hash fields and the raw blob of the vector field `vector`, returned under
    /// [`VECTOR_ALIAS`] (read back into [`crate::reply::Hit::vector`]): the candidates' vectors
    /// come with the search instead of costing another round trip.
    FieldsAndVector { fields: Vec<String>, vector: String },
}

/// How RediSearch combines a KNN query with its pre-filter (`HYBRID_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridPolicy {
    /// Brute-force over the filtered documents.
    AdhocBf,
    /// Walk the HNSW graph in batches and filter each batch.
    Batches { batch_size: Option<u32> },
}

/// A filtered approximate KNN query:
/// `(<filter>)=>[KNN $k @<vec> $vec [HYBRID_POLICY ..] [EF_RUNTIME $ef] AS <dist>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnQuery {
    /// Index or alias to search.
    pub index: String,
    /// Rendered filter expression (`*` for none), see [`crate::filter::Filter::render`].
    pub filter: String,
    pub vector_field: String,
    pub vector: Vec<f32>,
    pub k: usize,
    pub ef_runtime: Option<u32>,
    /// Name the distance is returned (and sorted) under.
    pub distance_alias: String,
    pub projection: Projection,
    pub hybrid_policy: Option<HybridPolicy>,
    pub timeout_ms: Option<u64>,
}

/// Default name of the distance field in vector query results.
pub const DISTANCE_ALIAS: &str = "__dist";

/// Name a returned vector blob carries in results ([`Projection::FieldsAndVector`]).
pub const VECTOR_ALIAS: &str = "__vec";

fn wrap_filter(filter: &str) -> String {
    let f = filter.trim();
    if f.is_empty() || f == "*" {
        "*".into()
    } else {
        format!("({f})")
    }
}

fn check_vector(v: &[f32]) -> Result<()> {
    if v.is_empty() {
        return Err(Error::Query {
            message: "query vector is empty".into(),
        });
    }
    vector::validate(v, v.len())
}

fn push_projection(a: &mut SearchArgs, projection: &Projection, distance: Option<&str>) {
    match (projection, distance) {
        (Projection::IdsOnly, None) => {
            a.push("NOCONTENT");
        }
        (Projection::IdsOnly, Some(d)) => {
            a.push("RETURN").push("1").push(d);
        }
        (Projection::Fields(fields), d) => {
            let n = fields.len() + usize::from(d.is_some());
            a.push("RETURN").push(n.to_string());
            for f in fields {
                a.push(f.as_str());
            }
            if let Some(d) = d {
                a.push(d);
            }
        }
        (Projection::FieldsAndVector { fields, vector }, d) => {
            // `<field> AS <alias>` counts as three arguments of RETURN
            let n = fields.len() + 3 + usize::from(d.is_some());
            a.push("RETURN").push(n.to_string());
            for f in fields {
                a.push(f.as_str());
            }
            a.push(vector.as_str()).push("AS").push(VECTOR_ALIAS);
            if let Some(d) = d {
                a.push(d);
            }
        }
    }
}

fn push_tail(a: &mut SearchArgs, timeout_ms: Option<u64>) {
    if let Some(t) = timeout_ms {
        a.push("TIMEOUT").push(t.to_string());
    }
    a.push("DIALECT").push("2");
}

impl KnnQuery {
    pub fn args(&self) -> Result<SearchArgs> {
        check_vector(&self.vector)?;
        if self.k == 0 {
            return Err(Error::Query {
                message: "k must be at least 1".into(),
            });
        }
        let mut knn = format!("KNN $k @{} $vec", self.vector_field);
        let mut params: Vec<(String, Arg)> = vec![
            ("k".into(), Arg::Text(self.k.to_string())),
            ("vec".into(), Arg::Blob(vector::encode(&self.vector))),
        ];
        // The server rejects hybrid attributes on an unfiltered query, and EF_RUNTIME under
        // ADHOC_BF (brute force has no graph to walk).
        let filtered = wrap_filter(&self.filter) != "*";
        let policy = self.hybrid_policy.filter(|_| filtered);
        match policy {
            None => {}
            Some(HybridPolicy::AdhocBf) => knn.push_str(" HYBRID_POLICY ADHOC_BF"),
            Some(HybridPolicy::Batches { batch_size }) => {
                knn.push_str(" HYBRID_POLICY BATCHES");
                if let Some(bs) = batch_size {
                    knn.push_str(" BATCH_SIZE $batch");
                    params.push(("batch".into(), Arg::Text(bs.to_string())));
                }
            }
        }
        if let Some(ef) = self
            .ef_runtime
            .filter(|_| policy != Some(HybridPolicy::AdhocBf))
        {
            knn.push_str(" EF_RUNTIME $ef");
            params.push(("ef".into(), Arg::Text(ef.to_string())));
        }
        let _ = write!(knn, " AS {}", self.distance_alias);
        let mut a = SearchArgs::new("FT.SEARCH");
        a.push(self.index.as_str())
            .push(format!("{}=>[{knn}]", wrap_filter(&self.filter)));
        a.push("PARAMS").push((params.len() * 2).to_string());
        for (name, value) in params {
            a.push(name);
            a.args.push(value);
        }
        a.push("SORTBY")
            .push(self.distance_alias.as_str())
            .push("ASC");
        a.push("LIMIT").push("0").push(self.k.to_string());
        push_projection(&mut a, &self.projection, Some(&self.distance_alias));
        push_tail(&mut a, self.timeout_ms);
        Ok(a)
    }

    pub fn cmd(&self) -> Result<redis::Cmd> {
        Ok(self.args()?.cmd())
    }
}

/// All documents within `radius` of a vector (`VECTOR_RANGE`), filtered, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    pub index: String,
    pub filter: String,
    pub vector_field: String,
    pub vector: Vec<f32>,
    /// Largest distance accepted (in the metric's distance units).
    pub radius: f32,
    pub epsilon: Option<f32>,
    pub limit: usize,
    pub distance_alias: String,
    pub projection: Projection,
    pub timeout_ms: Option<u64>,
}

impl RangeQuery {
    pub fn args(&self) -> Result<SearchArgs> {
        check_vector(&self.vector)?;
        if !self.radius.is_finite() || self.radius < 0.0 {
            return Err(Error::Query {
                message: format!("radius is {}, expected a finite number >= 0", self.radius),
            });
        }
        let mut attrs = format!("$YIELD_DISTANCE_AS: {}", self.distance_alias);
        if let Some(e) = self.epsilon {
            let _ = write!(attrs, "; $EPSILON: {e}");
        }
        let range = format!(
            "@{}:[VECTOR_RANGE $radius $vec]=>{{{attrs}}}",
            self.vector_field
        );
        let f = wrap_filter(&self.filter);
        let query = if f == "*" {
            range
        } else {
            format!("{range} {f}")
        };
        let mut a = SearchArgs::new("FT.SEARCH");
        a.push(self.index.as_str()).push(query);
        a.push("PARAMS")
            .push("4")
            .push("radius")
            .push(self.radius.to_string())
            .push("vec")
            .push_blob(vector::encode(&self.vector));
        a.push("SORTBY")
            .push(self.distance_alias.as_str())
            .push("ASC");
        a.push("LIMIT").push("0").push(self.limit.to_string());
        push_projection(&mut a, &self.projection, Some(&self.distance_alias));
        push_tail(&mut a, self.timeout_ms);
        Ok(a)
    }
}

/// Filtered documents sorted by a SORTABLE numeric field (popularity for cold start).
#[derive(Debug, Clone, PartialEq)]
pub struct SortedQuery {
    pub index: String,
    pub filter: String,
    pub sort_field: String,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
    pub projection: Projection,
    pub timeout_ms: Option<u64>,
}

impl SortedQuery {
    pub fn args(&self) -> SearchArgs {
        let mut a = SearchArgs::new("FT.SEARCH");
        let f = self.filter.trim();
        a.push(self.index.as_str())
            .push(if f.is_empty() { "*" } else { f });
        a.push("SORTBY")
            .push(self.sort_field.as_str())
            .push(if self.descending { "DESC" } else { "ASC" });
        a.push("LIMIT")
            .push(self.offset.to_string())
            .push(self.limit.to_string());
        let projection = match &self.projection {
            // the sort key is what ranks the item: return it with the id
            Projection::IdsOnly => Projection::Fields(vec![self.sort_field.clone()]),
            Projection::Fields(f) if !f.contains(&self.sort_field) => {
                let mut f = f.clone();
                f.push(self.sort_field.clone());
                Projection::Fields(f)
            }
            Projection::FieldsAndVector { fields, vector }
                if !fields.contains(&self.sort_field) =>
            {
                let mut fields = fields.clone();
                fields.push(self.sort_field.clone());
                Projection::FieldsAndVector {
                    fields,
                    vector: vector.clone(),
                }
            }
            p => p.clone(),
        };
        push_projection(&mut a, &projection, None);
        push_tail(&mut a, self.timeout_ms);
        a
    }
}

/// The filter restricted to a given set of item keys (`INKEYS`): which of these items pass
/// the filter, with their fields. Used by the `history` source: the user's own items, evaluated
/// by the server with exactly the semantics of every other source's filter. Results come in the
/// index's order; the caller ranks them.
#[derive(Debug, Clone, PartialEq)]
pub struct InKeysQuery {
    pub index: String,
    pub filter: String,
    /// Full item keys (`{ns}:item:{id}`).
    pub keys: Vec<String>,
    pub projection: Projection,
    pub timeout_ms: Option<u64>,
}

impl InKeysQuery {
    pub fn args(&self) -> Result<SearchArgs> {
        if self.keys.is_empty() {
            return Err(Error::Query {
                message: "an INKEYS query needs at least one key".into(),
            });
        }
        let mut a = SearchArgs::new("FT.SEARCH");
        let f = self.filter.trim();
        a.push(self.index.as_str())
            .push(if f.is_empty() { "*" } else { f });
        a.push("INKEYS").push(self.keys.len().to_string());
        for k in &self.keys {
            a.push(k.as_str());
        }
        push_projection(&mut a, &self.projection, None);
        a.push("LIMIT").push("0").push(self.keys.len().to_string());
        push_tail(&mut a, self.timeout_ms);
        Ok(a)
    }
}

/// The BM25 side of text search: any of the words of `text` (OR), in one TEXT field or all.
pub fn lexical_expression(field: Option<&str>, text: &str) -> Result<String> {
    let terms = text_terms(text);
    if terms.is_empty() {
        return Err(Error::Query {
            message: format!("query text {text:?} has no words (letters or digits) to search for"),
        });
    }
    let body = terms.join(" | ");
    Ok(match field {
        Some(f) => format!("@{f}:({body})"),
        None => format!("({body})"),
    })
}

/// A BM25-scored full-text query with a pre-filter: `(<text>) (<filter>)`, `WITHSCORES`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    pub index: String,
    /// Text expression, e.g. from [`lexical_expression`].
    pub text: String,
    pub filter: String,
    pub limit: usize,
    /// Scoring function; `BM25` on RediSearch 2.x (`BM25STD` is the name on 8.x).
    pub scorer: String,
    pub projection: Projection,
    pub timeout_ms: Option<u64>,
}

impl TextQuery {
    pub fn args(&self) -> SearchArgs {
        let f = wrap_filter(&self.filter);
        let query = if f == "*" {
            self.text.clone()
        } else {
            format!("{} {f}", self.text)
        };
        let mut a = SearchArgs::new("FT.SEARCH");
        a.push(self.index.as_str()).push(query);
        a.push("SCORER")
            .push(self.scorer.as_str())
            .push("WITHSCORES");
        a.push("LIMIT").push("0").push(self.limit.to_string());
        push_projection(&mut a, &self.projection, None);
        push_tail(&mut a, self.timeout_ms);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn knn() -> KnnQuery {
        KnnQuery {
            index: "shop:items".into(),
            filter: "@category:{BREAD} @price:[1 (5]".into(),
            vector_field: "embedding".into(),
            vector: vec![0.5, -0.5, 0.25, 1.0],
            k: 20,
            ef_runtime: Some(100),
            distance_alias: DISTANCE_ALIAS.into(),
            projection: Projection::Fields(vec!["category".into(), "price".into()]),
            hybrid_policy: None,
            timeout_ms: Some(50),
        }
    }

    #[test]
    fn renders_filtered_knn() {
        expect![[r#"FT.SEARCH shop:items '(@category:{BREAD} @price:[1 (5])=>[KNN $k @embedding $vec EF_RUNTIME $ef AS __dist]' PARAMS 6 k 20 vec <blob 16 bytes> ef 100 SORTBY __dist ASC LIMIT 0 20 RETURN 3 category price __dist TIMEOUT 50 DIALECT 2"#]]
        .assert_eq(&knn().args().unwrap().display());
    }

    #[test]
    fn renders_knn_returning_the_vector_under_its_alias() {
        let mut q = knn();
        q.projection = Projection::FieldsAndVector {
            fields: vec!["category".into(), "price".into()],
            vector: "embedding".into(),
        };
        expect![[r#"FT.SEARCH shop:items '(@category:{BREAD} @price:[1 (5])=>[KNN $k @embedding $vec EF_RUNTIME $ef AS __dist]' PARAMS 6 k 20 vec <blob 16 bytes> ef 100 SORTBY __dist ASC LIMIT 0 20 RETURN 6 category price embedding AS __vec __dist TIMEOUT 50 DIALECT 2"#]]
        .assert_eq(&q.args().unwrap().display());
    }

    #[test]
    fn renders_knn_variants() {
        let mut q = knn();
        q.filter = "@in_stock:{1}".into();
        q.ef_runtime = None;
        q.projection = Projection::IdsOnly;
        q.hybrid_policy = Some(HybridPolicy::Batches {
            batch_size: Some(64),
        });
        q.timeout_ms = None;
        expect![[r#"FT.SEARCH shop:items '(@in_stock:{1})=>[KNN $k @embedding $vec HYBRID_POLICY BATCHES BATCH_SIZE $batch AS __dist]' PARAMS 6 k 20 vec <blob 16 bytes> batch 64 SORTBY __dist ASC LIMIT 0 20 RETURN 1 __dist DIALECT 2"#]]
        .assert_eq(&q.args().unwrap().display());
        q.hybrid_policy = Some(HybridPolicy::AdhocBf);
        q.ef_runtime = Some(100);
        expect![[r#"FT.SEARCH shop:items '(@in_stock:{1})=>[KNN $k @embedding $vec HYBRID_POLICY ADHOC_BF AS __dist]' PARAMS 4 k 20 vec <blob 16 bytes> SORTBY __dist ASC LIMIT 0 20 RETURN 1 __dist DIALECT 2"#]]
        .assert_eq(&q.args().unwrap().display());
        // no policy without a filter (the server rejects it)
        q.filter = "*".into();
        expect![[r#"FT.SEARCH shop:items '*=>[KNN $k @embedding $vec EF_RUNTIME $ef AS __dist]' PARAMS 6 k 20 vec <blob 16 bytes> ef 100 SORTBY __dist ASC LIMIT 0 20 RETURN 1 __dist DIALECT 2"#]]
        .assert_eq(&q.args().unwrap().display());
        // the blob is the little-endian f32 encoding
        let args = q.args().unwrap();
        assert!(args.args.contains(&Arg::Blob(vector::encode(&q.vector))));
    }

    #[test]
    fn rejects_bad_knn_input() {
        let mut q = knn();
        q.vector = vec![1.0, f32::NAN];
        assert!(matches!(
            q.args(),
            Err(Error::VectorNotFinite { index: 1, .. })
        ));
        let mut q = knn();
        q.k = 0;
        assert!(
            q.args()
                .unwrap_err()
                .to_string()
                .contains("k must be at least 1")
        );
        let mut q = knn();
        q.vector.clear();
        assert!(q.args().is_err());
    }

    #[test]
    fn renders_range_query() {
        let q = RangeQuery {
            index: "shop:items".into(),
            filter: "@in_stock:{1}".into(),
            vector_field: "embedding".into(),
            vector: vec![1.0, 0.0],
            radius: 0.25,
            epsilon: Some(0.01),
            limit: 100,
            distance_alias: DISTANCE_ALIAS.into(),
            projection: Projection::IdsOnly,
            timeout_ms: Some(20),
        };
        expect![[r#"FT.SEARCH shop:items '@embedding:[VECTOR_RANGE $radius $vec]=>{$YIELD_DISTANCE_AS: __dist; $EPSILON: 0.01} (@in_stock:{1})' PARAMS 4 radius 0.25 vec <blob 8 bytes> SORTBY __dist ASC LIMIT 0 100 RETURN 1 __dist TIMEOUT 20 DIALECT 2"#]]
        .assert_eq(&q.args().unwrap().display());
        let mut bad = q.clone();
        bad.radius = -1.0;
        assert!(bad.args().is_err());
    }

    #[test]
    fn renders_popularity_query() {
        let q = SortedQuery {
            index: "shop:items".into(),
            filter: "@department:{GROCERY}".into(),
            sort_field: "popularity".into(),
            descending: true,
            offset: 0,
            limit: 50,
            projection: Projection::IdsOnly,
            timeout_ms: Some(50),
        };
        expect![[r#"FT.SEARCH shop:items @department:{GROCERY} SORTBY popularity DESC LIMIT 0 50 RETURN 1 popularity TIMEOUT 50 DIALECT 2"#]]
        .assert_eq(&q.args().display());
    }

    #[test]
    fn renders_text_query() {
        let text = lexical_expression(Some("text"), "Organic whole-milk (1 gal)").unwrap();
        let q = TextQuery {
            index: "shop:items".into(),
            text,
            filter: "@price:[-inf 5]".into(),
            limit: 20,
            scorer: "BM25".into(),
            projection: Projection::Fields(vec!["text".into()]),
            timeout_ms: None,
        };
        expect![[r#"FT.SEARCH shop:items '@text:(Organic | whole | milk | 1 | gal) (@price:[-inf 5])' SCORER BM25 WITHSCORES LIMIT 0 20 RETURN 1 text DIALECT 2"#]]
        .assert_eq(&q.args().display());
        assert!(lexical_expression(None, "?!").is_err());
        assert_eq!(lexical_expression(None, "a-b").unwrap(), "(a | b)");
    }

    #[test]
    fn inkeys_query_lists_the_keys_and_returns_them_all() {
        let q = InKeysQuery {
            index: "redrec:items".into(),
            filter: "@category:{MILK}".into(),
            keys: vec!["redrec:item:1".into(), "redrec:item:2".into()],
            projection: Projection::Fields(vec!["category".into()]),
            timeout_ms: Some(500),
        };
        assert_eq!(
            q.args().unwrap().display(),
            "FT.SEARCH redrec:items @category:{MILK} INKEYS 2 redrec:item:1 redrec:item:2 RETURN 1 category LIMIT 0 2 TIMEOUT 500 DIALECT 2"
        );
        let empty = InKeysQuery { keys: vec![], ..q };
        assert!(empty.args().is_err());
    }
}
