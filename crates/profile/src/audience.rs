//! The audience engine: every user's profile state, built-in and custom tags, and saved
//! segments, kept current as facts arrive.
//!
//! [`Audience::apply`] folds facts into the affected users' states and behaviour bitmaps and
//! marks those users dirty; [`Audience::refresh`] recomputes the dirty users' features, then the
//! shop-wide rankings (RFM quintiles, value tiers, lifecycle thresholds, which depend on every
//! customer and cost one pass over small numbers), then custom tags and saved segments in
//! dependency order, and reports which users gained or lost which tags. Because profile states
//! are exact and order-free, any batching of the same facts ends in the same audience as one
//! rebuild from all of them (a property test checks this).

use crate::features::{
    local_time, Dictionaries, Fact, FeatureConfig, Features, LineFact, ProfileState,
};
use crate::rfm::{score, RfmClass, RfmConfig, RfmRow};
use crate::segment::{Expr, NewAct, Population, SegmentError};
use roaring::RoaringBitmap;
use serde::Serialize;
use shopgrowth_core::model::{EventType, PromotionKind, PromotionType};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Lifecycle stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Registered or seen, never bought.
    Prospect,
    New,
    Active,
    /// Bought again after lapsing.
    Returning,
    Sleeping,
    Churned,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::Prospect,
        Lifecycle::New,
        Lifecycle::Active,
        Lifecycle::Returning,
        Lifecycle::Sleeping,
        Lifecycle::Churned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Prospect => "prospect",
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Returning => "returning",
            Lifecycle::Sleeping => "sleeping",
            Lifecycle::Churned => "churned",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Lifecycle::Prospect => "潜在客户",
            Lifecycle::New => "新客",
            Lifecycle::Active => "活跃客户",
            Lifecycle::Returning => "回流客户",
            Lifecycle::Sleeping => "沉睡客户",
            Lifecycle::Churned => "流失客户",
        }
    }
}

/// Value tiers by net spend rank among buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueTier {
    High,
    Medium,
    Low,
}

impl ValueTier {
    pub const ALL: [ValueTier; 3] = [ValueTier::High, ValueTier::Medium, ValueTier::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            ValueTier::High => "high",
            ValueTier::Medium => "medium",
            ValueTier::Low => "low",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            ValueTier::High => "高价值",
            ValueTier::Medium => "中价值",
            ValueTier::Low => "低价值",
        }
    }
}

/// How tags are derived.
#[derive(Debug, Clone)]
pub struct AudienceConfig {
    pub features: FeatureConfig,
    /// RFM thresholds (explicit, or quintiles when `None`); the reference day is today.
    pub rfm: RfmConfig,
    /// Days since the last purchase within which a customer is active; default from the shop's
    /// own inter-purchase gaps (see [`LifecycleThresholds`]).
    pub active_days: Option<i64>,
    /// Days since the last purchase beyond which a customer has churned.
    pub churn_days: Option<i64>,
    /// Share of buyers (by net spend) in the high tier, and in high plus medium.
    pub value_tiers: (f64, f64),
    /// Least affinity weight that makes an interest tag.
    pub interest_min_weight: f64,
}

impl Default for AudienceConfig {
    fn default() -> Self {
        AudienceConfig {
            features: FeatureConfig::default(),
            rfm: RfmConfig::default(),
            active_days: None,
            churn_days: None,
            value_tiers: (0.2, 0.5),
            interest_min_weight: 0.2,
        }
    }
}

/// The lifecycle thresholds in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LifecycleThresholds {
    /// Active when the last purchase is at most this many days ago; by default the 75th
    /// percentile of the days between a customer's consecutive purchase days, at least 7.
    pub active_days: i64,
    /// Churned beyond this many days; by default the 95th percentile of those gaps, at least
    /// twice `active_days`.
    pub churn_days: i64,
}

/// A user's attributes (what the shop told us, not derived).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub gender: Option<String>,
    pub city: Option<String>,
    pub city_tier: Option<String>,
    pub registration_channel: Option<String>,
}

/// A custom tag: a named rule in the segment language, with a weight; each change is a version.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TagDefinition {
    pub name: String,
    pub version: u32,
    pub rule: String,
    pub weight: f64,
    #[serde(default)]
    pub description: String,
}

/// A user gained or lost a tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagChange {
    pub user: u32,
    pub tag: String,
    /// The custom tag's version, for custom tags.
    pub version: Option<u32>,
    pub gained: bool,
}

/// A tag a user carries, with its weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserTag {
    pub tag: String,
    pub weight: f64,
    pub kind: &'static str,
}

