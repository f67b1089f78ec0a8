//! The profile of one user, computed from facts (orders, refunds, behaviour events).
//!
//! [`ProfileState`] folds facts in one at a time and is exact and order-free: counts, sums,
//! minima and maxima, sets of days and SKUs, and per-day affinity points. So applying a stream of
//! facts in any order or batching gives the same state as a rebuild from all of them, and the
//! features are computed from the state at a reference day, e.g. the time decay of affinities.
//!
//! Definitions (also in docs/profiles.md):
//! - **monetary**: sales minus returns and refunds, minor units; **frequency**: sale orders;
//!   **AOV**: sales ÷ sale orders, rounded half up.
//! - **active days**: distinct shop-local days with any event or order.
//! - **browse depth**: product views per active day.
//! - **cart abandonment**: share of SKUs added to the cart that were never bought.
//! - **favourite → purchase**: share of favourited SKUs that were bought.
//! - **coupon share**: share of sale orders that used a coupon; **discount depth**: discounts ÷
//!   list value of sale orders (price sensitivity).
//! - **affinities**: points per category (and brand) per day — view 1, favourite 2, cart 3,
//!   purchase 5 — each decayed by ½^(days ago ÷ half-life), then normalised to sum to 1.
//! - **preferred channel / store**: the most frequent among orders and events (ties: the first
//!   name in sort order).
//! - **habits**: counts by local hour (0–23) and weekday (Monday = 0) of events and orders.
//! - **promotions** (from the promotion trail): coupons received (issued or claimed) and
//!   redeemed, and **coupon use** = redeemed ÷ received; flash-sale purchases; red-packet shares
//!   claimed and their sum; group-buying purchases (groups that filled).

use chrono::{Datelike, TimeZone, Timelike};
use serde::Serialize;
use shopgrowth_core::model::{EventType, PromotionKind, PromotionType};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Interns names (categories, brands, SKUs, channels, stores) as dense numbers.
#[derive(Debug, Default, Clone)]
pub struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One order line as the profile sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFact {
    pub sku: u32,
    pub category: Option<u32>,
    pub brand: Option<u32>,
}

/// A fact about a user, with names interned and times in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A sale (`sale: true`) or a return order; amounts are positive.
    Order {
        user: u32,
        time: i64,
        sale: bool,
        /// Paid, after discounts.
        amount: i64,
        discount: i64,
        coupon: bool,
        channel: u32,
        store: Option<u32>,
        lines: Vec<LineFact>,
    },
    /// Money given back on an earlier sale.
    Refund { user: u32, time: i64, amount: i64 },
    /// A behaviour event.
    Act {
        user: u32,
        kind: EventType,
        time: i64,
        channel: u32,
        sku: Option<u32>,
        category: Option<u32>,
        brand: Option<u32>,
        store: Option<u32>,
        /// A purchase event that an order also records.
        in_order: bool,
    },
    /// An entry of the promotion trail about this user.
    Promotion {
        user: u32,
        time: i64,
        promotion: PromotionType,
        kind: PromotionKind,
        /// The coupon template, sale, packet or deal (interned).
        id: u32,
        /// Minor units, 0 when the entry moves no money.
        amount: i64,
    },
}

impl Fact {
    pub fn user(&self) -> u32 {
        match self {
            Fact::Order { user, .. }
            | Fact::Refund { user, .. }
            | Fact::Act { user, .. }
            | Fact::Promotion { user, .. } => *user,
        }
    }

    pub fn time(&self) -> i64 {
        match self {
            Fact::Order { time, .. }
            | Fact::Refund { time, .. }
            | Fact::Act { time, .. }
            | Fact::Promotion { time, .. } => *time,
        }
    }
}

/// Local calendar position of an instant.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    /// Days since 0001-01-01 (chrono's `num_days_from_ce`).
    pub day: i32,
    pub hour: u8,
    /// Monday = 0.
    pub weekday: u8,
}

pub fn local_time(tz: chrono_tz::Tz, ms: i64) -> LocalTime {
    match tz.timestamp_millis_opt(ms).earliest() {
        Some(t) => LocalTime {
            day: t.date_naive().num_days_from_ce(),
            hour: t.hour() as u8,
            weekday: t.weekday().num_days_from_monday() as u8,
        },
        None => LocalTime {
            day: 0,
            hour: 0,
            weekday: 0,
        },
    }
}

