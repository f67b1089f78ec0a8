//! SQL shared by both backends, written with `$N` placeholders (PostgreSQL's); the SQLite
//! backend rewrites them to `?N`. Also the decoding of rows into the core model, so both
//! backends turn the same columns into the same values.

use crate::error::{Error, Result};
use crate::records::{parse_json_map, IdentityLink, LinkKind, SealedUser, UserRecord};
use shopgrowth_core::model::{
    Channel, CityTier, Event, EventType, Gender, Order, OrderKind, OrderLine, OrderStatus,
};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::Currency;

pub const INSERT_EVENT: &str =
    "INSERT INTO events (id, type, time, user_id, device_id, channel, sku_id, store_id, \
     order_id, query, text, rating, properties, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING";

/// Links a device to a user unless it is linked already, or this exact link was undone by hand.
pub const LINK_IF_NEW: &str =
    "INSERT INTO identity_links (kind, source_id, target_user_id, reason, created_at) \
     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM identity_links \
       WHERE kind = $1 AND source_id = $2 AND (undone_at IS NULL OR target_user_id = $3)) \
     ON CONFLICT DO NOTHING";

pub const UPSERT_USER: &str = "INSERT INTO users (id, phone_enc, phone_hash, email_enc, email_hash, name_enc, gender, \
     birthday, city, city_tier, registration_channel, registered_at, attributes, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
     ON CONFLICT (id) DO UPDATE SET \
       phone_enc = COALESCE(excluded.phone_enc, users.phone_enc), \
       phone_hash = COALESCE(excluded.phone_hash, users.phone_hash), \
       email_enc = COALESCE(excluded.email_enc, users.email_enc), \
       email_hash = COALESCE(excluded.email_hash, users.email_hash), \
       name_enc = COALESCE(excluded.name_enc, users.name_enc), \
       gender = COALESCE(excluded.gender, users.gender), \
       birthday = COALESCE(excluded.birthday, users.birthday), \
       city = COALESCE(excluded.city, users.city), \
       city_tier = COALESCE(excluded.city_tier, users.city_tier), \
       registration_channel = COALESCE(excluded.registration_channel, users.registration_channel), \
       registered_at = COALESCE(excluded.registered_at, users.registered_at), \
       attributes = excluded.attributes, \
       updated_at = excluded.updated_at, \
       erased_at = NULL";

pub const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";

pub const INSERT_BARE_USER: &str =
    "INSERT INTO users (id, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING";

/// The oldest other customer (not itself merged away) with the same phone.
pub const SAME_PHONE_CUSTOMER: &str =
    "SELECT u.id FROM users u WHERE u.phone_hash = $1 AND u.id <> $2 \
     AND u.erased_at IS NULL AND NOT EXISTS (SELECT 1 FROM identity_links l \
       WHERE l.kind = 'user' AND l.source_id = u.id AND l.undone_at IS NULL) \
     ORDER BY u.created_at, u.id LIMIT 1";

pub const UPSERT_PRODUCT: &str = "INSERT INTO products (id, title, category_path, brand, spu_id, price, cost, currency, \
     stock, attributes, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (id) DO UPDATE SET title = excluded.title, category_path = excluded.category_path, \
       brand = excluded.brand, spu_id = excluded.spu_id, price = excluded.price, cost = excluded.cost, \
       currency = excluded.currency, stock = excluded.stock, attributes = excluded.attributes, \
       updated_at = excluded.updated_at";

pub const INSERT_PRODUCT_IF_ABSENT: &str = "INSERT INTO products (id, title, category_path, brand, spu_id, price, cost, \
     currency, stock, attributes, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT DO NOTHING";

pub const PRODUCT_EXISTS: &str = "SELECT 1 FROM products WHERE id = $1";

pub const UPSERT_STORE: &str = "INSERT INTO stores (id, name, city, city_tier, address, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET name = excluded.name, city = excluded.city, \
       city_tier = excluded.city_tier, address = excluded.address, updated_at = excluded.updated_at";

pub const STORE_EXISTS: &str = "SELECT 1 FROM stores WHERE id = $1";

pub const INSERT_ORDER: &str = "INSERT INTO orders (id, kind, status, user_id, device_id, store_id, channel, currency, \
     placed_at, shipping_fee, discount_total, total, line_count, coupon_codes, original_order_id, source, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING";

/// An imported order grows as its lines arrive (an invoice may span several batches).
pub const UPSERT_IMPORTED_ORDER: &str = "INSERT INTO orders (id, kind, status, user_id, device_id, store_id, channel, \
     currency, placed_at, shipping_fee, discount_total, total, line_count, coupon_codes, original_order_id, source, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT (id) DO UPDATE SET total = orders.total + excluded.total, \
       discount_total = orders.discount_total + excluded.discount_total, \
       line_count = orders.line_count + excluded.line_count";

pub const INSERT_ORDER_LINE: &str = "INSERT INTO order_lines (order_id, line_no, sku_id, title, quantity, unit_price, \
     discount, amount, source_line) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

pub const INSERT_REFUND: &str =
    "INSERT INTO refunds (id, order_id, amount, lines, reason, refunded_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

pub const REFUND_ORDER_OF: &str = "SELECT order_id FROM refunds WHERE id = $1";

/// The atomic conditional write of a refund on one line: it succeeds only while the line has
/// that much quantity and money left, so concurrent refunds can never exceed the line.
pub const REFUND_LINE: &str = "UPDATE order_lines SET refunded_quantity = refunded_quantity + $3, \
       refunded_amount = refunded_amount + $4 \
     WHERE order_id = $1 AND line_no = $2 AND refunded_quantity + $3 <= quantity \
       AND refunded_amount + $4 <= amount";

pub const LINE_EXISTS: &str = "SELECT 1 FROM order_lines WHERE order_id = $1 AND line_no = $2";

