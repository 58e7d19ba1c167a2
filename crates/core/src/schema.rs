//! The index schema model and the `FT.CREATE` argument builder.
//!
//! The serde shape is RedisVL's YAML schema (`version`, `index: {name, prefix, key_separator,
//! storage_type}`, `fields: [{name, type, path, attrs}]`), so a Python team using RedisVL can open
//! the same index from the same file.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// RedisVL schema format version written by redrec.
pub const SCHEMA_VERSION: &str = "0.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    #[default]
    Hash,
    Json,
}

impl StorageType {
    pub fn as_redis(self) -> &'static str {
        match self {
            StorageType::Hash => "HASH",
            StorageType::Json => "JSON",
        }
    }
}

/// The `index:` section of a RedisVL schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// Key prefix without the separator, e.g. `redrec:item` (RedisVL convention).
    pub prefix: String,
    #[serde(default = "default_separator")]
    pub key_separator: String,
    #[serde(default)]
    pub storage_type: StorageType,
}

fn default_separator() -> String {
    ":".to_owned()
}

impl IndexDef {
    /// The prefix given to `FT.CREATE ... PREFIX`, separator included, e.g. `redrec:item:`.
    pub fn key_prefix(&self) -> String {
        if self.prefix.ends_with(&self.key_separator) {
            self.prefix.clone()
        } else {
            format!("{}{}", self.prefix, self.key_separator)
        }
    }

    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.key_prefix())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorAlgorithm {
    Flat,
    Hnsw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistanceMetric {
    Cosine,
    L2,
    Ip,
}

impl DistanceMetric {
    pub fn as_redis(self) -> &'static str {
        match self {
            DistanceMetric::Cosine => "COSINE",
            DistanceMetric::L2 => "L2",
            DistanceMetric::Ip => "IP",
        }
    }

    /// Turns a RediSearch distance into a similarity where larger is better.
    /// COSINE distance is `1 - cos` (range 0..=2) and maps to `cos`; IP distance is `1 - dot`;
    /// L2 distance (squared Euclidean) maps to `1 / (1 + d)`.
    pub fn similarity(self, distance: f32) -> f32 {
        match self {
            DistanceMetric::Cosine | DistanceMetric::Ip => 1.0 - distance,
            DistanceMetric::L2 => 1.0 / (1.0 + distance.max(0.0)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VectorDataType {
    #[default]
    Float32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorAttrs {
    pub dims: usize,
    pub algorithm: VectorAlgorithm,
    #[serde(default)]
    pub datatype: VectorDataType,
    pub distance_metric: DistanceMetric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_cap: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_runtime: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
}

impl VectorAttrs {
    /// FLOAT32 vectors of `dims` with the server's defaults for everything optional.
    pub fn new(dims: usize, algorithm: VectorAlgorithm, distance_metric: DistanceMetric) -> Self {
        VectorAttrs {
            dims,
            algorithm,
            datatype: VectorDataType::Float32,
            distance_metric,
            initial_cap: None,
            m: None,
            ef_construction: None,
            ef_runtime: None,
            epsilon: None,
            block_size: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TagAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_sensitive: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sortable: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withsuffixtrie: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TextAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_stem: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sortable: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withsuffixtrie: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NumericAttrs {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sortable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GeoAttrs {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sortable: bool,
}

/// What kind of field, with its type-specific attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    Tag(TagAttrs),
    Text(TextAttrs),
    Numeric(NumericAttrs),
    Geo(GeoAttrs),
    Vector(VectorAttrs),
}

impl FieldKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Tag(_) => "tag",
            FieldKind::Text(_) => "text",
            FieldKind::Numeric(_) => "numeric",
            FieldKind::Geo(_) => "geo",
            FieldKind::Vector(_) => "vector",
        }
    }
}

/// One schema field. `path` is the JSONPath for JSON storage (defaults to `$.{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawField", into = "RawField")]
pub struct FieldDef {
    pub name: String,
    pub path: Option<String>,
    pub kind: FieldKind,
}

impl FieldDef {
    pub fn tag(name: &str) -> FieldDef {
        FieldDef {
            name: name.to_owned(),
            path: None,
            kind: FieldKind::Tag(TagAttrs::default()),
        }
    }
    pub fn text(name: &str) -> FieldDef {
        FieldDef {
            name: name.to_owned(),
            path: None,
            kind: FieldKind::Text(TextAttrs::default()),
        }
    }
    pub fn numeric(name: &str, sortable: bool) -> FieldDef {
        FieldDef {
            name: name.to_owned(),
            path: None,
            kind: FieldKind::Numeric(NumericAttrs { sortable }),
        }
    }
    pub fn vector(name: &str, attrs: VectorAttrs) -> FieldDef {
        FieldDef {
            name: name.to_owned(),
            path: None,
            kind: FieldKind::Vector(attrs),
        }
    }
}

/// The on-disk shape of a field: `attrs` is parsed according to `type`, so unknown attributes
/// are reported with the field name.
#[derive(Serialize, Deserialize)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attrs: Option<serde_json::Value>,
}

impl TryFrom<RawField> for FieldDef {
    type Error = String;

    fn try_from(raw: RawField) -> Result<FieldDef, String> {
        fn attrs<T: serde::de::DeserializeOwned + Default>(
            name: &str,
            v: Option<serde_json::Value>,
        ) -> Result<T, String> {
            match v {
                None => Ok(T::default()),
                Some(v) => {
                    serde_json::from_value(v).map_err(|e| format!("field `{name}` attrs: {e}"))
                }
            }
        }
        let name = raw.name;
        let kind = match raw.kind.as_str() {
            "tag" => FieldKind::Tag(attrs(&name, raw.attrs)?),
            "text" => FieldKind::Text(attrs(&name, raw.attrs)?),
            "numeric" => FieldKind::Numeric(attrs(&name, raw.attrs)?),
            "geo" => FieldKind::Geo(attrs(&name, raw.attrs)?),
            "vector" => {
                let v = raw.attrs.ok_or_else(|| format!("field `{name}`: vector fields need attrs (dims, algorithm, distance_metric)"))?;
                FieldKind::Vector(
                    serde_json::from_value(v).map_err(|e| format!("field `{name}` attrs: {e}"))?,
                )
            }
            other => {
                return Err(format!(
                    "field `{name}`: unknown type `{other}`, expected tag, text, numeric, geo or vector"
                ));
            }
        };
        Ok(FieldDef {
            name,
            path: raw.path,
            kind,
        })
    }
}

impl From<FieldDef> for RawField {
    fn from(f: FieldDef) -> RawField {
        fn to_value<T: Serialize>(t: &T) -> Option<serde_json::Value> {
            let v = serde_json::to_value(t).expect("attrs serialise");
            match &v {
                serde_json::Value::Object(m) if m.is_empty() => None,
                _ => Some(v),
            }
        }
        let attrs = match &f.kind {
            FieldKind::Tag(a) => to_value(a),
            FieldKind::Text(a) => to_value(a),
            FieldKind::Numeric(a) => to_value(a),
            FieldKind::Geo(a) => to_value(a),
            FieldKind::Vector(a) => to_value(a),
        };
        RawField {
            name: f.name,
            kind: f.kind.type_name().to_owned(),
            path: f.path,
            attrs,
        }
    }
}

/// A whole index schema (RedisVL-compatible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSchema {
    #[serde(default = "default_version")]
    pub version: String,
    pub index: IndexDef,
    pub fields: Vec<FieldDef>,
}

fn default_version() -> String {
    SCHEMA_VERSION.to_owned()
}

impl IndexSchema {
    /// Parses and validates a RedisVL YAML schema.
    pub fn from_yaml(text: &str) -> Result<IndexSchema> {
        let schema: IndexSchema = serde_norway::from_str(text).map_err(|e| Error::Schema {
            message: e.to_string(),
        })?;
        schema.validate()?;
        Ok(schema)
    }

    /// Renders the schema as RedisVL YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("schema serialises")
    }

    /// Checks names are unique, non-empty and free of characters the query syntax would misread,
    /// and that vector attributes are in range.
    pub fn validate(&self) -> Result<()> {
        if self.index.name.is_empty() {
            return Err(Error::Schema {
                message: "index.name must not be empty".into(),
            });
        }
        if self.index.prefix.is_empty() {
            return Err(Error::Schema {
                message: "index.prefix must not be empty".into(),
            });
        }
        if self.fields.is_empty() {
            return Err(Error::Schema {
                message: "fields must list at least one field".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            let bad = |message: &str| Error::SchemaField {
                field: f.name.clone(),
                message: message.into(),
            };
            if f.name.is_empty()
                || !f
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(bad("names may contain only ASCII letters, digits and _"));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad("appears twice"));
            }
            if let FieldKind::Vector(v) = &f.kind {
                if v.dims == 0 || v.dims > 32_768 {
                    return Err(bad("dims must be between 1 and 32768"));
                }
                if v.algorithm == VectorAlgorithm::Flat
                    && (v.m.is_some() || v.ef_construction.is_some())
                {
                    return Err(bad("m and ef_construction apply to hnsw only"));
                }
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Result<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| Error::UnknownField {
                field: name.to_owned(),
                known: self
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The vector field with this name, or an error naming the field.
    pub fn vector_field(&self, name: &str) -> Result<&VectorAttrs> {
        match &self.field(name)?.kind {
            FieldKind::Vector(v) => Ok(v),
            other => Err(Error::FieldType {
                field: name.to_owned(),
                expected: "vector",
                actual: other.type_name(),
            }),
        }
    }

    /// The `FT.CREATE` arguments after the command name.
    pub fn ft_create_args(&self) -> Vec<String> {
        self.ft_create_args_named(&self.index.name)
    }

    /// `FT.CREATE` arguments for the same schema under another index name (used for migrations).
    pub fn ft_create_args_named(&self, index_name: &str) -> Vec<String> {
        self.ft_create_args_stored(index_name, &std::collections::BTreeMap::new())
    }

    /// `FT.CREATE` arguments under `index_name`, storing each field named in `storage_names`
    /// under that hash field or JSON path instead of its own name (`embedding__v2 AS embedding`:
    /// how a migration gives a new model's vectors a field of their own while queries keep
    /// naming `@embedding`).
    pub fn ft_create_args_stored(
        &self,
        index_name: &str,
        storage_names: &std::collections::BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut a: Vec<String> = vec![
            index_name.to_owned(),
            "ON".into(),
            self.index.storage_type.as_redis().into(),
            "PREFIX".into(),
            "1".into(),
            self.index.key_prefix(),
            "SCHEMA".into(),
        ];
        for f in &self.fields {
            let mut fa = self.field_args(f);
            if let Some(stored) = storage_names.get(&f.name) {
                match self.index.storage_type {
                    StorageType::Hash => {
                        fa.splice(0..1, [stored.clone(), "AS".into(), f.name.clone()]);
                    }
                    StorageType::Json => fa[0] = format!("$.{stored}"),
                }
            }
            a.extend(fa);
        }
        a
    }

    /// Arguments describing one field in an `FT.CREATE ... SCHEMA` or `FT.ALTER ... SCHEMA ADD`.
    pub fn field_args(&self, f: &FieldDef) -> Vec<String> {
        let mut a = Vec::new();
        match self.index.storage_type {
            StorageType::Hash => a.push(f.name.clone()),
            StorageType::Json => {
                a.push(f.path.clone().unwrap_or_else(|| format!("$.{}", f.name)));
                a.push("AS".into());
                a.push(f.name.clone());
            }
        }
        match &f.kind {
            FieldKind::Tag(t) => {
                a.push("TAG".into());
                if let Some(sep) = &t.separator {
                    a.extend(["SEPARATOR".into(), sep.clone()]);
                }
                push_flags(
                    &mut a,
                    [
                        (t.case_sensitive, "CASESENSITIVE"),
                        (t.withsuffixtrie, "WITHSUFFIXTRIE"),
                        (t.sortable, "SORTABLE"),
                    ],
                );
            }
            FieldKind::Text(t) => {
                a.push("TEXT".into());
                if let Some(w) = t.weight {
                    a.extend(["WEIGHT".into(), w.to_string()]);
                }
                push_flags(
                    &mut a,
                    [
                        (t.no_stem, "NOSTEM"),
                        (t.withsuffixtrie, "WITHSUFFIXTRIE"),
                        (t.sortable, "SORTABLE"),
                    ],
                );
            }
            FieldKind::Numeric(n) => {
                a.push("NUMERIC".into());
                push_flags(&mut a, [(n.sortable, "SORTABLE")]);
            }
            FieldKind::Geo(g) => {
                a.push("GEO".into());
                push_flags(&mut a, [(g.sortable, "SORTABLE")]);
            }
            FieldKind::Vector(v) => {
                let mut attrs: Vec<String> = vec![
                    "TYPE".into(),
                    "FLOAT32".into(),
                    "DIM".into(),
                    v.dims.to_string(),
                    "DISTANCE_METRIC".into(),
                    v.distance_metric.as_redis().into(),
                ];
                let mut opt = |k: &str, val: Option<String>| {
                    if let Some(val) = val {
                        attrs.extend([k.to_owned(), val]);
                    }
                };
                opt("INITIAL_CAP", v.initial_cap.map(|x| x.to_string()));
                opt("M", v.m.map(|x| x.to_string()));
                opt("EF_CONSTRUCTION", v.ef_construction.map(|x| x.to_string()));
                opt("EF_RUNTIME", v.ef_runtime.map(|x| x.to_string()));
                opt("EPSILON", v.epsilon.map(|x| x.to_string()));
                opt("BLOCK_SIZE", v.block_size.map(|x| x.to_string()));
                a.push("VECTOR".into());
                a.push(match v.algorithm {
                    VectorAlgorithm::Flat => "FLAT".into(),
                    VectorAlgorithm::Hnsw => "HNSW".into(),
                });
                a.push(attrs.len().to_string());
                a.extend(attrs);
            }
        }
        a
    }

    /// The `FT.CREATE` command, ready to send.
    pub fn ft_create_cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("FT.CREATE");
        cmd.arg(self.ft_create_args());
        cmd
    }
}

/// Appends each flag whose condition holds (`SORTABLE`, `NOSTEM`, ...), in order.
fn push_flags<const N: usize>(args: &mut Vec<String>, flags: [(bool, &str); N]) {
    args.extend(
        flags
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, flag)| flag.to_owned()),
    );
}

/// Names of the item fields redrec's pipeline relies on. They default to the names used by
/// [`items_schema`]; a custom schema maps its own names here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemFields {
    pub vector: String,
    pub text: String,
    pub category: String,
    pub department: String,
    pub brand: String,
    pub price: String,
    pub popularity: String,
    pub in_stock: String,
    /// The optional collaborative vector field (`redrec-ingest cf`): read by the event function
    /// for the user's collaborative vectors and searched by the `cf_*` sources when the index
    /// has it.
    pub cf_vector: String,
}

impl Default for ItemFields {
    fn default() -> Self {
        ItemFields {
            vector: "embedding".into(),
            text: "text".into(),
            category: "category".into(),
            department: "department".into(),
            brand: "brand".into(),
            price: "price".into(),
            popularity: "popularity".into(),
            in_stock: "in_stock".into(),
            cf_vector: "cf_vector".into(),
        }
    }
}

/// Settings of the default item index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorSettings {
    pub dims: usize,
    pub algorithm: VectorAlgorithm,
    pub distance_metric: DistanceMetric,
    pub m: u32,
    pub ef_construction: u32,
    pub ef_runtime: u32,
}

impl Default for VectorSettings {
    fn default() -> Self {
        VectorSettings {
            dims: 384,
            algorithm: VectorAlgorithm::Hnsw,
            distance_metric: DistanceMetric::Cosine,
            m: 16,
            ef_construction: 200,
            ef_runtime: 100,
        }
    }
}

/// The default item schema: one HNSW vector field plus the metadata fields the filters and the
/// reranker use. `index_name` is a concrete versioned index; serving goes through an alias.
pub fn items_schema(
    index_name: &str,
    key_prefix: &str,
    f: &ItemFields,
    v: &VectorSettings,
) -> IndexSchema {
    let hnsw = v.algorithm == VectorAlgorithm::Hnsw;
    IndexSchema {
        version: SCHEMA_VERSION.to_owned(),
        index: IndexDef {
            name: index_name.to_owned(),
            prefix: key_prefix.trim_end_matches(':').to_owned(),
            key_separator: ":".into(),
            storage_type: StorageType::Hash,
        },
        fields: vec![
            FieldDef::text(&f.text),
            FieldDef::tag(&f.category),
            FieldDef::tag(&f.department),
            FieldDef::tag(&f.brand),
            FieldDef::numeric(&f.price, true),
            FieldDef::numeric(&f.popularity, true),
            FieldDef::tag(&f.in_stock),
            FieldDef::vector(
                &f.vector,
                VectorAttrs {
                    m: hnsw.then_some(v.m),
                    ef_construction: hnsw.then_some(v.ef_construction),
                    ef_runtime: hnsw.then_some(v.ef_runtime),
                    ..VectorAttrs::new(v.dims, v.algorithm, v.distance_metric)
                },
            ),
        ],
    }
}

#[cfg(test)]
mod tests;
