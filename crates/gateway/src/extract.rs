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
use objects_only::ObjectsOnly;

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
    // Path tracking costs a callback per JSON value (128 of them in a 128-dimension query
    // vector): a valid body is read without it, and only a failing one is read again with it
    // to name the field. Both read through the same strict deserializer, so they accept
    // exactly the same documents.
    {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        if let Ok(value) = T::deserialize(ObjectsOnly(&mut de))
            && de.end().is_ok()
        {
            return Ok(value);
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(ObjectsOnly(&mut de)).map_err(|e| {
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
    serde_path_to_error::deserialize::<_, T>(ObjectsOnly(value)).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, &e.into_inner())
    })
}

/// A deserializer adapter under which a struct can be read only from a map (a JSON object).
///
/// serde's derived structs also accept a sequence, reading the fields by position, so without
/// it `{"query": ["milk"]}` would be a `QuerySpec` with `text = "milk"`. The adapter wraps every
/// nested deserializer, visitor, seed and access, so the rule holds at any depth, and passes
/// everything else through unchanged (serde_path_to_error, wrapped around it, still sees the
/// path).
mod objects_only {
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess,
        Visitor,
    };

    pub struct ObjectsOnly<D>(pub D);

    /// A visitor passed through; `is_struct` refuses sequences.
    struct Wrap<V> {
        inner: V,
        is_struct: bool,
    }

    fn wrap<V>(inner: V) -> Wrap<V> {
        Wrap {
            inner,
            is_struct: false,
        }
    }

    macro_rules! forward {
        ($($method:ident)*) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(wrap(visitor))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
        type Error = D::Error;

        forward! {
            deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
            deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
            deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
            deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
            deserialize_option deserialize_unit deserialize_seq deserialize_map
            deserialize_identifier deserialize_ignored_any
        }

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_unit_struct(name, wrap(visitor))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_newtype_struct(name, wrap(visitor))
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple(len, wrap(visitor))
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple_struct(name, len, wrap(visitor))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let visitor = Wrap {
                inner: visitor,
                is_struct: true,
            };
            self.0.deserialize_struct(name, fields, visitor)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_enum(name, variants, wrap(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    macro_rules! visit {
        ($($method:ident: $ty:ty)*) => {$(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        visit! {
            visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
            visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
            visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
            visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
            visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
        }

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_some(ObjectsOnly(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_newtype_struct(ObjectsOnly(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            if self.is_struct {
                return Err(de::Error::invalid_type(
                    de::Unexpected::Seq,
                    &"a JSON object",
                ));
            }
            self.inner.visit_seq(ObjectsOnly(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.inner.visit_map(ObjectsOnly(map))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.inner.visit_enum(ObjectsOnly(data))
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for ObjectsOnly<S> {
        type Value = S::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(ObjectsOnly(d))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for ObjectsOnly<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(ObjectsOnly(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for ObjectsOnly<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(ObjectsOnly(seed))
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(ObjectsOnly(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for ObjectsOnly<A> {
        type Error = A::Error;
        type Variant = ObjectsOnly<A::Variant>;

        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Self::Variant), A::Error> {
            let (value, variant) = self.0.variant_seed(ObjectsOnly(seed))?;
            Ok((value, ObjectsOnly(variant)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for ObjectsOnly<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.newtype_variant_seed(ObjectsOnly(seed))
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, wrap(visitor))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            let visitor = Wrap {
                inner: visitor,
                is_struct: true,
            };
            self.0.struct_variant(fields, visitor)
        }
    }
}
