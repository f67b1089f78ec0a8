//! Flash sales (秒杀): sales (scope `admin`), reservations and confirmations (scope `ingest`, from
//! the shop's backend), look-up (scope `read`). Stock and per-user limits change only by
//! conditional writes; a reservation holds units until it is confirmed or its hold runs out, when
//! the server's sweeper puts them back on sale.

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
use shopgrowth_store::records::{FlashSaleRecord, ReservationRecord, Reserved};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlashSaleRequest {
    /// The sale id: the idempotency key.
    pub id: String,
    pub sku: String,
    /// Sale price, minor units.
    pub price: i64,
    pub stock: i64,
    #[serde(default = "one")]
    pub per_user_limit: i64,
    #[schema(value_type = String)]
    pub starts_at: Timestamp,
    #[schema(value_type = String)]
    pub ends_at: Timestamp,
    /// Seconds a reservation holds its units before they go back on sale (default 900).
    #[serde(default = "fifteen_minutes")]
    pub hold_seconds: i64,
}

impl FlashSaleRequest {
    /// Checks the sale and makes its record (nothing taken yet); each problem names its field.
    pub fn record(&self, now: i64) -> Result<FlashSaleRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > 100 {
            errors.push(FieldError::new("id", "1 to 100 characters"));
        }
        for (field, v) in [("price", self.price), ("stock", self.stock)] {
            if v < 0 {
                errors.push(FieldError::new(field, "must not be negative"));
            }
        }
        if self.per_user_limit < 1 {
            errors.push(FieldError::new("per_user_limit", "must be at least 1"));
        }
        if self.hold_seconds < 1 {
            errors.push(FieldError::new("hold_seconds", "must be at least 1"));
        }
        if self.ends_at <= self.starts_at {
            errors.push(FieldError::new("ends_at", "must be after starts_at"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(FlashSaleRecord {
            id: self.id.clone(),
            sku: self.sku.clone(),
            price: self.price,
            stock: self.stock,
            taken: 0,
            per_user_limit: self.per_user_limit,
            starts_at: self.starts_at.0,
            ends_at: self.ends_at.0,
            hold_ms: self.hold_seconds.saturating_mul(1000),
            created_at: now,
        })
    }
}

fn one() -> i64 {
    1
}

fn fifteen_minutes() -> i64 {
    900
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlashSaleView {
    pub id: String,
    pub sku: String,
    pub price: i64,
    pub stock: i64,
    /// Units held or sold.
    pub taken: i64,
    pub available: i64,
    pub per_user_limit: i64,
    pub starts_at: String,
    pub ends_at: String,
}

impl From<FlashSaleRecord> for FlashSaleView {
    fn from(f: FlashSaleRecord) -> Self {
        FlashSaleView {
            available: f.stock - f.taken,
            id: f.id,
            sku: f.sku,
            price: f.price,
            stock: f.stock,
            taken: f.taken,
            per_user_limit: f.per_user_limit,
            starts_at: Timestamp(f.starts_at).to_rfc3339(),
            ends_at: Timestamp(f.ends_at).to_rfc3339(),
        }
    }
}

/// Create a flash sale; the same id again changes nothing (200).
#[utoipa::path(post, path = "/api/v1/flash-sales", tag = "promotions", request_body = FlashSaleRequest,
    security(("api_key" = [])),
    responses((status = 201, body = FlashSaleView), (status = 200, body = FlashSaleView), (status = 400, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<FlashSaleRequest>,
) -> ApiResult<(StatusCode, Json<FlashSaleView>)> {
    caller.require(Scope::Admin)?;
    let record = req
        .record(Timestamp::now().0)
        .map_err(|errors| ApiError::invalid("the flash sale is not valid", errors))?;
    let created = state.store.create_flash_sale(record).await?;
    let sale = state
        .store
        .flash_sale(req.id.clone())
        .await?
        .ok_or_else(|| ApiError::Internal(format!("flash sale {:?} vanished", req.id)))?;
    let status = created_or_ok(created);
    Ok((status, Json(sale.into())))
}

#[utoipa::path(get, path = "/api/v1/flash-sales/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the sale")), security(("api_key" = [])),
    responses((status = 200, body = FlashSaleView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FlashSaleView>> {
    caller.require(Scope::Read)?;
    let sale = state
        .store
        .flash_sale(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no flash sale {id:?}")))?;
    Ok(Json(sale.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// The caller's idempotency key for this attempt.
    pub reservation_id: String,
    pub user_id: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationView {
    pub id: String,
    pub sale_id: String,
    pub user_id: String,
    pub quantity: i64,
    /// `reserved`, `confirmed` or `released`.
    pub state: String,
    pub expires_at: String,
}

impl From<ReservationRecord> for ReservationView {
    fn from(r: ReservationRecord) -> Self {
        ReservationView {
            id: r.id,
            sale_id: r.sale_id,
            user_id: r.user_id,
            quantity: r.quantity,
            state: r.state,
            expires_at: Timestamp(r.expires_at).to_rfc3339(),
        }
    }
}

/// Reserve units: 201 with the hold, 200 for the same reservation id again, 409 when sold out,
/// not open, or over the user's limit. Never oversells, also with several server nodes.
#[utoipa::path(post, path = "/api/v1/flash-sales/{id}/reservations", tag = "promotions", request_body = ReserveRequest,
    params(("id" = String, Path, description = "the sale")), security(("api_key" = [])),
    responses((status = 201, body = ReservationView), (status = 200, body = ReservationView),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReserveRequest>,
) -> ApiResult<(StatusCode, Json<ReservationView>)> {
    caller.require(Scope::Ingest)?;
    let mut errors = Vec::new();
    if req.reservation_id.trim().is_empty() {
        errors.push(FieldError::new("reservation_id", "must not be empty"));
    }
    if req.user_id.trim().is_empty() {
        errors.push(FieldError::new("user_id", "must not be empty"));
    }
    if req.quantity < 1 {
        errors.push(FieldError::new("quantity", "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "a reservation needs an id, a user and a quantity of at least 1",
            errors,
        ));
    }
    if state.sold_out.is_closed(&id) {
        // A retry of a hold made before still gets its hold; anything new is sold out.
        if !state.sold_out.may_exist(&id, &req.reservation_id) {
            return Err(sold_out(id));
        }
        return match state
            .store
            .repeated_flash_reservation(req.reservation_id, &id, &req.user_id)
            .await?
        {
            Some(Reserved::New(r) | Reserved::Duplicate(r)) => Ok((StatusCode::OK, Json(r.into()))),
            None => Err(sold_out(id)),
        };
    }
    let reservation_id = req.reservation_id.clone();
    let reserved = state
        .store
        .reserve_flash(
            id.clone(),
            req.reservation_id,
            req.user_id,
            req.quantity,
            Timestamp::now().0,
        )
        .await;
    match &reserved {
        Err(shopgrowth_store::Error::SoldOut { .. }) => {
            // The reservations made so far, so that while the gate is closed only their retries
            // need the store. Read once: by the first attempt refused while the gate was open,
            // or by the probe; the rest of the crowd refused at that moment just answers.
            if let Some(closing) = state.sold_out.start_closing(&id) {
                let made = state.store.flash_reservation_ids(id.clone()).await?;
                closing.close(made);
            }
        }
        Ok(Reserved::New(_)) => state.sold_out.reopen(&id),
        Ok(Reserved::Duplicate(_)) => state.sold_out.remember(&id, &reservation_id),
        _ => {}
    }
    match reserved? {
        Reserved::New(r) => Ok((StatusCode::CREATED, Json(r.into()))),
        Reserved::Duplicate(r) => Ok((StatusCode::OK, Json(r.into()))),
    }
}

/// Confirm a held reservation (the order is paid). Twice is harmless; after the hold ran out, 409.
#[utoipa::path(post, path = "/api/v1/flash-reservations/{id}/confirm", tag = "promotions",
    params(("id" = String, Path, description = "the reservation")), security(("api_key" = [])),
    responses((status = 200, body = ReservationView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ReservationView>> {
    caller.require(Scope::Ingest)?;
    Ok(Json(
        state
            .store
            .confirm_flash(id, Timestamp::now().0)
            .await?
            .into(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasedView {
    pub id: String,
    pub released: bool,
}

/// Give up a held reservation: its units go back on sale at once.
#[utoipa::path(post, path = "/api/v1/flash-reservations/{id}/release", tag = "promotions",
    params(("id" = String, Path, description = "the reservation")), security(("api_key" = [])),
    responses((status = 200, body = ReleasedView)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ReleasedView>> {
    caller.require(Scope::Ingest)?;
    let released = state
        .store
        .release_flash(id.clone(), true, Timestamp::now().0)
        .await?;
    if released {
        state.sold_out.reopen_all();
    }
    Ok(Json(ReleasedView { id, released }))
}

fn sold_out(sale: String) -> ApiError {
    ApiError::Store(shopgrowth_store::Error::SoldOut {
        entity: "flash sale",
        id: sale,
    })
}

/// Admission control for the stampede after a sale sells out: once the store has refused a sale
/// as sold out, this node refuses further attempts at it for [`SoldOutGate::CLOSED_FOR`] without
/// the store, so the crowd that arrives too late costs no store work.
///
/// A retried reservation id still gets its hold back: the gate keeps the ids the sale's
/// reservations had when it closed, plus those made on this node since, and looks only those up.
/// The ids are read once per closing, by the first attempt the store refused (or by the probe),
/// not by every attempt refused at that moment. With several nodes, a reservation another node
/// makes from units that came back after this node closed its gate is learnt at the next probe;
/// until then its retries here hear "sold out", and the hold stands.
///
/// When the closed time is up, one attempt goes through as a probe while the others are still
/// refused (half-open): sold out again closes the gate for another `CLOSED_FOR`, a unit taken
/// opens it. The gate only ever refuses, so it cannot oversell; units that come back (a hold given
/// up or run out) sell again at once for a release on this node, otherwise at the next probe.
#[derive(Debug, Default)]
pub struct SoldOutGate {
    sales: std::sync::Mutex<Gates>,
}

#[derive(Debug, Default)]
struct Gates {
    closed: std::collections::HashMap<String, GateState>,
    /// Sales whose reservation ids are being read to close their gate.
    closing: std::collections::HashSet<String>,
}

#[derive(Debug)]
struct GateState {
    closed_until: std::time::Instant,
    /// Reservation ids known to exist for the sale.
    made: std::collections::HashSet<String>,
    /// A probe is out: its "sold out" closes the gate again with the ids read afresh.
    probing: bool,
}

/// The right to close a sale's gate, held while its reservation ids are read; dropped unused
/// (the read failed, or the request went away), it lets the next refused attempt try.
pub struct Closing<'a> {
    gate: &'a SoldOutGate,
    sale: String,
}

impl Closing<'_> {
    /// Closes the gate; `made` are the sale's reservation ids as the store has them now.
    pub fn close(self, made: Vec<String>) {
        self.gate.close(&self.sale, made);
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.gate.lock().closing.remove(&self.sale);
    }
}

impl SoldOutGate {
    pub const CLOSED_FOR: std::time::Duration = std::time::Duration::from_millis(250);

    /// Whether to refuse an attempt now. The first attempt after the closed time is let through
    /// as the probe, and the gate stays closed around it until its answer (or `CLOSED_FOR`).
    pub fn is_closed(&self, sale: &str) -> bool {
        let mut gates = self.lock();
        let now = std::time::Instant::now();
        match gates.closed.get_mut(sale) {
            Some(g) if g.closed_until > now => true,
            Some(g) => {
                g.closed_until = now + Self::CLOSED_FOR;
                g.probing = true;
                false
            }
            None => false,
        }
    }

    /// Whether a reservation id may have been made for the sale (always, for an open gate).
    pub fn may_exist(&self, sale: &str, reservation: &str) -> bool {
        self.lock()
            .closed
            .get(sale)
            .is_none_or(|g| g.made.contains(reservation))
    }

    /// A reservation of the sale made or confirmed on this node.
    pub fn remember(&self, sale: &str, reservation: &str) {
        if let Some(g) = self.lock().closed.get_mut(sale) {
            g.made.insert(reservation.to_owned());
        }
    }

    /// A unit of the sale was taken: let everyone through again.
    pub fn reopen(&self, sale: &str) {
        let mut gates = self.lock();
        if !gates.closed.is_empty() {
            gates.closed.remove(sale);
        }
    }

    /// The store said sold out: the right to close the gate, for the one attempt that should
    /// read the sale's reservation ids (the first while it is open, or the probe); None for the
    /// others refused at the same moment.
    pub fn start_closing(&self, sale: &str) -> Option<Closing<'_>> {
        let mut gates = self.lock();
        let reads = gates.closed.get(sale).is_none_or(|g| g.probing);
        if !reads || !gates.closing.insert(sale.to_owned()) {
            return None;
        }
        Some(Closing {
            gate: self,
            sale: sale.to_owned(),
        })
    }

    /// Closes the gate; `made` are the sale's reservation ids at that time.
    fn close(&self, sale: &str, made: Vec<String>) {
        self.lock().closed.insert(
            sale.to_owned(),
            GateState {
                closed_until: std::time::Instant::now() + Self::CLOSED_FOR,
                made: made.into_iter().collect(),
                probing: false,
            },
        );
    }

    pub fn reopen_all(&self) {
        self.lock().closed.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gates> {
        // The map holds deadlines and ids: a panic elsewhere cannot leave it inconsistent.
        self.sales
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every second, for as long as the server runs: puts the units of expired flash-sale holds back
/// on sale, ends lapsed coupon holds, expires red packets past their time (returning what nobody
/// claimed), fails groups past their deadline (refunding their members), and settles checkout
/// attempts unsettled for longer than `checkout_grace` (giving back what they spent).
pub fn spawn_sweeper(
    store: std::sync::Arc<shopgrowth_store::Store>,
    checkout_grace: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            match store.sweep_flash(Timestamp::now().0).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, "expired flash-sale holds returned"),
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping flash-sale holds failed; will retry")
                }
            }
            match store.sweep_coupon_holds(Timestamp::now().0).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(ended = n, "lapsed coupon holds ended"),
                Err(e) => {
                    tracing::warn!(error = %e, "ending lapsed coupon holds failed; will retry")
                }
            }
            match store.expire_red_packets(Timestamp::now().0).await {
                Ok(expired) => {
                    for (packet, returned) in expired {
                        tracing::info!(
                            packet,
                            returned,
                            "red packet expired; the remainder returned"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiring red packets failed; will retry"),
            }
            match store.expire_groups(Timestamp::now().0).await {
                Ok(failed) => {
                    for (group, members) in failed {
                        let refunded: i64 = members.iter().map(|m| m.price).sum();
                        tracing::info!(
                            group,
                            members = members.len(),
                            refunded,
                            "group failed at its deadline; members refunded"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiring groups failed; will retry"),
            }
            let now = Timestamp::now().0;
            let before = now - checkout_grace.as_millis() as i64;
            match super::pricing::settle_dead_checkouts(&store, before, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(settled = n, "dead checkout attempts settled"),
                Err(e) => {
                    tracing::warn!(error = %e, "settling dead checkout attempts failed; will retry")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sold_out_gate_closes_per_sale_and_reopens() {
        let gate = SoldOutGate::default();
        let closing = gate.start_closing("a");
        assert!(
            closing.is_some() && gate.start_closing("a").is_none(),
            "one reader of the ids"
        );
        if let Some(c) = closing {
            c.close(vec!["r1".into()]);
        }
        assert!(gate.start_closing("a").is_none(), "closed: nothing to read");
        assert!(gate.is_closed("a") && !gate.is_closed("b"));
        assert!(gate.may_exist("a", "r1") && !gate.may_exist("a", "r2"));
        gate.remember("a", "r2");
        assert!(gate.may_exist("a", "r2"), "made on this node since");
        assert!(
            gate.may_exist("b", "anything"),
            "an open gate knows nothing"
        );
        gate.reopen_all();
        assert!(!gate.is_closed("a"), "a release reopens at once");
        drop(gate.start_closing("a"));
        assert!(
            gate.start_closing("a").is_some(),
            "a read given up lets the next one try"
        );
        gate.close("a", Vec::new());
        std::thread::sleep(SoldOutGate::CLOSED_FOR + std::time::Duration::from_millis(20));
        assert!(!gate.is_closed("a"), "time lets one probe through");
        assert!(gate.is_closed("a"), "the others wait for its answer");
        let probe = gate.start_closing("a");
        assert!(probe.is_some(), "the probe's sold out reads the ids afresh");
        if let Some(c) = probe {
            c.close(vec!["r3".into()]);
        }
        assert!(gate.may_exist("a", "r3") && gate.is_closed("a"));
        gate.reopen("a");
        assert!(
            !gate.is_closed("a") && !gate.is_closed("a"),
            "a unit taken opens it"
        );
    }
}

/// Every flash sale, by id, a page at a time (`?after=LAST_ID&limit=N`), with what is taken.
#[utoipa::path(get, path = "/api/v1/flash-sales", tag = "promotions", params(PageQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<FlashSaleView>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<FlashSaleView>>> {
    caller.require(Scope::Read)?;
    let (after, limit) = page.bounds()?;
    let sales = state.store.flash_sales_after(after, limit).await?;
    Ok(Json(sales.into_iter().map(FlashSaleView::from).collect()))
}
