//! Ingest: behaviour events, users, products, stores, orders and refunds. Every write is
//! idempotent by the caller's id; a batch stores its good items and reports each bad one.

use super::created_or_ok;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{from_json, json_bytes, ApiJson, ApiPath, Caller};
use crate::views::{
    BatchResult, ItemRef, ItemResult, MergedItem, RefundResult, RejectedItem, ReturnedShare,
};
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use shopgrowth_core::model::{Event, Order, Product, Refund, Store as ShopStore, User};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_service::Update;
use shopgrowth_store::records::{
    RefundWritten, SealedUser, SharesReturned, UserAttributes, Written,
};
use std::collections::HashMap;
use utoipa::ToSchema;

/// Items that parsed and validated, and where each sat in the batch; and those that did not.
struct Sorted<T> {
    valid: Vec<T>,
    positions: Vec<ItemRef>,
    rejected: Vec<RejectedItem>,
    received: usize,
}

/// Parses `{"<key>": [ ... ]}` item by item, so one bad item does not sink the batch.
fn sort_batch<T: DeserializeOwned>(
    bytes: &[u8],
    key: &str,
    max_items: usize,
    validate: impl Fn(&T) -> Vec<FieldError>,
    id_of: impl Fn(&T) -> String,
) -> ApiResult<Sorted<T>> {
    let malformed = |e: FieldError| ApiError::Invalid {
        code: "malformed_json",
        detail: format!("malformed JSON: {}", e.reason),
        errors: vec![e],
    };
    let mut envelope: HashMap<String, Vec<&RawValue>> =
        from_json_borrowed(bytes).map_err(malformed)?;
    if let Some(other) = envelope.keys().find(|k| k.as_str() != key) {
        return Err(ApiError::invalid(
            format!("unknown field {other:?}: the body is {{\"{key}\": [...]}}"),
            vec![FieldError::new(other.clone(), "unknown field")],
        ));
    }
    let items = envelope.remove(key).ok_or_else(|| {
        ApiError::invalid(
            format!("the body is {{\"{key}\": [...]}}"),
            vec![FieldError::new(key, "is required")],
        )
    })?;
    if items.len() > max_items {
        return Err(ApiError::invalid(
            format!(
                "a batch holds at most {max_items} items, this one has {}",
                items.len()
            ),
            vec![FieldError::new(
                key,
                format!("must have at most {max_items} items"),
            )],
        ));
    }
    let received = items.len();
    let mut sorted = Sorted {
        valid: Vec::with_capacity(received),
        positions: Vec::new(),
        rejected: Vec::new(),
        received,
    };
    for (index, raw) in items.into_iter().enumerate() {
        match from_json::<T>(raw.get().as_bytes()) {
            Ok(item) => {
                let errors = validate(&item);
                if errors.is_empty() {
                    sorted.positions.push(ItemRef {
                        index,
                        id: id_of(&item),
                    });
                    sorted.valid.push(item);
                } else {
                    sorted.rejected.push(RejectedItem {
                        index,
                        id: Some(id_of(&item)),
                        errors,
                    });
                }
            }
            Err(e) => sorted.rejected.push(RejectedItem {
                index,
                id: None,
                errors: vec![e],
            }),
        }
    }
    Ok(sorted)
}

/// Checks the ingest scope, reads the body and sorts a batch into valid and rejected items.
async fn read_batch<T: DeserializeOwned>(
    state: &AppState,
    caller: &Caller,
    req: Request,
    key: &str,
    validate: impl Fn(&T) -> Vec<FieldError>,
    id_of: impl Fn(&T) -> String,
) -> ApiResult<Sorted<T>> {
    caller.require(Scope::Ingest)?;
    let bytes = json_bytes(req, state).await?;
    sort_batch(&bytes, key, state.config.max_batch_items, validate, id_of)
}

fn from_json_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FieldError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(shopgrowth_core::json::path_error)
}

