//! Budgets and limits (docs/budgets.md): limits per scope and period kind (scope `admin`), usage
//! (scope `read`), and spends and reverts by the shop's backend for its own scopes (scope
//! `ingest`). Spending is all-or-nothing across the named budgets, by conditional writes,
//! idempotent by the caller's key; a revert gives a spend back once.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_promo::budget::Period;
use shopgrowth_store::records::{BudgetLine, Spent};
use utoipa::ToSchema;

/// The shop's local date now: daily, weekly and monthly budgets follow its calendar.
pub fn today(state: &AppState) -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&super::pricing::shop_tz(state))
        .date_naive()
}

/// The budget lines of `scope` for every period kind, in the periods `date` falls in.
pub fn lines(scope: &str, date: chrono::NaiveDate) -> Vec<BudgetLine> {
    Period::ALL
        .into_iter()
        .map(|p| BudgetLine {
            scope: scope.to_string(),
            period: p.as_str().to_string(),
            period_key: p.key(date),
        })
        .collect()
}

fn check_scope(scope: &str, errors: &mut Vec<FieldError>, field: &str) {
    let valid = scope.split_once(':').is_some_and(|(kind, id)| {
        matches!(
            kind,
            "campaign" | "coupon" | "customer" | "device" | "store" | "shop"
        ) && !id.is_empty()
            && id.len() <= 200
    });
    if !valid {
        errors.push(FieldError::new(
            field,
            format!("{scope:?} is not KIND:ID with KIND one of campaign, coupon, customer, device, store, shop"),
        ));
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodUsage {
    /// `total`, `day`, `week` or `month`.
    pub period: String,
    /// The current period of that kind, e.g. `2026-11-24`.
    pub key: String,
    pub used: i64,
    /// `None`: no limit, usage is only counted.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    pub scope: String,
    pub periods: Vec<PeriodUsage>,
}

async fn view(state: &AppState, scope: &str) -> ApiResult<BudgetView> {
    let limits = state.store.budget_limits(scope.to_string()).await?;
    let mut periods = Vec::new();
    for line in lines(scope, today(state)) {
        let used = state.store.budget_used(line.clone()).await?;
        let limit = limits.iter().find(|(p, _)| *p == line.period).map(|l| l.1);
        periods.push(PeriodUsage {
            period: line.period,
            key: line.period_key,
            used,
            limit,
        });
    }
    Ok(BudgetView {
        scope: scope.to_string(),
        periods,
    })
}

/// Set the limit of a scope for a period kind.
#[utoipa::path(put, path = "/api/v1/budgets/{scope}/limits/{period}", tag = "promotions", request_body = LimitRequest,
    params(("scope" = String, Path, description = "e.g. campaign:d11, coupon:new10, customer:u1"),
        ("period" = String, Path, description = "total, day, week or month")),
    security(("api_key" = [])),
    responses((status = 200, body = BudgetView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn set_limit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, period)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<LimitRequest>,
) -> ApiResult<Json<BudgetView>> {
    caller.require(Scope::Admin)?;
    let mut errors = Vec::new();
    check_scope(&scope, &mut errors, "scope");
    if Period::parse(&period).is_none() {
        errors.push(FieldError::new(
            "period",
            format!("{period:?} is not total, day, week or month"),
        ));
    }
    if req.amount < 0 {
        errors.push(FieldError::new("amount", "must not be negative"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("the limit is not valid", errors));
    }
    state
        .store
        .set_budget_limit(scope.clone(), period, req.amount)
        .await?;
    Ok(Json(view(&state, &scope).await?))
}

/// A scope's usage in the current periods, with its limits.
#[utoipa::path(get, path = "/api/v1/budgets/{scope}", tag = "promotions",
    params(("scope" = String, Path, description = "e.g. coupon:new10")), security(("api_key" = [])),
    responses((status = 200, body = BudgetView), (status = 400, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(scope): ApiPath<String>,
) -> ApiResult<Json<BudgetView>> {
    caller.require(Scope::Read)?;
    let mut errors = Vec::new();
    check_scope(&scope, &mut errors, "scope");
    if !errors.is_empty() {
        return Err(ApiError::invalid("not a budget scope", errors));
    }
    Ok(Json(view(&state, &scope).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendRequest {
    /// The idempotency key, e.g. the order id and what it spends on.
    pub key: String,
    /// Every period of each scope is spent from, all or none.
    pub scopes: Vec<String>,
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpendResult {
    pub key: String,
    /// `spent`, or `duplicate` when this key was spent before.
    pub status: &'static str,
}

/// Spend from budgets; 409 (nothing spent) when any would go over its limit.
#[utoipa::path(post, path = "/api/v1/budgets/spend", tag = "promotions", request_body = SpendRequest,
    security(("api_key" = [])),
    responses((status = 200, body = SpendResult), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn spend(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SpendRequest>,
) -> ApiResult<Json<SpendResult>> {
    caller.require(Scope::Ingest)?;
    let mut errors = Vec::new();
    if req.key.trim().is_empty() || req.key.len() > 200 {
        errors.push(FieldError::new("key", "1 to 200 characters"));
    }
    if req.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "at least one"));
    }
    for (i, s) in req.scopes.iter().enumerate() {
        check_scope(s, &mut errors, &format!("scopes[{i}]"));
    }
    if req.amount <= 0 {
        errors.push(FieldError::new("amount", "must be positive"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("the spend is not valid", errors));
    }
    let date = today(&state);
    let all = req.scopes.iter().flat_map(|s| lines(s, date)).collect();
    let spent = state
        .store
        .spend_budget(req.key.clone(), all, req.amount, Timestamp::now().0, None)
        .await?;
    Ok(Json(SpendResult {
        key: req.key,
        status: match spent {
            Spent::New => "spent",
            Spent::Duplicate => "duplicate",
        },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevertResult {
    pub key: String,
    /// False when there was nothing (left) to give back.
    pub reverted: bool,
}

/// Give a spend back (a refund or cancellation): once, whatever the number of calls.
#[utoipa::path(post, path = "/api/v1/budgets/revert", tag = "promotions", request_body = RevertRequest,
    security(("api_key" = [])), responses((status = 200, body = RevertResult)))]
pub async fn revert(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RevertRequest>,
) -> ApiResult<Json<RevertResult>> {
    caller.require(Scope::Ingest)?;
    let reverted = state
        .store
        .revert_budget(req.key.clone(), Timestamp::now().0)
        .await?;
    Ok(Json(RevertResult {
        key: req.key,
        reverted,
    }))
}
