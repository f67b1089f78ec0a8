//! Red packets (红包): made by the shop's backend for a sender (scope `ingest`), claimed by
//! customers (scope `ingest`), looked up (scope `read`). The shares are drawn when a packet is made
//! (docs/red-packets.md) and stored; each claim takes the next one by a conditional write, one per
//! claimant, and the server's sweeper returns what nobody claimed when a packet expires. A
//! share-to-unlock packet (分享解锁) starts locked and opens once enough friends have helped.

use super::created_or_ok;
use super::PageQuery;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;
use axum::extract::State;
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
    /// Share-to-unlock anti-abuse (刷助力): a help counts only while its helper has helped fewer
    /// than this many share packets today (shop-local day); none for no cap. 1 to 1,000.
    #[serde(default)]
    pub helps_per_helper_per_day: Option<u32>,
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
        if self
            .helps_per_helper_per_day
            .is_some_and(|n| !(1..=1_000).contains(&n))
        {
            errors.push(FieldError::new("helps_per_helper_per_day", "1 to 1,000"));
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
            opens_at: 0,
            rain_id: None,
            helps_per_helper_per_day: self.helps_per_helper_per_day.map(i64::from),
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
    /// `scheduled` (a rain's round before it opens), `locked` (waiting for helpers), `open`,
    /// `finished` or `expired`.
    pub state: String,
    /// Returned to the sender on expiry.
    pub returned: i64,
    pub expires_at: String,
    /// Share-to-unlock: helpers needed to open the packet (0: none) and counted so far.
    pub unlock_helpers: i64,
    pub helpers: i64,
    /// Share-to-unlock: the most share packets one helper may help a day for a help to count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helps_per_helper_per_day: Option<i64>,
    /// A rain's round: no claim before this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// The red-packet rain this packet is a round of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rain_id: Option<String>,
    /// Claimed shares only: unclaimed amounts stay secret until claimed.
    pub claims: Vec<ShareView>,
}

/// A packet as the API and the CLI show it: claimed shares only.
/// A packet's state as shown: an open rain round that has not opened yet is `scheduled`.
fn shown_state(state: String, opens_at: i64, now: i64) -> String {
    if state == "open" && now < opens_at {
        "scheduled".to_owned()
    } else {
        state
    }
}

