//! Campaigns (scope `admin` to change, `read` to look): a promotion with a schedule, a target
//! segment and a budget, moved through draft → scheduled → running ⇄ paused → ended. Every change
//! is recorded; edits need the version the editor saw, so two operators cannot overwrite each
//! other unknowingly.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Caller};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_promo::budget::Period;
use shopgrowth_promo::campaign::{effective, CampaignState};
use shopgrowth_promo::pricing::Promotion;
use shopgrowth_service::promotions::{campaign_budget_scope as budget_scope, campaign_spent};
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeView>,
}

async fn spent(state: &AppState, campaign: &str) -> ApiResult<i64> {
    Ok(campaign_spent(&state.store, campaign).await?)
}

/// Makes the campaign's budget its scope's total limit.
async fn set_budget(state: &AppState, c: &CampaignRecord) -> ApiResult<()> {
    if let Some(budget) = c.budget {
        state
            .store
            .set_budget_limit(budget_scope(&c.id), Period::Total.as_str().into(), budget)
            .await?;
    }
    Ok(())
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
        changes,
    }
}

/// Checks a campaign and returns its record (promotion JSON normalised, id set to the campaign's).
fn record(id: &str, req: &CampaignRequest, now: i64) -> ApiResult<CampaignRecord> {
    let mut errors = Vec::new();
    if id.trim().is_empty() || id.len() > 100 {
        errors.push(FieldError::new("id", "1 to 100 characters"));
    }
    let mut promotion = req.promotion.clone();
    if let Some(o) = promotion.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.entry("name").or_insert(json!(req.name));
    }
    let parsed = serde_path_to_error::deserialize::<_, Promotion>(&promotion);
    if let Err(e) = &parsed {
        errors.push(FieldError::new(
            format!("promotion.{}", e.path()),
            e.inner().to_string(),
        ));
    }
    if let (Some(s), Some(e)) = (req.starts_at, req.ends_at) {
        if e <= s {
            errors.push(FieldError::new("ends_at", "must be after starts_at"));
        }
    }
    if req.budget.is_some_and(|b| b < 0) {
        errors.push(FieldError::new("budget", "must not be negative"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("the campaign is not valid", errors));
    }
    Ok(CampaignRecord {
        id: id.to_owned(),
        name: req.name.clone(),
        state: "draft".into(),
        promotion: serde_json::to_string(&promotion)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        starts_at: req.starts_at.map(|t| t.0),
        ends_at: req.ends_at.map(|t| t.0),
        segment: req.segment.clone(),
        budget: req.budget,
        spent: 0,
        version: 1,
        created_at: now,
        updated_at: now,
    })
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
    let rec = record(&req.id, &req.campaign, now)?;
    let change = json!({"action": "created", "by": caller.0.id}).to_string();
    let created = state.store.create_campaign(rec, change).await?;
    let stored = state
        .store
        .campaign(req.id.clone())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("campaign {:?} vanished", req.id)))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
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
            .map(|c| {
                let spent = c.spent;
                view_spent(c, spent, Vec::new())
            })
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
    Path(id): Path<String>,
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditCampaign>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    let now = Timestamp::now().0;
    let rec = record(&id, &req.campaign, now)?;
    let before = state
        .store
        .campaign(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign {id:?}")))?;
    let mut changed = serde_json::Map::new();
    let mut note = |field: &str, was: serde_json::Value, now: serde_json::Value| {
        if was != now {
            changed.insert(field.into(), json!({"from": was, "to": now}));
        }
    };
    note("name", json!(before.name), json!(rec.name));
    note(
        "promotion",
        serde_json::from_str(&before.promotion).unwrap_or_default(),
        serde_json::from_str(&rec.promotion).unwrap_or_default(),
    );
    note("starts_at", json!(before.starts_at), json!(rec.starts_at));
    note("ends_at", json!(before.ends_at), json!(rec.ends_at));
    note("segment", json!(before.segment), json!(rec.segment));
    note("budget", json!(before.budget), json!(rec.budget));
    let change =
        json!({"action": "edited", "by": caller.0.id, "while": before.state, "fields": changed})
            .to_string();
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Transition>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    let to = CampaignState::parse(&req.to)
        .filter(|s| *s != CampaignState::Draft)
        .ok_or_else(|| {
            ApiError::invalid(
                "unknown target state",
                vec![FieldError::new(
                    "to",
                    "one of scheduled, running, paused, ended",
                )],
            )
        })?;
    let now = Timestamp::now().0;
    if to == CampaignState::Scheduled {
        let c = state.store.campaign(id.clone()).await?;
        if c.as_ref()
            .is_some_and(|c| c.starts_at.is_none_or(|s| s <= now))
        {
            return Err(ApiError::invalid(
                "a campaign is scheduled for a start time in the future",
                vec![FieldError::new(
                    "to",
                    "set starts_at in the future first, or start it now",
                )],
            ));
        }
    }
    let change = json!({"action": "state", "to": to.as_str(), "by": caller.0.id}).to_string();
    let c = state
        .store
        .transition_campaign(id, to.as_str(), to.allowed_from(), change, now)
        .await?;
    Ok(Json(view(&state, c, Vec::new()).await?))
}
