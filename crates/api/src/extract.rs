//! Extractors: [`ApiJson`], [`ApiQuery`] and [`ApiPath`], whose rejections are problem details
//! naming the field or parameter, and [`Caller`], the authenticated API key.

use crate::auth::{Scope, VerifiedKey};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;
use shopgrowth_core::FieldError;

/// JSON body; a malformed body is a 400 naming the path of the bad field and the position.
pub struct ApiJson<T>(pub T);

/// Reads the raw body, checking its type and size.
pub async fn json_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    limit: state.config.body_limit_bytes,
                }
            } else {
                ApiError::invalid(format!("could not read the body: {e}"), vec![])
            }
        })
}

/// Deserialises JSON text strictly, naming the field path (`lines[0].quantity`) on failure and
/// refusing unknown fields (`promotions[0].scope.skuz`): [`shopgrowth_core::json`].
pub fn from_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, FieldError> {
    shopgrowth_core::json::from_slice(text)
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        from_json(&bytes).map(ApiJson).map_err(|e| {
            let detail = if e.field.is_empty() {
                format!("malformed JSON: {}", e.reason)
            } else {
                format!("malformed JSON at {}: {}", e.field, e.reason)
            };
            ApiError::Invalid {
                code: "malformed_json",
                detail,
                errors: vec![e],
            }
        })
    }
}

/// Query string parameters; a bad one is a 400 problem naming it (`limit`), like a bad body field,
/// and so is one the endpoint does not take (`kind` where there is no such filter): ignoring it
/// would answer a question the caller did not ask. (axum's own `Query` answers a bad one in
/// plain text and ignores unknown ones.)
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs =
            || serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let mut unknown = None;
        let problem = match serde_ignored::deserialize(pairs(), |path| {
            unknown.get_or_insert_with(|| path.to_string());
        }) {
            Ok(value) => match unknown {
                None => return Ok(ApiQuery(value)),
                Some(name) => FieldError::new(name, "not a parameter of this endpoint"),
            },
            // Parsed again only to find which parameter is bad.
            Err(e) => match serde_path_to_error::deserialize::<_, T>(pairs()) {
                Err(e) => shopgrowth_core::json::path_error(e),
                Ok(_) => FieldError::new("", e.to_string()),
            },
        };
        Err(ApiError::Invalid {
            code: "invalid_query",
            detail: format!("bad query parameter {}: {}", problem.field, problem.reason),
            errors: vec![problem],
        })
    }
}

/// Path parameters; one that does not parse (`/links/abc` for a number) is a 400 problem naming
/// it, not axum's plain-text answer.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                // The route's only parameter, when the error does not say which it was.
                let only = axum::extract::RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok()
                    .and_then(|raw| {
                        let mut keys = raw.iter().map(|(key, _)| key.to_owned());
                        keys.next().filter(|_| keys.next().is_none())
                    });
                let field = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                        _ => only,
                    },
                    _ => only,
                }
                .unwrap_or_else(|| "path".to_owned());
                let reason = rejection.body_text();
                Err(ApiError::Invalid {
                    code: "invalid_path",
                    detail: reason.clone(),
                    errors: vec![FieldError::new(field, reason)],
                })
            }
        }
    }
}

/// The API key a request came with (`Authorization: Bearer sg_…` or `X-Api-Key: sg_…`).
#[derive(Debug, Clone)]
pub struct Caller(pub VerifiedKey);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }

    /// Whether responses may show personal data in clear.
    pub fn sees_pii(&self) -> bool {
        self.0.allows(Scope::Pii)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "an API key is required: send Authorization: Bearer <key>".into(),
                )
            })?;
        state.keys.verify(&state.store, presented).await.map(Caller)
    }
}
