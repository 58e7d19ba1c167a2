//! Request extractors with errors in the gateway's format: [`StrictJson`] (JSON body, every
//! mistake reported with the path of the field) and [`QueryParams`] (query string as a map, so
//! handlers can reject unknown parameters by name).

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body deserialised strictly: syntax errors are 400 `malformed_json`, type errors,
/// unknown and missing fields 422 `invalid_field` with the field's path.
pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<crate::state::BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::Malformed {
                    message: format!("cannot read the request body: {rejection}"),
                    field: None,
                }
            }
        })?;
        let value = parse_json::<T>(&bytes)?;
        // serde's derived structs also accept a JSON array (fields by position): a request
        // body must be an object unless the route takes any JSON value and checks it itself
        if std::any::TypeId::of::<T>() != std::any::TypeId::of::<serde_json::Value>()
            && bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
        {
            return Err(ApiError::Invalid {
                code: ErrorCode::InvalidField,
                message: "the request body must be a JSON object".into(),
                field: None,
            });
        }
        Ok(StrictJson(value))
    }
}

/// Deserialises `bytes` as `T`, naming the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error("", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let field = (!path.is_empty() && path != ".").then(|| path.to_owned());
    // serde_json appends " at line L column C": useful for syntax errors only.
    let message = e.to_string();
    match e.classify() {
        // The path of a syntax error is wherever the parser gave up: not worth naming.
        Category::Syntax | Category::Eof | Category::Io => ApiError::Malformed {
            message: format!("request body is not valid JSON: {message}"),
            field: None,
        },
        Category::Data => {
            let short = message
                .rsplit_once(" at line ")
                .map(|(m, _)| m.to_owned())
                .unwrap_or(message);
            let field = field.or_else(|| unknown_field_name(&short));
            let message = match &field {
                Some(f) => format!("field `{f}`: {short}"),
                None => short,
            };
            ApiError::Invalid {
                code: ErrorCode::InvalidField,
                message,
                field,
            }
        }
    }
}

/// serde reports an unknown top-level field without a path; recover its name from the message.
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The query string as a sorted map; see [`QueryParams::take`] for typed access.
pub struct QueryParams(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(map) = Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Invalid {
                code: ErrorCode::InvalidQuery,
                message: format!("cannot parse the query string: {e}"),
                field: None,
            })?;
        Ok(QueryParams(map))
    }
}

impl QueryParams {
    /// Removes and parses parameter `name`; `expected` describes the accepted values.
    pub fn take<T: std::str::FromStr>(
        &mut self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(raw) => raw.parse::<T>().map(Some).map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("query parameter `{name}` is `{raw}`, expected {expected}"),
                )
            }),
        }
    }

    pub fn take_string(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Fails on the first parameter nobody took.
    pub fn finish(self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.into_keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::invalid(
                name.clone(),
                format!(
                    "unknown query parameter `{name}` (expected one of: {})",
                    known.join(", ")
                ),
            )),
        }
    }
}

/// Deserialises an already-parsed JSON value as `T`, naming the failing field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, &e.into_inner())
    })
}