/// Affinity points by behaviour.
fn points(kind: EventType) -> u32 {
    match kind {
        EventType::View => 1,
        EventType::Favorite => 2,
        EventType::AddToCart => 3,
        EventType::Purchase => 5,
        _ => 0,
    }
}

const PURCHASE_POINTS: u32 = 5;

/// Everything known about one user, folded exactly and in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileState {
    pub sale_orders: u32,
    pub sales: i64,
    pub returns: i64,
    pub list_value: i64,
    pub discounts: i64,
    pub coupon_orders: u32,
    pub purchase_days: BTreeSet<i32>,
    pub first_purchase: Option<i64>,
    pub last_purchase: Option<i64>,
    pub active_days: BTreeSet<i32>,
    pub views: u32,
    pub carted: BTreeSet<u32>,
    pub favourited: BTreeSet<u32>,
    pub bought: BTreeSet<u32>,
    pub category_points: BTreeMap<(u32, i32), u32>,
    pub brand_points: BTreeMap<(u32, i32), u32>,
    pub channels: BTreeMap<u32, u32>,
    pub stores: BTreeMap<u32, u32>,
    pub hours: [u32; 24],
    pub weekdays: [u32; 7],
    pub coupons_received: u32,
    pub coupons_redeemed: u32,
    pub flash_purchases: u32,
    pub red_packets: u32,
    pub red_packet_amount: i64,
    pub group_buys: u32,
}

impl ProfileState {
    pub fn apply(&mut self, fact: &Fact, tz: chrono_tz::Tz) {
        self.apply_at(fact, local_time(tz, fact.time()));
    }

    /// [`ProfileState::apply`] with the fact's local time already worked out.
    pub fn apply_at(&mut self, fact: &Fact, at: LocalTime) {
        match fact {
            Fact::Order {
                time,
                sale,
                amount,
                discount,
                coupon,
                channel,
                store,
                lines,
                ..
            } => {
                self.habit(at, *channel, *store);
                if !*sale {
                    self.returns += amount;
                    return;
                }
                self.sale_orders += 1;
                self.sales += amount;
                self.list_value += amount + discount;
                self.discounts += discount;
                self.coupon_orders += u32::from(*coupon);
                self.purchase_days.insert(at.day);
                self.first_purchase = Some(self.first_purchase.map_or(*time, |f| f.min(*time)));
                self.last_purchase = Some(self.last_purchase.map_or(*time, |l| l.max(*time)));
                for line in lines {
                    self.bought.insert(line.sku);
                    self.interest(line.category, line.brand, at.day, PURCHASE_POINTS);
                }
            }
            Fact::Refund { amount, .. } => self.returns += amount,
            Fact::Promotion {
                promotion,
                kind,
                amount,
                ..
            } => {
                use PromotionKind as K;
                use PromotionType as T;
                match (promotion, kind) {
                    (T::Coupon, K::Issued | K::Claimed) => self.coupons_received += 1,
                    (T::Coupon, K::Redeemed) => self.coupons_redeemed += 1,
                    (T::FlashSale, K::Redeemed) => self.flash_purchases += 1,
                    (T::RedPacket, K::Claimed) => {
                        self.red_packets += 1;
                        self.red_packet_amount += amount;
                    }
                    (T::GroupBuy, K::Redeemed) => self.group_buys += 1,
                    _ => {}
                }
            }
            Fact::Act {
                kind,
                channel,
                sku,
                category,
                brand,
                store,
                ..
            } => {
                self.habit(at, *channel, *store);
                match kind {
                    EventType::View => self.views += 1,
                    EventType::AddToCart => {
                        self.carted.extend(*sku);
                    }
                    EventType::Favorite => {
                        self.favourited.extend(*sku);
                    }
                    EventType::Purchase => {
                        self.bought.extend(*sku);
                    }
                    _ => {}
                }
                self.interest(*category, *brand, at.day, points(*kind));
            }
        }
    }