/// Everything about one user, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub user_id: String,
    #[serde(flatten)]
    pub features: Features,
    pub rfm: Option<RfmScores>,
    pub lifecycle: Lifecycle,
    pub value_tier: Option<ValueTier>,
    pub tags: Vec<UserTag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RfmScores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub class: RfmClass,
}

/// An order as the audience reads it.
#[derive(Debug, Clone)]
pub struct OrderInput<'a> {
    pub user: &'a str,
    pub time: i64,
    pub sale: bool,
    pub amount: i64,
    pub discount: i64,
    pub coupon: bool,
    pub channel: &'a str,
    pub store: Option<&'a str>,
    pub skus: Vec<&'a str>,
}

/// A behaviour event as the audience reads it.
#[derive(Debug, Clone)]
pub struct EventInput<'a> {
    pub user: &'a str,
    pub kind: EventType,
    pub time: i64,
    pub channel: &'a str,
    pub sku: Option<&'a str>,
    pub store: Option<&'a str>,
    /// A purchase event that an order also records: the order is the purchase.
    pub has_order: bool,
}

/// A promotion-trail entry as the audience reads it.
#[derive(Debug, Clone)]
pub struct PromotionInput<'a> {
    pub user: &'a str,
    pub time: i64,
    pub promotion: PromotionType,
    pub kind: PromotionKind,
    /// The coupon template, sale, packet or deal.
    pub id: &'a str,
    pub amount: i64,
}

/// Prefixes reserved for built-in tags.
const BUILT_IN_PREFIXES: [&str; 5] = ["interest:", "brand:", "lifecycle:", "value:", "city_tier:"];

/// Built-in tags made per value (a category, a brand, a city tier).
const DYNAMIC_PREFIXES: [&str; 3] = ["interest:", "brand:", "city_tier:"];

/// Behaviour windows look back at most this far, so older acts need no bitmaps.
const BEHAVIOUR_DAYS: i32 = crate::segment::MAX_DAYS as i32;

/// Text fields the engine fills, besides the attributes.
const TEXT_FIELDS: [&str; 9] = [
    "gender",
    "city",
    "city_tier",
    "registration_channel",
    "lifecycle",
    "value_tier",
    "rfm_class",
    "preferred_channel",
    "preferred_store",
];

const NUMBER_FIELDS: [&str; 21] = [
    "orders",
    "monetary",
    "aov",
    "active_days",
    "browse_depth",
    "cart_abandonment_pct",
    "favourite_conversion_pct",
    "coupon_share_pct",
    "discount_depth_pct",
    "peak_hour",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_score",
    "coupons_received",
    "coupons_redeemed",
    "coupon_use_pct",
    "flash_purchases",
    "red_packets",
    "red_packet_amount",
    "group_buys",
];

#[derive(Debug, Clone)]
struct Derived {
    rfm: Option<RfmScores>,
    lifecycle: Lifecycle,
    value_tier: Option<ValueTier>,
    interests: Vec<(String, f64)>,
}

/// The audience: users, their states and the population the segment language reads.
#[derive(Debug, Clone)]
pub struct Audience {
    config: AudienceConfig,
    today: i32,
    ids: Vec<String>,
    index: HashMap<String, u32>,
    attributes: Vec<Attributes>,
    states: Vec<ProfileState>,
    derived: Vec<Derived>,
    dict: Dictionaries,
    /// SKU id → (top-level category, brand).
    catalogue: HashMap<u32, (Option<u32>, Option<u32>)>,
    population: Population,
    custom: BTreeMap<String, (TagDefinition, Expr)>,
    segments: BTreeMap<String, Expr>,
    dirty: RoaringBitmap,
    thresholds: LifecycleThresholds,
}

fn pct(x: Option<f64>) -> Option<i64> {
    x.map(|x| (x * 100.0).round() as i64)
}

/// Names a tag or segment may use: what the text form can quote, no control characters.
fn check_name(name: &str, what: &str) -> Result<(), SegmentError> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(SegmentError::new(
            0,
            format!("{what} name {name:?} must be 1 to 100 characters without control characters"),
        ));
    }
    Ok(())
}

/// Tags and segments an expression refers to.
fn references(expr: &Expr, tags: &mut BTreeSet<String>, segments: &mut BTreeSet<String>) {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            for e in items {
                references(e, tags, segments);
            }
        }
        Expr::Not(e) => references(e, tags, segments),
        Expr::Tag(t) => {
            tags.insert(t.clone());
        }
        Expr::Segment(s) => {
            segments.insert(s.clone());
        }
        _ => {}
    }
}

