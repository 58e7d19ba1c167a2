//! The raw baseline: the query mix sent straight to Redis with `FT.SEARCH` (no gateway), over
//! either one shared multiplexed connection or a deadpool-redis pool.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};
use redis::{Value, aio::MultiplexedConnection};
use redrec_core::{
    filter::Filter,
    keys::Namespace,
    query::{DISTANCE_ALIAS, HybridPolicy, KnnQuery, Projection, TextQuery, lexical_expression},
    reply::{Shape, parse_search},
    schema::{FieldKind, IndexSchema, ItemFields, items_schema},
    vector,
};

use crate::{
    catalog::vector_settings,
    workload::{BenchQuery, Kind},
};

/// How raw queries reach Redis.
#[derive(Clone)]
pub enum RawConn {
    /// One multiplexed connection shared by every task (redis-rs pipelines requests on it).
    Mux(MultiplexedConnection),
    /// A deadpool-redis pool: one request per connection at a time.
    Pool(deadpool_redis::Pool),
    /// One multiplexed connection per node (read replicas), taken in turn: the raw side of
    /// `cargo xtask bench --replicas N`, where the searches go to the replicas.
    Spread(Arc<Spread>),
}

/// Connections to several equivalent nodes and the turn of the next request.
pub struct Spread {
    conns: Vec<MultiplexedConnection>,
    next: AtomicUsize,
}

impl RawConn {
    pub async fn mux(url: &str) -> Result<RawConn> {
        Ok(RawConn::Mux(crate::catalog::connect(url).await?))
    }

    pub fn pool(url: &str, size: usize) -> Result<RawConn> {
        let mut cfg = deadpool_redis::Config::from_url(url);
        cfg.pool = Some(deadpool_redis::PoolConfig::new(size));
        Ok(RawConn::Pool(
            cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .context("creating the deadpool-redis pool")?,
        ))
    }

    /// One multiplexed connection to each of `urls` (at least one), used in turn.
    pub async fn spread(urls: &[String]) -> Result<RawConn> {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            conns.push(
                crate::catalog::connect(url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?,
            );
        }
        RawConn::spread_over(conns)
    }

    /// Connections already open (at least one), used in turn.
    pub fn spread_over(conns: Vec<MultiplexedConnection>) -> Result<RawConn> {
        anyhow::ensure!(
            !conns.is_empty(),
            "a spread connection needs at least one node"
        );
        Ok(RawConn::Spread(Arc::new(Spread {
            conns,
            next: AtomicUsize::new(0),
        })))
    }

    pub fn label(&self) -> &'static str {
        match self {
            RawConn::Mux(_) => "multiplexed",
            RawConn::Pool(_) => "pool",
            RawConn::Spread(_) => "spread",
        }
    }

    async fn query(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>> {
        Ok(match self {
            RawConn::Mux(c) => pipe.query_async(&mut c.clone()).await?,
            RawConn::Pool(p) => {
                let mut c = p.get().await.context("pool checkout")?;
                pipe.query_async(&mut c).await?
            }
            RawConn::Spread(s) => {
                let turn = s.next.fetch_add(1, Ordering::Relaxed) % s.conns.len();
                pipe.query_async(&mut s.conns[turn].clone()).await?
            }
        })
    }
}

/// Renders and sends the mix to Redis the way the retriever would.
#[derive(Clone)]
pub struct RawTarget {
    /// Where everything goes unless `searches` is set: user reads and writes always.
    pub conn: RawConn,
    /// Where `FT.SEARCH` goes when it is not `conn`: the read replicas, as the gateway routes
    /// its searches with `redis.replicas` (the acting user's features stay on the primary).
    pub searches: Option<RawConn>,
    pub ns: Namespace,
    pub schema: IndexSchema,
    pub ef_runtime: u32,
    /// Candidates fetched per KNN (the gateway fetches `max(50, 4k)` for reranking; the raw side
    /// fetches as many so both ask Redis for the same work). Results are cut to `k` after.
    pub candidates: usize,
    /// `HYBRID_POLICY` of filtered KNN queries; None lets RediSearch choose (the retriever's
    /// default).
    pub hybrid_policy: Option<HybridPolicy>,
    /// Client-side deadline of one query.
    pub timeout: Duration,
    /// `TIMEOUT` sent with each KNN query; None leaves the server's default (the sweep raises it
    /// so brute force over a million vectors is measured instead of cut off).
    pub server_timeout_ms: Option<u64>,
}

