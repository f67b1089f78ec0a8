//! What the store takes and gives back, beyond the core model: sealed personal data, write
//! outcomes, customers with their merged identities, stored events and orders, API keys.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};
use shopgrowth_core::ids::{DeviceId, UserId};
use shopgrowth_core::model::{Channel, CityTier, Event, Gender, Order, User};
pub use shopgrowth_core::model::{ImportBatch, ImportedOrder};
use shopgrowth_core::pii::{normalise_email, normalise_phone, PiiCipher, PiiKind};

/// What a write did to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Written {
    Inserted,
    Updated,
    /// The id was already stored; nothing changed.
    Duplicate,
}

/// A user whose personal data is already encrypted, with keyed hashes for look-ups. The store
/// never sees a clear phone, email or name.
#[derive(Debug, Clone, Default)]
pub struct SealedUser {
    pub id: String,
    pub phone_enc: Option<Vec<u8>>,
    pub phone_hash: Option<Vec<u8>>,
    pub email_enc: Option<Vec<u8>>,
    pub email_hash: Option<Vec<u8>>,
    pub name_enc: Option<Vec<u8>>,
    pub gender: Option<Gender>,
    pub birthday: Option<NaiveDate>,
    pub city: Option<String>,
    pub city_tier: Option<CityTier>,
    pub registration_channel: Option<Channel>,
    pub registered_at: Option<i64>,
    pub attributes: Map<String, Value>,
}

impl SealedUser {
    /// Normalises and encrypts a validated user's personal data. Fields that fail normalisation
    /// are left out (validation reports them before this is called).
    pub fn seal(user: &User, cipher: &PiiCipher) -> Self {
        let phone = user
            .phone
            .as_ref()
            .and_then(|p| normalise_phone(p.expose()).ok());
        let email = user
            .email
            .as_ref()
            .and_then(|e| normalise_email(e.expose()).ok());
        SealedUser {
            id: user.id.0.clone(),
            phone_enc: phone.as_deref().map(|p| cipher.encrypt(p)),
            phone_hash: phone
                .as_deref()
                .map(|p| cipher.lookup_hash(PiiKind::Phone, p)),
            email_enc: email.as_deref().map(|e| cipher.encrypt(e)),
            email_hash: email
                .as_deref()
                .map(|e| cipher.lookup_hash(PiiKind::Email, e)),
            name_enc: user
                .name
                .as_ref()
                .map(|n| cipher.encrypt(n.expose().trim())),
            gender: user.gender,
            birthday: user.birthday,
            city: user.city.clone(),
            city_tier: user.city_tier,
            registration_channel: user.registration_channel,
            registered_at: user.registered_at.map(|t| t.0),
            attributes: user.attributes.clone(),
        }
    }

    /// A user known only by id (an order's customer seen in an import).
    pub fn bare(id: &str) -> Self {
        SealedUser {
            id: id.to_owned(),
            ..Default::default()
        }
    }
}

/// A stored user row.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub sealed: SealedUser,
    pub created_at: i64,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserWritten {
    pub written: Written,
    /// Set when this user was merged into an existing customer with the same phone.
    pub merged_into: Option<UserId>,
}

/// One customer as ID-Mapping sees them: the canonical user, the users merged into it and the
/// devices that logged in as any of them.
#[derive(Debug, Clone)]
pub struct Customer {
    pub canonical: UserRecord,
    pub requested_id: UserId,
    pub member_ids: Vec<UserId>,
    pub device_ids: Vec<DeviceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Device,
    User,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Device => "device",
            LinkKind::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "device" => Some(LinkKind::Device),
            "user" => Some(LinkKind::User),
            _ => None,
        }
    }
}

/// A recorded merge: `source_id` (a device or a user) belongs to `target_user_id`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityLink {
    pub id: i64,
    pub kind: LinkKind,
    pub source_id: String,
    pub target_user_id: String,
    pub reason: String,
    pub created_at: i64,
    pub undone_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event: Event,
    pub received_at: i64,
}

