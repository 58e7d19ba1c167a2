//! The OpenAPI document. utoipa generates its skeleton from the handlers' `#[utoipa::path]`
//! attributes and the request/response types' `ToSchema` derives; [`document`] then adds what
//! the types alone cannot say: every rule the validators enforce (id alphabet and length, `k`
//! range, vector dimension, text length, list sizes, the filter grammar, strict bodies) and every
//! status a route can answer. Each rule is built from the same constant or configuration value
//! the validator reads (`redrec_core::keys::MAX_ID_LEN`, `gateway.max_k`, the index schema...), so
//! the document cannot drift from the server.
//!
//! Rules JSON Schema cannot express are carried as `x-` extension keywords (documented in
//! docs/API.md) that the contract test (`tests/e2e/contract`) enforces like the standard ones:
//! `x-max-bytes` (a UTF-8 length), `x-max-depth` / `x-max-nodes` (filter size),
//! `x-non-empty-range` (a range's lower bound is not above its upper bound) and `x-stopwords`
//! (text needs a word outside the list).

use serde_json::{Map, Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use redrec_core::{
    filter, item,
    keys::{ID_PUNCTUATION, MAX_ID_LEN},
    schema::{DistanceMetric, FieldKind, IndexSchema},
    vector,
};

use crate::{
    error::ErrorCode,
    routes::{
        experiments, items, query,
        query::{MAX_EXAMPLE_IDS, MAX_QUERY_TEXT_CHARS},
        system, users,
    },
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "redrec gateway", description = "Real-time recommendations on Redis Search."),
    paths(
        system::get_health,
        system::get_ready,
        system::get_metrics,
        system::get_openapi,
        system::get_index,
        items::put_item,
        items::get_item,
        items::delete_item,
        query::post_recommendations,
        query::post_search,
        query::get_similar,
        query::get_facets,
        users::post_events,
        users::get_user,
        users::delete_user,
        experiments::get_experiments,
        experiments::get_experiment,
        experiments::post_reload,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// What the document's rules depend on besides constants: the serving configuration and the
/// index schema (read from [`AppState`], or built directly in tests).
#[derive(Debug, Clone)]
pub struct Contract {
    /// Vector dimensions of the index.
    pub dims: usize,
    /// Whether query vectors are compared by cosine (an all-zero query vector is then refused).
    pub cosine: bool,
    pub max_k: usize,
    /// Rank profile names.
    pub profiles: Vec<String>,
    /// Experiment names (`GET /v1/experiments/{name}`).
    pub experiments: Vec<String>,
    /// Most events in one `POST /v1/events` batch.
    pub max_batch: usize,
    pub schema: IndexSchema,
    /// The item field holding the embedding (sent as the top-level `vector` of an upsert).
    pub vector_field: String,
    /// The item field embedded when an upsert has no vector.
    pub text_field: String,
    /// Whether read routes need an API key too.
    pub read_keys_required: bool,
}

impl Contract {
    pub fn from_state(state: &AppState) -> Contract {
        let index = state.index_config();
        let live = state.online.live();
        Contract {
            dims: index.vector.dims,
            cosine: index.vector.distance_metric == DistanceMetric::Cosine,
            max_k: state.gateway().max_k,
            profiles: live.reranker.profiles().names(),
            experiments: live.experiments.iter().map(|e| e.name.clone()).collect(),
            max_batch: state.settings.user_state.max_batch,
            schema: state.schema.clone(),
            vector_field: index.fields.vector.clone(),
            text_field: index.fields.text.clone(),
            read_keys_required: state.gateway().read_keys_required,
        }
    }
}

/// The document `GET /openapi.json` serves for this gateway.
pub fn document(state: &AppState) -> Value {
    document_for(&Contract::from_state(state))
}

/// The document for `contract`: utoipa's skeleton with every rule and status added.
pub fn document_for(contract: &Contract) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    add_schemas(&mut doc, contract);
    add_parameters(&mut doc, contract);
    add_responses(&mut doc, contract);
    doc
}

// ---------------------------------------------------------------------------------------------
// Patterns, each the regular-expression form of one validator (ECMA-262 syntax that Rust's
// `regex` reads the same way: no look-around, no back-references)

/// `redrec_core::keys::validate_id`'s alphabet: letters, digits and [`ID_PUNCTUATION`].
pub fn id_pattern() -> String {
    // `-` goes last so that it is literal inside the class
    let mut punct: String = ID_PUNCTUATION.chars().filter(|c| *c != '-').collect();
    if ID_PUNCTUATION.contains('-') {
        punct.push('-');
    }
    format!("^[A-Za-z0-9{punct}]+$")
}

/// No control character (`char::is_control`: Unicode category Cc).
const NO_CONTROL: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*$";
/// White space only (`str::trim` leaves nothing).
const BLANK: &str = "^\\s*$";

/// The characters `redrec_core::filter::text_terms` splits on: ASCII punctuation other than
/// `_`, white space and control characters.
const TERM_SEPARATORS: &str = "\\x00-\\x2F\\x3A-\\x40\\x5B-\\x5E\\x60\\x7B-\\x9F\\s";

/// Text with at least one word: a character that is neither a separator nor `_` (tokens made
/// only of underscores are dropped).
fn has_word_pattern() -> String {
    format!("[^{TERM_SEPARATORS}_]")
}

/// Text whose last word (the last token that is not all underscores) has at least
/// [`filter::MIN_PREFIX_LEN`] characters: a token of two or more characters holding a word
/// character, followed only by separators and underscore-only tokens.
fn prefix_pattern() -> String {
    const _: () = assert!(
        filter::MIN_PREFIX_LEN == 2,
        "prefix_pattern spells out a two-character minimum"
    );
    let sep = format!("[{TERM_SEPARATORS}]");
    let token = format!("[^{TERM_SEPARATORS}]");
    let word = has_word_pattern();
    format!("(?:^|{sep})(?:{token}*{word}{token}+|{token}+{word}{token}*)(?:{sep}+_+)*{sep}*$")
}

/// Escapes the characters that are syntax in both regex dialects.
fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A string of tags separated by `sep` (an upsert's tag field), each tag non-blank after
/// trimming and free of control characters inside (`redrec_core::item::split_tags`).
fn tag_list_pattern(sep: &str) -> String {
    if sep.chars().count() != 1 {
        return NO_CONTROL.to_owned();
    }
    let c = regex_escape(sep);
    let edge = format!("[^\\S{c}]*");
    let inner = format!("[^{c}\\x00-\\x1F\\x7F-\\x9F]");
    let solid = format!("[^{c}\\s\\x00-\\x1F\\x7F-\\x9F]");
    let tag = format!("{edge}{solid}(?:{inner}*{solid})?{edge}");
    format!("^{tag}(?:{c}{tag})*$")
}

// ---------------------------------------------------------------------------------------------
// Schemas

fn id_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": id_pattern(),
        "description": format!(
            "1 to {MAX_ID_LEN} ASCII letters, digits or `{}`", ID_PUNCTUATION
        ),
        "example": "item-42",
    })
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn vector_schema(c: &Contract, query: bool) -> Value {
    let mut v = json!({
        "type": "array",
        "minItems": c.dims,
        "maxItems": c.dims,
        "items": {
            "type": "number",
            "format": "float",
            "minimum": -f64::from(vector::MAX_ABS_COMPONENT),
            "maximum": f64::from(vector::MAX_ABS_COMPONENT),
        },
        "description": format!(
            "{} finite numbers of magnitude at most {:e}",
            c.dims,
            vector::MAX_ABS_COMPONENT
        ),
    });
    if query && c.cosine {
        v["not"] = json!({"items": {"const": 0}});
        v["description"] = json!(format!(
            "{} finite numbers of magnitude at most {:e}, not all zero (the index compares by cosine)",
            c.dims,
            vector::MAX_ABS_COMPONENT
        ));
    }
    v
}