/// Orders names so that each comes after the names it refers to; `None` on a cycle.
fn dependency_order(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut order = Vec::new();
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 visiting, 2 done
    fn visit<'a>(
        name: &'a str,
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut HashMap<&'a str, u8>,
        order: &mut Vec<String>,
    ) -> bool {
        match state.get(name) {
            Some(2) => return true,
            Some(_) => return false,
            None => {}
        }
        state.insert(name, 1);
        for d in deps.get(name).into_iter().flatten() {
            if deps.contains_key(d) && !visit(d, deps, state, order) {
                return false;
            }
        }
        state.insert(name, 2);
        order.push(name.to_owned());
        true
    }
    for name in deps.keys() {
        if !visit(name, deps, &mut state, &mut order) {
            return None;
        }
    }
    Some(order)
}

impl Audience {
    /// An empty audience whose windows end on `today` (a local day number).
    pub fn new(config: AudienceConfig, today: i32) -> Self {
        let mut population = Population::new(0, today);
        for field in TEXT_FIELDS {
            population.declare_text(field);
        }
        for field in NUMBER_FIELDS {
            population.declare_number(field);
        }
        population.declare_days_ago("recency_days");
        population.declare_days_ago("first_purchase_days");
        for kind in EventType::ALL {
            population.declare_event(kind.as_str());
        }
        for promotion in PromotionType::ALL {
            for &kind in PromotionKind::ALL {
                population.declare_event(promotion.act(kind));
            }
        }
        for class in RfmClass::ALL {
            population.declare_tag(class.as_str());
            population.declare_tag(class.zh());
        }
        for stage in Lifecycle::ALL {
            population.declare_tag(&format!("lifecycle:{}", stage.as_str()));
            population.declare_tag(stage.zh());
        }
        for tier in ValueTier::ALL {
            population.declare_tag(&format!("value:{}", tier.as_str()));
            population.declare_tag(tier.zh());
        }
        let thresholds = LifecycleThresholds {
            active_days: config.active_days.unwrap_or(30),
            churn_days: config.churn_days.unwrap_or(90),
        };
        Audience {
            config,
            today,
            ids: Vec::new(),
            index: HashMap::new(),
            attributes: Vec::new(),
            states: Vec::new(),
            derived: Vec::new(),
            dict: Dictionaries::default(),
            catalogue: HashMap::new(),
            population,
            custom: BTreeMap::new(),
            segments: BTreeMap::new(),
            dirty: RoaringBitmap::new(),
            thresholds,
        }
    }

    pub fn config(&self) -> &AudienceConfig {
        &self.config
    }

    pub fn today(&self) -> i32 {
        self.today
    }