#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    pub refunded_amount: i64,
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportWritten {
    pub lines: Vec<Written>,
    pub events: Vec<Written>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Row counts per table, for summaries and health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub users: i64,
    pub products: i64,
    pub stores: i64,
    pub orders: i64,
    pub order_lines: i64,
    pub events: i64,
}

/// Refund outcome; a refund id seen before is a duplicate and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundWritten {
    Applied,
    Duplicate,
}

/// One promotion's share of a refund, given back to the budget spend its discount came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareReturn {
    /// The budget spend the discount came from: a checkout's `checkout:ORDER:CAMPAIGN:ATTEMPT`,
    /// or a coupon redemption's.
    pub spend_key: String,
    /// `campaign` or `coupon`, and the campaign's or the coupon template's id.
    pub promotion_type: String,
    pub promotion_id: String,
    /// The trail's subject: the spend key for a campaign, the code for a coupon.
    pub subject: String,
    pub amount: i64,
}

/// Works out a refund's shares from the units of each order line (by position) that earlier
/// refunds of the order returned; run in the write that gives them back, so the refunds of one
/// order are worked out one after another.
pub type SharePlan =
    Box<dyn FnOnce(&std::collections::BTreeMap<i64, i64>) -> Vec<ShareReturn> + Send>;

/// What a refund gave back: the shares whose spends stood (a spend reverted whole, or one that
/// was never made, gives nothing back), or nothing for a refund seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharesReturned {
    Returned(Vec<ShareReturn>),
    Duplicate,
}

/// A refund's units per order line, as `refund_returns.lines` keeps them.
pub(crate) fn units_text(lines: &[(i64, i64)]) -> String {
    serde_json::to_string(lines).unwrap_or_else(|_| "[]".into())
}

/// Adds the units of a `refund_returns.lines` text to `into`.
pub(crate) fn add_units(text: &str, into: &mut std::collections::BTreeMap<i64, i64>) {
    let lines: Vec<(i64, i64)> = serde_json::from_str(text).unwrap_or_default();
    for (line, units) in lines {
        *into.entry(line).or_default() += units;
    }
}

pub(crate) fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

pub(crate) fn parse_json_map(text: Option<&str>) -> Map<String, Value> {
    match text.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    }
}