    fn habit(&mut self, at: LocalTime, channel: u32, store: Option<u32>) {
        self.active_days.insert(at.day);
        self.hours[at.hour as usize] += 1;
        self.weekdays[at.weekday as usize] += 1;
        *self.channels.entry(channel).or_default() += 1;
        if let Some(s) = store {
            *self.stores.entry(s).or_default() += 1;
        }
    }

    fn interest(&mut self, category: Option<u32>, brand: Option<u32>, day: i32, points: u32) {
        if points == 0 {
            return;
        }
        if let Some(c) = category {
            *self.category_points.entry((c, day)).or_default() += points;
        }
        if let Some(b) = brand {
            *self.brand_points.entry((b, day)).or_default() += points;
        }
    }

    pub fn monetary(&self) -> i64 {
        self.sales - self.returns
    }
}

/// One category or brand with its normalised weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Affinity {
    pub name: String,
    pub weight: f64,
}

/// The features of one user at a reference day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    pub frequency: u32,
    pub monetary: i64,
    pub aov: Option<i64>,
    pub first_purchase: Option<i64>,
    pub last_purchase: Option<i64>,
    pub recency_days: Option<i64>,
    pub active_days: u32,
    pub browse_depth: f64,
    pub cart_abandonment: Option<f64>,
    pub favourite_conversion: Option<f64>,
    pub coupon_share: Option<f64>,
    pub discount_depth: Option<f64>,
    pub categories: Vec<Affinity>,
    pub brands: Vec<Affinity>,
    pub preferred_channel: Option<String>,
    pub preferred_store: Option<String>,
    pub peak_hour: Option<u8>,
    pub peak_weekday: Option<u8>,
    pub hours: [u32; 24],
    pub weekdays: [u32; 7],
    pub coupons_received: u32,
    pub coupons_redeemed: u32,
    /// Coupons redeemed ÷ received (None before the first).
    pub coupon_use: Option<f64>,
    pub flash_purchases: u32,
    pub red_packets: u32,
    pub red_packet_amount: i64,
    pub group_buys: u32,
}

/// How features are derived.
#[derive(Debug, Clone, Copy)]
pub struct FeatureConfig {
    pub tz: chrono_tz::Tz,
    /// Half-life of affinity points, in days.
    pub half_life_days: f64,
    /// Affinities kept per user.
    pub top_affinities: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            tz: chrono_tz::Asia::Shanghai,
            half_life_days: 30.0,
            top_affinities: 5,
        }
    }
}

/// The name-space of a user's facts.
#[derive(Debug, Default, Clone)]
pub struct Dictionaries {
    pub skus: Names,
    pub categories: Names,
    pub brands: Names,
    pub channels: Names,
    pub stores: Names,
    pub promotions: Names,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Highest count, ties to the first name in sort order.
fn preferred(counts: &BTreeMap<u32, u32>, names: &Names) -> Option<String> {
    counts
        .iter()
        .map(|(&id, &n)| (n, names.name(id)))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, name)| name.to_owned())
}

fn peak<const N: usize>(counts: &[u32; N]) -> Option<u8> {
    let (i, &max) = counts
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(&a.0)))?;
    (max > 0).then_some(i as u8)
}

fn affinities(
    points: &BTreeMap<(u32, i32), u32>,
    names: &Names,
    today: i32,
    config: &FeatureConfig,
) -> Vec<Affinity> {
    let mut by: BTreeMap<u32, f64> = BTreeMap::new();
    for (&(id, day), &p) in points {
        let age = f64::from((today - day).max(0));
        *by.entry(id).or_default() += f64::from(p) * 0.5f64.powf(age / config.half_life_days);
    }
    let total: f64 = by.values().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let mut list: Vec<Affinity> = by
        .into_iter()
        .map(|(id, w)| Affinity {
            name: names.name(id).to_owned(),
            weight: w / total,
        })
        .collect();
    list.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.name.cmp(&b.name))
    });
    list.truncate(config.top_affinities);
    list
}