/// One filter string (tag value or text): at most `MAX_STRING_LEN` bytes, no control characters.
fn filter_string(extra: Vec<Value>) -> Value {
    let mut all = vec![json!({"pattern": NO_CONTROL})];
    all.extend(extra);
    json!({
        "type": "string",
        "maxLength": filter::MAX_STRING_LEN,
        "x-max-bytes": filter::MAX_STRING_LEN,
        "allOf": all,
    })
}

fn fields_of<'a>(schema: &'a IndexSchema, kind: &'static str) -> Vec<&'a str> {
    schema
        .fields
        .iter()
        .filter(|f| f.kind.type_name() == kind)
        .map(|f| f.name.as_str())
        .collect()
}

fn single_key(key: &str, inner: Value) -> Value {
    json!({
        "type": "object",
        "required": [key],
        "additionalProperties": false,
        "properties": {key: inner},
    })
}

fn matching_everything_ref() -> Value {
    json!({"$ref": "#/components/schemas/Filter/$defs/MatchingEverything"})
}

/// The filter grammar of `redrec_core::filter` checked against the index schema: one schema per
/// operator, field names from the schema, limits from the filter module's constants.
fn filter_schemas(c: &Contract) -> Vec<(&'static str, Value)> {
    let mut variants = vec![schema_ref("FilterAll")];
    let mut out = vec![(
        "FilterAll",
        single_key(
            "all",
            json!({"anyOf": [{"type": "object", "maxProperties": 0}, {"const": true}]}),
        ),
    )];
    for op in ["and", "or"] {
        let name = if op == "and" { "FilterAnd" } else { "FilterOr" };
        out.push((
            name,
            single_key(
                op,
                json!({"type": "array", "minItems": 1, "items": schema_ref("Filter")}),
            ),
        ));
        variants.push(schema_ref(name));
    }
    // the negation of a filter that matches everything by its structure (`all`, an `and` of only
    // such filters, an `or` with one of them: `Filter/$defs/MatchingEverything`) matches nothing
    out.push((
        "FilterNot",
        single_key(
            "not",
            json!({"$ref": "#/components/schemas/Filter", "not": matching_everything_ref(),
                "description": "the negation of a filter that matches everything matches nothing and is refused"}),
        ),
    ));
    variants.push(schema_ref("FilterNot"));

    // tag fields grouped by separator: a value may not contain its field's separator
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for f in &c.schema.fields {
        if let FieldKind::Tag(t) = &f.kind {
            let sep = t.separator.clone().unwrap_or_else(|| ",".into());
            match groups.iter_mut().find(|(s, _)| *s == sep) {
                Some((_, names)) => names.push(&f.name),
                None => groups.push((sep, vec![&f.name])),
            }
        }
    }
    if !groups.is_empty() {
        let leaves: Vec<Value> = groups
            .iter()
            .map(|(sep, names)| {
                let mut rules = vec![json!({"pattern": "[^\\t\\n\\x0B\\x0C\\r ]"})];
                if !sep.is_empty() {
                    rules.push(json!({"not": {"pattern": regex_escape(sep)}}));
                }
                let values = json!({
                    "type": "array",
                    "minItems": 1,
                    "maxItems": filter::MAX_TAG_VALUES,
                    "items": filter_string(rules),
                });
                json!({
                    "type": "object",
                    "required": ["field"],
                    "additionalProperties": false,
                    "properties": {
                        "field": {"enum": names},
                        "any": values,
                        "not_any": values,
                    },
                    "oneOf": [{"required": ["any"]}, {"required": ["not_any"]}],
                })
            })
            .collect();
        let inner = if leaves.len() == 1 {
            leaves.into_iter().next().unwrap_or_default()
        } else {
            json!({ "anyOf": leaves })
        };
        out.push(("FilterTag", single_key("tag", inner)));
        variants.push(schema_ref("FilterTag"));
    }

    let numeric = fields_of(&c.schema, "numeric");
    if !numeric.is_empty() {
        out.push((
            "FilterRange",
            single_key(
                "range",
                json!({
                    "type": "object",
                    "required": ["field"],
                    "additionalProperties": false,
                    "minProperties": 2,
                    "properties": {
                        "field": {"enum": numeric},
                        "gte": {"type": "number"},
                        "gt": {"type": "number"},
                        "lte": {"type": "number"},
                        "lt": {"type": "number"},
                    },
                    "not": {"anyOf": [{"required": ["gte", "gt"]}, {"required": ["lte", "lt"]}]},
                    "x-non-empty-range": true,
                    "description": "At least one bound, at most one per side; the range must not be empty.",
                }),
            ),
        ));
        variants.push(schema_ref("FilterRange"));
    }

    let text = fields_of(&c.schema, "text");
    if !text.is_empty() {
        let mut words = filter_string(vec![json!({"pattern": has_word_pattern()})]);
        // words the index does not hold: text made only of them could match nothing
        words["x-stopwords"] = json!(filter::DEFAULT_STOPWORDS);
        let prefix = filter_string(vec![json!({"pattern": prefix_pattern()})]);
        out.push((
            "FilterText",
            single_key(
                "text",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "field": {"enum": text},
                        "match": words,
                        "phrase": words,
                        "prefix": prefix,
                    },
                    "oneOf": [
                        {"required": ["match"]}, {"required": ["phrase"]}, {"required": ["prefix"]}
                    ],
                }),
            ),
        ));
        variants.push(schema_ref("FilterText"));
    }

    out.push((
        "Filter",
        json!({
            "description": "A structured pre-filter (redrec-core's filter AST, one operator per object). \
                `x-max-depth`: nesting of and/or/not, the root counting 1; `x-max-nodes`: operators and leaves.",
            "oneOf": variants,
            "$defs": {"MatchingEverything": {"anyOf": [
                schema_ref("FilterAll"),
                {"type": "object", "required": ["and"],
                    "properties": {"and": {"type": "array", "items": matching_everything_ref()}}},
                {"type": "object", "required": ["or"],
                    "properties": {"or": {"type": "array",
                        "not": {"items": {"not": matching_everything_ref()}}}}},
            ]}},
            "x-max-depth": filter::MAX_DEPTH,
            "x-max-nodes": filter::MAX_NODES,
            "example": {"and": [{"tag": {"field": "category", "any": ["BREAD"]}},
                {"range": {"field": "price", "lte": 5}}]},
        }),
    ));
    out
}

