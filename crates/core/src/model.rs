//! The shop's entities as the API receives them and the store keeps them, with validation.
//!
//! Validation returns every problem at once as [`FieldError`]s so a caller can fix a payload in
//! one round trip. Money fields are integer minor units of the entity's currency.

use crate::error::FieldError;
use crate::ids::{id_problem, DeviceId, EventId, OrderId, SkuId, StoreId, UserId};
use crate::money::Currency;
use crate::pii::{normalise_email, normalise_phone, Secret};
use crate::time::Timestamp;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Where an interaction happened.
    Channel { Web = "web", App = "app", MiniProgram = "mini_program", Store = "store" }
);

str_enum!(
    /// Behaviour event types (浏览, 搜索, 收藏, 加购, 移出购物车, 购买, 评价, 分享, 签到, 退款, 消息点击).
    EventType {
        View = "view",
        Search = "search",
        Favorite = "favorite",
        AddToCart = "add_to_cart",
        RemoveFromCart = "remove_from_cart",
        Purchase = "purchase",
        Review = "review",
        Share = "share",
        SignIn = "sign_in",
        Refund = "refund",
        MessageClick = "message_click",
    }
);

str_enum!(
    /// What happened to a promotion on its trail (发放, 领取, 锁定, 核销, 回滚, 过期, 退款返还:
    /// the share of a kept discount that a refund's units carried, given back to its budget).
    PromotionKind {
        Issued = "issued",
        Claimed = "claimed",
        Reserved = "reserved",
        Redeemed = "redeemed",
        RolledBack = "rolled_back",
        Expired = "expired",
        Refunded = "refunded",
    }
);

str_enum!(
    /// Which kind of promotion a trail entry is about. `campaign`: a campaign's discount on an
    /// order at checkout (reserved by the attempt's budget spend; redeemed once the order keeps
    /// it; given back, rolled back if kept, else expired).
    PromotionType {
        Coupon = "coupon",
        FlashSale = "flash_sale",
        RedPacket = "red_packet",
        GroupBuy = "group_buy",
        Campaign = "campaign",
    }
);

impl PromotionType {
    /// The behaviour name a trail entry takes in profiles and segments, e.g. `coupon_redeemed`
    /// (`did coupon_redeemed in last 30 days`).
    pub fn act(self, kind: PromotionKind) -> &'static str {
        static ACTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            PromotionType::ALL
                .iter()
                .flat_map(|t| PromotionKind::ALL.iter().map(move |k| format!("{t}_{k}")))
                .collect()
        });
        &ACTS[self as usize * PromotionKind::ALL.len() + kind as usize]
    }
}

str_enum!(
    Gender { Female = "female", Male = "male", Other = "other", Unknown = "unknown" }
);

str_enum!(
    /// City tier: 一线, 二线, 三线, 四线及以下.
    CityTier { Tier1 = "tier1", Tier2 = "tier2", Tier3 = "tier3", Tier4Plus = "tier4_plus" }
);

str_enum!(
    /// A sale, or goods coming back (a return invoice such as Online Retail's `C…`).
    OrderKind { Sale = "sale", Return = "return" }
);

str_enum!(
    OrderStatus {
        Placed = "placed",
        Paid = "paid",
        Shipped = "shipped",
        Completed = "completed",
        Cancelled = "cancelled",
    }
);

/// A customer: an online account or an offline member card. Phone, email and name are personal
/// data: encrypted at rest and masked in responses without the `pii` scope.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: UserId,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "13812341234")]
    pub phone: Option<Secret<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "alice@example.com")]
    pub email: Option<Secret<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Option<Secret<String>>,
    #[serde(default)]
    pub gender: Option<Gender>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub birthday: Option<NaiveDate>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub city_tier: Option<CityTier>,
    #[serde(default)]
    pub registration_channel: Option<Channel>,
    #[serde(default)]
    pub registered_at: Option<Timestamp>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A product SKU in a category tree.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: SkuId,
    pub title: String,
    /// Category path from the root, e.g. `["母婴", "奶粉", "婴儿奶粉"]`.
    #[serde(default)]
    pub category: Vec<String>,
    #[serde(default)]
    pub brand: Option<String>,
    /// Groups SKUs of one product (颜色/尺码 variants).
    #[serde(default)]
    pub spu_id: Option<String>,
    /// List price in minor units.
    pub price: i64,
    #[serde(default)]
    pub cost: Option<i64>,
    pub currency: Currency,
    #[serde(default)]
    pub stock: Option<i64>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// An offline store (线下门店).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub id: StoreId,
    pub name: String,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub city_tier: Option<CityTier>,
    #[serde(default)]
    pub address: Option<String>,
}

