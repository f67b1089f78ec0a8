//! Red packets (红包): made by the shop's backend for a sender (scope `ingest`), claimed by
//! customers (scope `ingest`), looked up (scope `read`). The shares are drawn when a packet is made
//! (docs/red-packets.md) and stored; each claim takes the next one by a conditional write, one per
//! claimant, and the server's sweeper returns what nobody claimed when a packet expires. A
//! share-to-unlock packet (分享解锁) starts locked and opens once enough friends have helped.

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Caller};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::{Currency, FieldError};
use shopgrowth_promo::red_packet::{split_fixed, split_lucky};
use shopgrowth_store::records::{PacketClaim, PacketHelp, RedPacketRecord, RedPacketShare};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PacketKind {
    /// Equal shares (the first `total mod shares` one unit more).
    Fixed,
    /// 拼手气: random shares of at least `min_share`, fair by claim position.
    Lucky,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedPacketRequest {
    /// The packet id: the idempotency key.
    pub id: String,
    /// Who pays for it (a customer or the shop).
    pub sender: String,
    pub kind: PacketKind,
    /// Minor units.
    pub total: i64,
    pub currency: String,
    pub shares: u32,
    /// Lucky packets: the least a share may be (default 1).
    #[serde(default = "one")]
    pub min_share: i64,
    /// Seconds until unclaimed shares return to the sender (default 86,400).
    #[serde(default = "one_day")]
    pub expires_in_seconds: i64,
    /// Share-to-unlock (分享解锁): the packet stays locked until this many different helpers
    /// (never the sender) have helped (`POST /red-packets/{id}/helps`); 0, the default, opens it
    /// at once. At most 1,000.
    #[serde(default)]
    pub unlock_helpers: u32,
}

impl RedPacketRequest {
    /// Checks the packet and makes its record with its shares (drawn from a seed of the id, so
    /// the same request draws the same shares on any node); each problem names its field.
    pub fn record(&self, now: i64) -> Result<(RedPacketRecord, Vec<i64>), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > 100 {
            errors.push(FieldError::new("id", "1 to 100 characters"));
        }
        if self.sender.trim().is_empty() {
            errors.push(FieldError::new("sender", "must not be empty"));
        }
        let currency = match Currency::parse(&self.currency) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(FieldError::new("currency", e.to_string()));
                None
            }
        };
        if self.shares > 10_000 {
            errors.push(FieldError::new("shares", "at most 10,000"));
        }
        if self.unlock_helpers > 1_000 {
            errors.push(FieldError::new("unlock_helpers", "at most 1,000"));
        }
        if !(1..=366 * 86_400).contains(&self.expires_in_seconds) {
            errors.push(FieldError::new(
                "expires_in_seconds",
                "between 1 second and 366 days",
            ));
        }
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(shopgrowth_core::ids::stable_hash(&self.id));
        let amounts = match self.kind {
            PacketKind::Fixed => split_fixed(self.total, self.shares),
            PacketKind::Lucky => split_lucky(self.total, self.shares, self.min_share, &mut rng),
        };
        let amounts = match amounts {
            Ok(a) => a,
            Err(e) => {
                errors.push(FieldError::new("total", e.to_string()));
                Vec::new()
            }
        };
        let Some(currency) = currency.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let kind = match self.kind {
            PacketKind::Fixed => "fixed",
            PacketKind::Lucky => "lucky",
        };
        let packet = RedPacketRecord {
            id: self.id.clone(),
            sender: self.sender.clone(),
            kind: kind.into(),
            total: self.total,
            currency: currency.as_str().to_string(),
            shares: i64::from(self.shares),
            claimed_count: 0,
            claimed_amount: 0,
            state: "open".into(),
            returned: 0,
            expires_at: now.saturating_add(self.expires_in_seconds.saturating_mul(1000)),
            created_at: now,
            unlock_helpers: i64::from(self.unlock_helpers),
            helpers: 0,
        };
        Ok((packet, amounts))
    }
}

fn one() -> i64 {
    1
}

fn one_day() -> i64 {
    86_400
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    /// Claim order, from 0.
    pub position: i64,
    pub amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
}