pub const ADD_ORDER_REFUNDED: &str =
    "UPDATE orders SET refunded_amount = refunded_amount + $2 WHERE id = $1";

pub const ORDER_EXISTS: &str = "SELECT 1 FROM orders WHERE id = $1";

pub const USER_COLUMNS: &str =
    "id, phone_enc, phone_hash, email_enc, email_hash, name_enc, gender, birthday, city, \
     city_tier, registration_channel, registered_at, attributes, created_at, updated_at, erased_at";

pub const ACTIVE_LINK_OF: &str =
    "SELECT target_user_id FROM identity_links WHERE kind = $1 AND source_id = $2 AND undone_at IS NULL";

pub const LINK_COLUMNS: &str = "id, kind, source_id, target_user_id, reason, created_at, undone_at";

pub const UNDO_LINK: &str =
    "UPDATE identity_links SET undone_at = $2 WHERE id = $1 AND undone_at IS NULL";

pub const EVENT_COLUMNS: &str =
    "id, type, time, user_id, device_id, channel, sku_id, store_id, order_id, query, text, rating, properties, received_at";

pub const ORDER_COLUMNS: &str =
    "id, kind, status, user_id, device_id, store_id, channel, currency, placed_at, \
     shipping_fee, total, coupon_codes, original_order_id, refunded_amount, source";

pub const LINES_OF_ORDER: &str =
    "SELECT sku_id, quantity, unit_price, discount, title FROM order_lines \
     WHERE order_id = $1 ORDER BY COALESCE(source_line, line_no), line_no";

pub const ERASE_USER: &str = "UPDATE users SET phone_enc = NULL, phone_hash = NULL, email_enc = NULL, \
     email_hash = NULL, name_enc = NULL, birthday = NULL, attributes = '{}', erased_at = $2, updated_at = $2 \
     WHERE id = $1";

pub const INSERT_API_KEY: &str =
    "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)";

pub const API_KEY_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, revoked_at";

pub const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

pub const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM products), \
     (SELECT COUNT(*) FROM stores), (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM order_lines), \
     (SELECT COUNT(*) FROM events)";

/// Placeholders `$1..$n` for an `IN (...)` list starting at `$first`.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Corrupt(format!("{what} {value:?}"))
}

pub fn parse_channel(s: &str) -> Result<Channel> {
    Channel::parse(s).ok_or_else(|| corrupt("channel", s))
}

/// Columns of an `events` row in [`EVENT_COLUMNS`] order.
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub time: i64,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub channel: String,
    pub sku_id: Option<String>,
    pub store_id: Option<String>,
    pub order_id: Option<String>,
    pub query: Option<String>,
    pub text: Option<String>,
    pub rating: Option<i64>,
    pub properties: Option<String>,
    pub received_at: i64,
}

impl EventRow {
    pub fn into_event(self) -> Result<(Event, i64)> {
        let event = Event {
            kind: EventType::parse(&self.kind).ok_or_else(|| corrupt("event type", &self.kind))?,
            channel: parse_channel(&self.channel)?,
            id: self.id.into(),
            time: Timestamp(self.time),
            user_id: self.user_id.map(Into::into),
            device_id: self.device_id.map(Into::into),
            sku_id: self.sku_id.map(Into::into),
            store_id: self.store_id.map(Into::into),
            order_id: self.order_id.map(Into::into),
            query: self.query,
            text: self.text,
            rating: self.rating.and_then(|r| u8::try_from(r).ok()),
            properties: parse_json_map(self.properties.as_deref()),
        };
        Ok((event, self.received_at))
    }
}

/// Event properties as stored: `NULL` when empty, to keep the table small.
pub fn properties_text(event: &Event) -> Option<String> {
    (!event.properties.is_empty()).then(|| crate::records::json_text(&event.properties))
}

/// Columns of an `orders` row in [`ORDER_COLUMNS`] order; lines are read separately.
pub struct OrderRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub store_id: Option<String>,
    pub channel: String,
    pub currency: String,
    pub placed_at: i64,
    pub shipping_fee: i64,
    pub total: i64,
    pub coupon_codes: String,
    pub original_order_id: Option<String>,
    pub refunded_amount: i64,
    pub source: String,
}

impl OrderRow {
    pub fn into_order(self, lines: Vec<OrderLine>) -> Result<crate::records::StoredOrder> {
        let order = Order {
            kind: OrderKind::parse(&self.kind).ok_or_else(|| corrupt("order kind", &self.kind))?,
            status: OrderStatus::parse(&self.status)
                .ok_or_else(|| corrupt("order status", &self.status))?,
            channel: parse_channel(&self.channel)?,
            currency: Currency::parse(&self.currency).map_err(|e| Error::Corrupt(e.to_string()))?,
            id: self.id.into(),
            user_id: self.user_id.map(Into::into),
            device_id: self.device_id.map(Into::into),
            store_id: self.store_id.map(Into::into),
            placed_at: Timestamp(self.placed_at),
            lines,
            shipping_fee: self.shipping_fee,
            coupon_codes: serde_json::from_str(&self.coupon_codes).unwrap_or_default(),
            original_order_id: self.original_order_id.map(Into::into),
            total: Some(self.total),
        };
        Ok(crate::records::StoredOrder {
            order,
            refunded_amount: self.refunded_amount,
            source: self.source,
        })
    }
}

/// Columns of a `users` row in [`USER_COLUMNS`] order.
pub struct UserRow {
    pub id: String,
    pub phone_enc: Option<Vec<u8>>,
    pub phone_hash: Option<Vec<u8>>,
    pub email_enc: Option<Vec<u8>>,
    pub email_hash: Option<Vec<u8>>,
    pub name_enc: Option<Vec<u8>>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub city: Option<String>,
    pub city_tier: Option<String>,
    pub registration_channel: Option<String>,
    pub registered_at: Option<i64>,
    pub attributes: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
}