impl ProfileState {
    /// The features as of `today` (a local day number).
    pub fn features(&self, today: i32, dict: &Dictionaries, config: &FeatureConfig) -> Features {
        let last_day = self.purchase_days.last().copied();
        Features {
            frequency: self.sale_orders,
            monetary: self.monetary(),
            aov: (self.sale_orders > 0).then(|| {
                let n = i64::from(self.sale_orders);
                (2 * self.sales + n).div_euclid(2 * n)
            }),
            first_purchase: self.first_purchase,
            last_purchase: self.last_purchase,
            recency_days: last_day.map(|d| i64::from(today - d)),
            active_days: self.active_days.len() as u32,
            browse_depth: ratio(self.views as usize, self.active_days.len()).unwrap_or(0.0),
            cart_abandonment: ratio(
                self.carted.difference(&self.bought).count(),
                self.carted.len(),
            ),
            favourite_conversion: ratio(
                self.favourited.intersection(&self.bought).count(),
                self.favourited.len(),
            ),
            coupon_share: ratio(self.coupon_orders as usize, self.sale_orders as usize),
            discount_depth: (self.list_value > 0)
                .then(|| self.discounts as f64 / self.list_value as f64),
            categories: affinities(&self.category_points, &dict.categories, today, config),
            brands: affinities(&self.brand_points, &dict.brands, today, config),
            preferred_channel: preferred(&self.channels, &dict.channels),
            preferred_store: preferred(&self.stores, &dict.stores),
            peak_hour: peak(&self.hours),
            peak_weekday: peak(&self.weekdays),
            hours: self.hours,
            weekdays: self.weekdays,
            coupons_received: self.coupons_received,
            coupons_redeemed: self.coupons_redeemed,
            coupon_use: ratio(
                self.coupons_redeemed as usize,
                self.coupons_received as usize,
            ),
            flash_purchases: self.flash_purchases,
            red_packets: self.red_packets,
            red_packet_amount: self.red_packet_amount,
            group_buys: self.group_buys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(user: u32, time: i64, amount: i64, discount: i64, sku: u32) -> Fact {
        Fact::Order {
            user,
            time,
            sale: true,
            amount,
            discount,
            coupon: discount > 0,
            channel: 0,
            store: None,
            lines: vec![LineFact {
                sku,
                category: Some(0),
                brand: None,
            }],
        }
    }

    fn act(kind: EventType, time: i64, sku: u32, category: u32) -> Fact {
        Fact::Act {
            user: 0,
            kind,
            time,
            channel: 1,
            sku: Some(sku),
            category: Some(category),
            brand: None,
            store: None,
            in_order: false,
        }
    }

    #[test]
    fn hand_computed_profile() {
        let tz = chrono_tz::Asia::Shanghai;
        let mut dict = Dictionaries::default();
        dict.categories.id("母婴");
        dict.categories.id("数码");
        dict.channels.id("store");
        dict.channels.id("app");
        let day = 86_400_000;
        // 2026-11-01 02:00 UTC = 10:00 in Shanghai, a Sunday.
        let t0 = 1_793_498_400_000;
        let facts = [
            act(EventType::View, t0, 7, 1),
            act(EventType::View, t0 + 60_000, 8, 1),
            act(EventType::AddToCart, t0 + 120_000, 8, 1),
            act(EventType::AddToCart, t0 + 130_000, 9, 0),
            act(EventType::Favorite, t0 + 140_000, 9, 0),
            order(0, t0 + day, 10_000, 2_000, 9),
            order(0, t0 + 3 * day, 5_001, 0, 3),
            Fact::Refund {
                user: 0,
                time: t0 + 4 * day,
                amount: 1_000,
            },
        ];
        let mut state = ProfileState::default();
        for f in &facts {
            state.apply(f, tz);
        }
        let config = FeatureConfig {
            tz,
            ..FeatureConfig::default()
        };
        let today = local_time(tz, t0 + 10 * day).day;
        let f = state.features(today, &dict, &config);
        assert_eq!(f.frequency, 2);
        assert_eq!(f.monetary, 14_001);
        assert_eq!(f.aov, Some(7_501), "15,001 / 2 rounds half up");
        assert_eq!(f.recency_days, Some(7));
        assert_eq!(f.active_days, 3, "a refund is not activity");
        assert_eq!(f.browse_depth, 2.0 / 3.0);
        assert_eq!(
            f.cart_abandonment,
            Some(0.5),
            "sku 8 never bought, 9 bought"
        );
        assert_eq!(f.favourite_conversion, Some(1.0));
        assert_eq!(f.coupon_share, Some(0.5));
        assert_eq!(f.discount_depth, Some(2_000.0 / 17_001.0));
        assert_eq!(f.preferred_channel.as_deref(), Some("app"));
        assert_eq!(f.peak_hour, Some(10));
        assert_eq!(f.peak_weekday, Some(6));
        // 母婴: cart 3 + favourite 2 on day 0, purchases 5 + 5 on days 1 and 3; 数码: 1 + 1 + 3 on day 0.
        let decay = |d: i32| 0.5f64.powf(f64::from(10 - d) / 30.0);
        let baby = 5.0 * decay(0) + 5.0 * decay(1) + 5.0 * decay(3);
        let digital = 5.0 * decay(0);
        assert_eq!(f.categories[0].name, "母婴");
        assert!((f.categories[0].weight - baby / (baby + digital)).abs() < 1e-12);
    }

    #[test]
    fn promotion_trail_counts_by_hand() {
        let tz = chrono_tz::Asia::Shanghai;
        let promo = |promotion, kind, amount| Fact::Promotion {
            user: 0,
            time: 1_793_498_400_000,
            promotion,
            kind,
            id: 0,
            amount,
        };
        use PromotionKind as K;
        use PromotionType as T;
        let facts = [
            promo(T::Coupon, K::Claimed, 0),
            promo(T::Coupon, K::Issued, 0),
            promo(T::Coupon, K::Claimed, 0),
            promo(T::Coupon, K::Reserved, 0),
            promo(T::Coupon, K::Redeemed, 0),
            promo(T::FlashSale, K::Reserved, 99_900),
            promo(T::FlashSale, K::Redeemed, 99_900),
            promo(T::FlashSale, K::Expired, 99_900),
            promo(T::RedPacket, K::Claimed, 388),
            promo(T::RedPacket, K::Claimed, 12),
            promo(T::RedPacket, K::Issued, 10_000),
            promo(T::GroupBuy, K::Reserved, 5_900),
            promo(T::GroupBuy, K::Redeemed, 5_900),
            promo(T::GroupBuy, K::RolledBack, 6_900),
        ];
        let mut state = ProfileState::default();
        for f in &facts {
            state.apply(f, tz);
        }
        let f = state.features(0, &Dictionaries::default(), &FeatureConfig::default());
        assert_eq!((f.coupons_received, f.coupons_redeemed), (3, 1));
        assert_eq!(f.coupon_use, Some(1.0 / 3.0));
        assert_eq!(f.flash_purchases, 1);
        assert_eq!((f.red_packets, f.red_packet_amount), (2, 400));
        assert_eq!(f.group_buys, 1);
        assert_eq!(f.frequency, 0, "the trail is not an order");
        assert_eq!(f.active_days, 0);
        assert_eq!(
            ProfileState::default()
                .features(0, &Dictionaries::default(), &FeatureConfig::default())
                .coupon_use,
            None
        );
    }

    #[test]
    fn order_of_facts_does_not_matter() {
        let tz = chrono_tz::Asia::Shanghai;
        let facts: Vec<Fact> = (0..40)
            .map(|i| match i % 3 {
                0 => order(
                    0,
                    1_700_000_000_000 + i * 3_600_000,
                    100 + i,
                    i % 5,
                    i as u32 % 4,
                ),
                1 => act(
                    EventType::View,
                    1_700_000_000_000 + i * 7_200_000,
                    i as u32 % 6,
                    2,
                ),
                _ => act(
                    EventType::AddToCart,
                    1_700_000_000_000 + i * 600_000,
                    i as u32 % 7,
                    1,
                ),
            })
            .collect();
        let mut forward = ProfileState::default();
        let mut backward = ProfileState::default();
        for f in &facts {
            forward.apply(f, tz);
        }
        for f in facts.iter().rev() {
            backward.apply(f, tz);
        }
        assert_eq!(forward, backward);
    }
}