    pub fn users(&self) -> u32 {
        self.ids.len() as u32
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    pub fn thresholds(&self) -> LifecycleThresholds {
        self.thresholds
    }

    pub fn user_id(&self, user: u32) -> &str {
        self.ids.get(user as usize).map_or("", String::as_str)
    }

    pub fn user_index(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The dense index of a user, added if new.
    pub fn user(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        self.attributes.push(Attributes::default());
        self.states.push(ProfileState::default());
        self.derived.push(Derived {
            rfm: None,
            lifecycle: Lifecycle::Prospect,
            value_tier: None,
            interests: Vec::new(),
        });
        self.population.grow(i + 1);
        self.dirty.insert(i);
        i
    }

    pub fn set_attributes(&mut self, id: &str, attributes: Attributes) {
        let user = self.user(id);
        if self.attributes[user as usize] != attributes {
            self.attributes[user as usize] = attributes;
            self.dirty.insert(user);
        }
    }

    /// Records a product's top-level category and brand, for the facts that name its SKU.
    pub fn set_product(&mut self, sku: &str, category_path: &str, brand: Option<&str>) {
        let sku = self.dict.skus.id(sku);
        let category = category_path
            .split('/')
            .next()
            .filter(|c| !c.is_empty())
            .map(|c| self.dict.categories.id(c));
        let brand = brand
            .filter(|b| !b.is_empty())
            .map(|b| self.dict.brands.id(b));
        self.catalogue.insert(sku, (category, brand));
    }

    fn line(&mut self, sku: &str) -> LineFact {
        let sku = self.dict.skus.id(sku);
        let (category, brand) = self.catalogue.get(&sku).copied().unwrap_or((None, None));
        LineFact {
            sku,
            category,
            brand,
        }
    }

    pub fn order_fact(&mut self, order: &OrderInput<'_>) -> Fact {
        let lines = order.skus.iter().map(|s| self.line(s)).collect();
        Fact::Order {
            user: self.user(order.user),
            time: order.time,
            sale: order.sale,
            amount: order.amount,
            discount: order.discount,
            coupon: order.coupon,
            channel: self.dict.channels.id(order.channel),
            store: order.store.map(|s| self.dict.stores.id(s)),
            lines,
        }
    }

    pub fn event_fact(&mut self, event: &EventInput<'_>) -> Fact {
        let line = event.sku.map(|s| self.line(s));
        Fact::Act {
            user: self.user(event.user),
            kind: event.kind,
            time: event.time,
            channel: self.dict.channels.id(event.channel),
            sku: line.as_ref().map(|l| l.sku),
            category: line.as_ref().and_then(|l| l.category),
            brand: line.as_ref().and_then(|l| l.brand),
            store: event.store.map(|s| self.dict.stores.id(s)),
            in_order: event.has_order,
        }
    }

    pub fn promotion_fact(&mut self, entry: &PromotionInput<'_>) -> Fact {
        Fact::Promotion {
            user: self.user(entry.user),
            time: entry.time,
            promotion: entry.promotion,
            kind: entry.kind,
            id: self.dict.promotions.id(entry.id),
            amount: entry.amount,
        }
    }

    pub fn refund_fact(&mut self, user: &str, time: i64, amount: i64) -> Fact {
        Fact::Refund {
            user: self.user(user),
            time,
            amount,
        }
    }

    /// Folds facts into their users' states and behaviour, marking those users for refresh.
    pub fn apply(&mut self, facts: &[Fact]) {
        let tz = self.config.features.tz;
        let dict = &self.dict;
        // (fact, day, its properties) of the facts that are behaviour in the window.
        type Pending<'a> = (usize, &'static str, i32, Vec<(&'a str, &'a str)>);
        let mut acts: Vec<Pending<'_>> = Vec::new();
        for (i, fact) in facts.iter().enumerate() {
            let user = fact.user();
            let at = local_time(tz, fact.time());
            self.states[user as usize].apply_at(fact, at);
            self.dirty.insert(user);
            if at.day <= self.today - BEHAVIOUR_DAYS {
                continue;
            }
            let mut props: Vec<(&str, &str)> = Vec::new();
            let mut describe = |category: Option<u32>, brand: Option<u32>| {
                if let Some(c) = category {
                    props.push(("category", dict.categories.name(c)));
                }
                if let Some(b) = brand {
                    props.push(("brand", dict.brands.name(b)));
                }
            };
            let kind = match fact {
                Fact::Order {
                    sale: true, lines, ..
                } => {
                    for l in lines {
                        describe(l.category, l.brand);
                    }
                    EventType::Purchase.as_str()
                }
                Fact::Promotion {
                    promotion,
                    kind,
                    id,
                    ..
                } => {
                    props.push(("promotion", dict.promotions.name(*id)));
                    promotion.act(*kind)
                }
                Fact::Act {
                    kind: EventType::Purchase,
                    in_order: true,
                    ..
                }
                | Fact::Order { .. }
                | Fact::Refund { .. } => continue,
                Fact::Act {
                    kind,
                    category,
                    brand,
                    ..
                } => {
                    describe(*category, *brand);
                    kind.as_str()
                }
            };
            acts.push((i, kind, at.day, props));
        }
        let batch: Vec<NewAct<'_>> = acts
            .iter()
            .map(|(i, kind, day, props)| NewAct {
                event: kind,
                user: facts[*i].user(),
                day: *day,
                props,
            })
            .collect();
        self.population.add_acts(&batch);
    }

    /// Moves the end of behaviour windows; every user's time-dependent features are redone.
    pub fn set_today(&mut self, today: i32) {
        if today != self.today {
            self.today = today;
            self.population.set_today(today);
            self.dirty.insert_range(0..self.users());
        }
    }

    fn features_of(&self, user: u32) -> Features {
        self.states[user as usize].features(self.today, &self.dict, &self.config.features)
    }

    /// Recomputes what changed since the last refresh; returns the tag changes.
    pub fn refresh(&mut self) -> Vec<TagChange> {
        let before: BTreeMap<String, RoaringBitmap> = self
            .population
            .tags()
            .map(|(t, b)| (t.to_owned(), b.clone()))
            .collect();
        let dirty = std::mem::take(&mut self.dirty);
        for user in &dirty {
            self.refresh_user(user);
        }
        self.refresh_rankings();
        // Interest and city-tier tags exist while someone carries them.
        let empty: Vec<String> = self
            .population
            .tags()
            .filter(|(t, b)| b.is_empty() && DYNAMIC_PREFIXES.iter().any(|p| t.starts_with(p)))
            .map(|(t, _)| t.to_owned())
            .collect();
        for tag in empty {
            self.population.remove_tag(&tag);
        }
        self.refresh_custom_tags();
        self.refresh_segments();
        let mut changes = Vec::new();
        let empty = RoaringBitmap::new();
        let after: Vec<(String, RoaringBitmap)> = self
            .population
            .tags()
            .map(|(t, b)| (t.to_owned(), b.clone()))
            .collect();
        let version = |tag: &str| self.custom.get(tag).map(|(d, _)| d.version);
        for (tag, now) in &after {
            let was = before.get(tag).unwrap_or(&empty);
            for user in now - was {
                changes.push(TagChange {
                    user,
                    tag: tag.clone(),
                    version: version(tag),
                    gained: true,
                });
            }
            for user in was - now {
                changes.push(TagChange {
                    user,
                    tag: tag.clone(),
                    version: version(tag),
                    gained: false,
                });
            }
        }
        for (tag, was) in &before {
            if self.population.tag_users(tag).is_none() {
                for user in was {
                    changes.push(TagChange {
                        user,
                        tag: tag.clone(),
                        version: None,
                        gained: false,
                    });
                }
            }
        }
        changes
    }

    fn refresh_user(&mut self, user: u32) {
        let f = self.features_of(user);
        let p = &mut self.population;
        let a = &self.attributes[user as usize];
        p.set_text("gender", user, a.gender.as_deref());
        p.set_text("city", user, a.city.as_deref());
        p.set_text("city_tier", user, a.city_tier.as_deref());
        p.set_text(
            "registration_channel",
            user,
            a.registration_channel.as_deref(),
        );
        p.set_text("preferred_channel", user, f.preferred_channel.as_deref());
        p.set_text("preferred_store", user, f.preferred_store.as_deref());
        p.set_number("orders", user, Some(i64::from(f.frequency)));
        p.set_number("monetary", user, Some(f.monetary));
        p.set_number("aov", user, f.aov);
        p.set_number("active_days", user, Some(i64::from(f.active_days)));
        p.set_number("browse_depth", user, Some(f.browse_depth.round() as i64));
        p.set_number("cart_abandonment_pct", user, pct(f.cart_abandonment));
        p.set_number(
            "favourite_conversion_pct",
            user,
            pct(f.favourite_conversion),
        );
        p.set_number("coupon_share_pct", user, pct(f.coupon_share));
        p.set_number("discount_depth_pct", user, pct(f.discount_depth));
        p.set_number("peak_hour", user, f.peak_hour.map(i64::from));
        p.set_number(
            "coupons_received",
            user,
            Some(i64::from(f.coupons_received)),
        );
        p.set_number(
            "coupons_redeemed",
            user,
            Some(i64::from(f.coupons_redeemed)),
        );
        p.set_number("coupon_use_pct", user, pct(f.coupon_use));
        p.set_number("flash_purchases", user, Some(i64::from(f.flash_purchases)));
        p.set_number("red_packets", user, Some(i64::from(f.red_packets)));
        p.set_number("red_packet_amount", user, Some(f.red_packet_amount));
        p.set_number("group_buys", user, Some(i64::from(f.group_buys)));
        let state = &self.states[user as usize];
        p.set_days_ago("recency_days", user, state.purchase_days.last().copied());
        p.set_days_ago(
            "first_purchase_days",
            user,
            state.purchase_days.first().copied(),
        );
        let city_tags: Vec<String> = p
            .tags()
            .filter(|(t, b)| t.starts_with("city_tier:") && b.contains(user))
            .map(|(t, _)| t.to_owned())
            .collect();
        for t in city_tags {
            p.set_tag(&t, user, false);
        }
        if let Some(tier) = &a.city_tier {
            p.set_tag(&format!("city_tier:{tier}"), user, true);
        }
        let min = self.config.interest_min_weight;
        let interests: Vec<(String, f64)> = f
            .categories
            .iter()
            .filter(|a| a.weight >= min)
            .map(|a| (format!("interest:{}", a.name), a.weight))
            .chain(
                f.brands
                    .iter()
                    .filter(|a| a.weight >= min)
                    .map(|a| (format!("brand:{}", a.name), a.weight)),
            )
            .collect();
        let old = std::mem::replace(&mut self.derived[user as usize].interests, interests);
        for (tag, _) in &old {
            self.population.set_tag(tag, user, false);
        }
        for (tag, _) in &self.derived[user as usize].interests {
            self.population.set_tag(tag, user, true);
        }
    }

    /// RFM, value tiers and lifecycle: they rank users against the whole shop.
    fn refresh_rankings(&mut self) {
        let n = self.users();
        let today = self.today;
        // Lifecycle thresholds from the shop's own gaps between purchase days.
        let mut gaps: Vec<i64> = Vec::new();
        for s in &self.states {
            let days: Vec<i32> = s.purchase_days.iter().copied().collect();
            gaps.extend(days.windows(2).map(|w| i64::from(w[1] - w[0])));
        }
        gaps.sort_unstable();
        let nearest_rank = |p: usize| -> Option<i64> {
            (!gaps.is_empty()).then(|| gaps[(p * gaps.len()).div_ceil(100).max(1) - 1])
        };
        let active = self
            .config
            .active_days
            .unwrap_or_else(|| nearest_rank(75).unwrap_or(30).max(7));
        let churn = self
            .config
            .churn_days
            .unwrap_or_else(|| nearest_rank(95).unwrap_or(90).max(2 * active));
        self.thresholds = LifecycleThresholds {
            active_days: active,
            churn_days: churn,
        };
        // RFM over customers with a sale, as of today.
        let (buyers, mut rows): (Vec<u32>, Vec<RfmRow>) = (0..n)
            .filter_map(|u| {
                let s = &self.states[u as usize];
                let last = *s.purchase_days.last()?;
                Some((
                    u,
                    RfmRow {
                        customer: String::new(),
                        recency_days: i64::from(today - last),
                        frequency: i64::from(s.sale_orders),
                        monetary: s.monetary(),
                        r: 0,
                        f: 0,
                        m: 0,
                        class: RfmClass::GeneralRetain,
                    },
                ))
            })
            .unzip();
        score(&mut rows, &self.config.rfm);
        // Value tiers: the spend at the tier's rank among buyers, ties with it included.
        let mut spend: Vec<i64> = rows.iter().map(|r| r.monetary).collect();
        spend.sort_unstable_by(|a, b| b.cmp(a));
        let cut = |share: f64| -> Option<i64> {
            let k = ((share * spend.len() as f64).ceil() as usize).max(1);
            spend.get(k - 1).copied()
        };
        let (high, medium) = (
            cut(self.config.value_tiers.0),
            cut(self.config.value_tiers.1),
        );
        for d in &mut self.derived {
            d.rfm = None;
            d.value_tier = None;
        }
        for (&u, row) in buyers.iter().zip(&rows) {
            let d = &mut self.derived[u as usize];
            d.rfm = Some(RfmScores {
                r: row.r,
                f: row.f,
                m: row.m,
                class: row.class,
            });
            d.value_tier = Some(
                if row.monetary > 0 && high.is_some_and(|h| row.monetary >= h) {
                    ValueTier::High
                } else if row.monetary > 0 && medium.is_some_and(|m| row.monetary >= m) {
                    ValueTier::Medium
                } else {
                    ValueTier::Low
                },
            );
        }
        let mut class_users: BTreeMap<RfmClass, Vec<u32>> = BTreeMap::new();
        let mut stage_users: BTreeMap<Lifecycle, Vec<u32>> = BTreeMap::new();
        let mut tier_users: BTreeMap<ValueTier, Vec<u32>> = BTreeMap::new();
        for u in 0..n {
            let state = &self.states[u as usize];
            let days: Vec<i32> = state.purchase_days.iter().rev().take(2).copied().collect();
            let stage = match days.as_slice() {
                [] => Lifecycle::Prospect,
                [last, rest @ ..] => {
                    let recency = i64::from(today - last);
                    if recency > churn {
                        Lifecycle::Churned
                    } else if recency > active {
                        Lifecycle::Sleeping
                    } else if rest.is_empty() {
                        Lifecycle::New
                    } else if i64::from(last - rest[0]) > active {
                        Lifecycle::Returning
                    } else {
                        Lifecycle::Active
                    }
                }
            };
            let d = &mut self.derived[u as usize];
            d.lifecycle = stage;
            stage_users.entry(stage).or_default().push(u);
            let p = &mut self.population;
            p.set_text("lifecycle", u, Some(stage.as_str()));
            match d.rfm {
                Some(r) => {
                    class_users.entry(r.class).or_default().push(u);
                    p.set_number("rfm_r", u, Some(i64::from(r.r)));
                    p.set_number("rfm_f", u, Some(i64::from(r.f)));
                    p.set_number("rfm_m", u, Some(i64::from(r.m)));
                    p.set_number("rfm_score", u, Some(i64::from(r.r + r.f + r.m)));
                    p.set_text("rfm_class", u, Some(r.class.as_str()));
                }
                None => {
                    for field in ["rfm_r", "rfm_f", "rfm_m", "rfm_score"] {
                        p.set_number(field, u, None);
                    }
                    p.set_text("rfm_class", u, None);
                }
            }
            p.set_text("value_tier", u, d.value_tier.map(ValueTier::as_str));
            if let Some(t) = d.value_tier {
                tier_users.entry(t).or_default().push(u);
            }
        }
        let bitmap = |users: Option<&Vec<u32>>| -> RoaringBitmap {
            users.map_or_else(RoaringBitmap::new, |u| {
                RoaringBitmap::from_sorted_iter(u.iter().copied()).unwrap_or_default()
            })
        };
        for class in RfmClass::ALL {
            let users = bitmap(class_users.get(&class));
            self.population.set_tag_users(class.zh(), users.clone());
            self.population.set_tag_users(class.as_str(), users);
        }
        for stage in Lifecycle::ALL {
            let users = bitmap(stage_users.get(&stage));
            self.population.set_tag_users(stage.zh(), users.clone());
            self.population
                .set_tag_users(&format!("lifecycle:{}", stage.as_str()), users);
        }
        for tier in ValueTier::ALL {
            let users = bitmap(tier_users.get(&tier));
            self.population.set_tag_users(tier.zh(), users.clone());
            self.population
                .set_tag_users(&format!("value:{}", tier.as_str()), users);
        }
    }

    fn custom_order(custom: &BTreeMap<String, (TagDefinition, Expr)>) -> Option<Vec<String>> {
        let deps = custom
            .iter()
            .map(|(name, (_, expr))| {
                let (mut tags, mut segments) = (BTreeSet::new(), BTreeSet::new());
                references(expr, &mut tags, &mut segments);
                (name.clone(), tags)
            })
            .collect();
        dependency_order(&deps)
    }

    fn refresh_custom_tags(&mut self) {
        for name in Self::custom_order(&self.custom).unwrap_or_default() {
            if let Some((_, expr)) = self.custom.get(&name) {
                let users = self.population.evaluate(expr);
                self.population.set_tag_users(&name, users);
            }
        }
    }

    fn segment_order(segments: &BTreeMap<String, Expr>) -> Option<Vec<String>> {
        let deps = segments
            .iter()
            .map(|(name, expr)| {
                let (mut tags, mut segs) = (BTreeSet::new(), BTreeSet::new());
                references(expr, &mut tags, &mut segs);
                (name.clone(), segs)
            })
            .collect();
        dependency_order(&deps)
    }

    fn refresh_segments(&mut self) {
        for name in Self::segment_order(&self.segments).unwrap_or_default() {
            if let Some(expr) = self.segments.get(&name) {
                let members = self.population.evaluate(expr);
                self.population.set_segment(&name, members);
            }
        }
    }

    /// Defines (or redefines, as the next version) a custom tag; its users are computed at once.
    /// The rule may use fields, behaviour and other tags, but not saved segments (which are
    /// computed from tags).
    pub fn define_tag(
        &mut self,
        name: &str,
        rule: &str,
        weight: f64,
        description: &str,
    ) -> Result<TagDefinition, SegmentError> {
        check_name(name, "tag")?;
        let built_in = !self.custom.contains_key(name) && self.population.tag_users(name).is_some();
        if built_in || BUILT_IN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(SegmentError::new(
                0,
                format!("{name:?} is a built-in tag name"),
            ));
        }
        if !weight.is_finite() {
            return Err(SegmentError::new(0, "the weight must be a finite number"));
        }
        let expr = self.population.compile(rule)?;
        let (mut tags, mut segments) = (BTreeSet::new(), BTreeSet::new());
        references(&expr, &mut tags, &mut segments);
        if !segments.is_empty() {
            return Err(SegmentError::new(
                0,
                "a tag rule cannot use 'in segment': segments are built from tags",
            ));
        }
        let version = self.custom.get(name).map_or(1, |(d, _)| d.version + 1);
        let definition = TagDefinition {
            name: name.to_owned(),
            version,
            rule: rule.to_owned(),
            weight,
            description: description.to_owned(),
        };
        let mut next = self.custom.clone();
        next.insert(name.to_owned(), (definition.clone(), expr));
        if Self::custom_order(&next).is_none() {
            return Err(SegmentError::new(
                0,
                format!("tag {name:?} would depend on itself through other tags"),
            ));
        }
        self.custom = next;
        self.population.declare_tag(name);
        Ok(definition)
    }

