//! Campaigns (scope `admin` to change, `read` to look): a promotion with a schedule, a target
//! segment and a budget, moved through draft → scheduled → running ⇄ paused → ended. Every change
//! is recorded; edits need the version the editor saw, so two operators cannot overwrite each
//! other unknowingly.

use super::created_or_ok;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shopgrowth_core::time::Timestamp;
use shopgrowth_promo::campaign::{effective, CampaignState, Recurrence};
use shopgrowth_service::promotions::{
    campaign_record, campaign_spent, edit_change, saved_segment_names, set_campaign_budget,
    transition_target, CampaignInput, Refused,
};
use shopgrowth_store::records::CampaignRecord;
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    pub name: String,
    /// The promotion: rule, scope, stacking, priority, base, audience, code (its id is the
    /// campaign's).
    #[schema(value_type = Object)]
    pub promotion: serde_json::Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ends_at: Option<Timestamp>,
    /// Only members of this saved segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// Most discount the campaign may give in all, minor units.
    #[serde(default)]
    pub budget: Option<i64>,
    /// When it applies inside its window, in the shop's time zone: `weekdays` (1 Monday to 7
    /// Sunday), `days_of_month` (1 to 31), `from` and `to` (`HH:MM`); e.g. 会员日 `{"weekdays":
    /// [3], "from": "20:00", "to": "22:00"}`. None for all the time.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub recurrence: Option<Recurrence>,
    /// Orders one customer may get its discount on (每人限享 N 次), at least 1; none for no limit.
    #[serde(default)]
    pub per_customer_limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// The campaign id: the idempotency key.
    pub id: String,
    #[serde(flatten)]
    pub campaign: CampaignRequest,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditCampaign {
    /// The version the edit is based on (from the last read).
    pub version: i64,
    #[serde(flatten)]
    pub campaign: CampaignRequest,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// `scheduled`, `running`, `paused` or `ended`.
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub version: i64,
    #[schema(value_type = Object)]
    pub change: serde_json::Value,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    /// The stored state.
    pub state: String,
    /// The state that holds now, time included (a scheduled campaign past its start is running).
    pub effective_state: String,
    #[schema(value_type = Object)]
    pub promotion: serde_json::Value,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub segment: Option<String>,
    pub budget: Option<i64>,
    pub spent: i64,
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub recurrence: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_customer_limit: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeView>,
}

async fn spent(state: &AppState, campaign: &str) -> ApiResult<i64> {
    Ok(campaign_spent(&state.store, campaign).await?)
}

/// Makes the campaign's budget its scope's total limit.
async fn set_budget(state: &AppState, c: &CampaignRecord) -> ApiResult<()> {
    Ok(set_campaign_budget(&state.store, c).await?)
}

async fn view(
    state: &AppState,
    c: CampaignRecord,
    changes: Vec<ChangeView>,
) -> ApiResult<CampaignView> {
    let spent = spent(state, &c.id).await?;
    Ok(view_spent(c, spent, changes))
}

/// A campaign as the API shows it, given what it has spent.
fn view_spent(c: CampaignRecord, spent: i64, changes: Vec<ChangeView>) -> CampaignView {
    let stored = CampaignState::parse(&c.state).unwrap_or(CampaignState::Draft);
    CampaignView {
        effective_state: effective(stored, c.starts_at, c.ends_at, Timestamp::now().0)
            .as_str()
            .to_owned(),
        id: c.id,
        name: c.name,
        state: c.state,
        promotion: serde_json::from_str(&c.promotion).unwrap_or(serde_json::Value::Null),
        starts_at: c.starts_at.map(|t| Timestamp(t).to_rfc3339()),
        ends_at: c.ends_at.map(|t| Timestamp(t).to_rfc3339()),
        segment: c.segment,
        budget: c.budget,
        spent,
        version: c.version,
        recurrence: c
            .recurrence
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        per_customer_limit: c.per_customer_limit,
        changes,
    }
}

