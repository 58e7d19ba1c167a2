//! Index management: create-if-missing from a schema, the serving alias, `FT.INFO` parsing
//! (what a live index looks like and how far its background indexing is) and the schema stored
//! next to each index so it can be exported again as RedisVL YAML.
//!
//! Serving always goes through the alias `{ns}:items`; the concrete indexes behind it are
//! versioned `{ns}:items:v{N}`. A schema field may be stored under another hash field than its
//! query name (`embedding__v2 AS embedding`): that is how a migration gives a new model's vectors
//! a field of their own while queries keep naming `@embedding`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use redis::{AsyncCommands, Value as RV, aio::MultiplexedConnection};
use redrec_core::{
    keys::Namespace,
    schema::{
        DistanceMetric, FieldDef, FieldKind, GeoAttrs, IndexDef, IndexSchema, NumericAttrs,
        StorageType, TagAttrs, TextAttrs, VectorAlgorithm, VectorAttrs, VectorDataType,
    },
};

use crate::{Error, Result};

/// One attribute of a live index as `FT.INFO` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoAttribute {
    /// Where the value is stored (hash field or JSON path).
    pub identifier: String,
    /// The name queries use.
    pub attribute: String,
    /// `TAG`, `TEXT`, `NUMERIC`, `GEO`, `VECTOR`, ...
    pub kind: String,
    /// Key/value options (`SEPARATOR`, `dim`, `algorithm`, ...).
    pub options: BTreeMap<String, String>,
    /// Flag options (`SORTABLE`, `NOSTEM`, `CASESENSITIVE`, ...).
    pub flags: Vec<String>,
}

/// What `FT.INFO` says about an index (the parts redrec uses).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    pub name: String,
    pub storage: StorageType,
    pub prefixes: Vec<String>,
    pub attributes: Vec<InfoAttribute>,
    pub num_docs: u64,
    pub percent_indexed: f64,
    pub indexing: bool,
    pub hash_indexing_failures: u64,
}

impl IndexInfo {
    /// The attribute queried as `name`.
    pub fn attribute(&self, name: &str) -> Option<&InfoAttribute> {
        self.attributes.iter().find(|a| a.attribute == name)
    }

    /// Dimension of the vector attribute `name`.
    pub fn vector_dims(&self, name: &str) -> Option<usize> {
        self.attribute(name)?.options.get("dim")?.parse().ok()
    }

    /// schema field -> storage name, for fields stored under another name.
    pub fn storage_names(&self) -> BTreeMap<String, String> {
        // JSON identifiers are paths: `$.embedding__v2` is stored as the top-level key
        // `embedding__v2` (nested paths are not written by ingest, see docs/INGEST.md).
        self.attributes
            .iter()
            .filter_map(|a| {
                let stored = a.identifier.strip_prefix("$.").unwrap_or(&a.identifier);
                (stored != a.attribute).then(|| (a.attribute.clone(), stored.to_owned()))
            })
            .collect()
    }