/// Everything the audience engine reads, in one pass: attributes, the catalogue's categories and
/// brands, orders with their SKUs, refunds, behaviour since a time, and active identity links.
/// Identities are as stored; the reader of this resolves devices and merges to customers.
#[derive(Debug, Clone, Default)]
pub struct AudienceSource {
    pub users: Vec<UserAttributes>,
    pub products: Vec<ProductFacts>,
    pub orders: Vec<OrderFacts>,
    pub refunds: Vec<RefundFacts>,
    pub events: Vec<EventFacts>,
    pub links: Vec<ActiveLink>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAttributes {
    pub id: String,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub city_tier: Option<String>,
    pub registration_channel: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFacts {
    pub sku: String,
    pub category_path: String,
    pub brand: Option<String>,
    pub title: String,
    /// List price in minor units.
    pub price: i64,
    /// `None` when the shop does not track stock for it.
    pub stock: Option<i64>,
    /// The product's attributes as stored: a JSON object.
    pub attributes: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFacts {
    pub id: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub sale: bool,
    pub placed_at: i64,
    pub total: i64,
    pub discount: i64,
    pub coupon: bool,
    pub channel: String,
    pub store_id: Option<String>,
    pub skus: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundFacts {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub refunded_at: i64,
    pub amount: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub kind: String,
    pub time: i64,
    pub channel: String,
    pub sku: Option<String>,
    pub store_id: Option<String>,
    pub has_order: bool,
}

/// An identity link in force: `kind` is "device" or "user".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLink {
    pub kind: String,
    pub source: String,
    pub target: String,
}

/// A version of a custom tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagDefinitionRecord {
    pub name: String,
    pub version: i64,
    pub rule: String,
    pub weight: f64,
    pub description: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A user gained (or lost) a tag at a time; `version` for custom tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChangeRecord {
    pub user_id: String,
    pub tag: String,
    pub version: Option<i64>,
    pub gained: bool,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub name: String,
    pub expr: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub segment: String,
    /// Shop-local date, YYYY-MM-DD.
    pub day: String,
    pub taken_at: i64,
    pub size: i64,
    pub entered: i64,
    pub left: i64,
    /// Opaque to the store (the audience service encodes the member list).
    pub members: Vec<u8>,
}

/// A coupon template: what its coupons give (`rule`, JSON), how many may be issued, and for how
/// long they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponTemplateRecord {
    pub id: String,
    pub name: String,
    pub rule: String,
    pub quota: Option<i64>,
    pub issued: i64,
    pub per_user_limit: i64,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    /// Days a coupon stays valid after its claim (instead of, or before, `valid_until`).
    pub valid_days: Option<i64>,
    pub created_at: i64,
    /// Claims one device may make; none for no limit.
    pub per_device_limit: Option<i64>,
    /// Claims one phone number may make; none for no limit.
    pub per_phone_limit: Option<i64>,
    /// Shown in the coupon centre (领券中心) for customers to claim.
    pub in_centre: bool,
    /// Issued by itself: `new_user` (to each new user) or `event:TYPE` (on each such event).
    pub issue_on: Option<String>,
    /// The lines its coupons apply to, as the pricing engine's scope in JSON; none for all.
    pub scope: Option<String>,
    /// Put before each of its codes (`DOUBLE11-`).
    pub code_prefix: Option<String>,
}

impl CouponTemplateRecord {
    /// The code a coupon of this template gets for a generated code: its prefix, then that.
    pub fn code(&self, generated: &str) -> String {
        format!(
            "{}{generated}",
            self.code_prefix.as_deref().unwrap_or_default()
        )
    }
}

/// A claim limit beyond the user's own: at most `limit` claims of the template by `holder`
/// (`device:…`, or `phone:` and a keyed hash of the number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderLimit {
    pub holder: String,
    pub limit: i64,
    /// Names the holder in a refusal without revealing it ("this device").
    pub label: String,
}

impl HolderLimit {
    pub(crate) fn refusal(&self, template_id: &str) -> crate::Error {
        crate::Error::Conflict(format!(
            "{} already holds the most coupons {template_id:?} allows ({})",
            self.label, self.limit
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRecord {
    pub code: String,
    pub template_id: String,
    pub user_id: String,
    pub claim_key: String,
    pub claimed_at: i64,
    pub expires_at: Option<i64>,
    /// `claimed`, `reserved` (held for `order_id` until `reserved_until`) or `redeemed`.
    pub state: String,
    pub order_id: Option<String>,
    pub redeemed_at: Option<i64>,
    pub reserved_until: Option<i64>,
}

impl CouponRecord {
    /// A coupon just claimed.
    pub(crate) fn claimed(
        code: String,
        template_id: String,
        user_id: String,
        claim_key: String,
        now: i64,
        expires_at: Option<i64>,
    ) -> Self {
        CouponRecord {
            code,
            template_id,
            user_id,
            claim_key,
            claimed_at: now,
            expires_at,
            state: "claimed".into(),
            order_id: None,
            redeemed_at: None,
            reserved_until: None,
        }
    }
}

/// A claim, new or seen before (the same claim key returns the same coupon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    New(CouponRecord),
    Duplicate(CouponRecord),
}

/// A redemption, new or seen before (the same order again changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    New,
    Duplicate,
}

/// When a coupon claimed `now` expires, or why it cannot be claimed now.
pub(crate) fn claim_window(t: &CouponTemplateRecord, now: i64) -> crate::Result<Option<i64>> {
    if t.valid_from.is_some_and(|f| now < f) {
        return Err(crate::Error::Conflict(format!(
            "coupon {:?} cannot be claimed yet",
            t.id
        )));
    }
    if t.valid_until.is_some_and(|u| now >= u) {
        return Err(crate::Error::Conflict(format!(
            "coupon {:?} has ended",
            t.id
        )));
    }
    let after_claim = t
        .valid_days
        .map(|d| now.saturating_add(d.saturating_mul(86_400_000)));
    Ok(match (t.valid_until, after_claim) {
        (Some(u), Some(a)) => Some(u.min(a)),
        (u, a) => u.or(a),
    })
}

/// Why order `order_id` could not take (hold or redeem) a coupon, after the conditional write
/// refused: `Ok` when this order has already redeemed it (a repeat), otherwise the reason.
pub(crate) fn coupon_refusal(
    coupon: Option<CouponRecord>,
    code: &str,
    user_id: &str,
    order_id: &str,
    now: i64,
) -> crate::Result<()> {
    let Some(c) = coupon else {
        return Err(crate::Error::NotFound {
            entity: "coupon",
            id: code.to_owned(),
        });
    };
    if c.user_id != user_id {
        return Err(crate::Error::Conflict(format!(
            "coupon {code:?} belongs to another user"
        )));
    }
    let this_order = c.order_id.as_deref() == Some(order_id);
    match c.state.as_str() {
        "redeemed" if this_order => return Ok(()),
        "redeemed" => {
            return Err(crate::Error::Conflict(format!(
                "coupon {code:?} was already used by another order"
            )))
        }
        "reserved" if !this_order && c.reserved_until.is_some_and(|u| u > now) => {
            return Err(crate::Error::Conflict(format!(
                "coupon {code:?} is held by another order"
            )))
        }
        _ => {}
    }
    if c.expires_at.is_some_and(|e| e <= now) {
        return Err(crate::Error::Conflict(format!(
            "coupon {code:?} has expired"
        )));
    }
    Err(crate::Error::Conflict(format!(
        "coupon {code:?} cannot be taken now"
    )))
}

/// A claim key seen before: the same coupon for the same user; for another user, a refusal (never
/// someone else's coupon).
pub(crate) fn repeated_claim(existing: CouponRecord, user_id: &str) -> crate::Result<Claimed> {
    if existing.user_id == user_id {
        Ok(Claimed::Duplicate(existing))
    } else {
        Err(crate::Error::Conflict(format!(
            "claim key {:?} was already used for another user",
            existing.claim_key
        )))
    }
}

/// A campaign as stored; `promotion` is the promotion's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRecord {
    pub id: String,
    pub name: String,
    pub state: String,
    pub promotion: String,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub segment: Option<String>,
    /// Its spend is not kept here: it is what its budget scope has used
    /// ([`crate::Store::campaigns_with_spent`]).
    pub budget: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it applies inside its window (JSON of `shopgrowth_promo::campaign::Recurrence`);
    /// none for all the time.
    pub recurrence: Option<String>,
    /// Orders one customer may get its discount on; none for no limit.
    pub per_customer_limit: Option<i64>,
}

/// One recorded change of a campaign: what changed (JSON), the version it made, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignChange {
    pub version: i64,
    pub change: String,
    pub at: i64,
}

/// The result of a conditional edit: the stored campaign, or why nothing was written.
pub(crate) fn edit_outcome(
    done: bool,
    stored: Option<CampaignRecord>,
    id: &str,
    version: i64,
) -> crate::Result<CampaignRecord> {
    match stored {
        None => Err(crate::Error::NotFound {
            entity: "campaign",
            id: id.to_owned(),
        }),
        Some(c) if done => Ok(c),
        Some(c) if c.state == "ended" => {
            Err(crate::Error::Conflict(format!("campaign {id:?} has ended")))
        }
        Some(c) => Err(crate::Error::Conflict(format!(
            "campaign {id:?} is at version {}, not {version}: reload it and edit again",
            c.version
        ))),
    }
}

/// The result of a conditional transition: the stored campaign, or why it could not move.
pub(crate) fn transition_outcome(
    done: bool,
    stored: Option<CampaignRecord>,
    id: &str,
    to: &str,
) -> crate::Result<CampaignRecord> {
    match stored {
        None => Err(crate::Error::NotFound {
            entity: "campaign",
            id: id.to_owned(),
        }),
        Some(c) if done => Ok(c),
        Some(c) => Err(crate::Error::Conflict(format!(
            "campaign {id:?} is {} and cannot become {to}",
            c.state
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashSaleRecord {
    pub id: String,
    pub sku: String,
    pub price: i64,
    pub stock: i64,
    /// Units held by live reservations plus confirmed ones.
    pub taken: i64,
    pub per_user_limit: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    /// How long a reservation holds its units before they return to the stock.
    pub hold_ms: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    pub id: String,
    pub sale_id: String,
    pub user_id: String,
    pub quantity: i64,
    /// `reserved`, `confirmed` or `released`.
    pub state: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A reservation, new or seen before (its id is the caller's idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    New(ReservationRecord),
    Duplicate(ReservationRecord),
}

/// A reservation id seen before: the same reservation for the same user and sale, else a refusal.
pub(crate) fn repeated_reservation(
    r: ReservationRecord,
    sale_id: &str,
    user_id: &str,
) -> crate::Result<Reserved> {
    if r.sale_id == sale_id && r.user_id == user_id {
        Ok(Reserved::Duplicate(r))
    } else {
        Err(crate::Error::Conflict(format!(
            "reservation id {:?} is already used",
            r.id
        )))
    }
}

/// Why stock could not be taken: not open, or sold out.
pub(crate) fn flash_refusal(sale: &FlashSaleRecord, now: i64) -> crate::Error {
    if now < sale.starts_at {
        crate::Error::Conflict(format!("flash sale {:?} has not started", sale.id))
    } else if now >= sale.ends_at {
        crate::Error::Conflict(format!("flash sale {:?} has ended", sale.id))
    } else {
        crate::Error::SoldOut {
            entity: "flash sale",
            id: sale.id.clone(),
        }
    }
}

/// After a confirming write: the confirmed reservation, or why it cannot be.
pub(crate) fn confirmed_or_refused(
    r: Option<ReservationRecord>,
    id: &str,
) -> crate::Result<ReservationRecord> {
    match r {
        None => Err(crate::Error::NotFound {
            entity: "reservation",
            id: id.to_owned(),
        }),
        Some(r) if r.state == "confirmed" => Ok(r),
        Some(r) => Err(crate::Error::Conflict(format!(
            "reservation {id:?} is {}: its hold ran out and the units went back on sale",
            if r.state == "released" {
                "released"
            } else {
                "expired"
            }
        ))),
    }
}

impl ReservationRecord {
    /// A reservation just made, holding its units for the sale's hold time.
    pub(crate) fn held(
        id: String,
        sale: &FlashSaleRecord,
        user_id: String,
        quantity: i64,
        now: i64,
    ) -> Self {
        ReservationRecord {
            id,
            sale_id: sale.id.clone(),
            user_id,
            quantity,
            state: "reserved".into(),
            expires_at: now.saturating_add(sale.hold_ms),
            created_at: now,
        }
    }
}

/// The refusal when a user would hold more of a flash sale than its limit.
pub(crate) fn over_user_limit(user_id: &str, sale: &FlashSaleRecord) -> crate::Error {
    crate::Error::Conflict(format!(
        "user {user_id:?} may buy at most {} of flash sale {:?}",
        sale.per_user_limit, sale.id
    ))
}

/// A checkout's answer as it was sent (JSON), and the hash of the request that got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub request_hash: String,
    pub response: String,
}

/// The campaign discount a budget spend pays for, recorded on the promotion trail (type
/// `campaign`) in the spend's transaction: `reserved` with the spend's amount and its key as the
/// subject (an attempt holds it); `redeemed` once its order keeps it
/// ([`crate::Store::keep_campaign_spend`]); when it is given back, `rolled_back` if it had been
/// kept, else `expired`. Checkout passes one per campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendTrail {
    pub campaign_id: String,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    /// The checkout attempt spending, noted with its order in the spend's transaction so that
    /// if the attempt dies unsettled the sweeper finds it ([`crate::Store::stale_checkout_attempts`]).
    pub attempt: Option<String>,
}

/// The checkout attempt whose answer is being kept, and the campaign spends that answer lists:
/// if its answer is the one kept, they are recorded as kept (`redeemed`) and the attempt is
/// forgotten in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutAttempt {
    pub attempt: String,
    pub spend_keys: Vec<String>,
}

/// One budget a spend counts against: a scope (`campaign:d11`, `customer:u1`, …), a period kind
/// (`total`, `day`, `week`, `month`) and the period it falls in (`all`, `2026-11-24`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    pub scope: String,
    pub period: String,
    pub period_key: String,
}

/// One spend of a batch ([`crate::Store::spend_budgets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpend {
    pub key: String,
    pub lines: Vec<BudgetLine>,
    pub amount: i64,
    pub trail: Option<SpendTrail>,
    /// Uses counted with the spend, one each, against the limit each names (a campaign's uses
    /// by one customer: 每人限享 N 次); given back with it.
    pub counted: Vec<CountedLine>,
}

/// A use count spent with a budget spend: one more use of `line` while under `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedLine {
    pub line: BudgetLine,
    pub limit: i64,
}

/// A spend, new or seen before under the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    New,
    Duplicate,
}