/// One line of an order. `discount` is this line's share of every discount, in minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku_id: SkuId,
    pub quantity: i64,
    pub unit_price: i64,
    #[serde(default)]
    pub discount: i64,
    #[serde(default)]
    pub title: Option<String>,
}

impl OrderLine {
    /// What the customer paid for this line; `None` on overflow.
    pub fn amount(&self) -> Option<i64> {
        self.quantity
            .checked_mul(self.unit_price)?
            .checked_sub(self.discount)
    }
}

/// An order (or a return) with its lines. Anonymous orders have neither user nor device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: OrderId,
    #[serde(default = "default_kind")]
    pub kind: OrderKind,
    #[serde(default = "default_status")]
    pub status: OrderStatus,
    #[serde(default)]
    pub user_id: Option<UserId>,
    #[serde(default)]
    pub device_id: Option<DeviceId>,
    #[serde(default)]
    pub store_id: Option<StoreId>,
    pub channel: Channel,
    pub currency: Currency,
    pub placed_at: Timestamp,
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub shipping_fee: i64,
    #[serde(default)]
    pub coupon_codes: Vec<String>,
    /// For a return: the sale it returns, when known.
    #[serde(default)]
    pub original_order_id: Option<OrderId>,
    /// If given, must equal the lines' amounts plus shipping; a mismatch is refused.
    #[serde(default)]
    pub total: Option<i64>,
}

fn default_kind() -> OrderKind {
    OrderKind::Sale
}

fn default_status() -> OrderStatus {
    OrderStatus::Paid
}

impl Order {
    /// Lines plus shipping, in minor units; `None` on overflow.
    pub fn computed_total(&self) -> Option<i64> {
        self.lines
            .iter()
            .try_fold(self.shipping_fee, |acc, l| acc.checked_add(l.amount()?))
    }

    pub fn discount_total(&self) -> i64 {
        self.lines.iter().map(|l| l.discount).sum()
    }
}

/// Money going back for some lines of an order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// Caller-chosen id; sending the same refund twice applies it once.
    pub id: String,
    pub lines: Vec<RefundLine>,
    #[serde(default)]
    pub reason: Option<String>,
    pub refunded_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    /// Zero-based position of the line in the order.
    pub line_no: i64,
    pub quantity: i64,
    /// Money returned for this line, in minor units.
    pub amount: i64,
}

/// A behaviour event. `id` makes it idempotent: the same id twice is stored once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub time: Timestamp,
    #[serde(default)]
    pub user_id: Option<UserId>,
    #[serde(default)]
    pub device_id: Option<DeviceId>,
    pub channel: Channel,
    #[serde(default)]
    pub sku_id: Option<SkuId>,
    #[serde(default)]
    pub store_id: Option<StoreId>,
    #[serde(default)]
    pub order_id: Option<OrderId>,
    /// Search text (search events).
    #[serde(default)]
    pub query: Option<String>,
    /// Review text (review events).
    #[serde(default)]
    pub text: Option<String>,
    /// Review rating 1–5 (review events).
    #[serde(default)]
    pub rating: Option<u8>,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An order as a file import sees it. Each line's number is a digest of its content, so a
/// re-import or an exact duplicate line is stored once; `source_lines` are its lines in the file.
#[derive(Debug, Clone)]
pub struct ImportedOrder {
    pub order: Order,
    pub line_nos: Vec<i64>,
    pub source_lines: Vec<i64>,
}

/// What one import write carries: customers and products to create if absent, order lines and
/// events. Outcomes come back per order line, then per event, in order.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub users: Vec<String>,
    pub products: Vec<Product>,
    pub orders: Vec<ImportedOrder>,
    pub events: Vec<Event>,
}

/// Earliest instant we accept: 2000-01-01T00:00:00Z.
pub const EARLIEST_TIME: Timestamp = Timestamp(946_684_800_000);
/// How far ahead of the server's clock an event may be (clock skew of devices).
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

const MAX_TEXT: usize = 10_000;

struct Problems(Vec<FieldError>);

