//! Cart pricing for the shop's cart page (scope `read`): a dry run that changes nothing.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shopgrowth_core::FieldError;
use shopgrowth_promo::pricing::{price, Base, Cart, Customer, Promotion, Quote, Stacking};
use shopgrowth_service::promotions::{campaign_uses_line, LiveSet};
use shopgrowth_store::records::{
    BudgetSpend, CheckoutAttempt, CountedLine, CouponRecord, CouponTemplateRecord, SpendTrail,
};
use utoipa::ToSchema;

/// Most promotions one quote may be asked about.
const MAX_PROMOTIONS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// Lines (sku, quantity, unit_price, category, store), shipping_fee and codes entered.
    #[schema(value_type = Object)]
    pub cart: Cart,
    /// Tier, segments and number of past orders.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub customer: Customer,
    /// The promotions to consider (rules, scope, stacking, priority, base, audience, code);
    /// without it, the campaigns live now.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub promotions: Option<Vec<Promotion>>,
    /// The customer's user id: adds the saved segments they belong to and their order count.
    #[serde(default)]
    pub user_id: Option<String>,
}

fn check(cart: &Cart, promotions: Option<&[Promotion]>) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = cart
        .problems()
        .into_iter()
        .map(|e| e.under("cart"))
        .collect();
    if promotions.is_some_and(|p| p.len() > MAX_PROMOTIONS) {
        errors.push(FieldError::new(
            "promotions",
            format!("at most {MAX_PROMOTIONS}"),
        ));
    }
    for (i, p) in promotions.unwrap_or_default().iter().enumerate() {
        let at = format!("promotions[{i}]");
        errors.extend(p.problems().into_iter().map(|e| e.under(&at)));
    }
    errors
}

/// Price a cart: the best legal combination of the promotions, each discount allocated to lines to
/// the cent, the totals, and for every other promotion why it did not apply ("满300减40: 还差
/// ¥12.50"). Nothing is reserved or stored.
#[utoipa::path(post, path = "/api/v1/pricing/quote", tag = "promotions", request_body = QuoteRequest,
    security(("api_key" = [])),
    responses((status = 200, description = "the quote", body = Object), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
pub async fn quote(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    caller.require(Scope::Read)?;
    let errors = check(&req.cart, req.promotions.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::invalid("the cart cannot be priced", errors));
    }
    let user = req.user_id.as_deref();
    Ok(Json(match req.promotions {
        Some(p) => price(&req.cart, &known_customer(&state, req.customer, user), &p),
        None => {
            let (live, customer) = live_for(&state, req.customer, user).await?;
            live.pricer.price(&req.cart, &customer)
        }
    }))
}

/// The live campaigns, and the customer as they are priced for: [`known_customer`], and, for a
/// known user, the campaigns they have had as often as those allow (`used_up`).
async fn live_for(
    state: &AppState,
    customer: Customer,
    user: Option<&str>,
) -> ApiResult<(std::sync::Arc<LiveSet>, Customer)> {
    let mut customer = known_customer(state, customer, user);
    let live = state.live.get(&state.store, shop_tz(state)).await?;
    if let Some(user) = user {
        customer.used_up = live.used_up_by(&state.store, user).await?;
    }
    Ok((live, customer))
}

/// The shop's time zone, in which recurring campaigns apply.
pub(crate) fn shop_tz(state: &AppState) -> chrono_tz::Tz {
    state.audience.config().features.tz
}

