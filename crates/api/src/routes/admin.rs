//! Administration: API keys, store statistics, the OpenAPI document.

use crate::auth::{self, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_store::records::Counts;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Shown once; only a hash is stored.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Create an API key. The key is in the response once and never again.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", request_body = CreateKeyRequest,
    security(("api_key" = [])),
    responses((status = 201, body = CreatedKey), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require(Scope::Admin)?;
    if req.name.trim().is_empty() || req.scopes.is_empty() {
        return Err(ApiError::invalid(
            "a key needs a name and at least one scope",
            vec![FieldError::new(
                if req.name.trim().is_empty() {
                    "name"
                } else {
                    "scopes"
                },
                "must not be empty",
            )],
        ));
    }
    if req.scopes.contains(&Scope::Pii) && !caller.sees_pii() {
        return Err(ApiError::Forbidden("pii"));
    }
    let new = auth::generate(req.name.trim(), &req.scopes, Timestamp::now().0);
    let created = CreatedKey {
        id: new.record.id.clone(),
        name: new.record.name.clone(),
        scopes: new.record.scopes.clone(),
        key: new.plaintext,
    };
    state.store.create_api_key(new.record).await?;
    tracing::info!(key_id = %created.id, by = %caller.0.id, "api key created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// List API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", security(("api_key" = [])),
    responses((status = 200, body = Vec<KeyInfo>), (status = 403, body = Problem)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KeyInfo>>> {
    caller.require(Scope::Admin)?;
    let keys = state.store.api_keys().await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyInfo {
                id: k.id,
                name: k.name,
                scopes: k.scopes,
                created_at: Timestamp(k.created_at),
                revoked_at: k.revoked_at.map(Timestamp),
            })
            .collect(),
    ))
}

/// Revoke an API key; it stops working within seconds (the verification cache's lifetime).
#[utoipa::path(delete, path = "/api/v1/api-keys/{key_id}", tag = "admin",
    params(("key_id" = String, Path, description = "the key id (the part after sg_)")),
    security(("api_key" = [])),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .revoke_api_key(key_id.clone(), Timestamp::now().0)
        .await?
    {
        state.keys.forget(&key_id);
        tracing::info!(key_id = %key_id, by = %caller.0.id, "api key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active API key {key_id:?}")))
    }
}

/// Row counts of the store.
#[utoipa::path(get, path = "/api/v1/stats", tag = "admin", security(("api_key" = [])),
    responses((status = 200, body = Counts), (status = 403, body = Problem)))]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Counts>> {
    caller.require(Scope::Read)?;
    Ok(Json(state.store.counts().await?))
}

/// This API as an OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(("api_key" = [])),
    responses((status = 200, description = "the OpenAPI document")))]
pub async fn openapi(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}