impl From<RedPacketShare> for ShareView {
    fn from(s: RedPacketShare) -> Self {
        ShareView {
            position: s.position,
            amount: s.amount,
            claimed_by: s.claimed_by,
            claimed_at: s.claimed_at.map(|t| Timestamp(t).to_rfc3339()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedPacketView {
    pub id: String,
    pub sender: String,
    pub kind: String,
    pub total: i64,
    pub currency: String,
    pub shares: i64,
    pub claimed_count: i64,
    pub claimed_amount: i64,
    /// `locked` (waiting for helpers), `open`, `finished` or `expired`.
    pub state: String,
    /// Returned to the sender on expiry.
    pub returned: i64,
    pub expires_at: String,
    /// Share-to-unlock: helpers needed to open the packet (0: none) and counted so far.
    pub unlock_helpers: i64,
    pub helpers: i64,
    /// Claimed shares only: unclaimed amounts stay secret until claimed.
    pub claims: Vec<ShareView>,
}

/// A packet as the API and the CLI show it: claimed shares only.
pub fn red_packet_view(p: RedPacketRecord, shares: Vec<RedPacketShare>) -> RedPacketView {
    RedPacketView {
        id: p.id,
        sender: p.sender,
        kind: p.kind,
        total: p.total,
        currency: p.currency,
        shares: p.shares,
        claimed_count: p.claimed_count,
        claimed_amount: p.claimed_amount,
        state: p.state,
        returned: p.returned,
        expires_at: Timestamp(p.expires_at).to_rfc3339(),
        unlock_helpers: p.unlock_helpers,
        helpers: p.helpers,
        claims: shares
            .into_iter()
            .filter(|s| s.claimed_by.is_some())
            .map(ShareView::from)
            .collect(),
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<RedPacketView> {
    let (p, shares) = state
        .store
        .red_packet(id.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no red packet {id:?}")))?;
    Ok(red_packet_view(p, shares))
}

/// Make a red packet; the same id again changes nothing (200).
#[utoipa::path(post, path = "/api/v1/red-packets", tag = "promotions", request_body = RedPacketRequest,
    security(("api_key" = [])),
    responses((status = 201, body = RedPacketView), (status = 200, body = RedPacketView), (status = 400, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RedPacketRequest>,
) -> ApiResult<(StatusCode, Json<RedPacketView>)> {
    caller.require(Scope::Ingest)?;
    let (packet, amounts) = req
        .record(Timestamp::now().0)
        .map_err(|errors| ApiError::invalid("the red packet is not valid", errors))?;
    let created = state.store.create_red_packet(packet, amounts).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(load(&state, &req.id).await?)))
}

#[utoipa::path(get, path = "/api/v1/red-packets/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the packet")), security(("api_key" = [])),
    responses((status = 200, body = RedPacketView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RedPacketView>> {
    caller.require(Scope::Read)?;
    Ok(Json(load(&state, &id).await?))
}

/// A claim's or help's customer must be named.
fn require_user(user_id: &str, title: &str) -> ApiResult<()> {
    if user_id.trim().is_empty() {
        return Err(ApiError::invalid(
            title,
            vec![FieldError::new("user_id", "must not be empty")],
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimView {
    pub packet_id: String,
    pub user_id: String,
    pub position: i64,
    pub amount: i64,
    /// False when this claimant had claimed before (their share again).
    pub new: bool,
}

/// Claim the next share; a claimant who has one gets it again (200). 409 when the packet is
/// empty or expired.
#[utoipa::path(post, path = "/api/v1/red-packets/{id}/claims", tag = "promotions", request_body = ClaimRequest,
    params(("id" = String, Path, description = "the packet")), security(("api_key" = [])),
    responses((status = 201, body = ClaimView), (status = 200, body = ClaimView), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<(StatusCode, Json<ClaimView>)> {
    caller.require(Scope::Ingest)?;
    require_user(&req.user_id, "the claim is not valid")?;
    let claimed = state
        .store
        .claim_red_packet(id.clone(), req.user_id.clone(), Timestamp::now().0)
        .await?;
    let (status, share, new) = match claimed {
        PacketClaim::New(s) => (StatusCode::CREATED, s, true),
        PacketClaim::Duplicate(s) => (StatusCode::OK, s, false),
    };
    Ok((
        status,
        Json(ClaimView {
            packet_id: id,
            user_id: req.user_id,
            position: share.position,
            amount: share.amount,
            new,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HelpRequest {
    /// The friend helping; never the packet's sender.
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HelpView {
    pub packet_id: String,
    pub user_id: String,
    /// Helpers counted so far, of `unlock_helpers` needed.
    pub helpers: i64,
    pub unlock_helpers: i64,
    /// The packet is open for claims (this help or an earlier one opened it).
    pub unlocked: bool,
    /// False when this helper had helped before (counted once).
    pub new: bool,
}

/// Help unlock a share-to-unlock packet (分享解锁): each helper counts once, and the help that
/// reaches `unlock_helpers` opens the packet for claims. 409 when the packet needs no help, is
/// the helper's own, has expired or is unlocked already.
#[utoipa::path(post, path = "/api/v1/red-packets/{id}/helps", tag = "promotions", request_body = HelpRequest,
    params(("id" = String, Path, description = "the packet")), security(("api_key" = [])),
    responses((status = 201, body = HelpView), (status = 200, body = HelpView), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn help(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<HelpRequest>,
) -> ApiResult<(StatusCode, Json<HelpView>)> {
    caller.require(Scope::Ingest)?;
    require_user(&req.user_id, "the help is not valid")?;
    let helped = state
        .store
        .help_red_packet(id.clone(), req.user_id.clone(), Timestamp::now().0)
        .await?;
    let (status, packet, new) = match helped {
        PacketHelp::New(p) => (StatusCode::CREATED, p, true),
        PacketHelp::Duplicate(p) => (StatusCode::OK, p, false),
    };
    Ok((
        status,
        Json(HelpView {
            packet_id: id,
            user_id: req.user_id,
            helpers: packet.helpers,
            unlock_helpers: packet.unlock_helpers,
            unlocked: packet.state != "locked",
            new,
        }),
    ))
}