    /// Rebuilds a schema from `FT.INFO`. Lossy where `FT.INFO` is: it does not report
    /// `EF_RUNTIME`, `EPSILON`, `INITIAL_CAP` or `BLOCK_SIZE`.
    pub fn to_schema(&self) -> IndexSchema {
        let prefix = self.prefixes.first().cloned().unwrap_or_default();
        let fields = self
            .attributes
            .iter()
            .filter_map(|a| {
                let has = |f: &str| a.flags.iter().any(|x| x == f);
                let opt = |k: &str| a.options.get(k).cloned();
                let num = |k: &str| opt(k).and_then(|v| v.parse::<u32>().ok());
                let kind = match a.kind.as_str() {
                    "TAG" => FieldKind::Tag(TagAttrs {
                        separator: opt("SEPARATOR").filter(|s| s != "," && !s.is_empty()),
                        case_sensitive: has("CASESENSITIVE"),
                        sortable: has("SORTABLE"),
                        withsuffixtrie: has("WITHSUFFIXTRIE"),
                    }),
                    "TEXT" => FieldKind::Text(TextAttrs {
                        weight: opt("WEIGHT")
                            .and_then(|w| w.parse().ok())
                            .filter(|w| *w != 1.0),
                        no_stem: has("NOSTEM"),
                        sortable: has("SORTABLE"),
                        withsuffixtrie: has("WITHSUFFIXTRIE"),
                    }),
                    "NUMERIC" => FieldKind::Numeric(NumericAttrs {
                        sortable: has("SORTABLE"),
                    }),
                    "GEO" => FieldKind::Geo(GeoAttrs {
                        sortable: has("SORTABLE"),
                    }),
                    "VECTOR" => {
                        let algorithm = match opt("algorithm").as_deref() {
                            Some("FLAT") => VectorAlgorithm::Flat,
                            _ => VectorAlgorithm::Hnsw,
                        };
                        FieldKind::Vector(VectorAttrs {
                            dims: opt("dim").and_then(|d| d.parse().ok()).unwrap_or(0),
                            algorithm,
                            datatype: VectorDataType::Float32,
                            distance_metric: match opt("distance_metric").as_deref() {
                                Some("L2") => DistanceMetric::L2,
                                Some("IP") => DistanceMetric::Ip,
                                _ => DistanceMetric::Cosine,
                            },
                            initial_cap: None,
                            m: num("M"),
                            ef_construction: num("ef_construction"),
                            ef_runtime: num("ef_runtime"),
                            epsilon: None,
                            block_size: None,
                        })
                    }
                    _ => return None,
                };
                let path = (self.storage == StorageType::Json
                    && a.identifier != format!("$.{}", a.attribute))
                .then(|| a.identifier.clone());
                Some(FieldDef {
                    name: a.attribute.clone(),
                    path,
                    kind,
                })
            })
            .collect();
        let separator = ":".to_owned();
        IndexSchema {
            version: redrec_core::schema::SCHEMA_VERSION.into(),
            index: IndexDef {
                name: self.name.clone(),
                prefix: prefix.trim_end_matches(':').to_owned(),
                key_separator: separator,
                storage_type: self.storage,
            },
            fields,
        }
    }
}

fn text(v: &RV) -> String {
    match v {
        RV::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RV::SimpleString(s) => s.clone(),
        RV::Int(i) => i.to_string(),
        RV::Double(d) => d.to_string(),
        RV::VerbatimString { text, .. } => text.clone(),
        RV::Okay => "OK".into(),
        _ => String::new(),
    }
}

fn pairs(v: &RV) -> Vec<(String, &RV)> {
    match v {
        RV::Array(items) => items
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (text(&c[0]), &c[1]))
            .collect(),
        RV::Map(m) => m.iter().map(|(k, v)| (text(k), v)).collect(),
        _ => Vec::new(),
    }
}

const VALUE_OPTIONS: &[&str] = &[
    "identifier",
    "attribute",
    "type",
    "SEPARATOR",
    "WEIGHT",
    "PHONETIC",
    "algorithm",
    "data_type",
    "dim",
    "distance_metric",
    "M",
    "ef_construction",
    "ef_runtime",
    "epsilon",
];

fn parse_attribute(v: &RV) -> Option<InfoAttribute> {
    let RV::Array(items) = v else { return None };
    let mut attr = InfoAttribute {
        identifier: String::new(),
        attribute: String::new(),
        kind: String::new(),
        options: BTreeMap::new(),
        flags: Vec::new(),
    };
    let mut i = 0;
    while i < items.len() {
        let k = text(&items[i]);
        if VALUE_OPTIONS.contains(&k.as_str()) && i + 1 < items.len() {
            let val = text(&items[i + 1]);
            match k.as_str() {
                "identifier" => attr.identifier = val,
                "attribute" => attr.attribute = val,
                "type" => attr.kind = val,
                _ => {
                    attr.options.insert(k, val);
                }
            }
            i += 2;
        } else {
            attr.flags.push(k);
            i += 1;
        }
    }
    Some(attr)
}