/// The `fields` object of an upsert: each schema field with its JSON type and rules, the vector
/// field refused, other plain-named fields as strings, numbers or booleans.
fn item_fields_schema(c: &Contract) -> Value {
    let mut props = Map::new();
    for f in &c.schema.fields {
        let rule = if f.name == c.vector_field {
            // refused (`false` as a schema says the same; many generators cannot read it)
            json!({"not": {}, "description": "the vector: send it as the top-level `vector`"})
        } else {
            match &f.kind {
                FieldKind::Numeric(_) => json!({"type": "number"}),
                FieldKind::Tag(t) => {
                    let sep = t.separator.as_deref().unwrap_or(",");
                    json!({
                        "type": "string",
                        "pattern": tag_list_pattern(sep),
                        "description": format!(
                            "tags separated by `{sep}`, each non-blank and at most {} bytes",
                            item::MAX_TAG_LEN
                        ),
                    })
                }
                FieldKind::Geo(_) => json!({
                    "type": "string",
                    "description": "\"lon,lat\" with lon in -180..180 and lat in -85.05..85.05",
                }),
                FieldKind::Text(_) | FieldKind::Vector(_) => json!({"type": "string"}),
            }
        };
        props.insert(f.name.clone(), rule);
    }
    let names: Vec<&str> = c.schema.fields.iter().map(|f| f.name.as_str()).collect();
    json!({
        "type": "object",
        "description": "Item fields: strings for tag and text fields, numbers for numeric fields. \
            Other fields are stored (not indexed) when their names are plain identifiers.",
        "properties": props,
        "additionalProperties": {"type": ["string", "number", "boolean"]},
        "propertyNames": {"anyOf": [
            {"enum": names},
            {"pattern": format!("^[A-Za-z0-9_]{{1,{}}}$", item::MAX_PLAIN_FIELD_NAME_LEN)},
        ]},
    })
}

