//! Handlers under `/api/v1`, one module per capability.
//!
//! - [`ingest`]: events, users, products, stores, orders, refunds (scope `ingest`).
//! - [`customers`]: customer look-up, ID-Mapping, erasure (scopes `read`, `ingest`, `admin`).
//! - [`audience`]: profiles, tags, segments, discovery (scopes `read` and `admin`).
//! - [`campaigns`]: campaigns and their state machine (scopes `admin`, `read`).
//! - [`coupons`]: templates, claims, redemptions (scopes `admin`, `ingest`, `read`).
//! - [`flash`]: flash sales and their reservations (scopes `admin`, `ingest`, `read`).
//! - [`budgets`]: limits (scope `admin`), usage (`read`), spends and reverts (`ingest`).
//! - [`red_packets`]: red packets and their claims (scopes `ingest`, `read`).
//! - [`groups`]: group buying (拼团): deals (scope `admin`), groups and members (`ingest`), progress (`read`).
//! - [`trail`]: the promotion trail: entries, an exactly-once feed, funnels (scope `read`).
//! - [`pricing`]: cart quotes, a dry run of the promotion engine (scope `read`).
//! - [`recommend`]: recommendations per scene (scope `read`), the model and retraining (`admin`).
//! - [`admin`]: API keys and store statistics (scope `admin`).

pub mod admin;
pub mod audience;
pub mod budgets;
pub mod campaigns;
pub mod coupons;
pub mod customers;
pub mod flash;
pub mod groups;
pub mod ingest;
pub mod pricing;
pub mod recommend;
pub mod red_packets;
pub mod trail;

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use shopgrowth_core::FieldError;
use utoipa::ToSchema;

pub fn api_v1() -> Router<AppState> {
    Router::new()
        .route("/events", post(ingest::post_event))
        .route("/events/batch", post(ingest::post_events))
        .route("/users/batch", post(ingest::post_users))
        .route("/products/batch", post(ingest::post_products))
        .route("/stores/batch", post(ingest::post_stores))
        .route("/orders", post(ingest::post_order))
        .route("/orders/batch", post(ingest::post_orders))
        .route("/orders/{order_id}/refunds", post(ingest::post_refund))
        .route("/identify", post(customers::identify))
        .route("/users/{user_id}", get(customers::get_customer))
        .route("/users/{user_id}/merge", post(customers::merge))
        .route("/users/{user_id}/personal-data", delete(customers::erase))
        .route("/identity-links/{link_id}/undo", post(customers::undo_link))
        .route("/api-keys", post(admin::create_key).get(admin::list_keys))
        .route("/api-keys/{key_id}", delete(admin::revoke_key))
        .route("/users/{user_id}/profile", get(audience::profile))
        .route("/users/{user_id}/tag-history", get(audience::tag_history))
        .route("/tags", get(audience::list_tags))
        .route(
            "/tags/{name}",
            put(audience::put_tag).delete(audience::delete_tag),
        )
        .route("/segments", get(audience::list_segments))
        .route("/segments/count", post(audience::count))
        .route(
            "/segments/{name}",
            put(audience::put_segment)
                .get(audience::get_segment)
                .delete(audience::delete_segment),
        )
        .route("/segments/{name}/members", get(audience::members))
        .route("/segments/{name}/export.csv", get(audience::export))
        .route(
            "/segments/{name}/snapshots",
            post(audience::take_snapshot).get(audience::snapshots),
        )
        .route("/discover", post(audience::discover))
        .route("/audience/rebuild", post(audience::rebuild))
        .route("/pricing/quote", post(pricing::quote))
        .route("/pricing/checkout", post(pricing::checkout))
        .route("/pricing/coupons", post(pricing::cart_coupons))
        .route("/pricing/refund-share", post(pricing::refund_share))
        .route("/budgets/spend", post(budgets::spend))
        .route("/budgets/revert", post(budgets::revert))
        .route("/budgets/{scope}", get(budgets::get))
        .route("/budgets/{scope}/limits/{period}", put(budgets::set_limit))
        .route(
            "/group-deals",
            post(groups::create_deal).get(groups::list_deals),
        )
        .route("/group-deals/{id}/groups", post(groups::open))
        .route("/groups/{id}", get(groups::get))
        .route("/groups/{id}/members", post(groups::join))
        .route(
            "/red-packets",
            post(red_packets::create).get(red_packets::list),
        )
        .route("/red-packets/{id}", get(red_packets::get))
        .route("/red-packets/{id}/claims", post(red_packets::claim))
        .route("/red-packets/{id}/helps", post(red_packets::help))
        .route("/red-packet-rains", post(red_packets::create_rain))
        .route("/red-packet-rains/{id}", get(red_packets::get_rain))
        .route(
            "/red-packet-rains/{id}/claims",
            post(red_packets::claim_rain),
        )
        .route("/recommendations", get(recommend::recommendations))
        .route("/recommendations/model", get(recommend::model))
        .route("/recommendations/retrain", post(recommend::retrain))
        .route("/flash-sales", post(flash::create).get(flash::list))
        .route("/flash-sales/{id}", get(flash::get))
        .route("/flash-sales/{id}/reservations", post(flash::reserve))
        .route("/flash-reservations/{id}/confirm", post(flash::confirm))
        .route("/flash-reservations/{id}/release", post(flash::release))
        .route("/campaigns", post(campaigns::create).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get).put(campaigns::edit))
        .route("/campaigns/{id}/transition", post(campaigns::transition))
        .route(
            "/coupon-templates",
            post(coupons::create_template).get(coupons::list_templates),
        )
        .route("/coupon-templates/{id}", get(coupons::get_template))
        .route("/coupon-templates/{id}/claims", post(coupons::claim))
        .route("/coupon-templates/{id}/issue", post(coupons::issue))
        .route("/coupons/{code}", get(coupons::get_coupon))
        .route("/coupons/{code}/validate", post(pricing::validate_coupon))
        .route("/coupons/{code}/reserve", post(coupons::reserve))
        .route("/coupon-centre", get(coupons::centre))
        .route("/coupons/{code}/redeem", post(coupons::redeem))
        .route("/coupons/{code}/release", post(coupons::release))
        .route("/promotion-events", get(trail::list))
        .route("/promotion-events/feed", get(trail::feed))
        .route("/promotions/report", get(trail::report))
        .route("/stats", get(admin::stats))
        .route("/openapi.json", get(admin::openapi))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub backend: &'static str,
    pub version: &'static str,
}

/// Liveness and the storage backend in use. The only endpoint without an API key.
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, body = Health)))]
pub async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        backend: state.store.backend(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// 201 when a write made something new, 200 when it found it there already (an idempotent
/// repeat).
pub(crate) fn created_or_ok(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    }
}

/// A number query parameter between 0 and `max`, `default` when absent; a 400 naming it otherwise.
pub(crate) fn bounded(name: &str, value: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let v = value.unwrap_or(default);
    if (0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            format!("{name} must be between 0 and {max}"),
            vec![FieldError::new(
                name,
                format!("{v} is not between 0 and {max}"),
            )],
        ))
    }
}

/// One page of an operator's listing, by id.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The last id of the page before (none for the first page).
    pub after: Option<String>,
    /// Most items (0 to 1,000, default 100).
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The id to start after and the page's size.
    pub(crate) fn bounds(&self) -> ApiResult<(String, i64)> {
        let limit = bounded("limit", self.limit, 100, 1_000)?;
        Ok((self.after.clone().unwrap_or_default(), limit))
    }
}
