//! The promotion trail (docs/promotion-trail.md): every coupon, flash-sale reservation, red-packet
//! share and group-buying seat that was issued, claimed, reserved, redeemed, rolled back or
//! expired, written with the change itself (scope `read`). A filtered list, newest first; a feed
//! that gives each entry once in commit order, for analytics pipelines; and each promotion's
//! funnel over a time window.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiQuery, Caller};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::model::PromotionType;
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_promo::trail::PromotionReport;
use shopgrowth_store::records::{PromotionEventRecord, TrailCursor, TrailFilter};
use utoipa::{IntoParams, ToSchema};

/// Every parameter arrives as text and is checked here, so a bad one is named in the problem.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct TrailQuery {
    pub user_id: Option<String>,
    /// `coupon`, `flash_sale`, `red_packet`, `group_buy` or `campaign`.
    pub promotion_type: Option<String>,
    /// The coupon template, flash sale, red packet, group deal or campaign.
    pub promotion_id: Option<String>,
    /// The coupon code, reservation id, share position, group id or budget spend key.
    pub subject: Option<String>,
    /// The previous page's `next_before`.
    pub before: Option<String>,
    /// 1–1000 (default 100).
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrailEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// `issued`, `claimed`, `reserved`, `redeemed`, `rolled_back` or `expired`.
    pub kind: String,
    pub promotion_type: String,
    pub promotion_id: String,
    pub subject: String,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    /// Minor units, where the entry moves money.
    pub amount: Option<i64>,
}

impl From<PromotionEventRecord> for TrailEntry {
    fn from(e: PromotionEventRecord) -> Self {
        TrailEntry {
            id: e.id,
            at: Timestamp(e.at).to_rfc3339(),
            kind: e.kind,
            promotion_type: e.promotion_type,
            promotion_id: e.promotion_id,
            subject: e.subject,
            user_id: e.user_id,
            order_id: e.order_id,
            amount: e.amount,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrailPage {
    pub items: Vec<TrailEntry>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next_before: Option<i64>,
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn number(
    field: &str,
    v: &Option<String>,
    range: std::ops::RangeInclusive<i64>,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let t = v.as_deref().filter(|s| !s.is_empty())?;
    match t.parse::<i64>() {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            errors.push(FieldError::new(
                field,
                format!(
                    "{t:?} is not a whole number in {}–{}",
                    range.start(),
                    range.end()
                ),
            ));
            None
        }
    }
}

/// Trail entries matching the filters, newest first.
#[utoipa::path(get, path = "/api/v1/promotion-events", tag = "promotions", params(TrailQuery),
    security(("api_key" = [])),
    responses((status = 200, body = TrailPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TrailQuery>,
) -> ApiResult<Json<TrailPage>> {
    caller.require(Scope::Read)?;
    let mut errors = Vec::new();
    if let Some(t) = text(&q.promotion_type) {
        if PromotionType::parse(&t).is_none() {
            errors.push(FieldError::new(
                "promotion_type",
                format!("{t:?} is not coupon, flash_sale, red_packet or group_buy"),
            ));
        }
    }
    let before = number("before", &q.before, 1..=i64::MAX, &mut errors);
    let limit = number("limit", &q.limit, 1..=1000, &mut errors).unwrap_or(100);
    if !errors.is_empty() {
        return Err(ApiError::invalid("invalid trail query", errors));
    }
    let items = state
        .store
        .promotion_trail(TrailFilter {
            user_id: text(&q.user_id),
            promotion_type: text(&q.promotion_type),
            promotion_id: text(&q.promotion_id),
            subject: text(&q.subject),
            before_id: before,
            limit,
        })
        .await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(TrailPage {
        items: items.into_iter().map(TrailEntry::from).collect(),
        next_before,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct FeedQuery {
    /// The previous page's `next` (TX.ID); from the start when absent.
    pub after: Option<String>,
    /// 1–10000 (default 1000).
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<TrailEntry>,
    /// Pass as `after` to go on; the same when nothing new was written.
    pub next: String,
}

/// The trail in commit order: each entry is given once, also with several server nodes; an empty
/// page means nothing newer is committed yet.
#[utoipa::path(get, path = "/api/v1/promotion-events/feed", tag = "promotions", params(FeedQuery),
    security(("api_key" = [])),
    responses((status = 200, body = FeedPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Json<FeedPage>> {
    caller.require(Scope::Read)?;
    let mut errors = Vec::new();
    let cursor = match text(&q.after) {
        None => TrailCursor::default(),
        Some(t) => t.parse().unwrap_or_else(|e: String| {
            errors.push(FieldError::new("after", e));
            TrailCursor::default()
        }),
    };
    let limit = number("limit", &q.limit, 1..=10_000, &mut errors).unwrap_or(1000);
    if !errors.is_empty() {
        return Err(ApiError::invalid("invalid feed query", errors));
    }
    let (items, next) = state.store.promotion_feed(cursor, limit).await?;
    Ok(Json(FeedPage {
        items: items.into_iter().map(TrailEntry::from).collect(),
        next: next.to_string(),
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct ReportQuery {
    /// RFC 3339; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrailReport {
    pub from: String,
    pub to: String,
    /// One funnel per promotion (docs/promotion-trail.md for the conversions).
    #[schema(value_type = Vec<Object>)]
    pub promotions: Vec<PromotionReport>,
}

/// Each promotion's funnel over a time window: issued, claimed, reserved, redeemed, rolled back,
/// expired, users, money, conversion.
#[utoipa::path(get, path = "/api/v1/promotions/report", tag = "promotions", params(ReportQuery),
    security(("api_key" = [])),
    responses((status = 200, body = TrailReport), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<TrailReport>> {
    caller.require(Scope::Read)?;
    let mut errors = Vec::new();
    let mut time = |field: &str, v: &Option<String>| {
        let t = text(v)?;
        Timestamp::parse_rfc3339(&t)
            .map_err(|e| errors.push(FieldError::new(field, e)))
            .ok()
    };
    let to = time("to", &q.to).unwrap_or_else(Timestamp::now);
    let from = time("from", &q.from).unwrap_or(Timestamp(to.0 - 30 * 86_400_000));
    if errors.is_empty() && from.0 >= to.0 {
        errors.push(FieldError::new("from", "must be before `to`"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("invalid report window", errors));
    }
    let promotions =
        shopgrowth_service::promotions::trail_report(&state.store, from.0, to.0).await?;
    Ok(Json(TrailReport {
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        promotions,
    }))
}