impl UserRow {
    pub fn into_record(self) -> Result<UserRecord> {
        let sealed = SealedUser {
            gender: self
                .gender
                .as_deref()
                .map(|g| Gender::parse(g).ok_or_else(|| corrupt("gender", g)))
                .transpose()?,
            birthday: self
                .birthday
                .as_deref()
                .map(|b| b.parse().map_err(|_| corrupt("birthday", b)))
                .transpose()?,
            city_tier: self
                .city_tier
                .as_deref()
                .map(|t| CityTier::parse(t).ok_or_else(|| corrupt("city tier", t)))
                .transpose()?,
            registration_channel: self
                .registration_channel
                .as_deref()
                .map(parse_channel)
                .transpose()?,
            id: self.id,
            phone_enc: self.phone_enc,
            phone_hash: self.phone_hash,
            email_enc: self.email_enc,
            email_hash: self.email_hash,
            name_enc: self.name_enc,
            city: self.city,
            registered_at: self.registered_at,
            attributes: parse_json_map(Some(&self.attributes)),
        };
        Ok(UserRecord {
            sealed,
            created_at: self.created_at,
            updated_at: self.updated_at,
            erased_at: self.erased_at,
        })
    }
}

pub fn link_from(
    id: i64,
    kind: &str,
    source_id: String,
    target_user_id: String,
    reason: String,
    created_at: i64,
    undone_at: Option<i64>,
) -> Result<IdentityLink> {
    Ok(IdentityLink {
        id,
        kind: LinkKind::parse(kind).ok_or_else(|| corrupt("link kind", kind))?,
        source_id,
        target_user_id,
        reason,
        created_at,
        undone_at,
    })
}

