//! `ApiError`: the one error type of every handler, and the one place that maps errors to HTTP
//! statuses. Bodies are `{"error":{"code","message","field"}}`; 5xx bodies say nothing internal
//! (the detail goes to the log).
//!
//! An error also says what it means for the error metrics ([`ErrorMetric`]: a failed Redis call,
//! a stage over budget, a refused request); the response carries that in an [`ErrorMetrics`]
//! extension and the one metrics middleware (`observe` in `lib.rs`) records it. Nothing else
//! in the gateway counts errors.

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
    /// Every code, for the OpenAPI document's `enum`.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::MalformedJson,
        ErrorCode::InvalidField,
        ErrorCode::InvalidQuery,
        ErrorCode::UnknownItem,
        ErrorCode::BatchTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

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

/// Which kind of Redis failure an error was (the `kind` label of `redrec_redis_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// The call ran past its deadline.
    Timeout,
    /// Redis was unreachable, dropped the connection or could not answer yet.
    Connection,
    /// Redis refused the command or answered in a shape we cannot read.
    Command,
}

impl RedisFailure {
    pub fn label(self) -> &'static str {
        match self {
            RedisFailure::Timeout => "timeout",
            RedisFailure::Connection => "connection",
            RedisFailure::Command => "command",
        }
    }
}

/// What an error counts as in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMetric {
    /// A failed Redis call (`redrec_redis_errors_total`).
    Redis(RedisFailure),
    /// A pipeline stage ran out of its budget (`redrec_stage_timeouts_total`).
    StageTimeout(&'static str),
    /// The rate limiter refused the request (`redrec_rate_limited_total`).
    RateLimited,
}

/// Response extension: the metrics of the errors behind a response, recorded by the metrics
/// middleware. Set by `ApiError::into_response`, and by handlers that report failures in a
/// body of their own (`/readyz`).
#[derive(Debug, Clone, Default)]
pub struct ErrorMetrics(pub Vec<ErrorMetric>);

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
        /// What the outage counts as in the metrics, when it is one of the counted kinds.
        metric: Option<ErrorMetric>,
    },
    /// A bug or an unexpected reply: 500 with a generic body, the detail is logged.
    #[error("internal error: {detail}")]
    Internal {
        detail: String,
        metric: Option<ErrorMetric>,
    },
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
            metric: None,
        }
    }

    /// 503 for a Redis call that failed with `failure`.
    pub fn redis_unavailable(reason: impl Into<String>, failure: RedisFailure) -> ApiError {
        ApiError::Unavailable {
            reason: reason.into(),
            retry_after_secs: 1,
            metric: Some(ErrorMetric::Redis(failure)),
        }
    }

    /// 503 because the serving index does not exist yet (the catalog is not seeded).
    pub fn index_missing(index: &str) -> ApiError {
        ApiError::Unavailable {
            reason: format!("the search index `{index}` does not exist yet (seed the catalog)"),
            retry_after_secs: 5,
            metric: None,
        }
    }

    /// 503 because the pipeline stage `stage` ran out of its budget.
    pub fn stage_over_budget(stage: &'static str, budget: std::time::Duration) -> ApiError {
        ApiError::Unavailable {
            reason: format!(
                "stage `{stage}` exceeded its {} ms budget",
                budget.as_millis()
            ),
            retry_after_secs: 1,
            metric: Some(ErrorMetric::StageTimeout(stage)),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            detail: detail.to_string(),
            metric: None,
        }
    }

    /// 500 for a command Redis refused or a reply we cannot read.
    pub fn redis_internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            detail: detail.to_string(),
            metric: Some(ErrorMetric::Redis(RedisFailure::Command)),
        }
    }

    /// What this error counts as in the metrics, if anything.
    pub fn metric(&self) -> Option<ErrorMetric> {
        match self {
            ApiError::RateLimited { .. } => Some(ErrorMetric::RateLimited),
            ApiError::Unavailable { metric, .. } | ApiError::Internal { metric, .. } => *metric,
            _ => None,
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
            ApiError::Internal { detail, .. } => {
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
        if let Some(metric) = self.metric() {
            response.extensions_mut().insert(ErrorMetrics(vec![metric]));
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
            E::VectorDimension { .. }
            | E::VectorNotFinite { .. }
            | E::VectorComponentTooLarge { .. }
            | E::VectorZero => Some("vector".to_owned()),
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
    /// Store errors, with the kind of Redis failure they count as.
    fn from(e: redrec_store::Error) -> ApiError {
        use redrec_store::Error as E;
        match e {
            E::BadInput(core) => core.into(),
            E::Unavailable { .. } => {
                ApiError::redis_unavailable(e.to_string(), RedisFailure::Connection)
            }
            E::Timeout { .. } => ApiError::redis_unavailable(e.to_string(), RedisFailure::Timeout),
            E::IndexMissing { index } => ApiError::index_missing(&index),
            E::Rejected { .. } | E::Reply(_) => ApiError::redis_internal(e),
            E::Config { .. } => ApiError::internal(e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
