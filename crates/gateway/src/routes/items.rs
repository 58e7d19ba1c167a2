//! Admin item routes: `PUT/GET/DELETE /v1/items/{id}`. An upsert replaces the whole hash in one
//! MULTI (so stale fields vanish) after validating every field against the index schema and the
//! vector's dimension and finiteness, with the item codec ingest uses (`redrec_core::item`);
//! without a vector, the item's text is embedded.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::put,
};
use redrec_core::{
    item::{self, FieldValue},
    schema::FieldKind,
    vector,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Access, authorize},
    error::{ApiError, ApiResult},
    extract::{QueryParams, StrictJson},
    services::{
        catalog::{self, check_id},
        embed::embed_text,
    },
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/items/{id}",
        put(put_item).get(get_item).delete(delete_item),
    )
}

/// Body of `PUT /v1/items/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpsert {
    /// Item fields: strings for tag/text fields, numbers for numeric fields. Fields outside the
    /// schema are stored (not indexed) when their names are plain identifiers.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The embedding; when absent the item's text field is embedded.
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
}

/// An item as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDoc {
    pub id: String,
    pub fields: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertResult {
    pub id: String,
    /// True when the item did not exist before.
    pub created: bool,
    /// Whether the vector came from the request or from embedding the text.
    pub vector_source: &'static str,
}

/// Upsert an item (admin).
#[utoipa::path(put, path = "/v1/items/{id}", tag = "admin", request_body = ItemUpsert,
    params(("id" = String, Path, description = "item id")), security(("api_key" = [])),
    responses((status = 201, body = UpsertResult), (status = 200, body = UpsertResult),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn put_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    StrictJson(body): StrictJson<ItemUpsert>,
) -> ApiResult<Response> {
    authorize(&state, &headers, Access::Admin)?;
    check_id(&id, "id")?;
    let fields_cfg = &state.index_config().fields;
    let vector_field = fields_cfg.vector.clone();
    let mut values = body
        .fields
        .iter()
        .map(|(name, value)| field_value(&state, &vector_field, name, value))
        .collect::<ApiResult<Vec<(String, FieldValue)>>>()?;
    let dims = state.index_config().vector.dims;
    let (embedding, vector_source) = match body.vector {
        Some(v) => {
            vector::validate(&v, dims).map_err(|e| ApiError::invalid("vector", e.to_string()))?;
            (v, "request")
        }
        None => {
            let text = body
                .fields
                .get(&fields_cfg.text)
                .and_then(|v| v.as_str())
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "vector",
                        format!(
                            "required: send a {dims}-dimensional `vector` or a non-empty `fields.{}` to embed",
                            fields_cfg.text
                        ),
                    )
                })?
                .to_owned();
            (embed_text(&state, text).await?, "embedded")
        }
    };
    values.push((vector_field, FieldValue::Vector(embedding)));
    let hash = item::encode_hash(&values, &state.schema);
    let created = catalog::replace_item(&state, &id, &hash).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(UpsertResult {
            id,
            created,
            vector_source,
        }),
    )
        .into_response())
}

/// One field of the body as a typed value, by the item codec's rules (`redrec_core::item`, the
/// same as ingest's), with the strictness of a typed JSON API: numeric fields take JSON numbers
/// and tag, text and geo fields take strings. Errors name `fields.{name}`.
fn field_value(
    state: &AppState,
    vector_field: &str,
    name: &str,
    value: &serde_json::Value,
) -> ApiResult<(String, FieldValue)> {
    let path = format!("fields.{name}");
    if name == vector_field {
        return Err(ApiError::invalid(
            path,
            format!("`{name}` is the vector field: send it as the top-level `vector` array"),
        ));
    }
    let kind = state
        .schema
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| &f.kind);
    let invalid = |message: String| ApiError::invalid(&path, message);
    let typed = match (kind, value) {
        (Some(FieldKind::Numeric(_)), serde_json::Value::Number(n)) => {
            let v = n
                .as_f64()
                .ok_or_else(|| invalid("expected a finite number".into()))?;
            FieldValue::Num(item::check_number(v).map_err(invalid)?)
        }
        (Some(FieldKind::Numeric(_)), other) => {
            return Err(invalid(format!(
                "numeric field, expected a number, got {}",
                json_type(other)
            )));
        }
        (Some(FieldKind::Tag(t)), serde_json::Value::String(s)) => {
            let sep = t.separator.as_deref().unwrap_or(",");
            FieldValue::Tags(item::split_tags(s, sep).map_err(invalid)?)
        }
        (Some(FieldKind::Geo(_)), serde_json::Value::String(s)) => {
            let (lon, lat) = item::parse_geo(s).map_err(invalid)?;
            FieldValue::Geo(lon, lat)
        }
        (Some(_), serde_json::Value::String(s)) => FieldValue::Text(s.clone()),
        (Some(k), other) => {
            return Err(invalid(format!(
                "{} field, expected a string, got {}",
                k.type_name(),
                json_type(other)
            )));
        }
        (None, v) => {
            if !item::is_plain_field_name(name) {
                return Err(invalid(
                    "field names outside the schema must be 1-64 ASCII letters, digits or _".into(),
                ));
            }
            FieldValue::Text(match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(invalid(format!(
                        "expected a string, number or boolean, got {}",
                        json_type(other)
                    )));
                }
            })
        }
    };
    Ok((name.to_owned(), typed))
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Read an item (admin). `?with_vector=true` includes the embedding.
#[utoipa::path(get, path = "/v1/items/{id}", tag = "admin",
    params(("id" = String, Path, description = "item id"),
        ("with_vector" = Option<bool>, Query, description = "include the embedding")),
    security(("api_key" = [])),
    responses((status = 200, body = ItemDoc), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    mut params: QueryParams,
) -> ApiResult<Json<ItemDoc>> {
    authorize(&state, &headers, Access::Admin)?;
    check_id(&id, "id")?;
    let with_vector = params
        .take::<bool>("with_vector", "true or false")?
        .unwrap_or(false);
    params.finish(&["with_vector"])?;
    let Some(raw) = catalog::read_item(&state, &id).await? else {
        return Err(ApiError::NotFound { what: "item", id });
    };
    let vector_field = &state.index_config().fields.vector;
    let mut fields = BTreeMap::new();
    let mut vec = None;
    for (k, v) in raw {
        if k == *vector_field {
            if with_vector {
                vec = Some(vector::decode(&v).map_err(ApiError::internal)?);
            }
        } else {
            fields.insert(k, String::from_utf8_lossy(&v).into_owned());
        }
    }
    Ok(Json(ItemDoc {
        id,
        fields,
        vector: vec,
    }))
}

/// Delete an item (admin).
#[utoipa::path(delete, path = "/v1/items/{id}", tag = "admin",
    params(("id" = String, Path, description = "item id")), security(("api_key" = [])),
    responses((status = 204, description = "deleted"), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    authorize(&state, &headers, Access::Admin)?;
    check_id(&id, "id")?;
    if !catalog::delete_item(&state, &id).await? {
        Err(ApiError::NotFound { what: "item", id })
    } else {
        Ok(StatusCode::NO_CONTENT)
    }
}
