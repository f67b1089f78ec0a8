//! shopgrowth's long-running engines wired to the store.
//!
//! [`AudienceService`] owns the [`Audience`] (profiles, tags, segments) of one shop: it builds it
//! from the store at start (or on `rebuild`), takes every accepted write from the API as an
//! [`Update`], and a single background task folds the updates in, refreshes tags and segment
//! memberships about once a second, and records who gained or lost which tag. Readers (the API,
//! the CLI) evaluate against the current audience under a read lock.
//!
//! Identity: facts are credited to the customer after ID-Mapping. A device that logged in counts
//! as its user; a user merged into another counts as that one and is not a separate customer.
//! Identity changes rebuild the audience, since they move history between customers.

use chrono::{Datelike, NaiveDate, TimeZone};
use roaring::RoaringBitmap;
use shopgrowth_core::model::{
    Event, EventType, Order, OrderKind, Product, PromotionKind, PromotionType,
};
use shopgrowth_profile::audience::{
    Attributes, Audience, AudienceConfig, EventInput, OrderInput, PromotionInput, TagChange,
    TagDefinition,
};
use shopgrowth_profile::features::Fact;
use shopgrowth_profile::segment::SegmentError;
use shopgrowth_store::records::{
    AudienceSource, PromotionEventRecord, SegmentRecord, SnapshotRecord, TagChangeRecord,
    TagDefinitionRecord, TrailCursor, UserAttributes,
};
use shopgrowth_store::Store;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub mod promotions;
pub mod recommend;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] shopgrowth_store::Error),
    #[error("{0}")]
    Expression(#[from] SegmentError),
    #[error("no segment named {0:?}")]
    UnknownSegment(String),
    #[error("no custom tag named {0:?}")]
    UnknownTag(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An accepted write the audience should see.
#[derive(Debug, Clone)]
pub enum Update {
    Events(Vec<Event>),
    Orders(Vec<Order>),
    Refund {
        order_id: String,
        amount: i64,
        at: i64,
    },
    Users(Vec<UserAttributes>),
    Products(Vec<Product>),
    /// Identity changed: rebuild from the store.
    Rebuild,
}

/// Who facts belong to, after ID-Mapping.
#[derive(Debug, Default, Clone)]
pub struct Identity {
    merged: HashMap<String, String>,
    devices: HashMap<String, String>,
    order_customer: HashMap<String, String>,
}

impl Identity {
    /// No links: every id is its own customer.
    pub fn none() -> Self {
        Identity::default()
    }

    pub(crate) fn from_source(source: &AudienceSource) -> Self {
        let mut identity = Identity::default();
        for link in &source.links {
            let map = if link.kind == "device" {
                &mut identity.devices
            } else {
                &mut identity.merged
            };
            map.insert(link.source.clone(), link.target.clone());
        }
        identity
    }

    /// The customer of a user id, following merges (at most 16, against cycles).
    pub fn customer_of(&self, user: &str) -> String {
        let mut id = user;
        for _ in 0..16 {
            match self.merged.get(id) {
                Some(next) => id = next,
                None => break,
            }
        }
        id.to_owned()
    }

    pub fn resolve(&self, user: Option<&str>, device: Option<&str>) -> Option<String> {
        match (user, device) {
            (Some(u), _) => Some(self.customer_of(u)),
            (None, Some(d)) => self.devices.get(d).map(|u| self.customer_of(u)),
            (None, None) => None,
        }
    }

    pub fn is_merged_away(&self, user: &str) -> bool {
        self.merged.contains_key(user)
    }
}

/// What a build read and how long it took.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BuildStats {
    pub users: u32,
    pub orders: usize,
    pub events: usize,
    /// Promotion-trail entries folded in.
    pub promotion_events: usize,
    pub read_seconds: f64,
    pub compute_seconds: f64,
    /// Where the build stopped reading the promotion trail; the service follows it from there.
    #[serde(skip)]
    pub trail: TrailCursor,
}

/// Promotion-trail entries read per page.
const TRAIL_PAGE: i64 = 20_000;

/// Reads the promotion trail after `cursor` to its end: the entries and the cursor after them.
pub async fn read_trail(
    store: &Store,
    mut cursor: TrailCursor,
) -> Result<(Vec<PromotionEventRecord>, TrailCursor)> {
    let mut all = Vec::new();
    loop {
        let (page, next) = store.promotion_feed(cursor, TRAIL_PAGE).await?;
        cursor = next;
        let done = (page.len() as i64) < TRAIL_PAGE;
        all.extend(page);
        if done {
            return Ok((all, cursor));
        }
    }
}

/// The facts of promotion-trail entries that name a user, credited to their customers.
fn trail_facts(
    audience: &mut Audience,
    identity: &Identity,
    entries: &[PromotionEventRecord],
) -> Vec<Fact> {
    entries
        .iter()
        .filter_map(|e| {
            let user = e.user_id.as_deref()?;
            let promotion = PromotionType::parse(&e.promotion_type)?;
            let kind = PromotionKind::parse(&e.kind)?;
            let customer = identity.customer_of(user);
            Some(audience.promotion_fact(&PromotionInput {
                user: &customer,
                time: e.at,
                promotion,
                kind,
                id: &e.promotion_id,
                amount: e.amount.unwrap_or(0),
            }))
        })
        .collect()
}

/// The shop-local day number (days since 0001-01-01) of a date.
pub fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

pub fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day).unwrap_or_default()
}