impl RawTarget {
    pub fn new(conn: RawConn, ns: Namespace, dim: usize, ef_runtime: u32) -> RawTarget {
        let schema = items_schema(
            &ns.alias(),
            &ns.item_prefix(),
            &ItemFields::default(),
            &vector_settings(dim),
        );
        RawTarget {
            conn,
            searches: None,
            ns,
            schema,
            ef_runtime,
            candidates: 50,
            hybrid_policy: None,
            timeout: Duration::from_secs(2),
            server_timeout_ms: None,
        }
    }

    /// The `FT.SEARCH` for a filtered KNN query, built with the same core builder, EF_RUNTIME
    /// and projection (every non-vector field) as the retriever.
    pub fn knn_cmd(&self, filter: &Filter, vector_: &[f32], k: usize) -> Result<redis::Cmd> {
        Ok(KnnQuery {
            index: self.ns.alias(),
            filter: filter.render(&self.schema)?,
            vector_field: ItemFields::default().vector,
            vector: vector_.to_vec(),
            k,
            ef_runtime: Some(self.ef_runtime),
            distance_alias: DISTANCE_ALIAS.into(),
            projection: self.projection(),
            hybrid_policy: self.hybrid_policy,
            timeout_ms: self.server_timeout_ms,
        }
        .cmd()?)
    }

    /// A BM25 text search with the same filter (the text half of text queries).
    pub fn text_cmd(&self, filter: &Filter, text: &str, k: usize) -> Result<redis::Cmd> {
        Ok(TextQuery {
            index: self.ns.alias(),
            text: lexical_expression(Some("text"), text)?,
            filter: filter.render(&self.schema)?,
            limit: k,
            scorer: "BM25".into(),
            projection: self.projection(),
            timeout_ms: None,
        }
        .args()
        .cmd())
    }

