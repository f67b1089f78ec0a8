//! Group buying (拼团): deals (scope `admin`), opening and joining groups from the shop's backend
//! (scope `ingest`, each idempotent by the order id), progress (scope `read`). A group fills by
//! conditional writes and completes with its last seat; when its deadline passes unfilled, the
//! server's sweeper fails it and marks every member refunded, once.

use super::created_or_ok;
use super::PageQuery;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_store::records::{GroupDealRecord, GroupMemberRecord, GroupRecord, Joined};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupDealRequest {
    /// The deal id: the idempotency key.
    pub id: String,
    pub sku: String,
    /// Members a group needs, the leader included (2–100).
    pub group_size: i64,
    /// Minor units.
    pub leader_price: i64,
    pub member_price: i64,
    /// Seconds a group has to fill after it is opened (default 86,400).
    #[serde(default = "one_day")]
    pub window_seconds: i64,
    #[schema(value_type = String)]
    pub starts_at: Timestamp,
    #[schema(value_type = String)]
    pub ends_at: Timestamp,
}

impl GroupDealRequest {
    /// Checks the deal and makes its record; each problem names its field.
    pub fn record(&self, now: i64) -> Result<GroupDealRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > 100 {
            errors.push(FieldError::new("id", "1 to 100 characters"));
        }
        if !(2..=100).contains(&self.group_size) {
            errors.push(FieldError::new("group_size", "between 2 and 100"));
        }
        for (field, v) in [
            ("leader_price", self.leader_price),
            ("member_price", self.member_price),
        ] {
            if v < 0 {
                errors.push(FieldError::new(field, "must not be negative"));
            }
        }
        if !(60..=30 * 86_400).contains(&self.window_seconds) {
            errors.push(FieldError::new(
                "window_seconds",
                "between 60 seconds and 30 days",
            ));
        }
        if self.ends_at <= self.starts_at {
            errors.push(FieldError::new("ends_at", "must be after starts_at"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(GroupDealRecord {
            id: self.id.clone(),
            sku: self.sku.clone(),
            group_size: self.group_size,
            leader_price: self.leader_price,
            member_price: self.member_price,
            window_ms: self.window_seconds * 1000,
            starts_at: self.starts_at.0,
            ends_at: self.ends_at.0,
            created_at: now,
        })
    }
}

fn one_day() -> i64 {
    86_400
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDealView {
    pub id: String,
    pub sku: String,
    pub group_size: i64,
    pub leader_price: i64,
    pub member_price: i64,
    pub window_seconds: i64,
    pub starts_at: String,
    pub ends_at: String,
}

impl From<GroupDealRecord> for GroupDealView {
    fn from(d: GroupDealRecord) -> Self {
        GroupDealView {
            id: d.id,
            sku: d.sku,
            group_size: d.group_size,
            leader_price: d.leader_price,
            member_price: d.member_price,
            window_seconds: d.window_ms / 1000,
            starts_at: Timestamp(d.starts_at).to_rfc3339(),
            ends_at: Timestamp(d.ends_at).to_rfc3339(),
        }
    }
}

/// Create a deal; the same id again changes nothing (200).
#[utoipa::path(post, path = "/api/v1/group-deals", tag = "promotions", request_body = GroupDealRequest,
    security(("api_key" = [])),
    responses((status = 201, body = GroupDealView), (status = 200, body = GroupDealView), (status = 400, body = Problem)))]
pub async fn create_deal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<GroupDealRequest>,
) -> ApiResult<(StatusCode, Json<GroupDealView>)> {
    caller.require(Scope::Admin)?;
    let record = req
        .record(Timestamp::now().0)
        .map_err(|errors| ApiError::invalid("the group deal is not valid", errors))?;
    let created = state.store.create_group_deal(record).await?;
    let deal = state
        .store
        .group_deal(req.id.clone())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("group deal {:?} vanished", req.id)))?;
    let status = created_or_ok(created);
    Ok((status, Json(deal.into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub order_id: String,
    pub price: i64,
    pub leader: bool,
    /// `joined`, or `refunded` when the group failed.
    pub state: String,
    pub joined_at: String,
}

impl From<GroupMemberRecord> for MemberView {
    fn from(m: GroupMemberRecord) -> Self {
        MemberView {
            user_id: m.user_id,
            order_id: m.order_id,
            price: m.price,
            leader: m.leader,
            state: m.state,
            joined_at: Timestamp(m.joined_at).to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: String,
    pub deal_id: String,
    pub leader: String,
    pub size: i64,
    pub joined: i64,
    /// Seats left (0 once complete).
    pub missing: i64,
    /// `open`, `complete` or `failed`.
    pub state: String,
    pub deadline: String,
    /// Until the deadline while the group is open (the countdown a group page shows); 0 once it
    /// is complete, failed or past its deadline.
    pub seconds_left: i64,
    pub members: Vec<MemberView>,
}

/// A group's progress as the API and the CLI show it.
pub fn group_view(g: GroupRecord, members: Vec<GroupMemberRecord>) -> GroupView {
    let now = Timestamp::now().0;
    GroupView {
        missing: (g.size - g.joined).max(0),
        seconds_left: if g.state == "open" {
            ((g.deadline - now) / 1000).max(0)
        } else {
            0
        },
        id: g.id,
        deal_id: g.deal_id,
        leader: g.leader,
        size: g.size,
        joined: g.joined,
        state: g.state,
        deadline: Timestamp(g.deadline).to_rfc3339(),
        members: members.into_iter().map(MemberView::from).collect(),
    }
}

async fn load_group(state: &AppState, id: &str) -> ApiResult<GroupView> {
    let (g, members) = state
        .store
        .group(id.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no group {id:?}")))?;
    Ok(group_view(g, members))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenGroupRequest {
    pub group_id: String,
    /// The leader.
    pub user_id: String,
    /// The leader's order: the idempotency key.
    pub order_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub user_id: String,
    /// The member's order: the idempotency key.
    pub order_id: String,
}

fn joined(result: Joined) -> StatusCode {
    match result {
        Joined::New(_) => StatusCode::CREATED,
        Joined::Duplicate(_) => StatusCode::OK,
    }
}

fn check(fields: &[(&str, &str)]) -> ApiResult<()> {
    let errors: Vec<FieldError> = fields
        .iter()
        .filter(|(_, v)| v.trim().is_empty() || v.len() > 100)
        .map(|(f, _)| FieldError::new(*f, "1 to 100 characters"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("the request is not valid", errors))
    }
}

/// Open a group of a running deal as its leader; the same order again is the same group (200).
#[utoipa::path(post, path = "/api/v1/group-deals/{id}/groups", tag = "promotions", request_body = OpenGroupRequest,
    params(("id" = String, Path, description = "the deal")), security(("api_key" = [])),
    responses((status = 201, body = GroupView), (status = 200, body = GroupView), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(deal_id): ApiPath<String>,
    ApiJson(req): ApiJson<OpenGroupRequest>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    caller.require(Scope::Ingest)?;
    check(&[
        ("group_id", &req.group_id),
        ("user_id", &req.user_id),
        ("order_id", &req.order_id),
    ])?;
    let result = state
        .store
        .open_group(
            deal_id,
            req.group_id.clone(),
            req.user_id,
            req.order_id,
            Timestamp::now().0,
        )
        .await?;
    Ok((
        joined(result),
        Json(load_group(&state, &req.group_id).await?),
    ))
}

/// Join an open group before its deadline; 409 when it is full or past its deadline.
#[utoipa::path(post, path = "/api/v1/groups/{id}/members", tag = "promotions", request_body = JoinRequest,
    params(("id" = String, Path, description = "the group")), security(("api_key" = [])),
    responses((status = 201, body = GroupView), (status = 200, body = GroupView), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group_id): ApiPath<String>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    caller.require(Scope::Ingest)?;
    check(&[("user_id", &req.user_id), ("order_id", &req.order_id)])?;
    let result = state
        .store
        .join_group(
            group_id.clone(),
            req.user_id,
            req.order_id,
            Timestamp::now().0,
        )
        .await?;
    Ok((joined(result), Json(load_group(&state, &group_id).await?)))
}

/// A group's progress: seats taken and missing, time left, members and their prices.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the group")), security(("api_key" = [])),
    responses((status = 200, body = GroupView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<GroupView>> {
    caller.require(Scope::Read)?;
    Ok(Json(load_group(&state, &id).await?))
}

/// Every group-buying deal, by id, a page at a time (`?after=LAST_ID&limit=N`).
#[utoipa::path(get, path = "/api/v1/group-deals", tag = "promotions", params(PageQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<GroupDealView>), (status = 400, body = Problem)))]
pub async fn list_deals(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<GroupDealView>>> {
    caller.require(Scope::Read)?;
    let (after, limit) = page.bounds()?;
    let deals = state.store.group_deals_after(after, limit).await?;
    Ok(Json(deals.into_iter().map(GroupDealView::from).collect()))
}