pub fn today_in(tz: chrono_tz::Tz) -> i32 {
    day_number(chrono::Utc::now().with_timezone(&tz).date_naive())
}

fn order_input<'a>(order: &'a Order, customer: &'a str) -> OrderInput<'a> {
    OrderInput {
        user: customer,
        time: order.placed_at.millis(),
        sale: order.kind == OrderKind::Sale,
        amount: order.total.or_else(|| order.computed_total()).unwrap_or(0),
        discount: order.discount_total(),
        coupon: !order.coupon_codes.is_empty(),
        channel: order.channel.as_str(),
        store: order.store_id.as_ref().map(|s| s.as_str()),
        skus: order.lines.iter().map(|l| l.sku_id.as_str()).collect(),
    }
}

fn attributes(u: &UserAttributes) -> Attributes {
    Attributes {
        gender: u.gender.clone(),
        city: u.city.clone(),
        city_tier: u.city_tier.clone(),
        registration_channel: u.registration_channel.clone(),
    }
}

/// Builds the audience from everything stored: facts, custom tags and saved segments.
pub async fn build(
    store: &Store,
    config: AudienceConfig,
    today: i32,
) -> Result<(Audience, Identity, BuildStats)> {
    let started = Instant::now();
    let tz = config.features.tz;
    let since = tz
        .from_local_datetime(
            &date_of(today - shopgrowth_profile::segment::MAX_DAYS as i32)
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default(),
        )
        .earliest()
        .map_or(0, |t| t.timestamp_millis());
    let source = store.audience_source(since).await?;
    let (trail, trail_cursor) = read_trail(store, TrailCursor::default()).await?;
    let definitions = store.tag_definitions().await?;
    let segments = store.segments().await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let identity = Identity::from_source(&source);
    let mut audience = Audience::new(config, today);
    for u in &source.users {
        if !identity.is_merged_away(&u.id) {
            audience.set_attributes(&u.id, attributes(u));
        }
    }
    for p in &source.products {
        audience.set_product(&p.sku, &p.category_path, p.brand.as_deref());
    }
    let mut identity = identity;
    let mut facts = Vec::with_capacity(source.orders.len() + source.events.len());
    for o in &source.orders {
        let Some(customer) = identity.resolve(o.user_id.as_deref(), o.device_id.as_deref()) else {
            continue;
        };
        identity
            .order_customer
            .insert(o.id.clone(), customer.clone());
        facts.push(audience.order_fact(&OrderInput {
            user: &customer,
            time: o.placed_at,
            sale: o.sale,
            amount: o.total,
            discount: o.discount,
            coupon: o.coupon,
            channel: &o.channel,
            store: o.store_id.as_deref(),
            skus: o.skus.iter().map(String::as_str).collect(),
        }));
    }
    for r in &source.refunds {
        if let Some(customer) = identity.resolve(r.user_id.as_deref(), r.device_id.as_deref()) {
            facts.push(audience.refund_fact(&customer, r.refunded_at, r.amount));
        }
    }
    for e in &source.events {
        let (Some(customer), Some(kind)) = (
            identity.resolve(e.user_id.as_deref(), e.device_id.as_deref()),
            EventType::parse(&e.kind),
        ) else {
            continue;
        };
        facts.push(audience.event_fact(&EventInput {
            user: &customer,
            kind,
            time: e.time,
            channel: &e.channel,
            sku: e.sku.as_deref(),
            store: e.store_id.as_deref(),
            has_order: e.has_order,
        }));
    }
    facts.extend(trail_facts(&mut audience, &identity, &trail));
    audience.apply(&facts);
    for def in latest_definitions(&definitions) {
        audience.restore_tag(def)?;
    }
    audience.refresh();
    audience.rebucket();
    // Saved segments may refer to each other: save those whose references exist, until done.
    let mut pending: Vec<&SegmentRecord> = segments.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        for s in pending {
            if audience.save_segment(&s.name, &s.expr).is_err() {
                failed.push(s);
            }
        }
        if failed.len() == before {
            for s in &failed {
                tracing::warn!(segment = %s.name, "saved segment no longer compiles; skipped");
            }
            break;
        }
        pending = failed;
    }
    audience.refresh();
    let stats = BuildStats {
        users: audience.users(),
        orders: source.orders.len(),
        events: source.events.len(),
        promotion_events: trail.len(),
        read_seconds,
        compute_seconds: started.elapsed().as_secs_f64(),
        trail: trail_cursor,
    };
    Ok((audience, identity, stats))
}