/// What a spend takes, line by line: `amount` from each of its lines (in their fixed order,
/// under the limits the budget sets), then one use of each counted line under the limit it names.
pub(crate) fn takes(
    lines: Vec<BudgetLine>,
    amount: i64,
    counted: Vec<CountedLine>,
) -> impl Iterator<Item = (BudgetLine, i64, Option<i64>)> {
    canonical(lines)
        .into_iter()
        .map(move |l| (l, amount, None))
        .chain(counted.into_iter().map(|c| (c.line, 1, Some(c.limit))))
}

/// Budget lines in one fixed order, so concurrent spends lock them alike (no deadlocks).
pub(crate) fn canonical(mut lines: Vec<BudgetLine>) -> Vec<BudgetLine> {
    lines.sort_by(|a, b| {
        (&a.scope, &a.period, &a.period_key).cmp(&(&b.scope, &b.period, &b.period_key))
    });
    lines.dedup();
    lines
}

/// The order a batch's spends are taken in: by each one's first line in the canonical order (then
/// as given). A spend's lines usually share its scope, so concurrent batches lock budget rows in
/// one global order and never deadlock, whatever order their callers listed the spends in.
pub(crate) fn spend_order(spends: &[BudgetSpend]) -> Vec<usize> {
    fn first(s: &BudgetSpend) -> Option<(&String, &String, &String)> {
        s.lines
            .iter()
            .map(|l| (&l.scope, &l.period, &l.period_key))
            .min()
    }
    let mut order: Vec<usize> = (0..spends.len()).collect();
    order.sort_by(|&a, &b| first(&spends[a]).cmp(&first(&spends[b])).then(a.cmp(&b)));
    order
}

