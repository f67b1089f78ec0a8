//! Cart pricing for the shop's cart page (scope `read`): a dry run that changes nothing.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Caller};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use shopgrowth_core::FieldError;
use shopgrowth_promo::pricing::{price, Cart, Customer, Promotion, Quote};
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

fn check(req: &QuoteRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if req.cart.lines.is_empty() {
        errors.push(FieldError::new("cart.lines", "the cart has no lines"));
    }
    for (i, l) in req.cart.lines.iter().enumerate() {
        if l.quantity <= 0 {
            errors.push(FieldError::new(
                format!("cart.lines[{i}].quantity"),
                "must be at least 1",
            ));
        }
        if l.unit_price < 0 {
            errors.push(FieldError::new(
                format!("cart.lines[{i}].unit_price"),
                "must not be negative",
            ));
        }
    }
    if req.cart.shipping_fee < 0 {
        errors.push(FieldError::new("cart.shipping_fee", "must not be negative"));
    }
    if req
        .promotions
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PROMOTIONS)
    {
        errors.push(FieldError::new(
            "promotions",
            format!("at most {MAX_PROMOTIONS}"),
        ));
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
    let errors = check(&req);
    if !errors.is_empty() {
        return Err(ApiError::invalid("the cart cannot be priced", errors));
    }
    let mut customer = req.customer.clone();
    if let Some(user) = &req.user_id {
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
    let promotions = match req.promotions {
        Some(p) => p,
        None => super::campaigns::live_promotions(&state).await?,
    };
    Ok(Json(price(&req.cart, &customer, &promotions)))
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
    let lines: Vec<shopgrowth_promo::refund::PaidLine> = req
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
        shopgrowth_promo::refund::RefundError::Line { line, reason } => ApiError::invalid(
            "the refund is not valid",
            vec![FieldError::new(format!("lines[{line}]"), reason)],
        ),
    })?;
    Ok(Json(RefundShare {
        total: shares.values().sum(),
        shares: shares
            .into_iter()
            .map(|(promotion, amount)| PromotionShare { promotion, amount })
            .collect(),
    }))
}
