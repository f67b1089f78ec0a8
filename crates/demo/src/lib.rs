//! A realistic demo shop, generated deterministically from a seed: plain data, no IO.
//!
//! - A category tree with brands and 2,000+ products whose popularity has a long tail.
//! - Users registering across the year (cohorts), each with an activity rate and a lifetime
//!   after which they churn (some never do); anonymous browsing before sign-up; offline store
//!   members, some holding a member card with the same phone as their online account.
//! - Sessions of views, searches, favourites, carts, purchases, reviews, shares, sign-ins,
//!   refunds and message clicks, with weekly seasonality, the 618 and 双11 peaks, and the
//!   Spring Festival dip.
//!
//! Every user has its own RNG derived from the seed, so output is reproducible and a user's
//! history does not depend on how many users come before it.

mod calendar;
mod catalogue;
mod people;

pub use calendar::Calendar;
pub use catalogue::Catalogue;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shopgrowth_core::model::{Event, Order, Store, User};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    pub users: usize,
    pub products: usize,
    /// Events aimed at; the generator scales activity so the total lands near it.
    pub target_events: usize,
    /// Last day of the year of history (shop-local date).
    pub end: NaiveDate,
    /// Users per yielded chunk.
    pub chunk_users: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            users: 20_000,
            products: 2_000,
            target_events: 1_100_000,
            end: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default(),
            chunk_users: 500,
        }
    }
}

/// A slice of the shop: some users with all their orders and events.
#[derive(Debug, Default)]
pub struct DemoChunk {
    pub users: Vec<User>,
    pub orders: Vec<Order>,
    pub events: Vec<Event>,
}

/// Generates the shop chunk by chunk.
pub struct Generator {
    config: DemoConfig,
    catalogue: Catalogue,
    calendar: Calendar,
    activity_scale: f64,
    next_user: usize,
}