pub(crate) fn over_budget(l: &BudgetLine) -> crate::Error {
    crate::Error::OverBudget {
        scope: l.scope.clone(),
        period: l.period.clone(),
        period_key: l.period_key.clone(),
    }
}

/// A red packet as stored; its shares are in `red_packet_shares`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedPacketRecord {
    pub id: String,
    pub sender: String,
    /// `fixed` or `lucky`.
    pub kind: String,
    pub total: i64,
    pub currency: String,
    pub shares: i64,
    pub claimed_count: i64,
    pub claimed_amount: i64,
    /// `locked` (a share-to-unlock packet still waiting for helpers), `open`, `finished` (every
    /// share claimed) or `expired` (the remainder returned).
    pub state: String,
    /// What went back to the sender on expiry.
    pub returned: i64,
    pub expires_at: i64,
    pub created_at: i64,
    /// Share-to-unlock: how many different helpers open the packet (0: open from the start).
    pub unlock_helpers: i64,
    /// Helpers counted so far.
    pub helpers: i64,
    /// No claim before this (a rain's round opens at its start; 0 for other packets).
    pub opens_at: i64,
    /// The red-packet rain this packet is a round of.
    pub rain_id: Option<String>,
    /// Share-to-unlock: the most share packets one helper may help in a shop-local day for a help
    /// of this packet to count; none for no cap.
    pub helps_per_helper_per_day: Option<i64>,
}