pub fn scopes_from(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub const AUDIENCE_USERS: &str =
    "SELECT id, gender, city, city_tier, registration_channel FROM users ORDER BY id";
pub const AUDIENCE_PRODUCTS: &str =
    "SELECT id, category_path, brand, title, price, stock, attributes FROM products";
pub const AUDIENCE_ORDERS: &str =
    "SELECT id, user_id, device_id, kind = 'sale', placed_at, total, \
     discount_total, coupon_codes <> '[]', channel, store_id FROM orders \
     WHERE user_id IS NOT NULL OR device_id IS NOT NULL";
pub const AUDIENCE_LINES: &str =
    "SELECT order_id, sku_id FROM order_lines ORDER BY order_id, line_no";
pub const AUDIENCE_REFUNDS: &str = "SELECT o.user_id, o.device_id, r.refunded_at, r.amount \
     FROM refunds r JOIN orders o ON o.id = r.order_id";
/// Behaviour since $1 of identified users and devices.
pub const AUDIENCE_EVENTS: &str = "SELECT user_id, device_id, type, time, channel, sku_id, store_id, \
     order_id IS NOT NULL FROM events WHERE (user_id IS NOT NULL OR device_id IS NOT NULL) AND time >= $1";
pub const AUDIENCE_LINKS: &str =
    "SELECT kind, source_id, target_user_id FROM identity_links WHERE undone_at IS NULL";

pub const INSERT_TAG_DEFINITION: &str = "INSERT INTO tag_definitions \
     (name, version, rule, weight, description, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (name, version) DO NOTHING";
pub const RETIRE_TAG: &str =
    "UPDATE tag_definitions SET retired_at = $2 WHERE name = $1 AND retired_at IS NULL";
pub const TAG_DEFINITIONS: &str = "SELECT name, version, rule, weight, description, created_at, \
     retired_at FROM tag_definitions ORDER BY name, version";
pub const USER_TAGS: &str = "SELECT user_id, tag FROM user_tags";
pub const TAG_HISTORY: &str = "SELECT user_id, tag, version, change, at FROM tag_history \
     WHERE user_id = $1 ORDER BY id DESC LIMIT $2";
pub const UPSERT_SEGMENT: &str = "INSERT INTO segments (name, expr, description, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET expr = excluded.expr, \
     description = excluded.description, updated_at = excluded.updated_at";
pub const SEGMENTS: &str =
    "SELECT name, expr, description, created_at, updated_at FROM segments ORDER BY created_at, name";
pub const DELETE_SEGMENT: &str = "DELETE FROM segments WHERE name = $1";
pub const UPSERT_SNAPSHOT: &str = "INSERT INTO segment_snapshots (segment, day, taken_at, size, \
     entered, left_count, members) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (segment, day) \
     DO UPDATE SET taken_at = excluded.taken_at, size = excluded.size, entered = excluded.entered, \
     left_count = excluded.left_count, members = excluded.members";
pub const SNAPSHOTS: &str = "SELECT segment, day, taken_at, size, entered, left_count FROM \
     segment_snapshots WHERE segment = $1 ORDER BY day";
pub const PREVIOUS_SNAPSHOT: &str = "SELECT segment, day, taken_at, size, entered, left_count, \
     members FROM segment_snapshots WHERE segment = $1 AND day < $2 ORDER BY day DESC LIMIT 1";

pub const INSERT_COUPON_TEMPLATE: &str = "INSERT INTO coupon_templates (id, name, rule, quota, \
     per_user_limit, valid_from, valid_until, valid_days, created_at, per_device_limit, \
     per_phone_limit, in_centre, issue_on, scope, code_prefix) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (id) DO NOTHING";
macro_rules! coupon_template_columns {
    () => {
        "id, name, rule, quota, issued, per_user_limit, valid_from, valid_until, valid_days, \
         created_at, per_device_limit, per_phone_limit, in_centre, issue_on, scope, code_prefix"
    };
}
pub const COUPON_TEMPLATE_COLUMNS: &str = coupon_template_columns!();
pub const COUPON_TEMPLATE: &str = concat!(
    "SELECT ",
    coupon_template_columns!(),
    " FROM coupon_templates WHERE id = $1"
);
/// The templates shown in the coupon centre or issued by themselves.
pub const OFFERED_TEMPLATES: &str = concat!(
    "SELECT ",
    coupon_template_columns!(),
    " FROM coupon_templates WHERE in_centre = 1 OR issue_on IS NOT NULL ORDER BY id"
);
/// One page of a table by id, after id `$1` (`""` for the first page), `$2` rows at most (after
/// `SELECT columns FROM table`).
pub const PAGE_BY_ID: &str = "WHERE id > $1 ORDER BY id LIMIT $2";
/// How many coupons of each template a user has claimed.
pub const CLAIMS_OF_USER: &str =
    "SELECT template_id, claimed FROM coupon_claims_per_user WHERE user_id = $1";
pub const COUPON_COLUMNS: &str =
    "code, template_id, user_id, claim_key, claimed_at, expires_at, state, order_id, redeemed_at, \
     reserved_until";
/// A user's coupons still to be used: neither redeemed nor expired, oldest first (after `SELECT
/// {COUPON_COLUMNS} FROM coupons`).
pub const OPEN_COUPONS_OF: &str = "WHERE user_id = $1 AND state <> 'redeemed' \
     AND (expires_at IS NULL OR expires_at > $2) ORDER BY claimed_at, code LIMIT 500";
/// Takes one unit of the quota, if any is left: the quota's only write.
pub const TAKE_COUPON_QUOTA: &str = "UPDATE coupon_templates SET issued = issued + 1 \
     WHERE id = $1 AND (quota IS NULL OR issued < quota)";
/// Counts one claim for the user, if under the limit: the limit's only write.
pub const TAKE_USER_CLAIM: &str =
    "INSERT INTO coupon_claims_per_user (template_id, user_id, claimed) \
     VALUES ($1, $2, 1) ON CONFLICT (template_id, user_id) DO UPDATE \
     SET claimed = coupon_claims_per_user.claimed + 1 WHERE coupon_claims_per_user.claimed < $3";
pub const INSERT_COUPON: &str = "INSERT INTO coupons (code, template_id, user_id, claim_key, \
     claimed_at, expires_at, state) VALUES ($1, $2, $3, $4, $5, $6, 'claimed')";
/// The condition under which order `$3` of user `$2` may take coupon `$1` at time `$4`: claimed
/// or held by a lapsed reservation, and unexpired; or already held by this order, which keeps it
/// to the hold's end even if the coupon expires meanwhile.
macro_rules! coupon_free_for_order {
    () => {
        "code = $1 AND user_id = $2 AND ( \
         (state = 'reserved' AND order_id = $3 AND reserved_until > $4) \
         OR ((state = 'claimed' OR (state = 'reserved' AND reserved_until <= $4)) \
             AND (expires_at IS NULL OR expires_at > $4)))"
    };
}
/// Holds a coupon for an order until `$5` (checkout started, payment pending): the hold's only
/// write. The same order again extends its hold.
pub const RESERVE_COUPON: &str = concat!(
    "UPDATE coupons SET state = 'reserved', order_id = $3, reserved_until = $5 WHERE ",
    coupon_free_for_order!()
);
/// Redeems a coupon for an order: the redemption's only write (`$5` is NULL: no hold).
pub const REDEEM_COUPON: &str = concat!(
    "UPDATE coupons SET state = 'redeemed', order_id = $3, redeemed_at = $4, \
     reserved_until = $5 WHERE ",
    coupon_free_for_order!()
);
/// Gives a coupon back from an order, redeemed (order cancelled or wholly refunded) or held
/// (checkout abandoned).
pub const RELEASE_COUPON: &str = "UPDATE coupons SET state = 'claimed', order_id = NULL, \
     redeemed_at = NULL, reserved_until = NULL \
     WHERE code = $1 AND order_id = $2 AND state IN ('redeemed', 'reserved')";
pub const LAPSED_COUPON_HOLDS: &str =
    "SELECT code, order_id FROM coupons WHERE state = 'reserved' AND reserved_until <= $1";
/// Ends one lapsed hold, if it is still the same one.
pub const END_COUPON_HOLD: &str = "UPDATE coupons SET state = 'claimed', order_id = NULL, \
     reserved_until = NULL WHERE code = $1 AND order_id = $2 AND state = 'reserved' \
     AND reserved_until <= $3";
/// Records what happened to a coupon (`$2` the kind, `$3` the order) on the promotion trail.
pub const INSERT_COUPON_EVENT: &str = "INSERT INTO promotion_events (at, kind, promotion_type, \
     promotion_id, subject, user_id, order_id) SELECT $4, $2, 'coupon', template_id, code, \
     user_id, $3 FROM coupons WHERE code = $1";

pub const CAMPAIGN_COLUMNS: &str =
    "id, name, state, promotion, starts_at, ends_at, segment, budget, version, created_at, \
     updated_at, recurrence, per_customer_limit";
/// Every campaign with what its budget scope (`$1` and its id) has used in period `$2`, key `$3`,
/// after its columns: one read where a read per campaign was.
pub const CAMPAIGNS_WITH_SPENT: &str = "SELECT c.id, c.name, c.state, c.promotion, c.starts_at, \
     c.ends_at, c.segment, c.budget, c.version, c.created_at, c.updated_at, c.recurrence, \
     c.per_customer_limit, COALESCE(u.used, 0) \
     FROM campaigns c LEFT JOIN budget_usage u ON u.scope = $1 || c.id AND u.period = $2 \
     AND u.period_key = $3 ORDER BY c.id";
pub const INSERT_CAMPAIGN: &str = "INSERT INTO campaigns (id, name, state, promotion, starts_at, \
     ends_at, segment, budget, created_at, updated_at, recurrence, per_customer_limit) \
     VALUES ($1, $2, 'draft', $3, $4, $5, $6, $7, $8, $8, $9, $10) ON CONFLICT (id) DO NOTHING";
/// An edit applies only to the version the editor saw, and never to an ended campaign.
pub const EDIT_CAMPAIGN: &str = "UPDATE campaigns SET name = $3, promotion = $4, starts_at = $5, \
     ends_at = $6, segment = $7, budget = $8, version = version + 1, updated_at = $9, \
     recurrence = $10, per_customer_limit = $11 \
     WHERE id = $1 AND version = $2 AND state <> 'ended'";
/// A transition applies only from the states it is allowed from.
pub const TRANSITION_CAMPAIGN: &str = "UPDATE campaigns SET state = $2, version = version + 1, \
     updated_at = $3 WHERE id = $1 AND state = ANY_OF_STATES";
pub const INSERT_CAMPAIGN_CHANGE: &str =
    "INSERT INTO campaign_changes (campaign_id, version, change, at) \
     SELECT id, version, $2, $3 FROM campaigns WHERE id = $1";
pub const CAMPAIGN_CHANGES: &str =
    "SELECT version, change, at FROM campaign_changes WHERE campaign_id = $1 ORDER BY id";

/// The transition statement for a set of allowed source states (fixed strings, never input).
pub fn transition_sql(from: &[&str]) -> String {
    let list = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    TRANSITION_CAMPAIGN.replace("= ANY_OF_STATES", &format!("IN ({list})"))
}

/// A sale's columns; `taken` is the sum of its buckets.
pub const FLASH_SALE_COLUMNS: &str =
    "id, sku, price, stock, (SELECT CAST(COALESCE(SUM(b.taken), 0) AS BIGINT) \
     FROM flash_sale_buckets b WHERE b.sale_id = flash_sales.id), per_user_limit, starts_at, \
     ends_at, hold_ms, created_at";
pub const INSERT_FLASH_SALE: &str =
    "INSERT INTO flash_sales (id, sku, price, stock, per_user_limit, \
     starts_at, ends_at, hold_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO NOTHING";
pub const RESERVATION_COLUMNS: &str =
    "id, sale_id, user_id, quantity, state, expires_at, created_at";
pub const INSERT_FLASH_BUCKET: &str =
    "INSERT INTO flash_sale_buckets (sale_id, bucket, stock) VALUES ($1, $2, $3)";
/// Takes units from one bucket, only while the sale is open and enough are left in it: the
/// stock's only taking write.
pub const TAKE_FLASH_STOCK: &str = "UPDATE flash_sale_buckets SET taken = taken + $3 \
     WHERE sale_id = $1 AND bucket = $2 AND taken + $3 <= stock AND EXISTS (SELECT 1 \
     FROM flash_sales s WHERE s.id = $1 AND s.starts_at <= $4 AND $4 < s.ends_at)";
pub const TAKE_FLASH_USER: &str = "INSERT INTO flash_sale_users (sale_id, user_id, quantity) \
     SELECT $1, $2, $3 WHERE $3 <= $4 ON CONFLICT (sale_id, user_id) DO UPDATE \
     SET quantity = flash_sale_users.quantity + $3 WHERE flash_sale_users.quantity + $3 <= $4";
/// Gives back units a hold took from a bucket (`$3`) when the hold is refused after taking them.
pub const UNDO_FLASH_TAKE: &str = "UPDATE flash_sale_buckets SET taken = taken - $3 \
     WHERE sale_id = $1 AND bucket = $2";
pub const INSERT_RESERVATION: &str =
    "INSERT INTO flash_reservations (id, sale_id, user_id, quantity, \
     state, expires_at, created_at, bucket) VALUES ($1, $2, $3, $4, 'reserved', $5, $6, $7)";
pub const CONFIRM_RESERVATION: &str = "UPDATE flash_reservations SET state = 'confirmed' \
     WHERE id = $1 AND state = 'reserved' AND expires_at > $2";
/// Releases one reservation that is still held (expired, or given up), returning its units.
pub const RELEASE_RESERVATION: &str = "UPDATE flash_reservations SET state = 'released' \
     WHERE id = $1 AND state = 'reserved' AND (expires_at <= $2 OR $3)";
/// Returns a reservation's (`$3`) units to the bucket it took them from.
pub const RETURN_FLASH_STOCK: &str = "UPDATE flash_sale_buckets SET taken = taken - $2 \
     WHERE sale_id = $1 AND bucket = (SELECT bucket FROM flash_reservations WHERE id = $3)";

/// How many buckets a sale's stock is split into: one per 8 units, at most 16 (on PostgreSQL;
/// the single-writer SQLite store keeps one). Enough rows that concurrent reservations rarely
/// wait on each other, few enough that the last units are found in one read.
pub fn flash_buckets(stock: i64, max: i64) -> i64 {
    (stock / 8).clamp(1, max.max(1))
}

/// Bucket `b`'s share of the stock: equal parts, the first buckets one more unit each until the
/// parts sum to the stock exactly.
pub fn flash_bucket_stock(stock: i64, buckets: i64, b: i64) -> i64 {
    stock / buckets + i64::from(b < stock % buckets)
}
pub const RETURN_FLASH_USER: &str =
    "UPDATE flash_sale_users SET quantity = quantity - $3 WHERE sale_id = $1 AND user_id = $2";
pub const FLASH_RESERVATION_IDS: &str = "SELECT id FROM flash_reservations WHERE sale_id = $1";
pub const EXPIRED_RESERVATIONS: &str = "SELECT id FROM flash_reservations \
     WHERE state = 'reserved' AND expires_at <= $1 ORDER BY expires_at LIMIT 1000";

pub const UPSERT_BUDGET_LIMIT: &str =
    "INSERT INTO budget_limits (scope, period, amount) VALUES ($1, $2, $3) \
     ON CONFLICT (scope, period) DO UPDATE SET amount = excluded.amount";
pub const OPEN_BUDGET_PERIOD: &str = "INSERT INTO budget_usage (scope, period, period_key, used) \
     VALUES ($1, $2, $3, 0) ON CONFLICT (scope, period, period_key) DO NOTHING";
/// Spends from one budget only if the limit (when there is one) stays respected: its only
/// spending write.
pub const SPEND_BUDGET: &str = "UPDATE budget_usage SET used = used + $4 \
     WHERE scope = $1 AND period = $2 AND period_key = $3 AND used + $4 <= COALESCE( \
     (SELECT amount FROM budget_limits l WHERE l.scope = $1 AND l.period = $2), used + $4)";
/// A spend under the limit it names itself (`$5`): a counted line's use.
pub const SPEND_UNDER: &str = "UPDATE budget_usage SET used = used + $4 \
     WHERE scope = $1 AND period = $2 AND period_key = $3 AND used + $4 <= $5";
pub const INSERT_BUDGET_LEDGER: &str =
    "INSERT INTO budget_ledger (key, scope, period, period_key, \
     amount, at) VALUES ($1, $2, $3, $4, $5, $6)";
/// Each line of a spend with what a whole revert gives back: what partial returns left.
pub const BUDGET_LEDGER_OF: &str =
    "SELECT scope, period, period_key, amount - returned, reverted FROM budget_ledger \
     WHERE key = $1";
/// Whether a spend under the key stands (not given back).
pub const BUDGET_SPEND_STANDS: &str =
    "SELECT EXISTS (SELECT 1 FROM budget_ledger WHERE key = $1 AND reverted = 0)";
/// Forgets a spend that was given back, so the key can spend again.
pub const FORGET_REVERTED_SPEND: &str = "DELETE FROM budget_ledger WHERE key = $1 AND reverted = 1";
pub const INSERT_CHECKOUT: &str = "INSERT INTO checkouts (order_id, request_hash, response, at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING";
pub const CHECKOUT_OF: &str = "SELECT request_hash, response FROM checkouts WHERE order_id = $1";
pub const NOTE_CHECKOUT_ATTEMPT: &str = "INSERT INTO checkout_attempts (order_id, attempt, at) \
     VALUES ($1, $2, $3) ON CONFLICT (order_id, attempt) DO NOTHING";
pub const FORGET_CHECKOUT_ATTEMPT: &str =
    "DELETE FROM checkout_attempts WHERE order_id = $1 AND attempt = $2";
/// Unsettled checkout attempts noted before `$1`, oldest first, at most `$2`.
pub const STALE_CHECKOUT_ATTEMPTS: &str = "SELECT order_id, attempt FROM checkout_attempts \
     WHERE at < $1 ORDER BY at LIMIT $2";
/// The campaign spends made for order `$1` that still stand, each with whether its order kept it
/// (its latest entry is `redeemed`), by their latest entries. Spends made before campaign spends
/// were first `reserved` have only a `redeemed` entry.
pub const STANDING_CHECKOUT_SPENDS: &str = "SELECT e.subject, e.kind = 'redeemed' \
     FROM promotion_events e WHERE e.id IN (SELECT MAX(id) FROM promotion_events \
     WHERE order_id = $1 AND promotion_type = 'campaign' AND kind IN ('reserved', 'redeemed') \
     GROUP BY subject) \
     AND EXISTS (SELECT 1 FROM budget_ledger l WHERE l.key = e.subject AND l.reverted = 0) \
     ORDER BY e.id";
/// The latest entry of the campaign spend with key `$1`: reserved (an attempt spent) or
/// redeemed (its order kept it).
macro_rules! latest_spend_entry {
    () => {
        "(SELECT MAX(id) FROM promotion_events WHERE subject = $1 \
         AND promotion_type = 'campaign' AND kind IN ('reserved', 'redeemed'))"
    };
}
/// Records that the campaign spend with key `$1` was kept by its order (redeemed), once, while
/// it stands.
pub const TRAIL_SPEND_KEPT: &str = concat!(
    "INSERT INTO promotion_events (at, kind, promotion_type, promotion_id, subject, user_id, \
     order_id, amount) SELECT $2, 'redeemed', promotion_type, promotion_id, subject, user_id, \
     order_id, amount FROM promotion_events WHERE kind = 'reserved' AND id = ",
    latest_spend_entry!(),
    " AND EXISTS (SELECT 1 FROM budget_ledger WHERE key = $1 AND reverted = 0)"
);
/// Records that the campaign spend with key `$1` was given back: rolled back when its order had
/// kept it, expired when only an attempt had (a race it lost, a refused round, one that died).
pub const TRAIL_SPEND_REVERTED: &str = concat!(
    "INSERT INTO promotion_events (at, kind, promotion_type, promotion_id, subject, user_id, \
     order_id, amount) SELECT $2, CASE kind WHEN 'redeemed' THEN 'rolled_back' ELSE 'expired' \
     END, promotion_type, promotion_id, subject, user_id, order_id, amount - COALESCE((SELECT \
     MAX(l.returned) FROM budget_ledger l WHERE l.key = $1), 0) FROM promotion_events \
     WHERE id = ",
    latest_spend_entry!()
);
/// Serialises the refunds of one order on PostgreSQL: each locks its kept checkout's row.
pub const LOCK_CHECKOUT: &str = "SELECT order_id FROM checkouts WHERE order_id = $1 FOR UPDATE";
pub const REFUND_RETURNS_OF: &str =
    "SELECT refund_id, lines FROM refund_returns WHERE order_id = $1";
pub const INSERT_REFUND_RETURN: &str =
    "INSERT INTO refund_returns (order_id, refund_id, lines, at) VALUES ($1, $2, $3, $4)";
/// Gives back `$2` of the standing spend `$1` (each of its lines), never more than it has left.
pub const RETURN_SHARE: &str = "UPDATE budget_ledger SET returned = returned + $2 \
     WHERE key = $1 AND reverted = 0 AND returned + $2 <= amount";
pub const BUDGET_LINES_OF: &str =
    "SELECT scope, period, period_key FROM budget_ledger WHERE key = $1";
/// A share of a refund given back (`$4` the subject, `$5` the order): its customer is the one
/// the subject's latest entry for the order names.
pub const TRAIL_SHARE_RETURNED: &str = "INSERT INTO promotion_events (at, kind, promotion_type, \
     promotion_id, subject, user_id, order_id, amount) VALUES ($1, 'refunded', $2, $3, $4, \
     (SELECT e.user_id FROM promotion_events e WHERE e.subject = $4 AND e.order_id = $5 \
     ORDER BY e.id DESC LIMIT 1), $5, $6)";
pub const MARK_REVERTED: &str =
    "UPDATE budget_ledger SET reverted = 1 WHERE key = $1 AND reverted = 0";
pub const RETURN_BUDGET: &str = "UPDATE budget_usage SET used = used - $4 \
     WHERE scope = $1 AND period = $2 AND period_key = $3";
pub const BUDGET_USED: &str =
    "SELECT used FROM budget_usage WHERE scope = $1 AND period = $2 AND period_key = $3";

pub const RED_PACKET_COLUMNS: &str = "id, sender, kind, total, currency, shares, claimed_count, \
     claimed_amount, state, returned, expires_at, created_at, unlock_helpers, helpers, opens_at, \
     rain_id, helps_per_helper_per_day";
/// A share-to-unlock packet (`$9` helpers needed) starts locked; a rain's round (`$11`) opens
/// at `$10`.
pub const INSERT_RED_PACKET: &str = "INSERT INTO red_packets (id, sender, kind, total, currency, \
     shares, state, expires_at, created_at, unlock_helpers, opens_at, rain_id, \
     helps_per_helper_per_day) VALUES ($1, $2, $3, $4, $5, $6, \
     CASE WHEN CAST($9 AS BIGINT) > 0 THEN 'locked' ELSE 'open' END, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (id) DO NOTHING";
/// A rain's rounds, in time order (after `SELECT {RED_PACKET_COLUMNS} FROM red_packets`).
pub const RAIN_ROUNDS: &str = "WHERE rain_id = $1 ORDER BY opens_at, id";
/// One help per (packet, helper); a repeated help inserts nothing.
pub const INSERT_RED_PACKET_HELP: &str = "INSERT INTO red_packet_helps (packet_id, helper, \
     helped_at) VALUES ($1, $2, $3) ON CONFLICT (packet_id, helper) DO NOTHING";
/// Counts a new help (`$3` the helper): only a locked, unexpired packet of another sender takes
/// it, and the help that reaches the threshold opens the packet for claims.
pub const COUNT_RED_PACKET_HELP: &str = "UPDATE red_packets SET helpers = helpers + 1, \
     state = CASE WHEN helpers + 1 >= unlock_helpers THEN 'open' ELSE state END \
     WHERE id = $1 AND state = 'locked' AND expires_at > $2 AND sender <> $3 RETURNING helpers";
pub const INSERT_RED_PACKET_SHARE: &str =
    "INSERT INTO red_packet_shares (packet_id, position, amount) VALUES ($1, $2, $3)";
/// Takes the next share: the packet's row is the only thing claims contend on.
pub const TAKE_RED_PACKET_SHARE: &str = "UPDATE red_packets SET claimed_count = claimed_count + 1 \
     WHERE id = $1 AND state = 'open' AND opens_at <= $2 AND expires_at > $2 \
     AND claimed_count < shares RETURNING claimed_count";
pub const CLAIM_RED_PACKET_SHARE: &str = "UPDATE red_packet_shares SET claimed_by = $3, \
     claimed_at = $4 WHERE packet_id = $1 AND position = $2 AND claimed_by IS NULL RETURNING amount";
pub const ADD_RED_PACKET_CLAIMED: &str =
    "UPDATE red_packets SET claimed_amount = claimed_amount + $2, \
     state = CASE WHEN claimed_count = shares THEN 'finished' ELSE state END WHERE id = $1";
pub const RED_PACKET_SHARE_OF: &str = "SELECT position, amount, claimed_by, claimed_at \
     FROM red_packet_shares WHERE packet_id = $1 AND claimed_by = $2";
pub const RED_PACKET_SHARES: &str = "SELECT position, amount, claimed_by, claimed_at \
     FROM red_packet_shares WHERE packet_id = $1 ORDER BY position";
/// Expiry returns the unclaimed remainder once: only an open (or still locked) packet moves to
/// expired.
pub const EXPIRE_RED_PACKETS: &str = "UPDATE red_packets SET state = 'expired', \
     returned = total - claimed_amount WHERE state IN ('open', 'locked') AND expires_at <= $1 \
     RETURNING id, returned";
pub const BUDGET_LIMITS_OF: &str =
    "SELECT period, amount FROM budget_limits WHERE scope = $1 ORDER BY period";

pub const GROUP_DEAL_COLUMNS: &str =
    "id, sku, group_size, leader_price, member_price, window_ms, starts_at, ends_at, created_at";
pub const INSERT_GROUP_DEAL: &str = "INSERT INTO group_deals (id, sku, group_size, leader_price, \
     member_price, window_ms, starts_at, ends_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO NOTHING";
pub const GROUP_COLUMNS: &str = "id, deal_id, leader, size, joined, state, deadline, created_at";
pub const INSERT_GROUP: &str = "INSERT INTO group_buys (id, deal_id, leader, size, joined, state, \
     deadline, created_at) VALUES ($1, $2, $3, $4, 1, CASE WHEN $4 <= 1 THEN 'complete' ELSE 'open' END, $5, $6)";
pub const INSERT_GROUP_MEMBER: &str =
    "INSERT INTO group_members (group_id, user_id, order_id, price, \
     leader, state, joined_at) VALUES ($1, $2, $3, $4, $5, 'joined', $6)";
/// A seat is taken only while the group is open, before its deadline and not yet full; the
/// group completes with its last seat.
pub const TAKE_GROUP_SEAT: &str = "UPDATE group_buys SET joined = joined + 1, \
     state = CASE WHEN joined + 1 >= size THEN 'complete' ELSE state END \
     WHERE id = $1 AND state = 'open' AND deadline > $2 AND joined < size";
pub const FAIL_EXPIRED_GROUPS: &str = "UPDATE group_buys SET state = 'failed' \
     WHERE state = 'open' AND deadline <= $1 RETURNING id";
pub const REFUND_GROUP_MEMBERS: &str = "UPDATE group_members SET state = 'refunded' \
     WHERE group_id = $1 AND state = 'joined'";
pub const GROUP_MEMBER_BY_ORDER: &str =
    "SELECT group_id, user_id, order_id, price, leader, state, joined_at FROM group_members WHERE order_id = $1";
pub const GROUP_MEMBERS: &str =
    "SELECT group_id, user_id, order_id, price, leader, state, joined_at \
     FROM group_members WHERE group_id = $1 ORDER BY joined_at, user_id";
pub const COUPON_BY_CLAIM_KEY: &str =
    "SELECT code FROM coupons WHERE template_id = $1 AND claim_key = $2";

pub const PROMOTION_EVENT_COLUMNS: &str =
    "id, at, kind, promotion_type, promotion_id, subject, user_id, order_id, amount";
pub const INSERT_PROMOTION_EVENT: &str = "INSERT INTO promotion_events (at, kind, promotion_type, \
     promotion_id, subject, user_id, order_id, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// Records what happened to a flash-sale reservation (`$1`), worth its units at the sale price.
/// Records a new hold (`$1` at, `$2` sale, `$3` reservation, `$4` user, `$5` amount) with the
/// values the hold was made from, without reading it back.
pub const TRAIL_FLASH_HELD: &str = "INSERT INTO promotion_events (at, kind, promotion_type, \
     promotion_id, subject, user_id, amount) VALUES ($1, 'reserved', 'flash_sale', $2, $3, $4, $5)";
pub const TRAIL_FLASH_RESERVATION: &str = "INSERT INTO promotion_events (at, kind, \
     promotion_type, promotion_id, subject, user_id, amount) SELECT $2, $3, 'flash_sale', \
     r.sale_id, r.id, r.user_id, s.price * r.quantity FROM flash_reservations r \
     JOIN flash_sales s ON s.id = r.sale_id WHERE r.id = $1";
/// Records a packet's expiry: its remainder goes back to the sender.
pub const TRAIL_RED_PACKET_EXPIRED: &str = "INSERT INTO promotion_events (at, kind, \
     promotion_type, promotion_id, subject, user_id, amount) SELECT $2, 'expired', 'red_packet', \
     id, id, sender, returned FROM red_packets WHERE id = $1";
/// Records `$3` for every member of group `$1` still joined, when the group is in state `$4`:
/// `redeemed` when it completes, `rolled_back` when it fails (before the refund marks them).
pub const TRAIL_GROUP_MEMBERS: &str = "INSERT INTO promotion_events (at, kind, promotion_type, \
     promotion_id, subject, user_id, order_id, amount) SELECT $2, $3, 'group_buy', g.deal_id, \
     m.group_id, m.user_id, m.order_id, m.price FROM group_members m \
     JOIN group_buys g ON g.id = m.group_id \
     WHERE m.group_id = $1 AND m.state = 'joined' AND g.state = $4 ORDER BY m.joined_at, m.user_id";
/// Trail entries per promotion and kind in `[$1, $2)`.
pub const TRAIL_COUNTS: &str = "SELECT promotion_type, promotion_id, kind, COUNT(*), \
     COUNT(DISTINCT user_id), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM promotion_events \
     WHERE at >= $1 AND at < $2 GROUP BY promotion_type, promotion_id, kind \
     ORDER BY promotion_type, promotion_id, kind";

/// The newest trail entries matching a filter: the statement, and its text parameters in order
/// (then `before_id` when given, then the limit).
pub fn trail_query(f: &crate::records::TrailFilter) -> (String, Vec<String>) {
    let mut texts = Vec::new();
    let mut conditions = Vec::new();
    for (column, value) in [
        ("user_id", &f.user_id),
        ("promotion_type", &f.promotion_type),
        ("promotion_id", &f.promotion_id),
        ("subject", &f.subject),
    ] {
        if let Some(v) = value {
            texts.push(v.clone());
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    let mut next = texts.len() + 1;
    if f.before_id.is_some() {
        conditions.push(format!("id < ${next}"));
        next += 1;
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    (
        format!(
            "SELECT {PROMOTION_EVENT_COLUMNS} FROM promotion_events{filter} \
             ORDER BY id DESC LIMIT ${next}"
        ),
        texts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_shares_sum_to_the_stock() {
        for stock in [0, 1, 7, 8, 9, 100, 10_000, 10_007] {
            let n = flash_buckets(stock, 16);
            assert!((1..=16).contains(&n));
            let shares: Vec<i64> = (0..n).map(|b| flash_bucket_stock(stock, n, b)).collect();
            assert_eq!(shares.iter().sum::<i64>(), stock, "{stock}");
            assert!(shares.iter().max().unwrap_or(&0) - shares.iter().min().unwrap_or(&0) <= 1);
        }
        assert_eq!(flash_buckets(100, 16), 12);
        assert_eq!(flash_buckets(100, 1), 1);
    }
}