impl CampaignRequest {
    /// The campaign as the service checks it.
    pub fn input(&self) -> CampaignInput {
        CampaignInput {
            name: self.name.clone(),
            promotion: self.promotion.clone(),
            starts_at: self.starts_at.map(|t| t.0),
            ends_at: self.ends_at.map(|t| t.0),
            segment: self.segment.clone(),
            budget: self.budget,
            recurrence: self.recurrence.clone(),
            per_customer_limit: self.per_customer_limit,
        }
    }
}

fn refused(r: Refused) -> ApiError {
    ApiError::invalid(r.title, r.errors)
}

/// Checks a campaign and returns its record (promotion JSON normalised, id set to the campaign's).
async fn record(
    state: &AppState,
    id: &str,
    req: &CampaignRequest,
    now: i64,
) -> ApiResult<CampaignRecord> {
    let segments = saved_segment_names(&state.store).await?;
    campaign_record(id, &req.input(), &segments, now).map_err(refused)
}

/// Create a campaign as a draft. The id is the idempotency key: the same id again changes nothing.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "promotions", request_body = CreateCampaign,
    security(("api_key" = [])),
    responses((status = 201, body = CampaignView), (status = 200, description = "already exists", body = CampaignView),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    caller.require(Scope::Admin)?;
    let now = Timestamp::now().0;
    let rec = record(&state, &req.id, &req.campaign, now).await?;
    let change = json!({"action": "created", "by": caller.0.id}).to_string();
    let created = state.store.create_campaign(rec, change).await?;
    let stored = state
        .store
        .campaign(req.id.clone())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("campaign {:?} vanished", req.id)))?;
    let status = created_or_ok(created);
    set_budget(&state, &stored).await?;
    Ok((status, Json(view(&state, stored, Vec::new()).await?)))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "promotions", security(("api_key" = [])),
    responses((status = 200, body = [CampaignView])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<CampaignView>>> {
    caller.require(Scope::Read)?;
    let all = shopgrowth_service::promotions::campaigns_with_spent(&state.store).await?;
    Ok(Json(
        all.into_iter()
            .map(|(c, spent)| view_spent(c, spent, Vec::new()))
            .collect(),
    ))
}

/// One campaign with every recorded change.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the campaign")), security(("api_key" = [])),
    responses((status = 200, body = CampaignView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Scope::Read)?;
    let c = state
        .store
        .campaign(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign {id:?}")))?;
    let changes = state
        .store
        .campaign_changes(id)
        .await?
        .into_iter()
        .map(|ch| ChangeView {
            version: ch.version,
            change: serde_json::from_str(&ch.change).unwrap_or(serde_json::Value::Null),
            at: Timestamp(ch.at).to_rfc3339(),
        })
        .collect();
    Ok(Json(view(&state, c, changes).await?))
}

/// Edit a campaign (also a running one; the change is recorded with what it was before). The
/// version must be the current one, else 409.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "promotions", request_body = EditCampaign,
    params(("id" = String, Path, description = "the campaign")), security(("api_key" = [])),
    responses((status = 200, body = CampaignView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<EditCampaign>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    let now = Timestamp::now().0;
    let rec = record(&state, &id, &req.campaign, now).await?;
    let before = state
        .store
        .campaign(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign {id:?}")))?;
    let change = edit_change(&before, &rec, &caller.0.id);
    let c = state
        .store
        .edit_campaign(rec, req.version, change, now)
        .await?;
    set_budget(&state, &c).await?;
    Ok(Json(view(&state, c, Vec::new()).await?))
}

/// Move a campaign: schedule, start, pause, resume or end it (409 when its state does not allow
/// that move).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/transition", tag = "promotions", request_body = Transition,
    params(("id" = String, Path, description = "the campaign")), security(("api_key" = [])),
    responses((status = 200, body = CampaignView), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Transition>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    let now = Timestamp::now().0;
    let to = match transition_target(&req.to, None, now).map_err(refused)? {
        CampaignState::Scheduled => {
            let c = state.store.campaign(id.clone()).await?;
            transition_target(&req.to, c.as_ref(), now).map_err(refused)?
        }
        to => to,
    };
    let change = json!({"action": "state", "to": to.as_str(), "by": caller.0.id}).to_string();
    let c = state
        .store
        .transition_campaign(id, to.as_str(), to.allowed_from(), change, now)
        .await?;
    Ok(Json(view(&state, c, Vec::new()).await?))
}