pub fn red_packet_view(p: RedPacketRecord, shares: Vec<RedPacketShare>) -> RedPacketView {
    RedPacketView {
        state: shown_state(p.state, p.opens_at, Timestamp::now().0),
        id: p.id,
        sender: p.sender,
        kind: p.kind,
        total: p.total,
        currency: p.currency,
        shares: p.shares,
        claimed_count: p.claimed_count,
        claimed_amount: p.claimed_amount,
        returned: p.returned,
        expires_at: Timestamp(p.expires_at).to_rfc3339(),
        unlock_helpers: p.unlock_helpers,
        helpers: p.helpers,
        helps_per_helper_per_day: p.helps_per_helper_per_day,
        opens_at: (p.opens_at > 0).then(|| Timestamp(p.opens_at).to_rfc3339()),
        rain_id: p.rain_id,
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
    let status = created_or_ok(created);
    Ok((status, Json(load(&state, &req.id).await?)))
}

#[utoipa::path(get, path = "/api/v1/red-packets/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the packet")), security(("api_key" = [])),
    responses((status = 200, body = RedPacketView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
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
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<(StatusCode, Json<ClaimView>)> {
    caller.require(Scope::Ingest)?;
    require_user(&req.user_id, "the claim is not valid")?;
    claim_share(&state, id, req.user_id).await
}

/// Claims the next share of packet `id` for `user_id`: 201 for a new share, 200 for the
/// claimant's earlier one.
async fn claim_share(
    state: &AppState,
    id: String,
    user_id: String,
) -> ApiResult<(StatusCode, Json<ClaimView>)> {
    let claimed = state
        .store
        .claim_red_packet(id.clone(), user_id.clone(), Timestamp::now().0)
        .await?;
    let (status, share, new) = match claimed {
        PacketClaim::New(s) => (StatusCode::CREATED, s, true),
        PacketClaim::Duplicate(s) => (StatusCode::OK, s, false),
    };
    Ok((
        status,
        Json(ClaimView {
            packet_id: id,
            user_id,
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
    /// Enough helpers have helped: the packet opened for claims (with this help or before).
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
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<HelpRequest>,
) -> ApiResult<(StatusCode, Json<HelpView>)> {
    caller.require(Scope::Ingest)?;
    require_user(&req.user_id, "the help is not valid")?;
    let helped = state
        .store
        .help_red_packet(
            id.clone(),
            req.user_id.clone(),
            Timestamp::now().0,
            shopgrowth_service::promotions::helper_day_line(
                &req.user_id,
                super::budgets::today(&state),
            ),
        )
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
            unlocked: packet.helpers >= packet.unlock_helpers,
            new,
        }),
    ))
}

/// Longest rain id: its rounds' packet ids (`ID:K`) stay within a packet id's 100 characters.
const MAX_RAIN_ID: usize = 90;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RainRequest {
    /// The rain id: the idempotency key. Round K (from 1) is the lucky packet `ID:K`.
    pub id: String,
    /// Who pays for it (usually the shop).
    pub sender: String,
    pub currency: String,
    /// The rounds (场次), in time order, none overlapping the one before; 1 to 100.
    pub rounds: Vec<RainRound>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RainRound {
    #[schema(value_type = String)]
    pub starts_at: Timestamp,
    /// How long the round lasts: 1 second to 1 hour.
    pub seconds: i64,
    /// The round's budget in minor units, split by a lucky draw (拼手气) into `shares`.
    pub total: i64,
    pub shares: u32,
    /// The least a share may be (default 1).
    #[serde(default = "one")]
    pub min_share: i64,
}

impl RainRequest {
    /// Checks the rain and makes each round's packet with its shares (each drawn from a seed of
    /// its packet id, as any red packet's); each problem names its field (`rounds[1].total`).
    pub fn records(&self, now: i64) -> Result<Vec<(RedPacketRecord, Vec<i64>)>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > MAX_RAIN_ID {
            errors.push(FieldError::new(
                "id",
                format!("1 to {MAX_RAIN_ID} characters"),
            ));
        }
        if !(1..=100).contains(&self.rounds.len()) {
            errors.push(FieldError::new("rounds", "1 to 100 rounds"));
        }
        let mut rounds = Vec::with_capacity(self.rounds.len());
        let mut previous_end: Option<i64> = None;
        for (k, round) in self.rounds.iter().enumerate() {
            let at = format!("rounds[{k}]");
            if !(1..=3_600).contains(&round.seconds) {
                errors.push(FieldError::new("seconds", "between 1 second and 1 hour").under(&at));
            }
            if previous_end.is_some_and(|end| round.starts_at.0 < end) {
                errors.push(
                    FieldError::new("starts_at", "must not start before the round before ends")
                        .under(&at),
                );
            }
            let ends = round
                .starts_at
                .0
                .saturating_add(round.seconds.clamp(1, 3_600) * 1_000);
            previous_end = Some(ends);
            let packet = RedPacketRequest {
                id: format!("{}:{}", self.id, k + 1),
                sender: self.sender.clone(),
                kind: PacketKind::Lucky,
                total: round.total,
                currency: self.currency.clone(),
                shares: round.shares,
                min_share: round.min_share,
                expires_in_seconds: one_day(),
                unlock_helpers: 0,
                helps_per_helper_per_day: None,
            };
            match packet.record(now) {
                Ok((mut record, amounts)) => {
                    record.opens_at = round.starts_at.0;
                    record.expires_at = ends;
                    record.rain_id = Some(self.id.clone());
                    rounds.push((record, amounts));
                }
                Err(round_errors) => {
                    for e in round_errors {
                        // What every round shares is named once, at the top.
                        if ["id", "sender", "currency"].contains(&e.field.as_str()) {
                            if !errors.iter().any(|x: &FieldError| x.field == e.field) {
                                errors.push(e);
                            }
                        } else {
                            errors.push(e.under(&at));
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(rounds)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RainRoundView {
    /// The round's packet (`RAIN:K`).
    pub packet_id: String,
    pub opens_at: String,
    pub expires_at: String,
    pub total: i64,
    pub shares: i64,
    pub claimed_count: i64,
    pub claimed_amount: i64,
    /// `scheduled` (not begun), `open`, `finished` (every share claimed) or `expired`.
    pub state: String,
    pub returned: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RainView {
    pub id: String,
    pub sender: String,
    pub currency: String,
    /// Sums over the rounds.
    pub total: i64,
    pub claimed_amount: i64,
    pub returned: i64,
    pub rounds: Vec<RainRoundView>,
}

/// A rain as the API and the CLI show it at `now`: each round's progress (who claimed what is on
/// each round's packet); `None` for a rain with no rounds.
pub fn rain_view(id: &str, rounds: Vec<RedPacketRecord>, now: i64) -> Option<RainView> {
    let first = rounds.first()?;
    Some(RainView {
        id: id.to_owned(),
        sender: first.sender.clone(),
        currency: first.currency.clone(),
        total: rounds.iter().map(|r| r.total).sum(),
        claimed_amount: rounds.iter().map(|r| r.claimed_amount).sum(),
        returned: rounds.iter().map(|r| r.returned).sum(),
        rounds: rounds
            .into_iter()
            .map(|r| RainRoundView {
                packet_id: r.id,
                opens_at: Timestamp(r.opens_at).to_rfc3339(),
                expires_at: Timestamp(r.expires_at).to_rfc3339(),
                total: r.total,
                shares: r.shares,
                claimed_count: r.claimed_count,
                claimed_amount: r.claimed_amount,
                state: shown_state(r.state, r.opens_at, now),
                returned: r.returned,
            })
            .collect(),
    })
}

async fn load_rain(state: &AppState, id: &str) -> ApiResult<RainView> {
    let rounds = state.store.rain_rounds(id.to_owned()).await?;
    rain_view(id, rounds, Timestamp::now().0)
        .ok_or_else(|| ApiError::NotFound(format!("no red-packet rain {id:?}")))
}

/// Schedule a red-packet rain (红包雨): rounds at set times, each a lucky packet that opens at
/// its start and returns what nobody claimed at its end. The same id again makes only the rounds
/// not made yet (201 if any was new, else 200).
#[utoipa::path(post, path = "/api/v1/red-packet-rains", tag = "promotions", request_body = RainRequest,
    security(("api_key" = [])),
    responses((status = 201, body = RainView), (status = 200, body = RainView), (status = 400, body = Problem)))]
pub async fn create_rain(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RainRequest>,
) -> ApiResult<(StatusCode, Json<RainView>)> {
    caller.require(Scope::Ingest)?;
    let rounds = req
        .records(Timestamp::now().0)
        .map_err(|errors| ApiError::invalid("the red-packet rain is not valid", errors))?;
    let created = shopgrowth_service::promotions::create_rain_rounds(&state.store, rounds).await?;
    let status = created_or_ok(created);
    Ok((status, Json(load_rain(&state, &req.id).await?)))
}

#[utoipa::path(get, path = "/api/v1/red-packet-rains/{id}", tag = "promotions",
    params(("id" = String, Path, description = "the rain")), security(("api_key" = [])),
    responses((status = 200, body = RainView), (status = 404, body = Problem)))]
pub async fn get_rain(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RainView>> {
    caller.require(Scope::Read)?;
    Ok(Json(load_rain(&state, &id).await?))
}

/// Catch a packet in the rain: a share of the round on now, one per customer and round (their
/// earlier one again, 200). 409 between rounds (naming when the next opens), after the last, or
/// when the round's shares are gone.
#[utoipa::path(post, path = "/api/v1/red-packet-rains/{id}/claims", tag = "promotions", request_body = ClaimRequest,
    params(("id" = String, Path, description = "the rain")), security(("api_key" = [])),
    responses((status = 201, body = ClaimView), (status = 200, body = ClaimView), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn claim_rain(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<(StatusCode, Json<ClaimView>)> {
    caller.require(Scope::Ingest)?;
    require_user(&req.user_id, "the claim is not valid")?;
    let rounds = state.store.rain_rounds(id.clone()).await?;
    if rounds.is_empty() {
        return Err(ApiError::NotFound(format!("no red-packet rain {id:?}")));
    }
    let now = Timestamp::now().0;
    match rounds.iter().find(|r| now < r.expires_at) {
        Some(r) if r.opens_at <= now => claim_share(&state, r.id.clone(), req.user_id).await,
        Some(next) => Err(ApiError::Conflict(format!(
            "red-packet rain {id:?} has no round on now; the next opens at {}",
            Timestamp(next.opens_at).to_rfc3339()
        ))),
        None => Err(ApiError::Conflict(format!(
            "red-packet rain {id:?} is over"
        ))),
    }
}

/// Every red packet (rain rounds included), by id, a page at a time (`?after=LAST_ID&limit=N`):
/// each packet's progress without its claims (read the packet for those).
#[utoipa::path(get, path = "/api/v1/red-packets", tag = "promotions", params(PageQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<RedPacketView>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<RedPacketView>>> {
    caller.require(Scope::Read)?;
    let (after, limit) = page.bounds()?;
    let packets = state.store.red_packets_after(after, limit).await?;
    Ok(Json(
        packets
            .into_iter()
            .map(|p| red_packet_view(p, Vec::new()))
            .collect(),
    ))
}
