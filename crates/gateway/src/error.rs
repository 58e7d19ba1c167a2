//! `ApiError`: the one error type of every handler, and the one place that maps errors to HTTP
//! statuses. Bodies are `{"error":{"code","message","field"}}`; 5xx bodies say nothing internal
//! (the detail goes to the log).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// Error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, machine-readable (`code`) and human-readable (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier, e.g. `malformed_json`, `invalid_field`, `unauthorized`, `unavailable`.
    pub code: String,
    pub message: String,
    /// Path of the offending request field (`query.vector`, `filter.and[1].tag`), when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The stable machine-readable `error.code` of every error body. Clients match on these strings:
/// renaming one is a breaking API change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedJson,
    InvalidField,
    InvalidQuery,
    UnknownItem,
    BatchTooLarge,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    NotFound,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::UnknownItem => "unknown_item",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (syntax error, truncated): 400.
    #[error("{message}")]
    Malformed {
        message: String,
        field: Option<String>,
    },
    /// The body is JSON but a field has the wrong type, is unknown, missing or out of range: 422.
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    #[error("request body must be `application/json`")]
    UnsupportedMediaType,
    #[error("request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    Unauthorized { message: String },
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("rate limit exceeded: at most {limit} requests per {window_ms} ms")]
    RateLimited {
        limit: u64,
        window_ms: u64,
        retry_after_secs: u64,
    },
    /// Redis unreachable or too slow, the deadline passed, or a dependency is not loaded: 503.
    #[error("service temporarily unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after_secs: u64,
    },
    /// A bug or an unexpected reply: 500 with a generic body, the detail is logged.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            code: ErrorCode::InvalidField,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            reason: reason.into(),
            retry_after_secs: 1,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            detail: detail.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Malformed { .. } => ErrorCode::MalformedJson,
            ApiError::Invalid { code, .. } => *code,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ApiError::NotFound { .. } => ErrorCode::NotFound,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
            ApiError::Internal { .. } => ErrorCode::Internal,
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            ApiError::Malformed { field, .. } | ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal { detail } => {
                tracing::error!(detail = %detail, "internal error");
                "internal error; see the gateway log".to_owned()
            }
            ApiError::Unavailable { reason, .. } => {
                tracing::warn!(reason = %reason, "unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().as_str().to_owned(),
                message,
                field: self.field(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(self, ApiError::Unauthorized { .. }) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"redrec\""),
            );
        }
        response
    }
}

impl From<redrec_core::Error> for ApiError {
    /// Core errors are all user errors (bad vector, bad filter, bad id).
    fn from(e: redrec_core::Error) -> ApiError {
        use redrec_core::Error as E;
        let field = match &e {
            E::Filter { path, .. } => {
                let rest = path.trim_start_matches('$').trim_start_matches('.');
                Some(if rest.is_empty() {
                    "filter".to_owned()
                } else if rest.starts_with('[') {
                    format!("filter{rest}")
                } else {
                    format!("filter.{rest}")
                })
            }
            E::UnknownField { .. } | E::FieldType { .. } => Some("filter".to_owned()),
            E::VectorDimension { .. } | E::VectorNotFinite { .. } | E::VectorZero => {
                Some("vector".to_owned())
            }
            E::InvalidId { .. } => Some("id".to_owned()),
            _ => None,
        };
        ApiError::Invalid {
            code: ErrorCode::InvalidField,
            message: e.to_string(),
            field,
        }
    }
}

impl From<redrec_store::Error> for ApiError {
    /// Store errors without their metric; handlers go through `AppState::store_error`, which
    /// records it.
    fn from(e: redrec_store::Error) -> ApiError {
        use redrec_store::Error as E;
        match e {
            E::BadInput(core) => core.into(),
            E::Unavailable { .. } | E::Timeout { .. } => ApiError::unavailable(e.to_string()),
            E::IndexMissing { index } => ApiError::Unavailable {
                reason: format!("the search index `{index}` does not exist yet (seed the catalog)"),
                retry_after_secs: 5,
            },
            E::Config { .. } | E::Rejected { .. } | E::Reply(_) => ApiError::internal(e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