impl Generator {
    pub fn new(config: DemoConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let catalogue = Catalogue::generate(&mut rng, config.products);
        let calendar = Calendar::year_ending(config.end);
        let mut generator = Generator {
            config,
            catalogue,
            calendar,
            activity_scale: 1.0,
            next_user: 0,
        };
        generator.activity_scale = generator.calibrate();
        generator
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn stores(&self) -> &[Store] {
        &self.catalogue.stores
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    fn user_rng(&self, index: usize) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(
            self.config.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    /// Scales activity so the expected number of events is the target.
    fn calibrate(&self) -> f64 {
        let expected: f64 = (0..self.config.users)
            .map(|i| {
                let mut rng = self.user_rng(i);
                let plan = people::plan(i, &mut rng, &self.calendar, &self.catalogue);
                plan.expected_sessions() * people::EVENTS_PER_SESSION
            })
            .sum();
        if expected > 0.0 {
            self.config.target_events as f64 / expected
        } else {
            1.0
        }
    }

    pub fn users_total(&self) -> usize {
        self.config.users
    }
}

impl Iterator for Generator {
    type Item = DemoChunk;

    fn next(&mut self) -> Option<DemoChunk> {
        if self.next_user >= self.config.users {
            return None;
        }
        let end = (self.next_user + self.config.chunk_users.max(1)).min(self.config.users);
        let mut chunk = DemoChunk::default();
        for i in self.next_user..end {
            let mut rng = self.user_rng(i);
            let plan = people::plan(i, &mut rng, &self.calendar, &self.catalogue);
            people::live(
                &plan,
                &mut rng,
                &self.calendar,
                &self.catalogue,
                self.activity_scale,
                &mut chunk,
            );
        }
        self.next_user = end;
        Some(chunk)
    }
}

/// A uniform float in [0, 1).
pub(crate) fn unit(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopgrowth_core::model::{Channel, EventType, OrderKind};
    use std::collections::{HashMap, HashSet};

    fn small() -> Vec<DemoChunk> {
        let config = DemoConfig {
            users: 400,
            products: 300,
            target_events: 25_000,
            ..DemoConfig::default()
        };
        Generator::new(config).collect()
    }

    #[test]
    fn is_deterministic() {
        let a: Vec<String> = small()
            .iter()
            .flat_map(|c| c.events.iter().map(|e| format!("{}{}", e.id, e.time.0)))
            .collect();
        let b: Vec<String> = small()
            .iter()
            .flat_map(|c| c.events.iter().map(|e| format!("{}{}", e.id, e.time.0)))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn looks_like_a_shop() {
        let chunks = small();
        let events: Vec<&Event> = chunks.iter().flat_map(|c| &c.events).collect();
        let orders: Vec<&Order> = chunks.iter().flat_map(|c| &c.orders).collect();
        let users: Vec<&User> = chunks.iter().flat_map(|c| &c.users).collect();
        // Near the target volume, unique ids, every record valid.
        assert!(
            (20_000..30_000).contains(&events.len()),
            "{} events",
            events.len()
        );
        let now = shopgrowth_core::time::Timestamp(1_800_000_000_000);
        assert_eq!(
            events
                .iter()
                .map(|e| e.id.as_str())
                .collect::<HashSet<_>>()
                .len(),
            events.len()
        );
        assert!(events.iter().all(|e| e.validate(now).is_empty()));
        assert!(
            orders.iter().all(|o| o.validate(now).is_empty()),
            "{:?}",
            orders.iter().find(|o| !o.validate(now).is_empty())
        );
        assert!(users.iter().all(|u| u.validate(now).is_empty()));
        // Every kind of event occurs; views dominate.
        let mut kinds: HashMap<EventType, usize> = HashMap::new();
        for e in &events {
            *kinds.entry(e.kind).or_default() += 1;
        }
        assert_eq!(kinds.len(), EventType::ALL.len(), "{kinds:?}");
        assert!(kinds[&EventType::View] > kinds[&EventType::AddToCart] * 3);
        // Offline orders and returns exist; anonymous browsing exists.
        assert!(orders
            .iter()
            .any(|o| o.channel == Channel::Store && o.store_id.is_some()));
        assert!(events
            .iter()
            .any(|e| e.user_id.is_none() && e.device_id.is_some()));
        assert!(orders.iter().all(|o| o.kind == OrderKind::Sale));
        // Some member cards share a phone with an online account.
        assert!(users.iter().any(|u| u.id.as_str().starts_with("card:")));
    }

    #[test]
    fn festivals_peak() {
        let chunks = small();
        let cal = Calendar::year_ending(DemoConfig::default().end);
        let mut per_day: HashMap<NaiveDate, usize> = HashMap::new();
        for e in chunks.iter().flat_map(|c| &c.events) {
            *per_day.entry(cal.local_date(e.time)).or_default() += 1;
        }
        let median = {
            let mut v: Vec<usize> = per_day.values().copied().collect();
            v.sort();
            v[v.len() / 2]
        };
        let d11 = per_day
            .get(&NaiveDate::from_ymd_opt(2026, 11, 11).unwrap_or_default())
            .copied()
            .unwrap_or(0);
        let d618 = per_day
            .get(&NaiveDate::from_ymd_opt(2026, 6, 18).unwrap_or_default())
            .copied()
            .unwrap_or(0);
        assert!(d11 > 3 * median, "双11 {d11} vs median {median}");
        assert!(d618 > 2 * median, "618 {d618} vs median {median}");
    }

    #[test]
    fn popularity_has_a_long_tail() {
        let chunks = small();
        let mut views: HashMap<&str, usize> = HashMap::new();
        for e in chunks
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.kind == EventType::View)
        {
            *views
                .entry(e.sku_id.as_ref().map_or("", |s| s.as_str()))
                .or_default() += 1;
        }
        let mut counts: Vec<usize> = views.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        let top_decile: usize = counts.iter().take(counts.len() / 10).sum();
        assert!(
            top_decile * 10 > total * 4,
            "top 10% of products get {top_decile} of {total} views"
        );
    }
}
