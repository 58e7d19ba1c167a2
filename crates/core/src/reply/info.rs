//! `FT.INFO` replies: what a live index looks like (its attributes, prefixes, storage) and how
//! far its background indexing is. Both protocol versions; optional parts that a server version
//! leaves out read as their defaults.

use std::collections::BTreeMap;

use redis::Value;

use crate::schema::{
    DistanceMetric, FieldDef, FieldKind, GeoAttrs, IndexDef, IndexSchema, NumericAttrs,
    StorageType, TagAttrs, TextAttrs, VectorAlgorithm, VectorAttrs, VectorDataType,
};

use super::{ReplyError, ReplyResult, pairs_lenient, text_or_empty};

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
            version: crate::schema::SCHEMA_VERSION.into(),
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

/// One attribute: a RESP2 flat list (`identifier x attribute y type TAG SEPARATOR , SORTABLE`,
/// where flags stand alone) or a RESP3 map (flags under `flags`).
fn parse_attribute(v: &Value) -> Option<InfoAttribute> {
    let mut attr = InfoAttribute {
        identifier: String::new(),
        attribute: String::new(),
        kind: String::new(),
        options: BTreeMap::new(),
        flags: Vec::new(),
    };
    let set = |attr: &mut InfoAttribute, k: String, val: String| match k.as_str() {
        "identifier" => attr.identifier = val,
        "attribute" => attr.attribute = val,
        "type" => attr.kind = val,
        _ => {
            attr.options.insert(k, val);
        }
    };
    match v {
        Value::Array(items) => {
            let mut i = 0;
            while i < items.len() {
                let k = text_or_empty(&items[i]);
                if VALUE_OPTIONS.contains(&k.as_str()) && i + 1 < items.len() {
                    set(&mut attr, k, text_or_empty(&items[i + 1]));
                    i += 2;
                } else {
                    attr.flags.push(k);
                    i += 1;
                }
            }
        }
        Value::Map(_) | Value::Attribute { .. } => {
            for (k, val) in pairs_lenient(v) {
                match val {
                    Value::Array(flags) | Value::Set(flags) if k == "flags" => {
                        attr.flags.extend(flags.iter().map(text_or_empty));
                    }
                    _ => set(&mut attr, k, text_or_empty(val)),
                }
            }
        }
        _ => return None,
    }
    Some(attr)
}

/// Parses an `FT.INFO` reply (an index or an alias).
pub fn parse_info(v: &Value) -> ReplyResult<IndexInfo> {
    if !matches!(v, Value::Array(_) | Value::Map(_) | Value::Attribute { .. }) {
        return Err(ReplyError::new(format!(
            "FT.INFO reply is not a map: {v:?}"
        )));
    }
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
    for (k, v) in pairs_lenient(v) {
        match k.as_str() {
            "index_name" => out.name = text_or_empty(v),
            "index_definition" => {
                for (dk, dv) in pairs_lenient(v) {
                    match dk.as_str() {
                        "key_type" if text_or_empty(dv) == "JSON" => {
                            out.storage = StorageType::Json
                        }
                        "prefixes" => {
                            if let Value::Array(p) = dv {
                                out.prefixes = p.iter().map(text_or_empty).collect();
                            }
                        }
                        _ => {}
                    }
                }
            }
            "attributes" => {
                if let Value::Array(attrs) = v {
                    out.attributes = attrs.iter().filter_map(parse_attribute).collect();
                }
            }
            "num_docs" => out.num_docs = text_or_empty(v).parse().unwrap_or(0),
            "percent_indexed" => out.percent_indexed = text_or_empty(v).parse().unwrap_or(0.0),
            "indexing" => out.indexing = text_or_empty(v) != "0",
            "hash_indexing_failures" => {
                out.hash_indexing_failures = text_or_empty(v).parse().unwrap_or(0)
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::bulk as b;

    #[test]
    fn reads_info_in_both_protocols() {
        let attr = Value::Array(vec![
            b("identifier"),
            b("embedding__v2"),
            b("attribute"),
            b("embedding"),
            b("type"),
            b("VECTOR"),
            b("algorithm"),
            b("FLAT"),
            b("dim"),
            Value::Int(4),
            b("distance_metric"),
            b("COSINE"),
        ]);
        let tag = Value::Array(vec![
            b("identifier"),
            b("brand"),
            b("attribute"),
            b("brand"),
            b("type"),
            b("TAG"),
            b("SEPARATOR"),
            b(","),
            b("SORTABLE"),
        ]);
        let entries = vec![
            (b("index_name"), b("ns:items:v2")),
            (
                b("index_definition"),
                Value::Array(vec![
                    b("key_type"),
                    b("HASH"),
                    b("prefixes"),
                    Value::Array(vec![b("ns:item:")]),
                ]),
            ),
            (b("attributes"), Value::Array(vec![attr, tag])),
            (b("num_docs"), Value::Int(12)),
            (b("percent_indexed"), b("0.5")),
            (b("indexing"), Value::Int(1)),
            (b("hash_indexing_failures"), Value::Int(0)),
        ];
        let flat = Value::Array(
            entries
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        );
        let map = Value::Map(entries);
        for v in [flat, map] {
            let info = parse_info(&v).unwrap();
            assert_eq!(info.name, "ns:items:v2");
            assert_eq!(info.prefixes, ["ns:item:"]);
            assert_eq!(info.num_docs, 12);
            assert_eq!(info.percent_indexed, 0.5);
            assert!(info.indexing);
            assert_eq!(info.vector_dims("embedding"), Some(4));
            assert_eq!(info.storage_names()["embedding"], "embedding__v2");
            assert_eq!(info.attribute("brand").unwrap().flags, ["SORTABLE"]);
            let schema = info.to_schema();
            assert_eq!(schema.index.prefix, "ns:item");
            assert_eq!(schema.fields.len(), 2);
        }
        assert!(parse_info(&Value::Int(1)).is_err());
    }

    #[test]
    fn reads_resp3_attribute_maps() {
        let attr = Value::Map(vec![
            (b("identifier"), b("brand")),
            (b("attribute"), b("brand")),
            (b("type"), b("TAG")),
            (b("SEPARATOR"), b("|")),
            (b("flags"), Value::Array(vec![b("SORTABLE")])),
        ]);
        let v = Value::Map(vec![(b("attributes"), Value::Array(vec![attr]))]);
        let info = parse_info(&v).unwrap();
        let a = info.attribute("brand").unwrap();
        assert_eq!(a.kind, "TAG");
        assert_eq!(a.options["SEPARATOR"], "|");
        assert_eq!(a.flags, ["SORTABLE"]);
    }
}