/// Folds store outcomes back onto batch positions.
fn batch_result(
    positions: Vec<ItemRef>,
    rejected: Vec<RejectedItem>,
    received: usize,
    written: &[Written],
) -> BatchResult {
    let mut result = BatchResult {
        received,
        rejected,
        ..Default::default()
    };
    for (position, w) in positions.into_iter().zip(written) {
        match w {
            Written::Inserted => result.inserted += 1,
            Written::Updated => result.updated += 1,
            Written::Duplicate => result.duplicates.push(position),
        }
    }
    result
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn invalid_item(what: &str, errors: Vec<FieldError>) -> ApiError {
    let fields: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    ApiError::invalid(format!("invalid {what}: {}", fields.join("; ")), errors)
}

/// 201 for a stored item, 200 for a duplicate.
fn single_result(id: String, written: &[Written]) -> (StatusCode, Json<ItemResult>) {
    let w = written.first().copied().unwrap_or(Written::Duplicate);
    let code = created_or_ok(w == Written::Inserted);
    (
        code,
        Json(ItemResult {
            id,
            status: status_of(w),
        }),
    )
}

fn status_of(w: Written) -> String {
    match w {
        Written::Inserted => "inserted",
        Written::Updated => "updated",
        Written::Duplicate => "duplicate",
    }
    .to_owned()
}

#[derive(Deserialize, ToSchema)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

#[derive(Deserialize, ToSchema)]
pub struct UserBatch {
    pub users: Vec<User>,
}

#[derive(Deserialize, ToSchema)]
pub struct ProductBatch {
    pub products: Vec<Product>,
}

#[derive(Deserialize, ToSchema)]
pub struct StoreBatch {
    pub stores: Vec<ShopStore>,
}

#[derive(Deserialize, ToSchema)]
pub struct OrderBatch {
    pub orders: Vec<Order>,
}

/// Store one behaviour event. Sending the same id again stores nothing and says `duplicate`.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest", request_body = Event,
    security(("api_key" = [])),
    responses((status = 201, body = ItemResult), (status = 200, description = "duplicate", body = ItemResult),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(event): ApiJson<Event>,
) -> ApiResult<(StatusCode, Json<ItemResult>)> {
    caller.require(Scope::Ingest)?;
    let now = now();
    let errors = event.validate(now);
    if !errors.is_empty() {
        return Err(invalid_item("event", errors));
    }
    let id = event.id.0.clone();
    let events = vec![event];
    let written = state.store.insert_events(events.clone(), now.0).await?;
    notify_inserted(&state, &events, &written, Update::Events);
    let new = inserted(&events, &written);
    state.recommend.observe_events(&new);
    super::coupons::issue_automatically(&state, &[], &new).await?;
    Ok(single_result(id, &written))
}

/// Store a batch of events. Acknowledged only once durable; good items are stored even when
/// others are rejected.
#[utoipa::path(post, path = "/api/v1/events/batch", tag = "ingest", request_body = EventBatch,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BatchResult>> {
    let now = now();
    let s = read_batch::<Event>(
        &state,
        &caller,
        req,
        "events",
        |e| e.validate(now),
        |e| e.id.0.clone(),
    )
    .await?;
    let events = s.valid.clone();
    let written = state.store.insert_events(s.valid, now.0).await?;
    notify_inserted(&state, &events, &written, Update::Events);
    let new = inserted(&events, &written);
    state.recommend.observe_events(&new);
    super::coupons::issue_automatically(&state, &[], &new).await?;
    Ok(Json(batch_result(
        s.positions,
        s.rejected,
        s.received,
        &written,
    )))
}

/// Insert or update users. Phone, email and name are encrypted before they are stored; a user
/// whose phone belongs to an existing customer is merged into that customer (ID-Mapping).
#[utoipa::path(post, path = "/api/v1/users/batch", tag = "ingest", request_body = UserBatch,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn post_users(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BatchResult>> {
    let now = now();
    let s = read_batch::<User>(
        &state,
        &caller,
        req,
        "users",
        |u| u.validate(now),
        |u| u.id.0.clone(),
    )
    .await?;
    let sealed: Vec<SealedUser> = s
        .valid
        .iter()
        .map(|u| SealedUser::seal(u, &state.cipher))
        .collect();
    let written = state.store.upsert_users(sealed, now.0).await?;
    if written.iter().any(|w| w.merged_into.is_some()) {
        state.audience.notify(Update::Rebuild);
    }
    state
        .audience
        .notify(Update::Users(s.valid.iter().map(user_attributes).collect()));
    let outcomes: Vec<Written> = written.iter().map(|w| w.written).collect();
    let new_users: Vec<String> = s
        .valid
        .iter()
        .zip(&outcomes)
        .filter(|(_, w)| **w == Written::Inserted)
        .map(|(u, _)| u.id.0.clone())
        .collect();
    super::coupons::issue_automatically(&state, &new_users, &[]).await?;
    let merged: Vec<MergedItem> = s
        .positions
        .iter()
        .zip(&written)
        .filter_map(|(p, w)| {
            w.merged_into.as_ref().map(|into| MergedItem {
                index: p.index,
                id: p.id.clone(),
                merged_into: into.0.clone(),
            })
        })
        .collect();
    let mut result = batch_result(s.positions, s.rejected, s.received, &outcomes);
    result.merged = merged;
    Ok(Json(result))
}

/// Insert or update products (SKUs).
#[utoipa::path(post, path = "/api/v1/products/batch", tag = "ingest", request_body = ProductBatch,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn post_products(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BatchResult>> {
    let s = read_batch::<Product>(&state, &caller, req, "products", Product::validate, |p| {
        p.id.0.clone()
    })
    .await?;
    let products = s.valid.clone();
    let written = state.store.upsert_products(s.valid, now().0).await?;
    state.audience.notify(Update::Products(products));
    Ok(Json(batch_result(
        s.positions,
        s.rejected,
        s.received,
        &written,
    )))
}

/// Insert or update offline stores.
#[utoipa::path(post, path = "/api/v1/stores/batch", tag = "ingest", request_body = StoreBatch,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn post_stores(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BatchResult>> {
    let s = read_batch::<ShopStore>(&state, &caller, req, "stores", ShopStore::validate, |s| {
        s.id.0.clone()
    })
    .await?;
    let written = state.store.upsert_stores(s.valid, now().0).await?;
    Ok(Json(batch_result(
        s.positions,
        s.rejected,
        s.received,
        &written,
    )))
}

