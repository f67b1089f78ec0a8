//! Storage for shopgrowth: one interface, [`Store`], over two real backends.
//!
//! - [`sqlite`]: the embedded default, one file, a single writer thread with group commit.
//! - [`postgres`]: for several server nodes sharing one database.
//! - `queries`: SQL both backends share, and decoding of rows into the core model.
//! - [`records`]: what the store takes and returns beyond the core model.
//! - [`at_work`]: how many callers the server is serving, so the embedded writer lingers for
//!   company only when some may come.
//!
//! Only this crate knows SQL. Personal data arrives already encrypted ([`records::SealedUser`]).

pub mod at_work;
pub mod error;
pub mod postgres;
mod queries;
pub mod records;
pub mod sqlite;

pub use error::{Error, Result};

use records::*;
use shopgrowth_core::ids::{DeviceId, UserId};
use shopgrowth_core::model::{Event, Order, Product, Refund, Store as ShopStore};
use std::path::PathBuf;

/// Where the data lives: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://…`/`postgresql://…`, `sqlite:PATH`, or a plain file path.
    pub fn parse(text: &str) -> Result<Self> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Location::Postgres(text.to_owned()))
        } else if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else if text.contains("://") || text.is_empty() {
            Err(Error::BadLocation(text.to_owned()))
        } else {
            Ok(Location::Sqlite(PathBuf::from(text)))
        }
    }
}