/// The newest version of each tag that is not retired.
fn latest_definitions(records: &[TagDefinitionRecord]) -> Vec<TagDefinition> {
    let mut latest: HashMap<&str, &TagDefinitionRecord> = HashMap::new();
    for r in records {
        let keep = latest
            .get(r.name.as_str())
            .is_none_or(|l| l.version < r.version);
        if keep {
            latest.insert(&r.name, r);
        }
    }
    let mut out: Vec<TagDefinition> = latest
        .into_values()
        .filter(|r| r.retired_at.is_none())
        .map(|r| TagDefinition {
            name: r.name.clone(),
            version: r.version as u32,
            rule: r.rule.clone(),
            weight: r.weight,
            description: r.description.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Member ids, sorted, one per line, gzip-compressed: exact and compact.
pub fn encode_members(ids: &mut [&str]) -> Vec<u8> {
    ids.sort_unstable();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(ids.join("\n").as_bytes());
    gz.finish().unwrap_or_default()
}

pub fn decode_members(bytes: &[u8]) -> Result<BTreeSet<String>> {
    if bytes.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| Error::Corrupt(format!("snapshot members: {e}")))?;
    Ok(text
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The audience of a running server, kept fresh from accepted writes.
pub struct AudienceService {
    store: Arc<Store>,
    config: AudienceConfig,
    audience: RwLock<Audience>,
    identity: RwLock<Identity>,
    updates: mpsc::Sender<Update>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Update>>>,
    /// Set when an update could not be queued: the next round rebuilds instead.
    overflowed: AtomicBool,
    /// Serialises definitions (tags, segments) so versions are assigned one at a time.
    admin: tokio::sync::Mutex<()>,
    last_build: std::sync::Mutex<BuildStats>,
    /// The day whose segment snapshots are known to be taken.
    snapshots_checked: std::sync::Mutex<i32>,
    /// How far the promotion trail is folded in; held through a round or a rebuild, so an
    /// entry is never folded twice.
    trail: tokio::sync::Mutex<TrailCursor>,
    /// Rounds the background task has run, and full builds since loading (for tests and status:
    /// a round that began after an update was queued has folded it in).
    rounds: AtomicU64,
    rebuilds: AtomicU64,
    /// A rebuild was asked for (an identity change, or updates lost to a full queue) and waits
    /// until one is due ([`rebuild_due`]); when the last build ended.
    rebuild_pending: AtomicBool,
    built_at: std::sync::Mutex<Instant>,
}

/// Whether a rebuild asked for is due: one waits twice as long as the last one took, counted
/// from its end, so that however often identities change, rebuilding takes at most a third of
/// the time. Updates meanwhile are folded in as usual; what a rebuild moves between customers
/// (a device's history to its user) shows once it runs.
pub fn rebuild_due(since_last_ended: Duration, last_took: Duration) -> bool {
    since_last_ended >= last_took.saturating_mul(2)
}

/// Updates waiting to be folded in; past this the service rebuilds instead of queueing.
const QUEUE: usize = 4096;

/// How often queued updates are folded in and memberships refreshed.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl AudienceService {
    /// Builds the audience from the store and records tag changes since the last run.
    pub async fn load(store: Arc<Store>, config: AudienceConfig) -> Result<Arc<Self>> {
        let today = today_in(config.features.tz);
        let (audience, identity, stats) = build(&store, config.clone(), today).await?;
        tracing::info!(
            users = stats.users,
            events = stats.events,
            read_s = stats.read_seconds,
            compute_s = stats.compute_seconds,
            "audience built"
        );
        let (tx, rx) = mpsc::channel(QUEUE);
        let service = Arc::new(AudienceService {
            store,
            config,
            audience: RwLock::new(audience),
            identity: RwLock::new(identity),
            updates: tx,
            receiver: std::sync::Mutex::new(Some(rx)),
            overflowed: AtomicBool::new(false),
            admin: tokio::sync::Mutex::new(()),
            last_build: std::sync::Mutex::new(stats),
            snapshots_checked: std::sync::Mutex::new(0),
            trail: tokio::sync::Mutex::new(stats.trail),
            rounds: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            rebuild_pending: AtomicBool::new(false),
            built_at: std::sync::Mutex::new(Instant::now()),
        });
        service.reconcile_stored_tags().await?;
        Ok(service)
    }

    /// Records, as changes, the difference between the stored current tags and the audience's.
    async fn reconcile_stored_tags(&self) -> Result<usize> {
        let stored: BTreeSet<(String, String)> =
            self.store.user_tags().await?.into_iter().collect();
        let changes = tag_diff(&stored, &read(&self.audience), now_ms());
        let n = changes.len();
        for chunk in changes.chunks(20_000) {
            self.store.record_tag_changes(chunk.to_vec()).await?;
        }
        Ok(n)
    }

    /// What the last full build read and how long it took.
    pub fn last_build(&self) -> BuildStats {
        *self.last_build.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rounds the background task has run ([`AudienceService::spawn`]).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Full builds since the service was loaded (by a round or by hand).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Acquire)
    }

    pub fn config(&self) -> &AudienceConfig {
        &self.config
    }

    /// Runs `f` against the current audience.
    pub fn read<R>(&self, f: impl FnOnce(&Audience) -> R) -> R {
        f(&read(&self.audience))
    }

    /// Queues an accepted write; never waits. A full queue makes the next round a rebuild.
    pub fn notify(&self, update: Update) {
        if self.updates.try_send(update).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }

    /// Starts the task that folds queued updates in every half second; it ends with the service.
    pub fn spawn(self: &Arc<Self>) {
        let Some(mut rx) = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else { break };
                let mut batch = Vec::new();
                while let Ok(u) = rx.try_recv() {
                    batch.push(u);
                }
                if let Err(e) = service.round(batch).await {
                    tracing::error!(error = %e, "audience refresh failed; will retry");
                }
                service.rounds.fetch_add(1, Ordering::Release);
            }
        });
    }

    /// One round: folds updates in (or rebuilds), moves to a new day if one began (snapshotting
    /// every saved segment), refreshes, and records tag changes.
    pub async fn round(&self, batch: Vec<Update>) -> Result<()> {
        let today = today_in(self.config.features.tz);
        if self.overflowed.swap(false, Ordering::Relaxed)
            || batch.iter().any(|u| matches!(u, Update::Rebuild))
        {
            self.rebuild_pending.store(true, Ordering::Release);
        }
        let mut trail = self.trail.lock().await;
        let rebuild = self.rebuild_pending.load(Ordering::Acquire) && {
            let stats = self.last_build();
            let ended = *self.built_at.lock().unwrap_or_else(|p| p.into_inner());
            rebuild_due(
                ended.elapsed(),
                Duration::from_secs_f64(stats.read_seconds + stats.compute_seconds),
            )
        };
        // The promotion trail is followed from the store, so entries written by other nodes
        // count too.
        let (entries, next) = if rebuild {
            (Vec::new(), *trail)
        } else {
            read_trail(&self.store, *trail).await?
        };
        if rebuild {
            self.rebuild_following(&mut trail).await?;
        } else if !batch.is_empty() || !entries.is_empty() || read(&self.audience).today() != today
        {
            let changes = {
                let mut audience = write(&self.audience);
                let mut identity = write(&self.identity);
                if audience.today() != today {
                    // A new day: bounds of number fields follow the values' drift.
                    audience.rebucket();
                }
                audience.set_today(today);
                for update in &batch {
                    fold(&mut audience, &mut identity, update);
                }
                let facts = trail_facts(&mut audience, &identity, &entries);
                audience.apply(&facts);
                // Folded in: never again, even if recording the tag changes fails below.
                *trail = next;
                let changes = audience.refresh();
                change_records(&audience, &changes, now_ms())
            };
            self.store.record_tag_changes(changes).await?;
        }
        drop(trail);
        // Once a day (and once after start): a snapshot of every saved segment without one today.
        let checked = *self
            .snapshots_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if checked == today {
            return Ok(());
        }
        let day = date_of(today).to_string();
        for name in self.segment_names() {
            let taken = self
                .store
                .snapshots(name.clone())
                .await?
                .iter()
                .any(|s| s.day == day);
            if !taken {
                self.snapshot(&name).await?;
            }
        }
        *self
            .snapshots_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = today;
        Ok(())
    }

    /// Rebuilds the whole audience from the store and records the tag changes it makes.
    pub async fn rebuild(&self) -> Result<BuildStats> {
        let mut trail = self.trail.lock().await;
        self.rebuild_following(&mut trail).await
    }

    /// [`AudienceService::rebuild`] with the trail cursor held; the build sets where it stands.
    async fn rebuild_following(&self, trail: &mut TrailCursor) -> Result<BuildStats> {
        self.rebuilds.fetch_add(1, Ordering::Release);
        // Whatever is asked for from here on is read by this build or asks again.
        self.rebuild_pending.store(false, Ordering::Release);
        let today = today_in(self.config.features.tz);
        let (fresh, identity, stats) = match build(&self.store, self.config.clone(), today).await {
            Ok(built) => built,
            Err(e) => {
                self.rebuild_pending.store(true, Ordering::Release);
                return Err(e);
            }
        };
        *trail = stats.trail;
        *self.last_build.lock().unwrap_or_else(|p| p.into_inner()) = stats;
        *self.built_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        tracing::info!(
            users = stats.users,
            read_s = stats.read_seconds,
            compute_s = stats.compute_seconds,
            "audience rebuilt"
        );
        let changes = {
            let mut audience = write(&self.audience);
            let old = carried(&audience);
            *audience = fresh;
            *write(&self.identity) = identity;
            tag_diff(&old, &audience, now_ms())
        };
        for chunk in changes.chunks(20_000) {
            self.store.record_tag_changes(chunk.to_vec()).await?;
        }
        Ok(stats)
    }

    pub fn segment_names(&self) -> Vec<String> {
        read(&self.audience).segment_names()
    }

    /// Defines a custom tag, or a new version of one; the same definition again returns the
    /// current version unchanged (the name and content are the idempotency key).
    pub async fn define_tag(
        &self,
        name: &str,
        rule: &str,
        weight: f64,
        description: &str,
    ) -> Result<(TagDefinition, bool)> {
        let _guard = self.admin.lock().await;
        let (definition, changed) = {
            let audience = read(&self.audience);
            if let Some(current) = audience.tag_definitions().find(|d| d.name == name) {
                if current.rule == rule
                    && current.weight == weight
                    && current.description == description
                {
                    return Ok((current.clone(), false));
                }
            }
            // Check on a copy first, so nothing is stored for a definition that cannot work.
            let mut trial = audience.clone();
            let definition = trial.define_tag(name, rule, weight, description)?;
            (definition, true)
        };
        self.store
            .define_tag(TagDefinitionRecord {
                name: definition.name.clone(),
                version: i64::from(definition.version),
                rule: definition.rule.clone(),
                weight: definition.weight,
                description: definition.description.clone(),
                created_at: now_ms(),
                retired_at: None,
            })
            .await?;
        let changes = {
            let mut audience = write(&self.audience);
            audience.define_tag(name, rule, weight, description)?;
            let changes = audience.refresh();
            change_records(&audience, &changes, now_ms())
        };
        self.store.record_tag_changes(changes).await?;
        Ok((definition, changed))
    }

    pub async fn retire_tag(&self, name: &str) -> Result<()> {
        let _guard = self.admin.lock().await;
        if !read(&self.audience)
            .tag_definitions()
            .any(|d| d.name == name)
        {
            return Err(Error::UnknownTag(name.to_owned()));
        }
        self.store.retire_tag(name.to_owned(), now_ms()).await?;
        let changes = {
            let mut audience = write(&self.audience);
            audience.retire_tag(name);
            let changes = audience.refresh();
            change_records(&audience, &changes, now_ms())
        };
        self.store.record_tag_changes(changes).await?;
        Ok(())
    }

    /// Saves (or replaces) a segment; idempotent by name.
    pub async fn save_segment(&self, name: &str, expr: &str, description: &str) -> Result<u64> {
        let _guard = self.admin.lock().await;
        {
            let mut trial = read(&self.audience).clone();
            trial.save_segment(name, expr)?;
        }
        let now = now_ms();
        self.store
            .save_segment(SegmentRecord {
                name: name.to_owned(),
                expr: expr.to_owned(),
                description: description.to_owned(),
                created_at: now,
                updated_at: now,
            })
            .await?;
        let mut audience = write(&self.audience);
        audience.save_segment(name, expr)?;
        Ok(audience.segment(name).map_or(0, |(_, m)| m.len()))
    }

    pub async fn delete_segment(&self, name: &str) -> Result<()> {
        let _guard = self.admin.lock().await;
        if !self.store.delete_segment(name.to_owned()).await? {
            return Err(Error::UnknownSegment(name.to_owned()));
        }
        write(&self.audience).remove_segment(name);
        Ok(())
    }

    /// Takes today's snapshot of a segment: its size, and who entered and left since the last.
    pub async fn snapshot(&self, name: &str) -> Result<SnapshotRecord> {
        let (day, members) = {
            let audience = read(&self.audience);
            let (_, members) = audience
                .segment(name)
                .ok_or_else(|| Error::UnknownSegment(name.to_owned()))?;
            let ids: BTreeSet<String> = members
                .iter()
                .map(|u| audience.user_id(u).to_owned())
                .collect();
            (date_of(audience.today()).to_string(), ids)
        };
        let previous = self
            .store
            .previous_snapshot(name.to_owned(), day.clone())
            .await?
            .map(|s| decode_members(&s.members))
            .transpose()?;
        let (entered, left) = match &previous {
            Some(p) => (
                members.difference(p).count(),
                p.difference(&members).count(),
            ),
            None => (members.len(), 0),
        };
        let mut ids: Vec<&str> = members.iter().map(String::as_str).collect();
        let record = SnapshotRecord {
            segment: name.to_owned(),
            day,
            taken_at: now_ms(),
            size: members.len() as i64,
            entered: entered as i64,
            left: left as i64,
            members: encode_members(&mut ids),
        };
        self.store.save_snapshot(record.clone()).await?;
        Ok(SnapshotRecord {
            members: Vec::new(),
            ..record
        })
    }

    pub async fn snapshots(&self, name: &str) -> Result<Vec<SnapshotRecord>> {
        Ok(self.store.snapshots(name.to_owned()).await?)
    }

    pub async fn tag_history(&self, user_id: &str, limit: i64) -> Result<Vec<TagChangeRecord>> {
        let customer = read(&self.identity).customer_of(user_id);
        Ok(self.store.tag_history(customer, limit).await?)
    }

    /// The customer a user id counts as.
    pub fn customer_of(&self, user_id: &str) -> String {
        read(&self.identity).customer_of(user_id)
    }
}