/// Merges `extra` into the property `prop` of component schema `name` (keeping its description).
fn patch_prop(doc: &mut Value, name: &str, prop: &str, extra: Value) {
    let slot = &mut doc["components"]["schemas"][name]["properties"][prop];
    let description = slot.get("description").cloned();
    *slot = extra;
    if let (Some(d), Some(obj)) = (description, slot.as_object_mut()) {
        obj.entry("description").or_insert(d);
    }
}

fn strict(doc: &mut Value, name: &str) {
    doc["components"]["schemas"][name]["additionalProperties"] = Value::Bool(false);
}

fn add_schemas(doc: &mut Value, c: &Contract) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["Id"] = id_schema();
    let suffixes: Vec<String> = redrec_userstate::RESERVED_SUFFIXES
        .iter()
        .map(|s| regex_escape(s))
        .collect();
    let mut user_id = id_schema();
    user_id["not"] = json!({"pattern": format!("(?:{})$", suffixes.join("|"))});
    user_id["description"] = json!(format!(
        "an id that does not end in {}",
        redrec_userstate::RESERVED_SUFFIXES.join(", ")
    ));
    schemas["UserId"] = user_id;
    schemas["QueryVector"] = vector_schema(c, true);
    schemas["ItemVector"] = vector_schema(c, false);
    schemas["QueryText"] = json!({
        "type": "string",
        "maxLength": MAX_QUERY_TEXT_CHARS,
        "anyOf": [{"pattern": BLANK}, {"pattern": has_word_pattern()}],
        "description": "free text with at least one word (letter or digit); blank text counts as none",
    });
    for (name, schema) in filter_schemas(c) {
        schemas[name] = schema;
    }
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    schemas["ErrorDetail"]["properties"]["code"]["enum"] = json!(codes);
    schemas["ErrorDetail"]["additionalProperties"] = Value::Bool(false);
    schemas["ErrorBody"]["additionalProperties"] = Value::Bool(false);

    let k = json!({"type": ["integer", "null"], "minimum": 1, "maximum": c.max_k});
    let mut profiles: Vec<Value> = c.profiles.iter().map(|p| json!(p)).collect();
    profiles.push(Value::Null);
    let profile = json!({"enum": profiles});
    for name in ["RecommendRequest", "SearchRequest"] {
        strict(doc, name);
        patch_prop(doc, name, "k", k.clone());
        patch_prop(doc, name, "profile", profile.clone());
        patch_prop(doc, name, "user_id", nullable(schema_ref("Id")));
        patch_prop(doc, name, "filter", nullable(schema_ref("Filter")));
    }
    patch_prop(
        doc,
        "RecommendRequest",
        "query",
        nullable(schema_ref("QuerySpec")),
    );
    patch_prop(
        doc,
        "SearchRequest",
        "text",
        nullable(schema_ref("QueryText")),
    );
    patch_prop(
        doc,
        "SearchRequest",
        "vector",
        nullable(schema_ref("QueryVector")),
    );
    // cross-field rules as `not` (code generators ignore it; partial schemas under `anyOf`
    // break some of them)
    let blank_text = json!({"anyOf": [{"type": "null"}, {"type": "string", "pattern": BLANK}]});
    doc["components"]["schemas"]["SearchRequest"]["not"] = json!({
        "properties": {"text": blank_text, "vector": {"type": "null"}},
        "description": "search needs `text` (not blank) or `vector`",
    });

    // nested parts are objects (not arrays of fields by position)
    strict(doc, "QuerySpec");
    patch_prop(doc, "QuerySpec", "text", nullable(schema_ref("QueryText")));
    patch_prop(
        doc,
        "QuerySpec",
        "vector",
        nullable(schema_ref("QueryVector")),
    );
    patch_prop(doc, "QuerySpec", "item_id", nullable(schema_ref("Id")));
    let examples = json!({"type": "array", "maxItems": MAX_EXAMPLE_IDS, "items": schema_ref("Id")});
    patch_prop(doc, "QuerySpec", "positive", examples.clone());
    patch_prop(doc, "QuerySpec", "negative", examples);
    doc["components"]["schemas"]["QuerySpec"]["if"] =
        json!({"required": ["negative"], "properties": {"negative": {"minItems": 1}}});
    doc["components"]["schemas"]["QuerySpec"]["then"] = json!({
        "required": ["positive"], "properties": {"positive": {"minItems": 1}},
        "description": "negative examples need at least one positive example",
    });

    strict(doc, "ItemUpsert");
    patch_prop(doc, "ItemUpsert", "fields", item_fields_schema(c));
    patch_prop(
        doc,
        "ItemUpsert",
        "vector",
        nullable(schema_ref("ItemVector")),
    );
    doc["components"]["schemas"]["ItemUpsert"]["not"] = json!({
        "properties": {
            "vector": {"type": "null"},
            "fields": {"properties": {c.text_field.as_str(): {"type": "string", "pattern": BLANK}}},
        },
        "description": format!("send a `vector`, or a non-blank `fields.{}` to embed", c.text_field),
    });

    strict(doc, "Event");
    let kinds: Vec<&str> = redrec_userstate::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let numeric_id = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    patch_prop(doc, "Event", "type", json!({"enum": kinds}));
    patch_prop(
        doc,
        "Event",
        "user_id",
        json!({"anyOf": [schema_ref("UserId"), numeric_id]}),
    );
    patch_prop(
        doc,
        "Event",
        "item_id",
        json!({"anyOf": [schema_ref("Id"), numeric_id]}),
    );
    patch_prop(doc, "Event", "event_id", nullable(schema_ref("Id")));
    patch_prop(
        doc,
        "Event",
        "dwell_ms",
        json!({"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX}),
    );
    patch_prop(doc, "Event", "rec_id", nullable(schema_ref("Id")));
    let position = redrec_userstate::MAX_POSITION;
    let position = json!({"type": ["integer", "null"], "minimum": 0, "maximum": position});
    patch_prop(doc, "Event", "position", position);
    doc["components"]["schemas"]["Event"]["not"] = json!({"required": ["position"],
        "properties": {"position": {"type": "integer"}, "rec_id": {"type": "null"}},
        "description": "`position` needs the list's `rec_id`"});
    doc["components"]["schemas"]["Event"]["if"] =
        json!({"required": ["type"], "properties": {"type": {"const": "dwell"}}});
    doc["components"]["schemas"]["Event"]["then"] =
        json!({"required": ["dwell_ms"], "properties": {"dwell_ms": {"type": "integer"}}});
    doc["components"]["schemas"]["EventBatch"] = json!({
        "anyOf": [
            schema_ref("Event"),
            {"type": "array", "minItems": 1, "maxItems": c.max_batch, "items": schema_ref("Event")},
        ],
        "description": "one event, or a batch applied all or nothing",
    });
    if let Some(content) =
        doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
            .as_object_mut()
    {
        content.insert("schema".into(), schema_ref("EventBatch"));
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

fn operations(doc: &mut Value) -> Vec<(String, String, &mut Map<String, Value>)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    if let Some(op) = op.as_object_mut() {
                        out.push((path.clone(), method.clone(), op));
                    }
                }
            }
        }
    }
    out
}