/// The store. Every method is one atomic write or one consistent read.
#[derive(Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    pub async fn open(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Sqlite(path) => Store::Sqlite(sqlite::SqliteStore::open(path)?),
            Location::Postgres(url) => {
                Store::Postgres(postgres::PgStore::connect(url, None).await?)
            }
        })
    }

    /// The gauge of callers at work the embedded store's writer reads before lingering for more
    /// writes; the server counts its requests in it. PostgreSQL commits each write on its own.
    pub fn at_work(&self) -> Option<std::sync::Arc<at_work::AtWork>> {
        match self {
            Store::Sqlite(s) => Some(s.at_work()),
            Store::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations; refuses to run if an applied one was edited.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self.migrate())
    }

    /// Stores new events and reports the ids already stored as duplicates. Durable on return.
    pub async fn insert_events(
        &self,
        events: Vec<Event>,
        received_at: i64,
    ) -> Result<Vec<Written>> {
        dispatch!(self.insert_events(events, received_at))
    }

    /// Inserts or updates users; one with the phone of an existing customer is merged into it.
    pub async fn upsert_users(&self, users: Vec<SealedUser>, now: i64) -> Result<Vec<UserWritten>> {
        dispatch!(self.upsert_users(users, now))
    }

    pub async fn upsert_products(&self, products: Vec<Product>, now: i64) -> Result<Vec<Written>> {
        dispatch!(self.upsert_products(products, now))
    }

    pub async fn upsert_stores(&self, stores: Vec<ShopStore>, now: i64) -> Result<Vec<Written>> {
        dispatch!(self.upsert_stores(stores, now))
    }

    /// Stores new orders with their lines; an order id seen before is a duplicate, unchanged.
    pub async fn insert_orders(&self, orders: Vec<Order>, now: i64) -> Result<Vec<Written>> {
        dispatch!(self.insert_orders(orders, now))
    }

    /// Applies a refund by atomic conditional writes per line; idempotent by refund id.
    pub async fn add_refund(
        &self,
        order_id: String,
        refund: Refund,
        now: i64,
    ) -> Result<RefundWritten> {
        dispatch!(self.add_refund(order_id, refund, now))
    }

    /// Writes one batch of a file import.
    pub async fn import_batch(&self, batch: ImportBatch, now: i64) -> Result<ImportWritten> {
        dispatch!(self.import_batch(batch, now))
    }

    /// Records that an anonymous device logged in as `user`; its past events follow the user.
    pub async fn link_device(
        &self,
        device: DeviceId,
        user: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        dispatch!(self.link_device(device, user, reason, now))
    }

    /// Merges user `source` into `target` by hand.
    pub async fn merge_users(
        &self,
        source: UserId,
        target: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        dispatch!(self.merge_users(source, target, reason, now))
    }

    /// Undoes a merge; the link stays in the history with its undo time.
    pub async fn undo_link(&self, link_id: i64, now: i64) -> Result<IdentityLink> {
        dispatch!(self.undo_link(link_id, now))
    }

    /// The customer a user id belongs to, after ID-Mapping.
    pub async fn customer(&self, user_id: UserId) -> Result<Option<Customer>> {
        dispatch!(self.customer(user_id))
    }

    pub async fn recent_events(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredEvent>> {
        dispatch!(self.recent_events(customer, limit))
    }

    pub async fn recent_orders(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredOrder>> {
        dispatch!(self.recent_orders(customer, limit))
    }

    /// Every merge that involves the customer, undone ones included.
    pub async fn links_of(&self, customer: &Customer) -> Result<Vec<IdentityLink>> {
        dispatch!(self.links_of(customer))
    }

    /// Deletes a user's personal data (phone, email, name, birthday, attributes); keeps the id.
    pub async fn erase_personal_data(&self, user_id: UserId, now: i64) -> Result<bool> {
        dispatch!(self.erase_personal_data(user_id, now))
    }

    pub async fn create_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        dispatch!(self.create_api_key(key))
    }

    pub async fn api_key(&self, id: String) -> Result<Option<ApiKeyRecord>> {
        dispatch!(self.api_key(id))
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        dispatch!(self.api_keys())
    }

    pub async fn revoke_api_key(&self, id: String, now: i64) -> Result<bool> {
        dispatch!(self.revoke_api_key(id, now))
    }

    pub async fn counts(&self) -> Result<Counts> {
        dispatch!(self.counts())
    }

    /// Everything the audience engine reads; behaviour since `since` (epoch ms).
    pub async fn audience_source(&self, since: i64) -> Result<AudienceSource> {
        dispatch!(self.audience_source(since))
    }

    /// Stores a custom tag version; false if that name and version were already stored.
    pub async fn define_tag(&self, tag: TagDefinitionRecord) -> Result<bool> {
        dispatch!(self.define_tag(tag))
    }

    /// Retires a custom tag (all its versions stay in the history).
    pub async fn retire_tag(&self, name: String, now: i64) -> Result<bool> {
        dispatch!(self.retire_tag(name, now))
    }

    /// Every version of every custom tag, by name and version.
    pub async fn tag_definitions(&self) -> Result<Vec<TagDefinitionRecord>> {
        dispatch!(self.tag_definitions())
    }

    /// Appends tag changes to the history and applies them to current tags, atomically.
    pub async fn record_tag_changes(&self, changes: Vec<TagChangeRecord>) -> Result<()> {
        dispatch!(self.record_tag_changes(changes))
    }

    /// Every (user id, tag) carried as last recorded.
    pub async fn user_tags(&self) -> Result<Vec<(String, String)>> {
        dispatch!(self.user_tags())
    }

    /// One user's tag history, newest first.
    pub async fn tag_history(&self, user_id: String, limit: i64) -> Result<Vec<TagChangeRecord>> {
        dispatch!(self.tag_history(user_id, limit))
    }

    /// Saves or replaces a segment definition.
    pub async fn save_segment(&self, segment: SegmentRecord) -> Result<()> {
        dispatch!(self.save_segment(segment))
    }

    pub async fn segments(&self) -> Result<Vec<SegmentRecord>> {
        dispatch!(self.segments())
    }

    pub async fn delete_segment(&self, name: String) -> Result<bool> {
        dispatch!(self.delete_segment(name))
    }

    /// Stores a segment's snapshot for a day; a second one that day replaces the first.
    pub async fn save_snapshot(&self, snapshot: SnapshotRecord) -> Result<()> {
        dispatch!(self.save_snapshot(snapshot))
    }

    /// A segment's snapshots by day (without member lists).
    pub async fn snapshots(&self, segment: String) -> Result<Vec<SnapshotRecord>> {
        dispatch!(self.snapshots(segment))
    }

    /// The latest snapshot before `day`, with its member list.
    pub async fn previous_snapshot(
        &self,
        segment: String,
        day: String,
    ) -> Result<Option<SnapshotRecord>> {
        dispatch!(self.previous_snapshot(segment, day))
    }

    /// Stores a coupon template; false if the id exists.
    pub async fn create_coupon_template(&self, template: CouponTemplateRecord) -> Result<bool> {
        dispatch!(self.create_coupon_template(template))
    }

    /// The templates shown in the coupon centre or issued by themselves, by id.
    pub async fn offered_coupon_templates(&self) -> Result<Vec<CouponTemplateRecord>> {
        dispatch!(self.offered_coupon_templates())
    }

    /// How many coupons of each template a user has claimed, by template id.
    pub async fn coupon_claims_of(&self, user_id: String) -> Result<Vec<(String, i64)>> {
        dispatch!(self.coupon_claims_of(user_id))
    }

    pub async fn coupon_template(&self, id: String) -> Result<Option<CouponTemplateRecord>> {
        dispatch!(self.coupon_template(id))
    }

    /// Claims a coupon of a template for a user: never beyond the quota or the user's limit, also
    /// under concurrent claims; the same claim key returns the same coupon. `code` is the new
    /// coupon's code.
    pub async fn claim_coupon(
        &self,
        template_id: String,
        user_id: String,
        claim_key: String,
        code: String,
        holder_limits: Vec<HolderLimit>,
        now: i64,
    ) -> Result<Claimed> {
        dispatch!(self.claim_coupon(template_id, user_id, claim_key, code, holder_limits, now))
    }

    /// Redeems a coupon for an order: once, even under concurrent attempts; the same order again
    /// is a duplicate.
    pub async fn redeem_coupon(
        &self,
        code: String,
        user_id: String,
        order_id: String,
        now: i64,
    ) -> Result<Redeemed> {
        dispatch!(self.redeem_coupon(code, user_id, order_id, now))
    }

    /// Holds a coupon for an order until `until` (checkout started): once per coupon, also under
    /// concurrent attempts; the same order again extends its hold. A lapsed hold frees the
    /// coupon for any order at once, and the sweeper records the lapse.
    pub async fn reserve_coupon(
        &self,
        code: String,
        user_id: String,
        order_id: String,
        until: i64,
        now: i64,
    ) -> Result<()> {
        dispatch!(self.reserve_coupon(code, user_id, order_id, until, now))
    }

    /// Ends every lapsed coupon hold, recording each in the trail; how many.
    pub async fn sweep_coupon_holds(&self, now: i64) -> Result<usize> {
        dispatch!(self.sweep_coupon_holds(now))
    }

    /// Gives a coupon back from the order that redeemed or holds it (cancelled, wholly refunded,
    /// or checkout abandoned).
    pub async fn release_coupon(&self, code: String, order_id: String, now: i64) -> Result<bool> {
        dispatch!(self.release_coupon(code, order_id, now))
    }

    pub async fn coupon(&self, code: String) -> Result<Option<CouponRecord>> {
        dispatch!(self.coupon(code))
    }

    /// Every coupon template by id, a page of at most `limit` after id `after` (`""` for the
    /// first page); likewise flash sales, group-buying deals and red packets below.
    pub async fn coupon_templates_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<CouponTemplateRecord>> {
        dispatch!(self.coupon_templates_after(after, limit))
    }

    pub async fn flash_sales_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<FlashSaleRecord>> {
        dispatch!(self.flash_sales_after(after, limit))
    }

    pub async fn group_deals_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<GroupDealRecord>> {
        dispatch!(self.group_deals_after(after, limit))
    }

    pub async fn red_packets_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<RedPacketRecord>> {
        dispatch!(self.red_packets_after(after, limit))
    }

    /// A user's coupons still to be used (neither redeemed nor expired at `now`), oldest first;
    /// at most 500.
    pub async fn open_coupons_of(&self, user_id: String, now: i64) -> Result<Vec<CouponRecord>> {
        dispatch!(self.open_coupons_of(user_id, now))
    }

    /// Stores a new campaign as a draft, recording `change`; false if the id exists.
    pub async fn create_campaign(&self, campaign: CampaignRecord, change: String) -> Result<bool> {
        dispatch!(self.create_campaign(campaign, change))
    }

    pub async fn campaign(&self, id: String) -> Result<Option<CampaignRecord>> {
        dispatch!(self.campaign(id))
    }

    /// Every campaign, by id, with what its budget scope (`scope_prefix` and its id) has used in
    /// `period` under `period_key`, in one read.
    pub async fn campaigns_with_spent(
        &self,
        scope_prefix: String,
        period: String,
        period_key: String,
    ) -> Result<Vec<(CampaignRecord, i64)>> {
        dispatch!(self.campaigns_with_spent(scope_prefix, period, period_key))
    }

    /// Edits a campaign that is still at `version` and not ended (else a conflict), recording
    /// `change`.
    pub async fn edit_campaign(
        &self,
        campaign: CampaignRecord,
        version: i64,
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        dispatch!(self.edit_campaign(campaign, version, change, now))
    }

    /// Moves a campaign to `to` if its state is one of `from` (else a conflict), recording `change`.
    pub async fn transition_campaign(
        &self,
        id: String,
        to: &'static str,
        from: &'static [&'static str],
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        dispatch!(self.transition_campaign(id, to, from, change, now))
    }

    /// Every recorded change of a campaign, oldest first.
    pub async fn campaign_changes(&self, id: String) -> Result<Vec<CampaignChange>> {
        dispatch!(self.campaign_changes(id))
    }

    pub async fn create_flash_sale(&self, sale: FlashSaleRecord) -> Result<bool> {
        dispatch!(self.create_flash_sale(sale))
    }

    pub async fn flash_sale(&self, id: String) -> Result<Option<FlashSaleRecord>> {
        dispatch!(self.flash_sale(id))
    }

    /// Reserves units of a flash sale: never more than the stock nor the user's limit, also under
    /// concurrent reservations from several nodes; the reservation id makes it idempotent.
    pub async fn reserve_flash(
        &self,
        sale_id: String,
        reservation_id: String,
        user_id: String,
        quantity: i64,
        now: i64,
    ) -> Result<Reserved> {
        dispatch!(self.reserve_flash(sale_id, reservation_id, user_id, quantity, now))
    }

    /// Confirms a held reservation; twice is harmless; expired or released is a conflict.
    pub async fn confirm_flash(
        &self,
        reservation_id: String,
        now: i64,
    ) -> Result<ReservationRecord> {
        dispatch!(self.confirm_flash(reservation_id, now))
    }

    /// Gives a held reservation's units back (given up, or expired when `give_up` is false).
    pub async fn release_flash(
        &self,
        reservation_id: String,
        give_up: bool,
        now: i64,
    ) -> Result<bool> {
        dispatch!(self.release_flash(reservation_id, give_up, now))
    }

    /// Returns the units of every reservation whose hold has run out; how many were released.
    /// A reservation made before under this id, answered as a repeat of the same attempt (or
    /// refused, if the id was used for another sale or user); none if the id is new. A read: the
    /// sold-out gate uses it to keep retries idempotent without a write.
    pub async fn repeated_flash_reservation(
        &self,
        reservation_id: String,
        sale_id: &str,
        user_id: &str,
    ) -> Result<Option<Reserved>> {
        let seen = dispatch!(self.flash_reservation(reservation_id))?;
        seen.map(|r| repeated_reservation(r, sale_id, user_id))
            .transpose()
    }

    /// Every reservation id made for a sale (held, confirmed or released).
    pub async fn flash_reservation_ids(&self, sale_id: String) -> Result<Vec<String>> {
        dispatch!(self.flash_reservation_ids(sale_id))
    }

    pub async fn sweep_flash(&self, now: i64) -> Result<usize> {
        dispatch!(self.sweep_flash(now))
    }

    /// Sets the limit of a scope (`campaign:…`, `coupon:…`, `customer:…`, `device:…`, `store:…`)
    /// for a period kind (`total`, `day`, `week`, `month`).
    /// Issues coupons of a template to many users at once (a segment, new users), each grant by
    /// a claim's conditional writes; claim keys make reruns idempotent.
    pub async fn issue_coupons(
        &self,
        template_id: String,
        grants: Vec<CouponGrant>,
        now: i64,
    ) -> Result<IssueSummary> {
        dispatch!(self.issue_coupons(template_id, grants, now))
    }

    /// Stores a group-buying deal; false if the id exists.
    pub async fn create_group_deal(&self, deal: GroupDealRecord) -> Result<bool> {
        dispatch!(self.create_group_deal(deal))
    }

    pub async fn group_deal(&self, id: String) -> Result<Option<GroupDealRecord>> {
        dispatch!(self.group_deal(id))
    }

    /// Opens a group of a running deal with its leader (idempotent by the order id).
    pub async fn open_group(
        &self,
        deal_id: String,
        group_id: String,
        leader: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        dispatch!(self.open_group(deal_id, group_id, leader, order_id, now))
    }

    /// Joins an open group before its deadline (idempotent by the order id); the last seat
    /// completes it; a conflict when it is full or past its deadline.
    pub async fn join_group(
        &self,
        group_id: String,
        user_id: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        dispatch!(self.join_group(group_id, user_id, order_id, now))
    }

    /// A group and its members: its progress.
    pub async fn group(&self, id: String) -> Result<Option<(GroupRecord, Vec<GroupMemberRecord>)>> {
        dispatch!(self.group(id))
    }

    /// Fails open groups past their deadline and marks every member refunded, once.
    pub async fn expire_groups(&self, now: i64) -> Result<Vec<(String, Vec<GroupMemberRecord>)>> {
        dispatch!(self.expire_groups(now))
    }

    /// Stores a red packet with its pre-drawn share amounts (in claim order); false if the id
    /// exists.
    pub async fn create_red_packet(
        &self,
        packet: RedPacketRecord,
        amounts: Vec<i64>,
    ) -> Result<bool> {
        dispatch!(self.create_red_packet(packet, amounts))
    }

    /// A packet and its shares.
    pub async fn red_packet(
        &self,
        id: String,
    ) -> Result<Option<(RedPacketRecord, Vec<RedPacketShare>)>> {
        dispatch!(self.red_packet(id))
    }

    /// The next share for a claimant (their earlier one if they have one); a conflict when the
    /// packet is empty or expired.
    pub async fn claim_red_packet(
        &self,
        id: String,
        user: String,
        now: i64,
    ) -> Result<PacketClaim> {
        dispatch!(self.claim_red_packet(id, user, now))
    }

    /// A red-packet rain's rounds (its packets), in time order; empty for an unknown rain.
    pub async fn rain_rounds(&self, rain_id: String) -> Result<Vec<RedPacketRecord>> {
        dispatch!(self.rain_rounds(rain_id))
    }

    /// Counts a helper's help with a share-to-unlock packet (once per helper; the help that
    /// reaches the packet's `unlock_helpers` opens it for claims); a conflict when the packet
    /// needs no help, is the helper's own, has expired or is unlocked already.
    /// A packet with `helps_per_helper_per_day` also counts the help on `helper_day` (the
    /// helper's line for the shop-local day) and refuses it past that cap.
    pub async fn help_red_packet(
        &self,
        id: String,
        helper: String,
        now: i64,
        helper_day: BudgetLine,
    ) -> Result<PacketHelp> {
        dispatch!(self.help_red_packet(id, helper, now, helper_day))
    }

    /// Expires open and locked packets past their time; each returns its unclaimed remainder
    /// once.
    pub async fn expire_red_packets(&self, now: i64) -> Result<Vec<(String, i64)>> {
        dispatch!(self.expire_red_packets(now))
    }

    pub async fn set_budget_limit(&self, scope: String, period: String, amount: i64) -> Result<()> {
        dispatch!(self.set_budget_limit(scope, period, amount))
    }

    /// Spends several at once or none ([`Error::OverBudget`] naming the line that refused), each
    /// as [`Store::spend_budget`] does: one write where a write per spend was. The spends are
    /// taken in the order of their first lines, so racing batches never deadlock; the answer is
    /// in the order given.
    pub async fn spend_budgets(&self, spends: Vec<BudgetSpend>, now: i64) -> Result<Vec<Spent>> {
        dispatch!(self.spend_budgets(spends, now))
    }

    /// Spends `amount` from every line at once or from none, never past a limit, also under
    /// concurrent spends; the key (e.g. the order id) makes it idempotent. A spend that was given
    /// back may be spent again under its key (a checkout retried after it was refused).
    pub async fn spend_budget(
        &self,
        key: String,
        lines: Vec<BudgetLine>,
        amount: i64,
        now: i64,
        trail: Option<SpendTrail>,
    ) -> Result<Spent> {
        dispatch!(self.spend_budget(key, lines, amount, now, trail))
    }

    /// The answer kept for the checkout of `order_id`, if any.
    pub async fn checkout(&self, order_id: String) -> Result<Option<CheckoutRecord>> {
        dispatch!(self.checkout(order_id))
    }

    /// Keeps a checkout's answer by its order id unless one is kept already (also under
    /// concurrent saves); returns the one kept, so a retry is answered as the first request was.
    /// When this answer is the one kept, `attempt`'s spends are recorded as kept and the attempt
    /// is forgotten in the same transaction.
    pub async fn save_checkout(
        &self,
        order_id: String,
        request_hash: String,
        response: String,
        now: i64,
        attempt: Option<CheckoutAttempt>,
    ) -> Result<CheckoutRecord> {
        dispatch!(self.save_checkout(order_id, request_hash, response, now, attempt))
    }

    /// The keys of the campaign spends made for `order_id` at checkout that still stand, by
    /// every attempt (one that died before its answer was kept included), each with whether its
    /// order kept it (recorded `redeemed`).
    pub async fn standing_checkout_spends(&self, order_id: String) -> Result<Vec<(String, bool)>> {
        dispatch!(self.standing_checkout_spends(order_id))
    }

    /// Notes a checkout attempt of `order_id` (a spend with a [`SpendTrail`] naming its attempt
    /// notes it too), so that if it dies before it is settled the sweeper finds it
    /// ([`Store::stale_checkout_attempts`]).
    pub async fn note_checkout_attempt(
        &self,
        order_id: String,
        attempt: String,
        now: i64,
    ) -> Result<()> {
        dispatch!(self.note_checkout_attempt(order_id, attempt, now))
    }

    /// Forgets a settled checkout attempt (its strays given back).
    pub async fn forget_checkout_attempt(&self, order_id: String, attempt: String) -> Result<()> {
        dispatch!(self.forget_checkout_attempt(order_id, attempt))
    }

    /// Checkout attempts noted before `before` and not settled, oldest first, at most `limit`:
    /// (order id, attempt).
    pub async fn stale_checkout_attempts(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        dispatch!(self.stale_checkout_attempts(before, limit))
    }

    /// Records on the trail that the campaign spend with `key` was kept by its order
    /// (`redeemed`), once and only while it stands; true if it was recorded now.
    pub async fn keep_campaign_spend(&self, key: String, now: i64) -> Result<bool> {
        dispatch!(self.keep_campaign_spend(key, now))
    }

    /// Gives back, for refund `refund_id` of `order_id` (its `units` per order line), the share
    /// of each promotion's discount that `plan` works out from the units earlier refunds of the
    /// order returned: each from its budget spend's every line, never more than the spend has
    /// left, with a `refunded` trail entry; once per refund (a refund seen before is a
    /// duplicate). The refunds of one order are worked out one after another.
    pub async fn return_refund_shares(
        &self,
        order_id: String,
        refund_id: String,
        units: Vec<(i64, i64)>,
        plan: SharePlan,
        now: i64,
    ) -> Result<SharesReturned> {
        dispatch!(self.return_refund_shares(order_id, refund_id, units, plan, now))
    }

    /// Gives back what the spend with `key` took, once (and records `rolled_back` on the trail
    /// when the spend was recorded there).
    pub async fn revert_budget(&self, key: String, now: i64) -> Result<bool> {
        dispatch!(self.revert_budget(key, now))
    }

    /// The limits set for a scope, by period kind.
    pub async fn budget_limits(&self, scope: String) -> Result<Vec<(String, i64)>> {
        dispatch!(self.budget_limits(scope))
    }

    pub async fn budget_used(&self, line: BudgetLine) -> Result<i64> {
        dispatch!(self.budget_used(line))
    }

    /// The newest promotion-trail entries matching `filter` (issued, claimed, reserved,
    /// redeemed, rolled back, expired: every promotion's changes, written with them).
    pub async fn promotion_trail(&self, filter: TrailFilter) -> Result<Vec<PromotionEventRecord>> {
        dispatch!(self.promotion_trail(filter))
    }

    /// Follows the promotion trail: the entries after `cursor`, oldest first, and the cursor
    /// after them. Every entry is given once, in commit order, also with several writers.
    pub async fn promotion_feed(
        &self,
        cursor: TrailCursor,
        limit: i64,
    ) -> Result<(Vec<PromotionEventRecord>, TrailCursor)> {
        dispatch!(self.promotion_feed(cursor, limit))
    }

    /// Trail entries per promotion and kind with `from <= at < to`.
    pub async fn trail_counts(&self, from: i64, to: i64) -> Result<Vec<TrailCount>> {
        dispatch!(self.trail_counts(from, to))
    }

    /// Which of `ids` are stored events.
    pub async fn events_present(&self, ids: Vec<String>) -> Result<Vec<String>> {
        dispatch!(self.events_present(ids))
    }
}