    /// Restores a stored definition as it was (start-up), without a new version.
    pub fn restore_tag(&mut self, definition: TagDefinition) -> Result<(), SegmentError> {
        let expr = crate::segment::parse(&definition.rule)?.expr;
        self.population.declare_tag(&definition.name);
        self.custom
            .insert(definition.name.clone(), (definition, expr));
        Ok(())
    }

    pub fn retire_tag(&mut self, name: &str) -> bool {
        let found = self.custom.remove(name).is_some();
        if found {
            self.population.remove_tag(name);
        }
        found
    }

    pub fn tag_definitions(&self) -> impl Iterator<Item = &TagDefinition> {
        self.custom.values().map(|(d, _)| d)
    }

    /// Saves (or replaces) a segment; its members are computed at once.
    pub fn save_segment(&mut self, name: &str, text: &str) -> Result<Expr, SegmentError> {
        check_name(name, "segment")?;
        let expr = self.population.compile(text)?;
        let mut next = self.segments.clone();
        next.insert(name.to_owned(), expr.clone());
        if Self::segment_order(&next).is_none() {
            return Err(SegmentError::new(
                0,
                format!("segment {name:?} would contain itself"),
            ));
        }
        self.segments = next;
        let members = self.population.evaluate(&expr);
        self.population.set_segment(name, members);
        Ok(expr)
    }

