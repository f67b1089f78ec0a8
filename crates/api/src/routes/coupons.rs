//! Coupons: templates (scope `admin`), claims and redemptions (scope `ingest`, called by the
//! shop's backend for its customers), and look-up (scope `read`). Every write is idempotent by a
//! key the caller gives: the template id, the claim key, the order id.

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
use shopgrowth_core::pii::PiiKind;
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_store::records::{
    Claimed, CouponGrant, CouponRecord, CouponTemplateRecord, HolderLimit, Redeemed,
};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub id: String,
    pub name: String,
    /// What the coupon gives, as a pricing rule: `{"type": "threshold", "tiers": [{"threshold":
    /// 10000, "off": 1000}]}` (满100减10), `{"type": "percent_off", "percent_bp": 1500, "cap": 3000}`, …
    #[schema(value_type = Object)]
    pub rule: shopgrowth_promo::pricing::Rule,
    /// Coupons that may be issued in all; none for no limit.
    #[serde(default)]
    pub quota: Option<i64>,
    #[serde(default = "one")]
    pub per_user_limit: i64,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub valid_from: Option<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub valid_until: Option<Timestamp>,
    /// Days a coupon stays valid after it is claimed.
    #[serde(default)]
    pub valid_days: Option<i64>,
    /// Claims one device may make (claims must then name their `device_id`); none for no limit.
    #[serde(default)]
    pub per_device_limit: Option<i64>,
    /// Claims one phone number may make (claims must then give the `phone`); none for no limit.
    #[serde(default)]
    pub per_phone_limit: Option<i64>,
    /// Show it in the coupon centre (领券中心), where customers claim it themselves.
    #[serde(default)]
    pub in_centre: bool,
    /// Issue it by itself: `new_user` (once to each user created from now on) or `event:TYPE`
    /// (on each accepted event of that type with a user, e.g. `event:add_to_cart`), within the
    /// quota and the per-user limit.
    #[serde(default)]
    pub issue_on: Option<String>,
    /// The cart lines its coupons apply to: `{"skus": [...], "categories": [...], "stores":
    /// [...], "exclude_skus": [...], "exclude_categories": [...]}`; none for the whole cart.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scope: Option<shopgrowth_promo::pricing::Scope>,
    /// Put before each of its codes, so a code names its campaign (`DOUBLE11-`): 1 to 12 capital
    /// letters, digits or hyphens.
    #[serde(default)]
    pub code_prefix: Option<String>,
}

/// Longest coupon code prefix.
const MAX_CODE_PREFIX: usize = 12;

fn one() -> i64 {
    1
}