/// One share of a packet, claimed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedPacketShare {
    pub position: i64,
    pub amount: i64,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<i64>,
}

/// A claim, new or the claimant's earlier one (one share per claimant and packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketClaim {
    New(RedPacketShare),
    Duplicate(RedPacketShare),
}

/// A help with a share-to-unlock packet, new or the helper's earlier one (counted once); the
/// packet as the help left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketHelp {
    New(RedPacketRecord),
    Duplicate(RedPacketRecord),
}

/// Why a share could not be taken: the packet expired, is still locked, or every share is gone.
pub(crate) fn packet_refusal(p: &RedPacketRecord, now: i64) -> crate::Error {
    if p.state == "expired" || now >= p.expires_at {
        crate::Error::Conflict(format!("red packet {:?} has expired", p.id))
    } else if now < p.opens_at {
        crate::Error::Conflict(format!(
            "red packet {:?} opens at {}",
            p.id,
            shopgrowth_core::time::Timestamp(p.opens_at).to_rfc3339()
        ))
    } else if p.state == "locked" {
        crate::Error::Conflict(format!(
            "red packet {:?} is locked until {} more helper(s) help",
            p.id,
            p.unlock_helpers - p.helpers
        ))
    } else {
        crate::Error::Conflict(format!("red packet {:?} has no shares left", p.id))
    }
}

