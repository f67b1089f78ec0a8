//! Customers: look-up with recent events and orders, ID-Mapping (identify, merge, undo) and
//! erasure of personal data.

use super::bounded;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::views::{CustomerView, OrderView};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::ids::{id_problem, DeviceId, UserId};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_service::Update;
use shopgrowth_store::records::IdentityLink;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// How many recent events to include (0–500, default 20).
    pub events: Option<i64>,
    /// How many recent orders to include (0–100, default 10).
    pub orders: Option<i64>,
}

/// A customer with their recent events and orders, following ID-Mapping: the events of devices
/// that logged in as them and of users merged into them. Personal data is masked unless the key
/// has the `pii` scope.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "customers",
    params(("user_id" = String, Path, description = "any user id of the customer"), CustomerQuery),
    security(("api_key" = [])),
    responses((status = 200, body = CustomerView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CustomerQuery>,
) -> ApiResult<Json<CustomerView>> {
    caller.require(Scope::Read)?;
    let events = bounded("events", q.events, 20, 500)?;
    let orders = bounded("orders", q.orders, 10, 100)?;
    let customer = state
        .store
        .customer(UserId(user_id.clone()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {user_id:?} not found")))?;
    let recent_events = state
        .store
        .recent_events(&customer, events)
        .await?
        .into_iter()
        .map(|e| e.event)
        .collect();
    let recent_orders = state
        .store
        .recent_orders(&customer, orders)
        .await?
        .into_iter()
        .map(OrderView::from)
        .collect();
    let links = state.store.links_of(&customer).await?;
    Ok(Json(CustomerView::build(
        customer,
        recent_events,
        recent_orders,
        links,
        &state.cipher,
        caller.sees_pii(),
    )))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    pub device_id: String,
    pub user_id: String,
}

fn check_ids(pairs: &[(&str, &str)]) -> ApiResult<()> {
    let errors: Vec<FieldError> = pairs
        .iter()
        .filter_map(|(field, v)| id_problem(v).map(|r| FieldError::new(*field, r)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("invalid ids", errors))
    }
}

/// An anonymous device logged in as a user: its past and future anonymous events belong to the
/// user. Idempotent; a device stays with the first user it logged in as.
#[utoipa::path(post, path = "/api/v1/identify", tag = "customers", request_body = IdentifyRequest,
    security(("api_key" = [])),
    responses((status = 200, body = IdentityLink), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn identify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IdentifyRequest>,
) -> ApiResult<Json<IdentityLink>> {
    caller.require(Scope::Ingest)?;
    check_ids(&[("device_id", &req.device_id), ("user_id", &req.user_id)])?;
    let now = Timestamp::now().0;
    let user = req.user_id.clone();
    let link = state
        .store
        .link_device(
            DeviceId(req.device_id),
            UserId(req.user_id),
            "identify".into(),
            now,
        )
        .await?;
    // Apps identify at every login; a device already linked changes nothing, and only a link
    // made by this call moves the device's history into the user's profile. (Two calls for the
    // same device in the same millisecond may both rebuild: harmless.)
    if link.created_at == now && link.target_user_id == user {
        state.audience.notify(Update::Rebuild);
    }
    Ok(Json(link))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The user id of the customer to merge into.
    pub into: String,
}

/// Merge a user into another customer by hand (an operator decision). Recorded and undoable.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/merge", tag = "customers", request_body = MergeRequest,
    params(("user_id" = String, Path, description = "the user merged away")),
    security(("api_key" = [])),
    responses((status = 201, body = IdentityLink), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> ApiResult<(StatusCode, Json<IdentityLink>)> {
    caller.require(Scope::Admin)?;
    check_ids(&[("into", &req.into)])?;
    if req.into == user_id {
        return Err(ApiError::invalid(
            "a user cannot be merged into itself",
            vec![FieldError::new("into", "equals the user")],
        ));
    }
    let link = state
        .store
        .merge_users(
            UserId(user_id),
            UserId(req.into),
            "manual".into(),
            Timestamp::now().0,
        )
        .await?;
    state.audience.notify(Update::Rebuild);
    Ok((StatusCode::CREATED, Json(link)))
}

/// Undo a merge (device login or user merge). The link stays in the history, marked undone.
#[utoipa::path(post, path = "/api/v1/identity-links/{link_id}/undo", tag = "customers",
    params(("link_id" = i64, Path, description = "the identity link")),
    security(("api_key" = [])),
    responses((status = 200, body = IdentityLink), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn undo_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(link_id): ApiPath<i64>,
) -> ApiResult<Json<IdentityLink>> {
    caller.require(Scope::Admin)?;
    let link = state.store.undo_link(link_id, Timestamp::now().0).await?;
    state.audience.notify(Update::Rebuild);
    Ok(Json(link))
}

/// Erase a user's personal data (PIPL/GDPR): phone, email, name, birthday and attributes are
/// deleted; the id and behaviour stay for aggregate statistics. Needs `admin` and `pii`.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/personal-data", tag = "customers",
    params(("user_id" = String, Path, description = "the user")),
    security(("api_key" = [])),
    responses((status = 204, description = "erased"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    caller.require(Scope::Pii)?;
    if state
        .store
        .erase_personal_data(UserId(user_id.clone()), Timestamp::now().0)
        .await?
    {
        tracing::info!(key_id = %caller.0.id, "personal data erased");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("user {user_id:?} not found")))
    }
}