impl TemplateRequest {
    /// Checks the template and makes its record; each problem names its field.
    pub fn record(&self, now: i64) -> Result<CouponTemplateRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > 100 {
            errors.push(FieldError::new("id", "1 to 100 characters"));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            errors.push(FieldError::new("name", "1 to 100 characters"));
        }
        errors.extend(self.rule.problems().into_iter().map(|e| e.under("rule")));
        if self.quota.is_some_and(|q| q < 0) {
            errors.push(FieldError::new("quota", "must not be negative"));
        }
        if self.per_user_limit < 1 {
            errors.push(FieldError::new("per_user_limit", "must be at least 1"));
        }
        for (field, limit) in [
            ("per_device_limit", self.per_device_limit),
            ("per_phone_limit", self.per_phone_limit),
        ] {
            if limit.is_some_and(|l| l < 1) {
                errors.push(FieldError::new(field, "must be at least 1"));
            }
        }
        if let Some(on) = &self.issue_on {
            if Trigger::parse(on).is_none() {
                errors.push(FieldError::new(
                    "issue_on",
                    "new_user, or event: and an event type (view, favorite, add_to_cart, …)",
                ));
            }
        }
        if self.valid_days.is_some_and(|d| d < 1) {
            errors.push(FieldError::new("valid_days", "must be at least 1"));
        }
        if let Some(prefix) = &self.code_prefix {
            let fits = (1..=MAX_CODE_PREFIX).contains(&prefix.len())
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if !fits {
                errors.push(FieldError::new(
                    "code_prefix",
                    format!("1 to {MAX_CODE_PREFIX} capital letters, digits or hyphens"),
                ));
            }
        }
        if let (Some(f), Some(u)) = (self.valid_from, self.valid_until) {
            if u <= f {
                errors.push(FieldError::new("valid_until", "must be after valid_from"));
            }
        }
        let rule =
            serde_json::to_string(&self.rule).map_err(|e| FieldError::new("rule", e.to_string()));
        let scope = self
            .scope
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| FieldError::new("scope", e.to_string()));
        errors.extend(rule.as_ref().err().cloned());
        errors.extend(scope.as_ref().err().cloned());
        let (Ok(rule), Ok(scope), true) = (rule, scope, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(CouponTemplateRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            rule,
            quota: self.quota,
            issued: 0,
            per_user_limit: self.per_user_limit,
            valid_from: self.valid_from.map(|t| t.0),
            valid_until: self.valid_until.map(|t| t.0),
            valid_days: self.valid_days,
            created_at: now,
            per_device_limit: self.per_device_limit,
            per_phone_limit: self.per_phone_limit,
            in_centre: self.in_centre,
            issue_on: self.issue_on.clone(),
            scope,
            code_prefix: self.code_prefix.clone(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    pub quota: Option<i64>,
    pub issued: i64,
    pub per_user_limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_device_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_phone_limit: Option<i64>,
    pub in_centre: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub scope: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_prefix: Option<String>,
}

impl From<CouponTemplateRecord> for TemplateView {
    fn from(t: CouponTemplateRecord) -> Self {
        TemplateView {
            id: t.id,
            name: t.name,
            rule: serde_json::from_str(&t.rule).unwrap_or(serde_json::Value::Null),
            quota: t.quota,
            issued: t.issued,
            per_user_limit: t.per_user_limit,
            per_device_limit: t.per_device_limit,
            per_phone_limit: t.per_phone_limit,
            in_centre: t.in_centre,
            issue_on: t.issue_on,
            scope: t.scope.and_then(|s| serde_json::from_str(&s).ok()),
            code_prefix: t.code_prefix,
        }
    }
}

/// Create a coupon template. The id is the idempotency key: the same id again changes nothing.
#[utoipa::path(post, path = "/api/v1/coupon-templates", tag = "promotions", request_body = TemplateRequest,
    security(("api_key" = [])),
    responses((status = 201, body = TemplateView), (status = 200, description = "already exists", body = TemplateView),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TemplateRequest>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    caller.require(Scope::Admin)?;
    let record = req
        .record(Timestamp::now().0)
        .map_err(|errors| ApiError::invalid("the coupon template is not valid", errors))?;
    let created = state.store.create_coupon_template(record).await?;
    let stored = state
        .store
        .coupon_template(req.id.clone())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("template {:?} vanished", req.id)))?;
    let status = created_or_ok(created);
    Ok((status, Json(stored.into())))
}

#[utoipa::path(get, path = "/api/v1/coupon-templates/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the template")), security(("api_key" = [])),
    responses((status = 200, body = TemplateView), (status = 404, body = Problem)))]
pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TemplateView>> {
    caller.require(Scope::Read)?;
    let t = state
        .store
        .coupon_template(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no coupon template {id:?}")))?;
    Ok(Json(t.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub user_id: String,
    /// The caller's idempotency key for this claim (e.g. the request id of the coupon-centre click).
    pub claim_key: String,
    /// The device claiming: needed when the template limits claims per device.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The claimant's phone number: needed when the template limits claims per phone. Only a
    /// keyed hash of it is stored.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponView {
    pub code: String,
    pub template_id: String,
    pub user_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// While `reserved`: when the hold lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
}

impl From<CouponRecord> for CouponView {
    fn from(c: CouponRecord) -> Self {
        CouponView {
            code: c.code,
            template_id: c.template_id,
            user_id: c.user_id,
            state: c.state,
            expires_at: c.expires_at.map(|t| Timestamp(t).to_rfc3339()),
            order_id: c.order_id,
            held_until: c.reserved_until.map(|t| Timestamp(t).to_rfc3339()),
        }
    }
}

/// Claim a coupon for a user: never beyond the template's quota or the user's limit, also under
/// concurrent claims (409 when sold out or at the limit). The same claim key returns the same
/// coupon (200).
#[utoipa::path(post, path = "/api/v1/coupon-templates/{id}/claims", tag = "promotions", request_body = ClaimRequest,
    params(("id" = String, Path, description = "the template")), security(("api_key" = [])),
    responses((status = 201, body = CouponView), (status = 200, description = "the same claim again", body = CouponView),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<(StatusCode, Json<CouponView>)> {
    caller.require(Scope::Ingest)?;
    let errors: Vec<FieldError> = [("user_id", &req.user_id), ("claim_key", &req.claim_key)]
        .into_iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(field, _)| FieldError::new(field, "must not be empty"))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "a claim needs a user and a claim key",
            errors,
        ));
    }
    let template = state
        .store
        .coupon_template(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no coupon template {id:?}")))?;
    let holder_limits = holder_limits(&state, &template, &req)?;
    let code = shopgrowth_promo::coupon_code(&mut rand::rng(), Timestamp::now().0);
    match state
        .store
        .claim_coupon(
            id,
            req.user_id,
            req.claim_key,
            code,
            holder_limits,
            Timestamp::now().0,
        )
        .await?
    {
        Claimed::New(c) => Ok((StatusCode::CREATED, Json(c.into()))),
        Claimed::Duplicate(c) => Ok((StatusCode::OK, Json(c.into()))),
    }
}

/// The template's per-device and per-phone limits this claim counts against; a limit whose
/// holder the claim does not name is a 400 naming the field.
fn holder_limits(
    state: &AppState,
    template: &CouponTemplateRecord,
    req: &ClaimRequest,
) -> ApiResult<Vec<HolderLimit>> {
    let mut limits = Vec::new();
    let mut errors = Vec::new();
    if let Some(limit) = template.per_device_limit {
        match req.device_id.as_deref().map(str::trim) {
            Some(device) if !device.is_empty() => limits.push(HolderLimit {
                holder: format!("device:{device}"),
                limit,
                label: format!("device {device:?}"),
            }),
            _ => errors.push(FieldError::new(
                "device_id",
                "required: this coupon limits claims per device",
            )),
        }
    }
    if let Some(limit) = template.per_phone_limit {
        match req
            .phone
            .as_deref()
            .map(shopgrowth_core::pii::normalise_phone)
        {
            Some(Ok(phone)) => {
                let hash = state.cipher.lookup_hash(PiiKind::Phone, &phone);
                limits.push(HolderLimit {
                    holder: format!("phone:{}", hex::encode(&hash)),
                    limit,
                    label: "this phone number".into(),
                });
            }
            Some(Err(reason)) => errors.push(FieldError::new("phone", reason)),
            None => errors.push(FieldError::new(
                "phone",
                "required: this coupon limits claims per phone number",
            )),
        }
    }
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(ApiError::invalid("the claim is not valid", errors))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub user_id: String,
    /// The order the coupon is held for: the idempotency key (the same order again extends its
    /// hold).
    pub order_id: String,
    /// How long the hold lasts, seconds (1 to 86,400; default 900).
    #[serde(default = "default_hold_seconds")]
    pub hold_seconds: i64,
}

fn default_hold_seconds() -> i64 {
    900
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReserveResult {
    pub code: String,
    pub order_id: String,
    /// When the hold lapses unless the order redeems or releases the coupon first.
    pub held_until: String,
}

/// Hold a coupon for an order while it is paid (下单锁券): one order at a time, also under
/// concurrent attempts (409 for another order's live hold, a used, expired or another user's
/// coupon). Redeem with the same order id to use it; release to give it back; a hold that lapses
/// frees the coupon.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/reserve", tag = "promotions", request_body = ReserveRequest,
    params(("code" = String, Path, description = "the coupon code")), security(("api_key" = [])),
    responses((status = 200, body = ReserveResult), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<ReserveRequest>,
) -> ApiResult<Json<ReserveResult>> {
    let code = shopgrowth_promo::canonical_code(&code);
    caller.require(Scope::Ingest)?;
    if !(1..=86_400).contains(&req.hold_seconds) {
        return Err(ApiError::invalid(
            "the reservation is not valid",
            vec![FieldError::new("hold_seconds", "1 to 86,400")],
        ));
    }
    let now = Timestamp::now().0;
    let until = now + req.hold_seconds * 1_000;
    state
        .store
        .reserve_coupon(code.clone(), req.user_id, req.order_id.clone(), until, now)
        .await?;
    Ok(Json(ReserveResult {
        code,
        order_id: req.order_id,
        held_until: Timestamp(until).to_rfc3339(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub user_id: String,
    /// The order using the coupon: the idempotency key.
    pub order_id: String,
    /// What the coupon took off this order, minor units. When given, it is spent from the
    /// budgets of `coupon:TEMPLATE` and `customer:USER` (every period kind), all or nothing: a
    /// limit that would be passed refuses the redemption (409).
    #[serde(default)]
    pub discount: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedeemResult {
    pub code: String,
    /// `redeemed`, or `duplicate` when this order had already redeemed it.
    pub status: &'static str,
}

/// Redeem a coupon for an order: once, also under concurrent attempts (409 for another order, an
/// expired coupon or another user's).
#[utoipa::path(post, path = "/api/v1/coupons/{code}/redeem", tag = "promotions", request_body = RedeemRequest,
    params(("code" = String, Path, description = "the coupon code")), security(("api_key" = [])),
    responses((status = 200, body = RedeemResult), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> ApiResult<Json<RedeemResult>> {
    let code = shopgrowth_promo::canonical_code(&code);
    caller.require(Scope::Ingest)?;
    let now = Timestamp::now().0;
    let budget_key = shopgrowth_service::promotions::redemption_budget_key(&code, &req.order_id);
    let discount = req.discount.unwrap_or(0);
    if discount < 0 {
        return Err(ApiError::invalid(
            "the redemption is not valid",
            vec![FieldError::new("discount", "must not be negative")],
        ));
    }
    // The budget first: a redemption that would pass a limit must not happen. If the
    // redemption then fails, the spend is given back through the same serialisation.
    if discount > 0 {
        let coupon = state
            .store
            .coupon(code.clone())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no coupon {code:?}")))?;
        let date = crate::routes::budgets::today(&state);
        let lines = [
            format!("coupon:{}", coupon.template_id),
            format!("customer:{}", req.user_id),
        ]
        .iter()
        .flat_map(|s| crate::routes::budgets::lines(s, date))
        .collect();
        state
            .store
            .spend_budget(budget_key.clone(), lines, discount, now, None)
            .await?;
    }
    let outcome = match state
        .store
        .redeem_coupon(code.clone(), req.user_id, req.order_id, now)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            if discount > 0 {
                state.store.revert_budget(budget_key, now).await?;
            }
            return Err(e.into());
        }
    };
    Ok(Json(RedeemResult {
        code,
        status: match outcome {
            Redeemed::New => "redeemed",
            Redeemed::Duplicate => "duplicate",
        },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The order that redeemed it, now cancelled or wholly refunded.
    pub order_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseResult {
    pub code: String,
    /// False when it was not (or no longer) redeemed by that order: releasing twice is harmless.
    pub released: bool,
}

/// Give a coupon back from the order that redeemed it.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/release", tag = "promotions", request_body = ReleaseRequest,
    params(("code" = String, Path, description = "the coupon code")), security(("api_key" = [])),
    responses((status = 200, body = ReleaseResult)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> ApiResult<Json<ReleaseResult>> {
    let code = shopgrowth_promo::canonical_code(&code);
    caller.require(Scope::Ingest)?;
    let released = state
        .store
        .release_coupon(code.clone(), req.order_id.clone(), Timestamp::now().0)
        .await?;
    if released {
        state
            .store
            .revert_budget(
                shopgrowth_service::promotions::redemption_budget_key(&code, &req.order_id),
                Timestamp::now().0,
            )
            .await?;
    }
    Ok(Json(ReleaseResult { code, released }))
}

#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = "promotions",
    params(("code" = String, Path, description = "the coupon code")), security(("api_key" = [])),
    responses((status = 200, body = CouponView), (status = 404, body = Problem)))]
pub async fn get_coupon(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<CouponView>> {
    let code = shopgrowth_promo::canonical_code(&code);
    caller.require(Scope::Read)?;
    let c = state
        .store
        .coupon(code.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no coupon {code:?}")))?;
    Ok(Json(c.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Issue to every member of this saved segment now…
    #[serde(default)]
    pub segment: Option<String>,
    /// …or to these users.
    #[serde(default)]
    pub users: Vec<String>,
    /// Names this issuance: each user's claim key is `BATCH:USER`, so sending the same request
    /// again issues nothing twice.
    pub batch: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueResult {
    pub template_id: String,
    pub batch: String,
    /// Users the request covered.
    pub users: u64,
    #[schema(value_type = Object)]
    pub summary: shopgrowth_store::records::IssueSummary,
    pub seconds: f64,
}

/// Issue coupons to a segment or a list of users (发券给人群): each grant takes the quota and the
/// user's limit like a claim; the summary counts issued, duplicates, sold out and over the limit.
#[utoipa::path(post, path = "/api/v1/coupon-templates/{id}/issue", tag = "promotions", request_body = IssueRequest,
    params(("id" = String, Path, description = "the template")), security(("api_key" = [])),
    responses((status = 200, body = IssueResult), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<IssueRequest>,
) -> ApiResult<Json<IssueResult>> {
    caller.require(Scope::Admin)?;
    let started = std::time::Instant::now();
    let mut errors = Vec::new();
    if req.batch.trim().is_empty() || req.batch.len() > 100 {
        errors.push(FieldError::new("batch", "1 to 100 characters"));
    }
    if req.segment.is_some() != req.users.is_empty() {
        errors.push(FieldError::new("segment", "give either a segment or users"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("the issuance is not valid", errors));
    }
    let users: Vec<String> = match &req.segment {
        Some(name) => state.audience.read(|a| {
            let (_, members) = a
                .segment(name)
                .ok_or_else(|| ApiError::NotFound(format!("no segment named {name:?}")))?;
            Ok::<_, ApiError>(shopgrowth_service::member_ids(a, members, usize::MAX))
        })?,
        None => req.users.clone(),
    };
    let summary = shopgrowth_service::promotions::issue_coupons(
        &state.store,
        &id,
        &users,
        &req.batch,
        shopgrowth_service::promotions::ISSUE_CHUNK,
        |_| {},
    )
    .await?;
    Ok(Json(IssueResult {
        template_id: id,
        batch: req.batch,
        users: users.len() as u64,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// When a template issues itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    NewUser,
    Event(shopgrowth_core::model::EventType),
}

impl Trigger {
    fn parse(text: &str) -> Option<Trigger> {
        match text.split_once(':') {
            None if text == "new_user" => Some(Trigger::NewUser),
            Some(("event", kind)) => serde_json::from_value(serde_json::json!(kind))
                .ok()
                .map(Trigger::Event),
            _ => None,
        }
    }
}

/// Issues the templates that issue themselves for what was just accepted: new users, and events
/// of the trigger's type with a user. Each template's grants are one bulk issuance (one store
/// write, each grant by the conditional writes of a claim: quota, the user's limit), keyed by what
/// caused it, so a retried request grants nothing twice. Grants a template cannot make (sold
/// out, at the user's limit) are skipped, and so is a template outside its validity: they are its
/// rules at work.
pub async fn issue_automatically(
    state: &AppState,
    new_users: &[String],
    events: &[shopgrowth_core::model::Event],
) -> ApiResult<()> {
    if new_users.is_empty() && events.iter().all(|e| e.user_id.is_none()) {
        return Ok(());
    }
    let templates = state.store.offered_coupon_templates().await?;
    let mut codes = shopgrowth_promo::CouponCodes::new(
        <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng(),
    );
    for t in &templates {
        let Some(trigger) = t.issue_on.as_deref().and_then(Trigger::parse) else {
            continue;
        };
        let now = Timestamp::now().0;
        let mut grant = |user: &str, claim_key: String| CouponGrant {
            user_id: user.to_owned(),
            claim_key,
            code: codes.next(now),
        };
        let grants: Vec<CouponGrant> = match &trigger {
            Trigger::NewUser => new_users
                .iter()
                .map(|u| grant(u, format!("new-user:{u}")))
                .collect(),
            Trigger::Event(kind) => events
                .iter()
                .filter(|e| e.kind == *kind)
                .filter_map(|e| Some(grant(&e.user_id.as_ref()?.0, format!("event:{}", e.id.0))))
                .collect(),
        };
        if grants.is_empty() {
            continue;
        }
        match state.store.issue_coupons(t.id.clone(), grants, now).await {
            Ok(summary) => tracing::debug!(template = %t.id, issued = summary.issued,
                over_user_limit = summary.over_user_limit, sold_out = summary.sold_out,
                "automatic grants"),
            Err(shopgrowth_store::Error::Conflict(reason)) => {
                tracing::debug!(template = %t.id, %reason, "automatic grants skipped")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CentreQuery {
    /// The customer looking at the centre.
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CentreOffer {
    #[serde(flatten)]
    pub template: TemplateView,
    /// Coupons of it the customer already claimed.
    pub claimed: i64,
    /// Whether the customer can claim one now (under the limit, not sold out, valid now).
    pub can_claim: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The coupon centre (领券中心) as one customer sees it: every template shown there, how many the
/// customer has claimed and whether they can claim one now. Claiming is `POST
/// /api/v1/coupon-templates/{id}/claims`.
#[utoipa::path(get, path = "/api/v1/coupon-centre", tag = "promotions", params(CentreQuery),
    security(("api_key" = [])),
    responses((status = 200, body = [CentreOffer]), (status = 400, body = Problem)))]
pub async fn centre(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CentreQuery>,
) -> ApiResult<Json<Vec<CentreOffer>>> {
    caller.require(Scope::Read)?;
    if q.user_id.trim().is_empty() {
        return Err(ApiError::invalid(
            "the coupon centre needs a user",
            vec![FieldError::new("user_id", "required")],
        ));
    }
    let claims = state.store.coupon_claims_of(q.user_id.clone()).await?;
    let now = Timestamp::now().0;
    let offers = state
        .store
        .offered_coupon_templates()
        .await?
        .into_iter()
        .filter(|t| t.in_centre)
        .map(|t| {
            let claimed = claims.iter().find(|(id, _)| *id == t.id).map_or(0, |c| c.1);
            let reason = if t.valid_until.is_some_and(|u| u <= now) {
                Some("expired")
            } else if t.valid_from.is_some_and(|f| f > now) {
                Some("not_started")
            } else if t.quota.is_some_and(|q| t.issued >= q) {
                Some("sold_out")
            } else if claimed >= t.per_user_limit {
                Some("claimed")
            } else {
                None
            };
            CentreOffer {
                template: t.into(),
                claimed,
                can_claim: reason.is_none(),
                reason,
            }
        })
        .collect();
    Ok(Json(offers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse_from_their_names() {
        use shopgrowth_core::model::EventType;
        assert_eq!(Trigger::parse("new_user"), Some(Trigger::NewUser));
        assert_eq!(
            Trigger::parse("event:add_to_cart"),
            Some(Trigger::Event(EventType::AddToCart))
        );
        assert_eq!(Trigger::parse("event:teleport"), None);
        assert_eq!(Trigger::parse("birthday"), None);
    }
}

/// Every coupon template, by id, a page at a time (`?after=LAST_ID&limit=N`).
#[utoipa::path(get, path = "/api/v1/coupon-templates", tag = "promotions", params(PageQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<TemplateView>), (status = 400, body = Problem)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<TemplateView>>> {
    caller.require(Scope::Read)?;
    let (after, limit) = page.bounds()?;
    let templates = state.store.coupon_templates_after(after, limit).await?;
    Ok(Json(
        templates.into_iter().map(TemplateView::from).collect(),
    ))
}