impl Problems {
    fn id(&mut self, field: &str, id: &str) {
        if let Some(reason) = id_problem(id) {
            self.add(field, reason);
        }
    }

    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    fn text(&mut self, field: &str, text: &str, max: usize) {
        if text.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if text.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    fn time(&mut self, field: &str, t: Timestamp, now: Timestamp) {
        if t < EARLIEST_TIME {
            self.add(field, "is before 2000-01-01");
        } else if t.0 > now.0.saturating_add(MAX_FUTURE_MS) {
            self.add(field, "is more than 24 hours in the future");
        }
    }

    fn money(&mut self, field: &str, minor: i64) {
        if minor < 0 {
            self.add(field, "must not be negative");
        }
    }
}

impl User {
    pub fn validate(&self, now: Timestamp) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", self.id.as_str());
        if let Some(phone) = &self.phone {
            if let Err(reason) = normalise_phone(phone.expose()) {
                p.add("phone", reason);
            }
        }
        if let Some(email) = &self.email {
            if let Err(reason) = normalise_email(email.expose()) {
                p.add("email", reason);
            }
        }
        if let Some(name) = &self.name {
            p.text("name", name.expose(), 200);
        }
        if let Some(city) = &self.city {
            p.text("city", city, 100);
        }
        if let Some(b) = self.birthday {
            let today = chrono::DateTime::from_timestamp_millis(now.0).map(|t| t.date_naive());
            if today.is_some_and(|d| b > d) {
                p.add("birthday", "is in the future");
            } else if chrono::Datelike::year(&b) < 1900 {
                p.add("birthday", "is before 1900");
            }
        }
        if let Some(t) = self.registered_at {
            p.time("registered_at", t, now);
        }
        p.0
    }
}

impl Product {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", self.id.as_str());
        p.text("title", &self.title, 500);
        for (i, segment) in self.category.iter().enumerate() {
            if segment.trim().is_empty() || segment.contains('/') {
                p.add(
                    &format!("category[{i}]"),
                    "must be a non-empty name without '/'",
                );
            }
        }
        if let Some(brand) = &self.brand {
            p.text("brand", brand, 200);
        }
        p.money("price", self.price);
        if let Some(cost) = self.cost {
            p.money("cost", cost);
        }
        if self.stock.is_some_and(|s| s < 0) {
            p.add("stock", "must not be negative");
        }
        p.0
    }
}

impl Store {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", self.id.as_str());
        p.text("name", &self.name, 200);
        p.0
    }
}

impl Order {
    pub fn validate(&self, now: Timestamp) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", self.id.as_str());
        if let Some(u) = &self.user_id {
            p.id("user_id", u.as_str());
        }
        if let Some(d) = &self.device_id {
            p.id("device_id", d.as_str());
        }
        if let Some(s) = &self.store_id {
            p.id("store_id", s.as_str());
        }
        if self.channel == Channel::Store && self.store_id.is_none() {
            p.add("store_id", "is required when channel is store");
        }
        p.time("placed_at", self.placed_at, now);
        if self.lines.is_empty() {
            p.add("lines", "must have at least one line");
        }
        if self.lines.len() > 1000 {
            p.add("lines", "must have at most 1000 lines");
        }
        for (i, line) in self.lines.iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            p.id(&at("sku_id"), line.sku_id.as_str());
            if line.quantity <= 0 {
                p.add(
                    &at("quantity"),
                    "must be positive (a return is an order of kind return)",
                );
            }
            if line.unit_price <= 0 {
                p.add(&at("unit_price"), "must be positive");
            }
            if line.discount < 0 {
                p.add(&at("discount"), "must not be negative");
            } else if line.quantity > 0 && line.unit_price > 0 {
                match line.quantity.checked_mul(line.unit_price) {
                    None => p.add(&at("quantity"), "quantity × unit_price overflows"),
                    Some(gross) if line.discount > gross => p.add(
                        &at("discount"),
                        format!("{} exceeds the line's {gross}", line.discount),
                    ),
                    Some(_) => {}
                }
            }
        }
        p.money("shipping_fee", self.shipping_fee);
        if let (Some(given), Some(computed)) = (self.total, self.computed_total()) {
            if p.0.is_empty() && given != computed {
                p.add(
                    "total",
                    format!("{given} does not match the lines and shipping ({computed})"),
                );
            }
        }
        if self.kind == OrderKind::Sale && self.original_order_id.is_some() {
            p.add("original_order_id", "is only for orders of kind return");
        }
        p.0
    }
}

impl Refund {
    pub fn validate(&self, now: Timestamp) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", &self.id);
        p.time("refunded_at", self.refunded_at, now);
        if self.lines.is_empty() {
            p.add("lines", "must have at least one line");
        }
        for (i, line) in self.lines.iter().enumerate() {
            if line.line_no < 0 {
                p.add(&format!("lines[{i}].line_no"), "must not be negative");
            }
            if line.quantity < 0 {
                p.add(&format!("lines[{i}].quantity"), "must not be negative");
            }
            if line.amount <= 0 {
                p.add(&format!("lines[{i}].amount"), "must be positive");
            }
        }
        p.0
    }

    pub fn amount(&self) -> i64 {
        self.lines.iter().map(|l| l.amount).sum()
    }
}