/// The customer as the request gives it, plus, for a known user, the saved segments they belong
/// to and their order count from the audience.
fn known_customer(state: &AppState, mut customer: Customer, user: Option<&str>) -> Customer {
    if let Some(user) = user {
        let id = state.audience.customer_of(user);
        state.audience.read(|a| {
            if let Some(u) = a.user_index(&id) {
                for name in a.segment_names() {
                    if a.segment(&name).is_some_and(|(_, m)| m.contains(u)) {
                        customer.segments.insert(name);
                    }
                }
                customer.orders = customer.orders.max(a.state(u).sale_orders);
            }
        });
    }
    customer
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The order being placed: the idempotency key of every spend and hold.
    pub order_id: String,
    pub user_id: String,
    #[schema(value_type = Object)]
    pub cart: Cart,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub customer: Customer,
    /// Codes of the customer's own coupons to use (at most one applies: they share the
    /// `coupon` stacking category).
    #[serde(default)]
    pub coupons: Vec<String>,
    /// How long the coupons stay held for this order, seconds (default 900).
    #[serde(default = "default_hold_seconds")]
    pub hold_seconds: i64,
}

fn default_hold_seconds() -> i64 {
    900
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Checkout {
    pub order_id: String,
    #[schema(value_type = Object)]
    pub quote: Quote,
    /// Campaigns whose budget ran out while checking out: priced without them.
    pub budget_exhausted: Vec<String>,
    /// Campaigns this customer has had as often as each allows (`per_customer_limit`): priced
    /// without them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub customer_limit_reached: Vec<String>,
    /// The budget spend of each applied campaign, by key: `POST /api/v1/budgets/revert` with it
    /// gives it back when the order is cancelled.
    pub budget_keys: Vec<String>,
    /// The coupons held for the order, until `held_until`: redeem them when it is paid.
    pub coupons_held: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
}

/// The stacking category coupons share: one coupon per order.
const COUPON_CATEGORY: &str = "coupon";

/// The customer's coupon as a promotion: applied after the campaigns, on the discounted prices.
async fn coupon_promotion(state: &AppState, code: &str, user: &str) -> ApiResult<Promotion> {
    let code = &shopgrowth_promo::canonical_code(code);
    let now = shopgrowth_core::time::Timestamp::now().0;
    let c = state
        .store
        .coupon(code.to_owned())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no coupon {code:?}")))?;
    if c.user_id != user {
        return Err(ApiError::Conflict(format!(
            "coupon {code:?} belongs to another user"
        )));
    }
    if c.state == "redeemed" || c.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::Conflict(format!(
            "coupon {code:?} is {}",
            if c.state == "redeemed" {
                "used"
            } else {
                "expired"
            }
        )));
    }
    let t = template_of(state, &c.template_id).await?;
    promotion_of_coupon(code, t)
}

async fn template_of(state: &AppState, id: &str) -> ApiResult<CouponTemplateRecord> {
    state
        .store
        .coupon_template(id.to_owned())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("template {id:?} vanished")))
}

/// Coupon `code` of template `t` as a promotion: its template's rule and scope, in the `coupon`
/// stacking category, after the campaigns on the discounted prices.
fn promotion_of_coupon(code: &str, t: CouponTemplateRecord) -> ApiResult<Promotion> {
    let rule = serde_json::from_str(&t.rule)
        .map_err(|e| ApiError::Internal(format!("template {:?}: {e}", t.id)))?;
    let scope = match &t.scope {
        Some(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::Internal(format!("template {:?}: {e}", t.id)))?,
        None => Default::default(),
    };
    Ok(Promotion {
        id: format!("coupon:{code}"),
        name: t.name,
        rule,
        scope,
        stacking: Stacking::Category {
            name: COUPON_CATEGORY.into(),
            joint: false,
            limit: None,
        },
        priority: i32::MAX,
        base: Base::Discounted,
        audience: Default::default(),
        code: None,
    })
}

