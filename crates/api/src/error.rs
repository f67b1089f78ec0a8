//! The one mapping from errors to HTTP: RFC 9457 problem details (`application/problem+json`)
//! naming each bad field. A 5xx hides its cause from the client and logs it once.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shopgrowth_core::{ErrorKind, FieldError};
use utoipa::ToSchema;

/// A problem with a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:shopgrowth:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_body`.
    pub code: String,
    /// Each bad field with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("this endpoint needs an API key with the {0} scope")]
    Forbidden(&'static str),
    #[error("{detail}")]
    Invalid {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] shopgrowth_store::Error),
    #[error(transparent)]
    Service(#[from] shopgrowth_service::Error),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Invalid {
            code: "invalid_body",
            detail: detail.into(),
            errors,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Store(e) => store_parts(e),
            ApiError::Service(e) => match e {
                shopgrowth_service::Error::Store(e) => store_parts(e),
                shopgrowth_service::Error::Expression(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_expression")
                }
                shopgrowth_service::Error::UnknownSegment(_)
                | shopgrowth_service::Error::UnknownTag(_) => (StatusCode::NOT_FOUND, "not_found"),
                shopgrowth_service::Error::Corrupt(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn store_parts(e: &shopgrowth_store::Error) -> (StatusCode, &'static str) {
    match e.kind() {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
        ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the server could not complete the request; it has been logged".to_owned()
        } else {
            self.to_string()
        };
        let errors = match self {
            ApiError::Invalid { errors, .. } => errors,
            ApiError::Service(shopgrowth_service::Error::Expression(e)) => vec![FieldError::new(
                "expr",
                format!("at position {}: {}", e.position, e.message),
            )],
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: format!("urn:shopgrowth:problem:{code}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