impl Event {
    /// An event with its required fields; every optional field empty.
    pub fn new(id: impl Into<EventId>, kind: EventType, time: Timestamp, channel: Channel) -> Self {
        Event {
            id: id.into(),
            kind,
            time,
            user_id: None,
            device_id: None,
            channel,
            sku_id: None,
            store_id: None,
            order_id: None,
            query: None,
            text: None,
            rating: None,
            properties: Map::new(),
        }
    }

    pub fn validate(&self, now: Timestamp) -> Vec<FieldError> {
        let mut p = Problems(Vec::new());
        p.id("id", self.id.as_str());
        p.time("time", self.time, now);
        match (&self.user_id, &self.device_id) {
            (None, None) => p.add("user_id", "an event needs a user_id or a device_id"),
            (u, d) => {
                if let Some(u) = u {
                    p.id("user_id", u.as_str());
                }
                if let Some(d) = d {
                    p.id("device_id", d.as_str());
                }
            }
        }
        let needs_sku = matches!(
            self.kind,
            EventType::View
                | EventType::Favorite
                | EventType::AddToCart
                | EventType::RemoveFromCart
                | EventType::Review
        );
        match &self.sku_id {
            Some(sku) => p.id("sku_id", sku.as_str()),
            None if needs_sku => p.add("sku_id", format!("is required for {} events", self.kind)),
            None => {}
        }
        if matches!(self.kind, EventType::Purchase | EventType::Refund)
            && self.order_id.is_none()
            && self.sku_id.is_none()
        {
            p.add(
                "order_id",
                format!("{} events need an order_id or a sku_id", self.kind),
            );
        }
        match (&self.query, self.kind) {
            (Some(q), _) => p.text("query", q, 500),
            (None, EventType::Search) => p.add("query", "is required for search events"),
            (None, _) => {}
        }
        match (self.rating, self.kind) {
            (Some(r), _) if !(1..=5).contains(&r) => p.add("rating", "must be between 1 and 5"),
            (None, EventType::Review) => p.add("rating", "is required for review events"),
            _ => {}
        }
        if let Some(text) = &self.text {
            p.text("text", text, MAX_TEXT);
        }
        if self.channel == Channel::Store
            && self.store_id.is_none()
            && self.kind == EventType::Purchase
        {
            p.add("store_id", "is required for in-store purchases");
        }
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_790_000_000_000);

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn promotion_acts_are_type_then_kind_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for &t in PromotionType::ALL {
            for &k in PromotionKind::ALL {
                assert_eq!(t.act(k), format!("{}_{}", t.as_str(), k.as_str()));
                assert!(seen.insert(t.act(k)));
                assert!(
                    EventType::parse(t.act(k)).is_none(),
                    "clashes with an event type"
                );
            }
        }
    }

    #[test]
    fn a_valid_view_passes() {
        let e = event(
            r#"{"id":"e1","type":"view","time":1780000000000,"device_id":"d1","channel":"app","sku_id":"s1"}"#,
        );
        assert!(e.validate(NOW).is_empty());
    }

    #[test]
    fn event_problems_name_their_fields() {
        let e = event(r#"{"id":"","type":"review","time":0,"channel":"web","rating":9}"#);
        assert_eq!(
            fields(&e.validate(NOW)),
            ["id", "time", "user_id", "sku_id", "rating"]
        );
        let s = event(
            r#"{"id":"e","type":"search","time":1780000000000,"user_id":"u","channel":"web"}"#,
        );
        assert_eq!(fields(&s.validate(NOW)), ["query"]);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<Event>(
            r#"{"id":"e","type":"look","time":1,"channel":"web"}"#
        )
        .is_err());
        let r = serde_json::from_str::<Event>(
            r#"{"id":"e","type":"view","time":1,"channel":"web","usr":"x"}"#,
        );
        assert!(r
            .map_err(|e| e.to_string())
            .err()
            .is_some_and(|m| m.contains("unknown field `usr`")));
    }

    #[test]
    fn order_totals_must_add_up() {
        let json = r#"{"id":"o1","channel":"web","currency":"CNY","placed_at":1780000000000,
            "lines":[{"sku_id":"a","quantity":2,"unit_price":1000,"discount":150},
                     {"sku_id":"b","quantity":1,"unit_price":500}],"shipping_fee":800,"total":3150}"#;
        let mut order: Order = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert!(order.validate(NOW).is_empty());
        assert_eq!(order.computed_total(), Some(3150));
        order.total = Some(2000);
        assert_eq!(fields(&order.validate(NOW)), ["total"]);
        order.lines[0].discount = 5000;
        order.lines[1].quantity = 0;
        assert_eq!(
            fields(&order.validate(NOW)),
            ["lines[0].discount", "lines[1].quantity"]
        );
    }
}