    pub fn remove_segment(&mut self, name: &str) -> bool {
        let found = self.segments.remove(name).is_some();
        if found {
            self.population.remove_segment(name);
        }
        found
    }

    pub fn segment(&self, name: &str) -> Option<(&Expr, &RoaringBitmap)> {
        Some((
            self.segments.get(name)?,
            self.population.segment_members(name)?,
        ))
    }

    /// Tags of one user, with weights.
    pub fn tags_of(&self, user: u32) -> Vec<UserTag> {
        let d = &self.derived[user as usize];
        let interest: HashMap<&str, f64> =
            d.interests.iter().map(|(t, w)| (t.as_str(), *w)).collect();
        self.population
            .tags()
            .filter(|(_, b)| b.contains(user))
            .map(|(tag, _)| {
                let (weight, kind) = if let Some((def, _)) = self.custom.get(tag) {
                    (def.weight, "custom")
                } else if let Some(w) = interest.get(tag) {
                    (*w, "interest")
                } else {
                    (1.0, "built_in")
                };
                UserTag {
                    tag: tag.to_owned(),
                    weight,
                    kind,
                }
            })
            .collect()
    }

    /// One user's profile as of the last refresh.
    pub fn profile(&self, user: u32) -> Profile {
        let d = &self.derived[user as usize];
        Profile {
            user_id: self.user_id(user).to_owned(),
            features: self.features_of(user),
            rfm: d.rfm,
            lifecycle: d.lifecycle,
            value_tier: d.value_tier,
            tags: self.tags_of(user),
        }
    }