/// Check out a cart (下单): price it against the live campaigns and the customer's coupons, then
/// commit what the quote uses, all idempotent by `order_id`: each applied campaign's discount is
/// spent from its budget (`campaign:ID`, every period kind; a campaign whose budget would be
/// passed is dropped and the cart priced again without it), and the applied coupon is held for
/// the order. The answer is kept by `order_id`: a retry of the same request gets the same answer
/// (and spends and holds nothing twice) even if campaigns or budgets changed since; another
/// request under an order id already checked out is refused (409).
#[utoipa::path(post, path = "/api/v1/pricing/checkout", tag = "promotions", request_body = CheckoutRequest,
    security(("api_key" = [])),
    responses((status = 200, body = Checkout), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CheckoutRequest>,
) -> ApiResult<Response> {
    caller.require(Scope::Ingest)?;
    let mut errors = check(&req.cart, None);
    for (field, value) in [("order_id", &req.order_id), ("user_id", &req.user_id)] {
        if value.trim().is_empty() {
            errors.push(FieldError::new(field, "required"));
        }
    }
    if !(1..=86_400).contains(&req.hold_seconds) {
        errors.push(FieldError::new("hold_seconds", "1 to 86,400"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("the checkout is not valid", errors));
    }
    let request_hash = checkout_hash(&req);
    if let Some(kept) = state.store.checkout(req.order_id.clone()).await? {
        settle_order(&state.store, &req.order_id, &kept, &[]).await?;
        return kept_answer(&req.order_id, &request_hash, kept);
    }
    // Campaigns this customer has had as often as they allow are not for them.
    let (live, customer) = live_for(&state, req.customer.clone(), Some(&req.user_id)).await?;
    let mut limit_reached: Vec<String> = customer.used_up.iter().cloned().collect();
    // The live set as compiled until coupons or a refused budget change it.
    let mut promotions = std::borrow::Cow::Borrowed(live.promotions.as_slice());
    for code in &req.coupons {
        let coupon = coupon_promotion(&state, code, &req.user_id).await?;
        promotions.to_mut().push(coupon);
    }
    let now = shopgrowth_core::time::Timestamp::now().0;
    let date = super::budgets::today(&state);
    let mut exhausted = Vec::new();
    // This attempt's spends are its own: one that died before its answer was kept may have spent
    // other amounts, and what it spent is given back once an answer is kept (or by the sweeper,
    // which finds the attempt noted in its spends' write).
    let attempt = format!("{:08x}", rand::random::<u32>());
    // Each round drops the campaigns whose budget refused; a campaign fewer each time.
    let (quote, budget_keys) = loop {
        let quote = match &promotions {
            std::borrow::Cow::Borrowed(_) => live.pricer.price(&req.cart, &customer),
            std::borrow::Cow::Owned(changed) => price(&req.cart, &customer, changed),
        };
        // Every applied campaign's spend in one write, all or none.
        let spends: Vec<BudgetSpend> = quote
            .applied
            .iter()
            .filter(|a| !a.id.starts_with("coupon:"))
            .map(|a| BudgetSpend {
                key: format!("checkout:{}:{}:{attempt}", req.order_id, a.id),
                lines: super::budgets::lines(
                    &shopgrowth_service::promotions::campaign_budget_scope(&a.id),
                    date,
                ),
                amount: a.discount + a.shipping_discount + a.gift_value,
                trail: Some(SpendTrail {
                    campaign_id: a.id.to_string(),
                    user_id: Some(req.user_id.clone()),
                    order_id: Some(req.order_id.clone()),
                    attempt: Some(attempt.clone()),
                }),
                // One use of the campaign by this customer, when it limits them.
                counted: live
                    .per_customer
                    .iter()
                    .filter(|(id, _)| **id == *a.id)
                    .map(|(id, limit)| CountedLine {
                        line: campaign_uses_line(id, &req.user_id),
                        limit: *limit,
                    })
                    .collect(),
            })
            .collect();
        let keys: Vec<String> = spends.iter().map(|s| s.key.clone()).collect();
        if spends.is_empty() {
            break (quote, keys);
        }
        match state.store.spend_budgets(spends, now).await {
            Ok(_) => break (quote, keys),
            Err(shopgrowth_store::Error::OverBudget { scope, .. }) => {
                // Nothing of this round was spent; the campaign whose budget, or whose count of
                // this customer's uses, refused goes.
                let refused = quote.applied.iter().find_map(|a| {
                    if shopgrowth_service::promotions::campaign_budget_scope(&a.id) == scope {
                        Some((a.id.clone(), false))
                    } else if campaign_uses_line(&a.id, &req.user_id).scope == scope {
                        Some((a.id.clone(), true))
                    } else {
                        None
                    }
                });
                let Some((id, uses)) = refused else {
                    return Err(ApiError::Internal(format!(
                        "budget {scope} refused a checkout that spends from no such campaign"
                    )));
                };
                promotions.to_mut().retain(|p| *p.id != *id);
                if uses {
                    limit_reached.push(id.to_string());
                } else {
                    exhausted.push(id.to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let until = now + req.hold_seconds * 1_000;
    let mut held = Vec::new();
    for a in quote.applied.iter() {
        let Some(code) = a.id.strip_prefix("coupon:") else {
            continue;
        };
        let reserved = state
            .store
            .reserve_coupon(
                code.to_owned(),
                req.user_id.clone(),
                req.order_id.clone(),
                until,
                now,
            )
            .await;
        if let Err(e) = reserved {
            for key in budget_keys {
                state.store.revert_budget(key, now).await?;
            }
            state
                .store
                .forget_checkout_attempt(req.order_id.clone(), attempt)
                .await?;
            return Err(e.into());
        }
        held.push(code.to_owned());
    }
    let answer = Checkout {
        order_id: req.order_id.clone(),
        held_until: (!held.is_empty())
            .then(|| shopgrowth_core::time::Timestamp(until).to_rfc3339()),
        quote,
        budget_exhausted: exhausted,
        customer_limit_reached: limit_reached,
        budget_keys,
        coupons_held: held,
    };
    let body = serde_json::to_string(&answer).map_err(|e| ApiError::Internal(e.to_string()))?;
    // If this answer is the one kept, its spends are recorded as kept and the attempt forgotten
    // with it, in one write.
    let kept = state
        .store
        .save_checkout(
            req.order_id.clone(),
            request_hash.clone(),
            body.clone(),
            now,
            Some(CheckoutAttempt {
                attempt: attempt.clone(),
                spend_keys: answer.budget_keys.clone(),
            }),
        )
        .await?;
    settle_order(&state.store, &req.order_id, &kept, &answer.coupons_held).await?;
    if kept.response != body {
        // Another attempt's answer was kept; what this one spent was given back just above.
        state
            .store
            .forget_checkout_attempt(req.order_id.clone(), attempt)
            .await?;
    }
    kept_answer(&req.order_id, &request_hash, kept)
}

/// Settles checkout attempts noted before `before` that never were (the node was killed, or the
/// request dropped, between spending and settling): an order with a kept answer is settled as
/// its checkout would have (`settle_order`); otherwise the attempt's own campaign spends are
/// given back (other attempts of the order may still be running). Then the attempt is
/// forgotten. `before` must be older than any attempt still running can be (the request
/// timeout). Returns the attempts settled.
pub async fn settle_dead_checkouts(
    store: &shopgrowth_store::Store,
    before: i64,
    now: i64,
) -> Result<usize, shopgrowth_store::Error> {
    let dead = store.stale_checkout_attempts(before, 1_000).await?;
    for (order_id, attempt) in &dead {
        if let Some(kept) = store.checkout(order_id.clone()).await? {
            settle_order(store, order_id, &kept, &[]).await?;
        } else {
            // Keys end in their attempt (`checkout:ORDER:CAMPAIGN:ATTEMPT`).
            let own = format!(":{attempt}");
            for (key, _) in store.standing_checkout_spends(order_id.clone()).await? {
                if key.ends_with(&own) {
                    store.revert_budget(key, now).await?;
                }
            }
        }
        store
            .forget_checkout_attempt(order_id.clone(), attempt.clone())
            .await?;
    }
    Ok(dead.len())
}

/// Whether the kept answer's list `field` holds `item`.
fn lists(kept: &Value, field: &str, item: &str) -> bool {
    kept[field]
        .as_array()
        .is_some_and(|l| l.iter().any(|k| k.as_str() == Some(item)))
}

/// Settles `order_id` once its answer is kept: the campaign spends the answer lists are recorded
/// as kept (`redeemed` on the trail) unless they are already (saving the answer does it), and
/// what was taken for the order that the answer does not use is given back: the order's other
/// campaign spends (those of a concurrent attempt kept second, or of one that died between
/// spending and keeping its answer) and of the coupons `held_here` (by this attempt) those the
/// answer does not hold. Once an answer is kept no
/// attempt of the order spends again (a retry gets the kept answer), so every stray is final.
async fn settle_order(
    store: &shopgrowth_store::Store,
    order_id: &str,
    kept: &shopgrowth_store::records::CheckoutRecord,
    held_here: &[String],
) -> Result<(), shopgrowth_store::Error> {
    let kept: Value = serde_json::from_str(&kept.response).unwrap_or(Value::Null);
    let now = shopgrowth_core::time::Timestamp::now().0;
    for (key, recorded_kept) in store.standing_checkout_spends(order_id.to_owned()).await? {
        if !lists(&kept, "budget_keys", &key) {
            store.revert_budget(key, now).await?;
        } else if !recorded_kept {
            store.keep_campaign_spend(key, now).await?;
        }
    }
    for code in held_here {
        if !lists(&kept, "coupons_held", code) {
            store
                .release_coupon(code.clone(), order_id.to_owned(), now)
                .await?;
        }
    }
    Ok(())
}

/// What identifies a checkout request: everything in it but the order id, hashed.
fn checkout_hash(req: &CheckoutRequest) -> String {
    let identity = serde_json::json!({
        "user_id": req.user_id,
        "cart": req.cart,
        "customer": req.customer,
        "coupons": req.coupons,
        "hold_seconds": req.hold_seconds,
    });
    hex::encode(Sha256::digest(identity.to_string().as_bytes()))
}

/// The answer kept for an order, if this request is the one that got it.
fn kept_answer(
    order_id: &str,
    request_hash: &str,
    kept: shopgrowth_store::records::CheckoutRecord,
) -> ApiResult<Response> {
    if kept.request_hash != request_hash {
        return Err(ApiError::Conflict(format!(
            "order_id {order_id:?} was already checked out with a different request"
        )));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], kept.response).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineDiscount {
    pub promotion: String,
    /// Minor units, as the quote's `applied[].allocation` gave this line.
    pub amount: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundedLine {
    pub quantity: i64,
    pub discounts: Vec<LineDiscount>,
    /// Units refunded by earlier refunds.
    #[serde(default)]
    pub already_refunded: i64,
    /// Units this refund returns.
    pub refunded: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundShareRequest {
    pub lines: Vec<RefundedLine>,
}

impl RefundShareRequest {
    /// What each promotion's discount gave the refunded units (`refund::refund_shares`); a bad
    /// line is named (`lines[2]`).
    pub fn shares(self) -> Result<RefundShare, Vec<FieldError>> {
        let lines: Vec<shopgrowth_promo::refund::PaidLine> = self
            .lines
            .into_iter()
            .map(|l| shopgrowth_promo::refund::PaidLine {
                quantity: l.quantity,
                discounts: l
                    .discounts
                    .into_iter()
                    .map(|d| (d.promotion, d.amount))
                    .collect(),
                already_refunded: l.already_refunded,
                refunded: l.refunded,
            })
            .collect();
        let shares = shopgrowth_promo::refund::refund_shares(&lines).map_err(|e| match e {
            shopgrowth_promo::refund::RefundError::Line {
                line,
                field,
                reason,
            } => vec![FieldError::new(format!("lines[{line}].{field}"), reason)],
        })?;
        Ok(RefundShare {
            total: shares.values().sum(),
            shares: shares
                .into_iter()
                .map(|(promotion, amount)| PromotionShare { promotion, amount })
                .collect(),
        })
    }
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PromotionShare {
    pub promotion: String,
    pub amount: i64,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RefundShare {
    /// What each promotion gave the refunded units: the part of the discount the refund does not
    /// pay back to the customer (and that goes back to the promotion's budget).
    pub shares: Vec<PromotionShare>,
    pub total: i64,
}

/// The exact share of each promotion's discount a partial refund covers (docs/pricing.md):
/// refunds in any number of steps add up to exactly the discount.
#[utoipa::path(post, path = "/api/v1/pricing/refund-share", tag = "promotions", request_body = RefundShareRequest,
    security(("api_key" = [])),
    responses((status = 200, body = RefundShare), (status = 400, body = Problem)))]
pub async fn refund_share(
    caller: Caller,
    ApiJson(req): ApiJson<RefundShareRequest>,
) -> ApiResult<Json<RefundShare>> {
    caller.require(Scope::Read)?;
    let shares = req
        .shares()
        .map_err(|errors| ApiError::invalid("the refund is not valid", errors))?;
    Ok(Json(shares))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCouponsRequest {
    /// The customer whose coupons are listed or validated.
    pub user_id: String,
    #[schema(value_type = Object)]
    pub cart: Cart,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub customer: Customer,
    /// The order being checked out, if any: the coupons it holds are the customer's to use.
    #[serde(default)]
    pub order_id: Option<String>,
}

impl CartCouponsRequest {
    fn check(&self) -> ApiResult<()> {
        let mut errors = check(&self.cart, None);
        if self.user_id.trim().is_empty() {
            errors.push(FieldError::new("user_id", "must not be empty"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("the cart cannot be priced", errors))
        }
    }

    /// The live campaigns, the customer as pricing reads them, and the cart priced with the
    /// campaigns alone: what a coupon is weighed against.
    async fn with_campaigns_alone(
        &self,
        state: &AppState,
    ) -> ApiResult<(
        std::sync::Arc<LiveSet>,
        Customer,
        shopgrowth_promo::pricing::Quote,
    )> {
        let (live, customer) = live_for(state, self.customer.clone(), Some(&self.user_id)).await?;
        let without = live.pricer.price(&self.cart, &customer);
        Ok((live, customer, without))
    }
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UsableCoupon {
    pub code: String,
    pub template_id: String,
    pub name: String,
    /// What it takes off this cart beyond the live campaigns, minor units.
    pub saves: i64,
    /// The order total with it.
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UnusableCoupon {
    pub code: String,
    pub template_id: String,
    pub name: String,
    /// `not_reached` (with `shortfall`), `no_lines`, `held` (by another order) or another of the
    /// quote's reasons.
    pub reason: String,
    /// As the customer reads it: "满300减40: 还差 ¥12.50".
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CartCoupons {
    /// The order total with the live campaigns alone.
    pub total_without_coupon: i64,
    /// The coupon that saves the most (`usable[0]`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<String>,
    /// Most saved first; on a tie the one expiring first, then by code.
    pub usable: Vec<UsableCoupon>,
    pub unusable: Vec<UnusableCoupon>,
}

/// One coupon priced on a cart with the live campaigns, as checkout would price it.
struct CouponOnCart<'a> {
    live: &'a LiveSet,
    customer: &'a Customer,
    cart: &'a Cart,
    /// The cart with the campaigns alone.
    without: &'a shopgrowth_promo::pricing::Quote,
    /// The order being checked out: the coupons it holds are the customer's to use.
    order_id: Option<&'a str>,
    now: i64,
}

impl CouponOnCart<'_> {
    /// Usable, with what it saves, or unusable, with the reason (the coupon must be the
    /// customer's and still to be used: the caller checks that).
    fn assess(
        &self,
        c: &CouponRecord,
        template: &CouponTemplateRecord,
    ) -> ApiResult<Result<UsableCoupon, UnusableCoupon>> {
        let expires_at = c
            .expires_at
            .map(|t| shopgrowth_core::time::Timestamp(t).to_rfc3339());
        let unusable = |reason: &str, message: String, shortfall: Option<i64>| UnusableCoupon {
            code: c.code.clone(),
            template_id: c.template_id.clone(),
            name: template.name.clone(),
            reason: reason.to_owned(),
            message,
            shortfall,
            expires_at: expires_at.clone(),
        };
        let held_elsewhere = c.state == "reserved"
            && c.reserved_until.is_some_and(|until| until > self.now)
            && c.order_id.as_deref() != self.order_id;
        if held_elsewhere {
            return Ok(Err(unusable(
                "held",
                format!(
                    "{}: 已被订单 {} 占用",
                    template.name,
                    c.order_id.as_deref().unwrap_or_default()
                ),
                None,
            )));
        }
        let mut promotions = self.live.promotions.clone();
        promotions.push(promotion_of_coupon(&c.code, template.clone())?);
        let with = price(self.cart, self.customer, &promotions);
        let id = format!("coupon:{}", c.code);
        if with.applied.iter().any(|a| *a.id == *id) {
            return Ok(Ok(UsableCoupon {
                code: c.code.clone(),
                template_id: c.template_id.clone(),
                name: template.name.clone(),
                saves: shopgrowth_promo::pricing::benefit(&with)
                    - shopgrowth_promo::pricing::benefit(self.without),
                total: with.total,
                expires_at,
            }));
        }
        Ok(Err(match with.not_applied.iter().find(|n| *n.id == *id) {
            Some(n) => unusable(n.code, n.message(), n.shortfall),
            None => unusable("not_chosen", format!("{}: 未被选用", template.name), None),
        }))
    }
}

/// The customer's coupons for this cart (可用券 / 不可用券 on the order page): each one still to
/// be used, priced with the live campaigns, either usable (what it saves beyond the campaigns,
/// and the total with it) or not, with the reason ("满300减40: 还差 ¥12.50", no line in its
/// scope, held by another order). Nothing is reserved or stored; checkout with the chosen code
/// prices the same way.
#[utoipa::path(post, path = "/api/v1/pricing/coupons", tag = "promotions", request_body = CartCouponsRequest,
    security(("api_key" = [])),
    responses((status = 200, body = CartCoupons), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn cart_coupons(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CartCouponsRequest>,
) -> ApiResult<Json<CartCoupons>> {
    caller.require(Scope::Read)?;
    req.check()?;
    let now = shopgrowth_core::time::Timestamp::now().0;
    let (live, customer, without) = req.with_campaigns_alone(&state).await?;
    let coupons = state
        .store
        .open_coupons_of(req.user_id.clone(), now)
        .await?;
    let mut templates: std::collections::HashMap<String, CouponTemplateRecord> = Default::default();
    let (mut usable, mut unusable) = (Vec::new(), Vec::new());
    for c in coupons {
        if !templates.contains_key(&c.template_id) {
            let t = template_of(&state, &c.template_id).await?;
            templates.insert(c.template_id.clone(), t);
        }
        let Some(template) = templates.get(&c.template_id) else {
            continue;
        };
        let priced = CouponOnCart {
            live: &live,
            customer: &customer,
            cart: &req.cart,
            without: &without,
            order_id: req.order_id.as_deref(),
            now,
        };
        match priced.assess(&c, template)? {
            Ok(u) => usable.push(u),
            Err(u) => unusable.push(u),
        }
    }
    // Most saved first, then the one expiring first (a coupon without an end last), then code.
    usable.sort_by(|a, b| {
        let ends = |u: &UsableCoupon| u.expires_at.clone().unwrap_or_else(|| "~".into());
        b.saves
            .cmp(&a.saves)
            .then_with(|| ends(a).cmp(&ends(b)))
            .then_with(|| a.code.cmp(&b.code))
    });
    Ok(Json(CartCoupons {
        total_without_coupon: without.total,
        best: usable.first().map(|u| u.code.clone()),
        usable,
        unusable,
    }))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CouponValidation {
    pub code: String,
    /// Whether checkout would apply it to this cart now.
    pub valid: bool,
    /// Why not: `not_yours`, `used`, `expired`, `held` (by another order), `not_reached` (with
    /// `shortfall`), `no_lines`, or another of the quote's reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// As the customer reads it: "满300减40: 还差 ¥12.50".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<i64>,
    /// What it takes off this cart beyond the live campaigns, and the order total with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saves: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Validate a coupon for a cart (the first step of validate → reserve → redeem → roll back):
/// whether checkout would apply it now, with what it saves beyond the live campaigns, or why not
/// (another customer's, used, expired, held by another order, "满300减40: 还差 ¥12.50"). Nothing
/// is reserved or stored; an unknown code is a 404.
#[utoipa::path(post, path = "/api/v1/coupons/{code}/validate", tag = "promotions",
    request_body = CartCouponsRequest, params(("code" = String, Path, description = "the coupon code")),
    security(("api_key" = [])),
    responses((status = 200, body = CouponValidation), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn validate_coupon(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<CartCouponsRequest>,
) -> ApiResult<Json<CouponValidation>> {
    let code = shopgrowth_promo::canonical_code(&code);
    caller.require(Scope::Read)?;
    req.check()?;
    let coupon = state
        .store
        .coupon(code.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no coupon {code:?}")))?;
    let template = template_of(&state, &coupon.template_id).await?;
    let now = shopgrowth_core::time::Timestamp::now().0;
    let invalid = |reason: &str, message: String| CouponValidation {
        code: coupon.code.clone(),
        valid: false,
        reason: Some(reason.to_owned()),
        message: Some(message),
        shortfall: None,
        saves: None,
        total: None,
        expires_at: coupon
            .expires_at
            .map(|t| shopgrowth_core::time::Timestamp(t).to_rfc3339()),
    };
    let held_by_this_order = coupon.state == "reserved"
        && coupon.order_id.is_some()
        && coupon.order_id == req.order_id
        && coupon.reserved_until.is_some_and(|until| until > now);
    let name = &template.name;
    if coupon.user_id != req.user_id {
        return Ok(Json(invalid(
            "not_yours",
            format!("{name}: 不是该顾客的券"),
        )));
    }
    if coupon.state == "redeemed" {
        return Ok(Json(invalid("used", format!("{name}: 已使用"))));
    }
    if coupon.expires_at.is_some_and(|end| end <= now) && !held_by_this_order {
        return Ok(Json(invalid("expired", format!("{name}: 已过期"))));
    }
    let (live, customer, without) = req.with_campaigns_alone(&state).await?;
    let on_cart = CouponOnCart {
        live: &live,
        customer: &customer,
        cart: &req.cart,
        without: &without,
        order_id: req.order_id.as_deref(),
        now,
    };
    Ok(Json(match on_cart.assess(&coupon, &template)? {
        Ok(u) => CouponValidation {
            code: u.code,
            valid: true,
            reason: None,
            message: None,
            shortfall: None,
            saves: Some(u.saves),
            total: Some(u.total),
            expires_at: u.expires_at,
        },
        Err(u) => CouponValidation {
            code: u.code,
            valid: false,
            reason: Some(u.reason),
            message: Some(u.message),
            shortfall: u.shortfall,
            saves: None,
            total: None,
            expires_at: u.expires_at,
        },
    }))
}