    fn projection(&self) -> Projection {
        Projection::Fields(
            self.schema
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Vector(_)))
                .map(|f| f.name.clone())
                .collect(),
        )
    }

    /// Runs one query of the mix; returns the item ids of the (KNN) result.
    pub async fn run(&self, q: &BenchQuery) -> Result<Vec<String>> {
        tokio::time::timeout(self.timeout, self.run_inner(q))
            .await
            .context("raw query timed out")?
    }

    /// The connection searches take.
    fn search_conn(&self) -> &RawConn {
        self.searches.as_ref().unwrap_or(&self.conn)
    }

    async fn run_inner(&self, q: &BenchQuery) -> Result<Vec<String>> {
        match q.kind {
            Kind::Vector => {
                let mut pipe = redis::pipe();
                pipe.add_command(self.knn_cmd(&q.filter, &q.vector, q.k.max(self.candidates))?);
                let r = self.search_conn().query(&pipe).await?;
                self.top(&r[0], q.k)
            }
            Kind::Personal => {
                // Round trip 1: the user's feature keys (what the gateway reads before retrieval).
                let user = q
                    .user_id
                    .as_deref()
                    .context("personal query without user")?;
                let mut read = redis::pipe();
                read.cmd("HGETALL")
                    .arg(self.ns.user(user))
                    .cmd("HGETALL")
                    .arg(self.ns.user_session(user))
                    .cmd("ZRANGE")
                    .arg(self.ns.user_seen(user))
                    .arg(0)
                    .arg(-1)
                    .cmd("LRANGE")
                    .arg(self.ns.user_recent(user))
                    .arg(0)
                    .arg(19)
                    .cmd("SMEMBERS")
                    .arg(format!("{}:user:{user}:cart", self.ns.name()));
                self.conn.query(&read).await?;
                // Round trip 2: KNN with the session vector.
                let mut pipe = redis::pipe();
                pipe.add_command(self.knn_cmd(&q.filter, &q.vector, q.k.max(self.candidates))?);
                let r = self.search_conn().query(&pipe).await?;
                self.top(&r[0], q.k)
            }
            Kind::Text => {
                let text = q.text.as_deref().context("text query without text")?;
                let mut pipe = redis::pipe();
                pipe.add_command(self.text_cmd(&q.filter, text, q.k.max(self.candidates))?);
                pipe.add_command(self.knn_cmd(&q.filter, &q.vector, q.k.max(self.candidates))?);
                let r = self.search_conn().query(&pipe).await?;
                // the text half is parsed (a client pays for that too) but not returned
                self.ids_in(&r[0], true)?;
                self.top(&r[1], q.k)
            }
        }
    }

    fn top(&self, reply: &Value, k: usize) -> Result<Vec<String>> {
        let mut ids = self.ids(reply)?;
        ids.truncate(k);
        Ok(ids)
    }

    /// Item ids of a KNN FT.SEARCH reply (fields, no scores).
    pub fn ids(&self, reply: &Value) -> Result<Vec<String>> {
        self.ids_in(reply, false)
    }

    /// Item ids of an FT.SEARCH reply with fields, and with scores when `with_scores`.
    fn ids_in(&self, reply: &Value, with_scores: bool) -> Result<Vec<String>> {
        let page = parse_search(
            reply,
            Shape {
                with_scores,
                with_content: true,
            },
        )?;
        Ok(page
            .hits
            .into_iter()
            .map(|h| self.ns.item_id(&h.key).unwrap_or(&h.key).to_owned())
            .collect())
    }

    /// Overwrites one item's vector (the write of the write-interference phase).
    pub async fn write_vector(&self, id: &str, v: &[f32]) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(self.ns.item(id))
            .arg("embedding")
            .arg(vector::encode(v));
        self.conn.query(&pipe).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound;

    fn target() -> RawTarget {
        let cfg = deadpool_redis::Config::from_url("redis://127.0.0.1:1");
        let pool = cfg
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        RawTarget::new(RawConn::Pool(pool), Namespace::new("b"), 4, 100)
    }

    fn args(cmd: &redis::Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                redis::Arg::Cursor => "<cursor>".into(),
                _ => "<other>".into(),
            })
            .collect()
    }

    #[test]
    fn renders_filtered_knn_like_the_retriever() {
        let t = target();
        let f = Filter::and(vec![
            Filter::tag_any("category", ["cat01"]),
            Filter::range("price", Bound::Included(1.0), Bound::Included(5.5)),
        ]);
        let a = args(&t.knn_cmd(&f, &[0.0; 4], 10).unwrap());
        assert_eq!(a[0], "FT.SEARCH");
        assert_eq!(a[1], "b:items");
        assert!(
            a[2].starts_with("(") && a[2].contains("@category:{cat01}"),
            "{}",
            a[2]
        );
        assert!(
            a[2].ends_with("=>[KNN $k @embedding $vec EF_RUNTIME $ef AS __dist]"),
            "{}",
            a[2]
        );
        assert!(a.windows(2).any(|w| w[0] == "ef" && w[1] == "100"));
        assert_eq!(&a[a.len() - 2..], ["DIALECT", "2"]);
        let all = args(&t.knn_cmd(&Filter::All, &[0.0; 4], 5).unwrap());
        assert!(all[2].starts_with("*=>[KNN"), "{}", all[2]);
        let text = args(&t.text_cmd(&Filter::All, "Fresh, apple!", 5).unwrap());
        assert!(
            text[2].starts_with("@text:(") && text[2].contains("apple"),
            "{}",
            text[2]
        );
    }

    #[test]
    fn reads_ids_from_a_resp2_reply() {
        let t = target();
        let reply = Value::Array(vec![
            Value::Int(2),
            Value::BulkString(b"b:item:7".to_vec()),
            Value::Array(vec![]),
            Value::BulkString(b"b:item:9".to_vec()),
            Value::Array(vec![]),
        ]);
        assert_eq!(t.ids(&reply).unwrap(), ["7", "9"]);
        assert!(t.ids(&Value::Nil).is_err());
    }
}