/// Whether an error is RediSearch's "Unknown index name" (redis-rs splits it into code and detail).
fn is_unknown_index(e: &redis::RedisError) -> bool {
    let m = format!("{e} {e:?}").to_lowercase();
    (m.contains("unknown") && m.contains("index name")) || m.contains("no such index")
}

/// `FT.INFO name` (an index or an alias); `None` when no such index exists.
pub async fn info(con: &mut MultiplexedConnection, name: &str) -> Result<Option<IndexInfo>> {
    let reply: redis::RedisResult<RV> = redis::cmd("FT.INFO").arg(name).query_async(con).await;
    let reply = match reply {
        Ok(v) => v,
        Err(e) if is_unknown_index(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut out = IndexInfo {
        name: String::new(),
        storage: StorageType::Hash,
        prefixes: Vec::new(),
        attributes: Vec::new(),
        num_docs: 0,
        percent_indexed: 0.0,
        indexing: false,
        hash_indexing_failures: 0,
    };
    for (k, v) in pairs(&reply) {
        match k.as_str() {
            "index_name" => out.name = text(v),
            "index_definition" => {
                for (dk, dv) in pairs(v) {
                    match dk.as_str() {
                        "key_type" if text(dv) == "JSON" => out.storage = StorageType::Json,
                        "prefixes" => {
                            if let RV::Array(p) = dv {
                                out.prefixes = p.iter().map(text).collect();
                            }
                        }
                        _ => {}
                    }
                }
            }
            "attributes" => {
                if let RV::Array(attrs) = v {
                    out.attributes = attrs.iter().filter_map(parse_attribute).collect();
                }
            }
            "num_docs" => out.num_docs = text(v).parse().unwrap_or(0),
            "percent_indexed" => out.percent_indexed = text(v).parse().unwrap_or(0.0),
            "indexing" => out.indexing = text(v) != "0",
            "hash_indexing_failures" => out.hash_indexing_failures = text(v).parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(Some(out))
}

/// The `FT.CREATE` arguments for `schema` under `index_name`, storing the fields named in
/// `storage_names` under those hash fields (`embedding__v2 AS embedding`).
pub fn create_args(
    schema: &IndexSchema,
    index_name: &str,
    storage_names: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut args = vec![
        index_name.to_owned(),
        "ON".into(),
        schema.index.storage_type.as_redis().into(),
        "PREFIX".into(),
        "1".into(),
        schema.index.key_prefix(),
        "SCHEMA".into(),
    ];
    for f in &schema.fields {
        let mut fa = schema.field_args(f);
        if let Some(stored) = storage_names.get(&f.name) {
            match schema.index.storage_type {
                StorageType::Hash => {
                    fa.splice(0..1, [stored.clone(), "AS".into(), f.name.clone()]);
                }
                StorageType::Json => fa[0] = format!("$.{stored}"),
            }
        }
        args.extend(fa);
    }
    args
}

/// Key under which redrec keeps the YAML schema an index was created from.
pub fn schema_key(ns: &Namespace, index_name: &str) -> String {
    ns.meta(&format!("schema:{index_name}"))
}

/// Creates `index_name` from `schema` unless it exists; records the schema as YAML next to it.
/// Returns whether it was created.
pub async fn create_if_missing(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    schema: &IndexSchema,
    index_name: &str,
    storage_names: &BTreeMap<String, String>,
) -> Result<bool> {
    if info(con, index_name).await?.is_some() {
        return Ok(false);
    }
    let args = create_args(schema, index_name, storage_names);
    let mut stored = schema.clone();
    stored.index.name = index_name.to_owned();
    for f in &mut stored.fields {
        if let Some(s) = storage_names.get(&f.name) {
            f.path = Some(match schema.index.storage_type {
                StorageType::Hash => s.clone(),
                StorageType::Json => format!("$.{s}"),
            });
        }
    }
    let _: () = redis::cmd("FT.CREATE")
        .arg(&args)
        .query_async(con)
        .await
        .map_err(|e| Error::Index {
            index: index_name.to_owned(),
            message: format!("FT.CREATE failed: {e}"),
        })?;
    let _: () = con
        .set(schema_key(ns, index_name), stored.to_yaml())
        .await?;
    tracing::info!(index = index_name, "created index");
    Ok(true)
}

/// Points the alias at `index_name` (creating the alias if needed). Atomic for readers.
pub async fn point_alias(
    con: &mut MultiplexedConnection,
    alias: &str,
    index_name: &str,
) -> Result<()> {
    let _: () = redis::cmd("FT.ALIASUPDATE")
        .arg(alias)
        .arg(index_name)
        .query_async(con)
        .await
        .map_err(|e| Error::Index {
            index: index_name.to_owned(),
            message: format!("FT.ALIASUPDATE {alias} failed: {e}"),
        })?;
    Ok(())
}

/// The concrete index the alias points to, if any.
pub async fn alias_target(con: &mut MultiplexedConnection, alias: &str) -> Result<Option<String>> {
    Ok(info(con, alias).await?.map(|i| i.name))
}

/// The schema an index was created from: the YAML recorded at creation when redrec created it,
/// otherwise rebuilt from `FT.INFO` (lossy: see [`IndexInfo::to_schema`]).
pub async fn live_schema(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    index_or_alias: &str,
) -> Result<Option<IndexSchema>> {
    let Some(info) = info(con, index_or_alias).await? else {
        return Ok(None);
    };
    let stored: Option<String> = con.get(schema_key(ns, &info.name)).await?;
    match stored {
        Some(yaml) => Ok(Some(IndexSchema::from_yaml(&yaml)?)),
        None => Ok(Some(info.to_schema())),
    }
}

/// Waits until `FT.INFO` reports the index 100% indexed; returns how long that took.
pub async fn wait_indexed(
    con: &mut MultiplexedConnection,
    index_name: &str,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let i = info(con, index_name).await?.ok_or_else(|| Error::Index {
            index: index_name.to_owned(),
            message: "disappeared while waiting for indexing".into(),
        })?;
        if i.percent_indexed >= 1.0 && !i.indexing {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(Error::Index {
                index: index_name.to_owned(),
                message: format!(
                    "still {:.1}% indexed after {:?}",
                    i.percent_indexed * 100.0,
                    timeout
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The index behind the serving alias, as ingest needs it.
#[derive(Debug, Clone)]
pub struct ServingIndex {
    pub alias: String,
    /// Concrete index name (`{ns}:items:v{N}`).
    pub index: String,
    pub schema: IndexSchema,
    /// schema field -> storage name, for fields stored under another name.
    pub storage_names: BTreeMap<String, String>,
    /// Whether the index exists yet (a first load creates it after writing).
    pub exists: bool,
}

/// Resolves the serving index for `ns`: the index behind the alias when there is one (its
/// recorded schema, its storage names), otherwise `template` as version 1, not yet created.
pub async fn serving(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    template: &IndexSchema,
) -> Result<ServingIndex> {
    let alias = ns.alias();
    match info(con, &alias).await? {
        Some(live) => {
            let mut schema = match con
                .get::<_, Option<String>>(schema_key(ns, &live.name))
                .await?
            {
                Some(yaml) => IndexSchema::from_yaml(&yaml)?,
                None => live.to_schema(),
            };
            for f in &mut schema.fields {
                if schema.index.storage_type == StorageType::Hash {
                    f.path = None;
                }
            }
            Ok(ServingIndex {
                alias,
                index: live.name.clone(),
                storage_names: live.storage_names(),
                schema,
                exists: true,
            })
        }
        None => {
            let index = ns.index(1);
            let mut schema = template.clone();
            schema.index.name = index.clone();
            let exists = info(con, &index).await?.is_some();
            Ok(ServingIndex {
                alias,
                index,
                schema,
                storage_names: BTreeMap::new(),
                exists,
            })
        }
    }
}