fn add_parameters(doc: &mut Value, c: &Contract) {
    for (_, _, op) in operations(doc) {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut() {
            let schema = match p["name"].as_str().unwrap_or("") {
                "id" | "user_id" => schema_ref("Id"),
                "k" => json!({"type": "integer", "minimum": 1, "maximum": c.max_k}),
                "profile" => json!({"type": "string", "enum": c.profiles}),
                "name" => json!({"type": "string", "enum": c.experiments}),
                "explain" | "with_vector" => json!({"type": "boolean"}),
                "filter" => {
                    if let Some(obj) = p.as_object_mut() {
                        obj.remove("schema");
                        obj.insert(
                            "content".into(),
                            json!({"application/json": {"schema": schema_ref("Filter")}}),
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            p["schema"] = schema;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("ErrorBody")}},
    })
}

fn add_responses(doc: &mut Value, c: &Contract) {
    for (path, method, op) in operations(doc) {
        let api = path.starts_with("/v1/");
        let has_body = op.contains_key("requestBody");
        let has_params = op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        let read_route = !op.contains_key("security");
        if api && read_route && c.read_keys_required {
            op.insert("security".into(), Value::Null);
        }
        if let Some(security) = op.get_mut("security") {
            // either header carries the key
            *security = json!([{"api_key": []}, {"api_key_header": []}]);
        }
        let authorized = op.contains_key("security");
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut add = |status: &str, description: &str| {
            responses.insert(status.to_owned(), error_response(description));
        };
        if has_body {
            add("400", "the body is not JSON (`malformed_json`)");
            add(
                "413",
                "the body is larger than `gateway.body_limit` (`payload_too_large`)",
            );
            add(
                "415",
                "the body is not `application/json` (`unsupported_media_type`)",
            );
        }
        if has_body || has_params {
            let unknown_item = if has_body || path.ends_with("/similar") {
                "; `unknown_item`: a named item is not in the catalog"
            } else {
                ""
            };
            add(
                "422",
                &format!(
                    "a field, path segment or query parameter breaks a rule of this document, or a \
                     query parameter is unknown (`invalid_field`, `invalid_query`, `batch_too_large`{unknown_item}); \
                     `error.field` names it"
                ),
            );
        }
        if authorized {
            add(
                "401",
                "no API key, or not a valid one (`unauthorized`); `WWW-Authenticate` says how",
            );
        }
        if api {
            add(
                "429",
                "over the rate limit (`rate_limited`); `Retry-After` says when to retry",
            );
            add(
                "503",
                "Redis, the index or the embedder is unavailable, or the deadline passed \
                 (`unavailable`); `Retry-After` says when to retry",
            );
            add(
                "500",
                "a bug or an unexpected reply (`internal`); the detail is in the gateway log",
            );
            let takes_id = path.contains("{id}");
            if takes_id && !(path == "/v1/items/{id}" && method == "put") {
                add("404", "no such item or user (`not_found`)");
            }
        }
    }
}