/// Folds one update into the audience, crediting facts to customers by `identity` (the live
/// path of the server; benchmarks feed generated shops through it too).
pub fn fold(audience: &mut Audience, identity: &mut Identity, update: &Update) {
    match update {
        Update::Events(events) => {
            let facts: Vec<_> = events
                .iter()
                .filter_map(|e| {
                    let customer = identity.resolve(
                        e.user_id.as_ref().map(|u| u.as_str()),
                        e.device_id.as_ref().map(|d| d.as_str()),
                    )?;
                    Some(audience.event_fact(&EventInput {
                        user: &customer,
                        kind: e.kind,
                        time: e.time.millis(),
                        channel: e.channel.as_str(),
                        sku: e.sku_id.as_ref().map(|s| s.as_str()),
                        store: e.store_id.as_ref().map(|s| s.as_str()),
                        has_order: e.order_id.is_some(),
                    }))
                })
                .collect();
            audience.apply(&facts);
        }
        Update::Orders(orders) => {
            let facts: Vec<_> = orders
                .iter()
                .filter_map(|o| {
                    let customer = identity.resolve(
                        o.user_id.as_ref().map(|u| u.as_str()),
                        o.device_id.as_ref().map(|d| d.as_str()),
                    )?;
                    identity
                        .order_customer
                        .insert(o.id.as_str().to_owned(), customer.clone());
                    Some(audience.order_fact(&order_input(o, &customer)))
                })
                .collect();
            audience.apply(&facts);
        }
        Update::Refund {
            order_id,
            amount,
            at,
        } => {
            if let Some(customer) = identity.order_customer.get(order_id).cloned() {
                let fact = audience.refund_fact(&customer, *at, *amount);
                audience.apply(&[fact]);
            }
        }
        Update::Users(users) => {
            for u in users {
                if !identity.is_merged_away(&u.id) {
                    audience.set_attributes(&u.id, attributes(u));
                }
            }
        }
        Update::Products(products) => {
            for p in products {
                audience.set_product(p.id.as_str(), &p.category.join("/"), p.brand.as_deref());
            }
        }
        Update::Rebuild => {}
    }
}