    /// Drops every fact of one user (erasure, identity changes): the state restarts empty and
    /// their behaviour leaves the bitmaps.
    pub fn forget(&mut self, id: &str) {
        if let Some(&user) = self.index.get(id) {
            self.states[user as usize] = ProfileState::default();
            self.population.remove_acts_of(user);
            self.dirty.insert(user);
        }
    }

    /// Re-chooses the number columns' bounds for the current values (after a bulk load).
    pub fn rebucket(&mut self) {
        self.population.rebucket();
    }

    /// The buyers among `users` as points for [`crate::cluster::discover`], with their indexes.
    pub fn cluster_points(&self, users: &RoaringBitmap) -> (Vec<u32>, Vec<crate::cluster::Point>) {
        users
            .iter()
            .filter(|&u| {
                self.states
                    .get(u as usize)
                    .is_some_and(|s| s.sale_orders > 0)
            })
            .map(|u| {
                let f = self.features_of(u);
                let point = crate::cluster::Point {
                    values: [
                        Some(f.monetary as f64),
                        Some(f64::from(f.frequency)),
                        f.aov.map(|a| a as f64),
                        f.recency_days.map(|r| r as f64),
                        Some(f64::from(f.active_days)),
                        Some(f.browse_depth),
                        f.cart_abandonment,
                        f.coupon_share,
                        f.discount_depth,
                    ],
                    top_category: f.categories.first().map(|a| a.name.clone()),
                };
                (u, point)
            })
            .unzip()
    }

    pub fn segment_names(&self) -> Vec<String> {
        self.segments.keys().cloned().collect()
    }

    /// The raw state of one user (tests compare incremental against rebuilt states).
    pub fn state(&self, user: u32) -> &ProfileState {
        &self.states[user as usize]
    }
}

#[cfg(test)]
mod tests;