/// Store one order with its lines. An order id seen before is a duplicate and changes nothing.
#[utoipa::path(post, path = "/api/v1/orders", tag = "ingest", request_body = Order,
    security(("api_key" = [])),
    responses((status = 201, body = ItemResult), (status = 200, description = "duplicate", body = ItemResult),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn post_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(order): ApiJson<Order>,
) -> ApiResult<(StatusCode, Json<ItemResult>)> {
    caller.require(Scope::Ingest)?;
    let now = now();
    let errors = order.validate(now);
    if !errors.is_empty() {
        return Err(invalid_item("order", errors));
    }
    let id = order.id.0.clone();
    let orders = vec![order];
    let written = state.store.insert_orders(orders.clone(), now.0).await?;
    notify_inserted(&state, &orders, &written, Update::Orders);
    state.recommend.observe_orders(&inserted(&orders, &written));
    Ok(single_result(id, &written))
}

/// Store a batch of orders.
#[utoipa::path(post, path = "/api/v1/orders/batch", tag = "ingest", request_body = OrderBatch,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn post_orders(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<BatchResult>> {
    let now = now();
    let s = read_batch::<Order>(
        &state,
        &caller,
        req,
        "orders",
        |o| o.validate(now),
        |o| o.id.0.clone(),
    )
    .await?;
    let orders = s.valid.clone();
    let written = state.store.insert_orders(s.valid, now.0).await?;
    notify_inserted(&state, &orders, &written, Update::Orders);
    state.recommend.observe_orders(&inserted(&orders, &written));
    Ok(Json(batch_result(
        s.positions,
        s.rejected,
        s.received,
        &written,
    )))
}

/// Refund some lines of an order. Each line's refunds can never exceed what was paid for it,
/// also under concurrent requests; the same refund id twice applies once. For an order checked
/// out here, each promotion's share of the discount the refunded units carried goes back to the
/// budget it was spent from, once per refund (also when the refund is sent again after a crash
/// between the two writes).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/refunds", tag = "ingest", request_body = Refund,
    params(("order_id" = String, Path, description = "the order")),
    security(("api_key" = [])),
    responses((status = 201, body = RefundResult), (status = 200, description = "duplicate", body = RefundResult),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn post_refund(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(refund): ApiJson<Refund>,
) -> ApiResult<(StatusCode, Json<RefundResult>)> {
    caller.require(Scope::Ingest)?;
    let now = now();
    let errors = refund.validate(now);
    if !errors.is_empty() {
        return Err(invalid_item("refund", errors));
    }
    let id = refund.id.clone();
    let amount = refund.lines.iter().map(|l| l.amount).sum();
    let at = refund.refunded_at.0;
    let units: Vec<(i64, i64)> = refund
        .lines
        .iter()
        .map(|l| (l.line_no, l.quantity))
        .collect();
    let written = state
        .store
        .add_refund(order_id.clone(), refund, now.0)
        .await?;
    // After the refund's own write, so a crash in between is mended by sending it again: the
    // shares go back once per refund id.
    let returned = shopgrowth_service::promotions::return_refund_shares(
        &state.store,
        &order_id,
        &id,
        units,
        now.0,
    )
    .await?;
    let promotions_returned = match returned {
        Some(SharesReturned::Returned(shares)) => shares
            .into_iter()
            .map(|s| ReturnedShare {
                promotion_type: s.promotion_type,
                promotion_id: s.promotion_id,
                subject: s.subject,
                amount: s.amount,
            })
            .collect(),
        _ => Vec::new(),
    };
    let (code, status) = match written {
        RefundWritten::Applied => {
            state.audience.notify(Update::Refund {
                order_id,
                amount,
                at,
            });
            (StatusCode::CREATED, "applied")
        }
        RefundWritten::Duplicate => (StatusCode::OK, "duplicate"),
    };
    Ok((
        code,
        Json(RefundResult {
            id,
            status: status.into(),
            promotions_returned,
        }),
    ))
}

/// The items that were new (not duplicates).
fn inserted<T: Clone>(items: &[T], written: &[Written]) -> Vec<T> {
    items
        .iter()
        .zip(written)
        .filter(|(_, w)| **w == Written::Inserted)
        .map(|(item, _)| item.clone())
        .collect()
}

/// Tells the audience about the items that were new (not duplicates).
fn notify_inserted<T: Clone>(
    state: &AppState,
    items: &[T],
    written: &[Written],
    update: fn(Vec<T>) -> Update,
) {
    let new = inserted(items, written);
    if !new.is_empty() {
        state.audience.notify(update(new));
    }
}

fn user_attributes(u: &User) -> UserAttributes {
    UserAttributes {
        id: u.id.0.clone(),
        gender: u.gender.map(|g| g.as_str().to_owned()),
        city: u.city.clone(),
        city_tier: u.city_tier.map(|t| t.as_str().to_owned()),
        registration_channel: u.registration_channel.map(|c| c.as_str().to_owned()),
    }
}