/// Every (user id, tag) the audience carries.
fn carried(audience: &Audience) -> BTreeSet<(String, String)> {
    audience
        .population()
        .tags()
        .flat_map(|(tag, users)| {
            users
                .iter()
                .map(move |u| (audience.user_id(u).to_owned(), tag.to_owned()))
        })
        .collect()
}

/// The changes from the tags `before` to those the audience carries now.
fn tag_diff(
    before: &BTreeSet<(String, String)>,
    audience: &Audience,
    at: i64,
) -> Vec<TagChangeRecord> {
    let now = carried(audience);
    let version = |tag: &str| {
        audience
            .tag_definitions()
            .find(|d| d.name == tag)
            .map(|d| i64::from(d.version))
    };
    let record = |(user, tag): &(String, String), gained: bool| TagChangeRecord {
        user_id: user.clone(),
        tag: tag.clone(),
        version: if gained { version(tag) } else { None },
        gained,
        at,
    };
    now.difference(before)
        .map(|c| record(c, true))
        .chain(before.difference(&now).map(|c| record(c, false)))
        .collect()
}

fn change_records(audience: &Audience, changes: &[TagChange], at: i64) -> Vec<TagChangeRecord> {
    changes
        .iter()
        .map(|c| TagChangeRecord {
            user_id: audience.user_id(c.user).to_owned(),
            tag: c.tag.clone(),
            version: c.version.map(i64::from),
            gained: c.gained,
            at,
        })
        .collect()
}

/// Members of a bitmap as user ids, in index order.
pub fn member_ids(audience: &Audience, members: &RoaringBitmap, limit: usize) -> Vec<String> {
    members
        .iter()
        .take(limit)
        .map(|u| audience.user_id(u).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_waits_twice_as_long_as_the_last_one_took() {
        let s = Duration::from_secs;
        assert!(!rebuild_due(s(5), s(3)));
        assert!(rebuild_due(s(6), s(3)));
        assert!(rebuild_due(s(60), s(3)));
        assert!(
            rebuild_due(Duration::ZERO, Duration::ZERO),
            "a build that took no time is due at once"
        );
    }
}