/// Why a help was not counted: the packet needs none, is the helper's own, has expired, or is
/// unlocked already.
pub(crate) fn help_refusal(p: &RedPacketRecord, helper: &str, now: i64) -> crate::Error {
    let why = if p.unlock_helpers == 0 {
        "needs no helpers (it was not made to be unlocked by sharing)".to_owned()
    } else if p.sender == helper {
        format!("cannot be helped by its own sender {helper:?}")
    } else if p.state == "expired" || now >= p.expires_at {
        "has expired".to_owned()
    } else {
        format!("is unlocked already ({} helpers)", p.helpers)
    };
    crate::Error::Conflict(format!("red packet {:?} {why}", p.id))
}

/// The count of a help against its helper's day, for a packet that caps helps per helper: one
/// use of `helper_day` under the packet's cap, keyed by packet and helper.
pub(crate) fn helper_day_spend(
    p: &RedPacketRecord,
    helper: &str,
    helper_day: BudgetLine,
) -> Option<BudgetSpend> {
    let cap = p.helps_per_helper_per_day?;
    Some(BudgetSpend {
        key: format!("help:{}:{helper}", p.id),
        lines: Vec::new(),
        amount: 0,
        trail: None,
        counted: vec![CountedLine {
            line: helper_day,
            limit: cap,
        }],
    })
}

/// A help refused by its helper's daily cap, said as such; other errors as they are.
pub(crate) fn helper_cap_refusal(
    e: crate::Error,
    p: &RedPacketRecord,
    helper: &str,
) -> crate::Error {
    match e {
        crate::Error::OverBudget { .. } => crate::Error::Conflict(format!(
            "{helper:?} has helped {} share packets today, the most red packet {:?} counts",
            p.helps_per_helper_per_day.unwrap_or_default(),
            p.id
        )),
        other => other,
    }
}

/// A group-buying deal (拼团).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDealRecord {
    pub id: String,
    pub sku: String,
    pub group_size: i64,
    pub leader_price: i64,
    pub member_price: i64,
    /// How long a group has to fill after it is opened.
    pub window_ms: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
}

/// One group of a deal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub deal_id: String,
    pub leader: String,
    pub size: i64,
    pub joined: i64,
    /// `open`, `complete` or `failed`.
    pub state: String,
    pub deadline: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberRecord {
    pub group_id: String,
    pub user_id: String,
    pub order_id: String,
    pub price: i64,
    pub leader: bool,
    /// `joined` or `refunded`.
    pub state: String,
    pub joined_at: i64,
}

/// A join (or opening), new or the same order's earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    New(GroupMemberRecord),
    Duplicate(GroupMemberRecord),
}

/// An order id seen before: the same membership again, else a refusal.
pub(crate) fn repeated_join(
    m: GroupMemberRecord,
    group_id: &str,
    user_id: &str,
) -> crate::Result<Joined> {
    if m.group_id == group_id && m.user_id == user_id {
        Ok(Joined::Duplicate(m))
    } else {
        Err(crate::Error::Conflict(format!(
            "order {:?} already joined another group",
            m.order_id
        )))
    }
}

/// Why a group could not be joined.
pub(crate) fn group_refusal(g: &GroupRecord, now: i64) -> crate::Error {
    if g.state == "complete" || g.joined >= g.size {
        crate::Error::Conflict(format!("group {:?} is full", g.id))
    } else if g.state == "failed" || now >= g.deadline {
        crate::Error::Conflict(format!("group {:?} has passed its deadline", g.id))
    } else {
        crate::Error::Conflict(format!("group {:?} is not open", g.id))
    }
}

/// One coupon of a bulk issuance: who gets it, the claim key that makes it idempotent, and a
/// fresh code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponGrant {
    pub user_id: String,
    pub claim_key: String,
    pub code: String,
}

/// What a bulk issuance did; every grant is in exactly one count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IssueSummary {
    pub issued: u64,
    /// Issued before under the same claim key.
    pub duplicates: u64,
    /// The template's quota ran out.
    pub sold_out: u64,
    /// The user already holds as many as the template allows.
    pub over_user_limit: u64,
}

impl IssueSummary {
    pub fn add(&mut self, other: IssueSummary) {
        self.issued += other.issued;
        self.duplicates += other.duplicates;
        self.sold_out += other.sold_out;
        self.over_user_limit += other.over_user_limit;
    }
}

/// One entry of the promotion trail: what happened to a coupon, flash-sale reservation, red
/// packet share or group-buying seat, written in the transaction of the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotionEventRecord {
    pub id: i64,
    pub at: i64,
    /// `issued`, `claimed`, `reserved`, `redeemed`, `rolled_back` or `expired`.
    pub kind: String,
    /// `coupon`, `flash_sale`, `red_packet`, `group_buy` or `campaign`.
    pub promotion_type: String,
    /// The coupon template, flash sale, red packet, group deal or campaign.
    pub promotion_id: String,
    /// The coupon code, reservation id, share position, group id or budget spend key.
    pub subject: String,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    /// Minor units, where the entry moves money (a share, a price, a returned remainder).
    pub amount: Option<i64>,
}

/// Where a follower of the promotion trail stands: after the entry written by transaction `tx`
/// with id `id` (on SQLite `tx` is always 0: one writer commits in id order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrailCursor {
    pub tx: i64,
    pub id: i64,
}

impl std::fmt::Display for TrailCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tx, self.id)
    }
}

impl std::str::FromStr for TrailCursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a trail cursor (TX.ID, as a page's `next` gives it)");
        let (tx, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(TrailCursor {
            tx: tx.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Which trail entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailFilter {
    pub user_id: Option<String>,
    pub promotion_type: Option<String>,
    pub promotion_id: Option<String>,
    pub subject: Option<String>,
    /// Only entries with a smaller id (the previous page's last).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Trail entries of one kind for one promotion within a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailCount {
    pub promotion_type: String,
    pub promotion_id: String,
    pub kind: String,
    pub events: i64,
    /// Distinct users among them.
    pub users: i64,
    /// Sum of the entries' amounts (minor units).
    pub amount: i64,
}
