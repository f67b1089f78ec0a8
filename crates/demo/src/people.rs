//! Customers and what they do: a plan per user (cohort, lifetime, activity, interests, home
//! store), then their sessions, orders and events.

use crate::calendar::Calendar;
use crate::catalogue::{Catalogue, CITIES};
use crate::{unit, DemoChunk};
use rand::Rng;
use serde_json::{Map, Value};
use shopgrowth_core::model::{
    Channel, Event, EventType, Gender, Order, OrderKind, OrderLine, OrderStatus, User,
};
use shopgrowth_core::money::allocate;
use shopgrowth_core::pii::Secret;
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::Currency;

/// Average events one session produces (measured on the generator; used to calibrate volume).
pub const EVENTS_PER_SESSION: f64 = 5.4;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "子涵", "梓萱", "浩然", "一诺",
];
const GOOD_REVIEWS: &[&str] = &[
    "质量很好，物流很快，推荐购买",
    "包装精美，送人很有面子",
    "性价比高，会回购",
    "和描述一致，客服态度好",
    "宝宝很喜欢，已经第三次买了",
    "做工不错，尺码合适",
];
const BAD_REVIEWS: &[&str] = &[
    "质量一般，有点失望",
    "物流太慢了，等了一周",
    "和图片差距较大",
    "用了两天就坏了，申请退货",
];

pub struct Plan {
    index: usize,
    pub user: User,
    /// A separate offline member card with the same phone, when the customer has one.
    card: Option<User>,
    /// Day of the window the user registered (negative: before the window).
    registered_day: i64,
    first_active: usize,
    last_active: usize,
    rate: f64,
    interests: [usize; 2],
    home_store: Option<usize>,
    prefers_app: bool,
    expected: f64,
}

impl Plan {
    pub fn expected_sessions(&self) -> f64 {
        self.expected
    }
}

fn phone_of(index: usize) -> String {
    // 1_000_003 is coprime to 10^9, so distinct users get distinct numbers.
    let suffix = (index as u64).wrapping_mul(1_000_003) % 1_000_000_000;
    format!("1{}{suffix:09}", ["3", "5", "7", "8", "9"][index % 5])
}

pub fn plan(index: usize, rng: &mut impl Rng, cal: &Calendar, cat: &Catalogue) -> Plan {
    let days = cal.days() as i64;
    // 35% registered before the window; the rest join through the year (cohorts).
    let registered_day = if rng.random_bool(0.35) {
        -rng.random_range(1..700)
    } else {
        rng.random_range(0..days)
    };
    // Lifetime: a quarter stay; others churn after an exponential time (mean 150 days).
    let lifetime = if rng.random_bool(0.25) {
        days * 2
    } else {
        (-(1.0 - unit(rng)).ln() * 150.0) as i64 + 7
    };
    let first_active = registered_day.max(0) as usize;
    let last_active = (registered_day + lifetime).clamp(0, days - 1) as usize;
    // Activity: log-normal sessions per day, mean about 0.09.
    let z: f64 =
        (-2.0 * unit(rng).max(1e-12).ln()).sqrt() * (2.0 * std::f64::consts::PI * unit(rng)).cos();
    let rate = (0.06f64.ln() + 0.9 * z).exp();
    let (city, tier, _) = CITIES[rng.random_range(0..CITIES.len())];
    let stores = cat.stores_in(city);
    let home_store = if !stores.is_empty() && rng.random_bool(0.3) {
        Some(stores[rng.random_range(0..stores.len())])
    } else {
        None
    };
    let gender = if rng.random_bool(0.58) {
        Gender::Female
    } else {
        Gender::Male
    };
    let birthday = chrono::NaiveDate::from_ymd_opt(
        rng.random_range(1965..2006),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    );
    let name = format!(
        "{}{}",
        SURNAMES[rng.random_range(0..SURNAMES.len())],
        GIVEN[rng.random_range(0..GIVEN.len())]
    );
    let phone = phone_of(index);
    let registered_at =
        cal.instant(0, 0).0 + registered_day * 86_400_000 + rng.random_range(0..86_400_000);
    let registration_channel = [
        Channel::App,
        Channel::App,
        Channel::MiniProgram,
        Channel::Web,
    ][rng.random_range(0..4)];
    let mut attributes = Map::new();
    attributes.insert("member_level".into(), Value::from(rng.random_range(1..=5)));
    let user = User {
        id: format!("u{index:06}").into(),
        phone: Some(Secret::new(phone.clone())),
        email: rng
            .random_bool(0.55)
            .then(|| Secret::new(format!("user{index}@example.com"))),
        name: Some(Secret::new(name.clone())),
        gender: Some(gender),
        birthday,
        city: Some(city.to_owned()),
        city_tier: Some(tier),
        registration_channel: Some(registration_channel),
        registered_at: Some(Timestamp(registered_at)),
        attributes,
    };
    let card = (home_store.is_some() && rng.random_bool(0.3)).then(|| User {
        id: format!("card:{index:06}").into(),
        phone: Some(Secret::new(phone)),
        email: None,
        name: Some(Secret::new(name)),
        gender: Some(gender),
        birthday: None,
        city: Some(city.to_owned()),
        city_tier: Some(tier),
        registration_channel: Some(Channel::Store),
        registered_at: Some(Timestamp(
            registered_at - 86_400_000 * rng.random_range(30..400),
        )),
        attributes: Map::new(),
    });
    let tops = cat.tops();
    let first = rng.random_range(0..tops);
    let interests = [first, (first + rng.random_range(1..tops)) % tops];
    let expected = rate * cal.weight_between(first_active, last_active)
        + home_store.map_or(0.0, |_| {
            (last_active.saturating_sub(first_active) as f64) / 45.0 * 0.5
        });
    Plan {
        index,
        user,
        card,
        registered_day,
        first_active,
        last_active,
        rate,
        interests,
        home_store,
        prefers_app: rng.random_bool(0.7),
        expected,
    }
}

fn poisson(rng: &mut impl Rng, lambda: f64) -> usize {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        let z = (-2.0 * unit(rng).max(1e-12).ln()).sqrt()
            * (2.0 * std::f64::consts::PI * unit(rng)).cos();
        return (lambda + lambda.sqrt() * z).round().max(0.0) as usize;
    }
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= unit(rng);
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// Seconds after midnight: lunch and evening peaks.
fn time_of_day(rng: &mut impl Rng) -> u32 {
    let r = unit(rng);
    if r < 0.3 {
        rng.random_range(11 * 3600..14 * 3600)
    } else if r < 0.75 {
        rng.random_range(19 * 3600..(23 * 3600 + 1800))
    } else {
        rng.random_range(7 * 3600..(23 * 3600 + 3000))
    }
}

struct Writer<'a> {
    plan: &'a Plan,
    chunk: &'a mut DemoChunk,
    events: usize,
    orders: usize,
}

impl Writer<'_> {
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        kind: EventType,
        time: i64,
        user: Option<&str>,
        device: Option<&str>,
        channel: Channel,
        sku: Option<&str>,
    ) -> &mut Event {
        self.events += 1;
        self.chunk.events.push(Event {
            id: format!("ev{:06}-{}", self.plan.index, self.events).into(),
            kind,
            time: Timestamp(time),
            user_id: user.map(Into::into),
            device_id: device.map(Into::into),
            channel,
            sku_id: sku.map(Into::into),
            store_id: None,
            order_id: None,
            query: None,
            text: None,
            rating: None,
            properties: Map::new(),
        });
        let last = self.chunk.events.len() - 1;
        &mut self.chunk.events[last]
    }

    fn order_id(&mut self) -> String {
        self.orders += 1;
        format!("o{:06}-{}", self.plan.index, self.orders)
    }
}

/// Who bought what, where and when.
struct Sale<'a> {
    id: String,
    buyer: &'a str,
    channel: Channel,
    store: Option<String>,
    time: i64,
    festival: bool,
}

/// Builds an order; on festival days 满300减30 per every 300 元, allocated to lines exactly.
fn order(sale: Sale<'_>, items: &[(usize, i64)], cat: &Catalogue) -> Order {
    let Sale {
        id,
        buyer,
        channel,
        store,
        time,
        festival,
    } = sale;
    let mut lines: Vec<OrderLine> = items
        .iter()
        .map(|&(p, quantity)| OrderLine {
            sku_id: cat.products[p].id.clone(),
            quantity,
            unit_price: cat.products[p].price,
            discount: 0,
            title: Some(cat.products[p].title.clone()),
        })
        .collect();
    let gross: Vec<i64> = lines.iter().map(|l| l.quantity * l.unit_price).collect();
    let subtotal: i64 = gross.iter().sum();
    let mut coupon_codes = Vec::new();
    if festival && subtotal >= 30_000 {
        let discount = subtotal / 30_000 * 3_000;
        for (line, share) in lines.iter_mut().zip(allocate(discount, &gross)) {
            line.discount = share;
        }
        coupon_codes.push("FESTIVAL-300-30".to_owned());
    }
    let shipping_fee = if channel == Channel::Store || subtotal >= 9_900 {
        0
    } else {
        800
    };
    Order {
        id: id.into(),
        kind: OrderKind::Sale,
        status: OrderStatus::Completed,
        user_id: Some(buyer.into()),
        device_id: None,
        store_id: store.map(Into::into),
        channel,
        currency: Currency::CNY,
        placed_at: Timestamp(time),
        lines,
        shipping_fee,
        coupon_codes,
        original_order_id: None,
        total: None,
    }
}

pub fn live(
    plan: &Plan,
    rng: &mut impl Rng,
    cal: &Calendar,
    cat: &Catalogue,
    scale: f64,
    chunk: &mut DemoChunk,
) {
    chunk.users.push(plan.user.clone());
    if let Some(card) = &plan.card {
        chunk.users.push(card.clone());
    }
    let user_id = plan.user.id.0.clone();
    let device = format!("dev-{:06}", plan.index);
    let mut w = Writer {
        plan,
        chunk,
        events: 0,
        orders: 0,
    };

    // Anonymous browsing in the days before sign-up, then the sign-up session links the device.
    if plan.registered_day >= 0 {
        let reg = plan.registered_day as usize;
        for _ in 0..rng.random_range(0..3) {
            let day = reg.saturating_sub(rng.random_range(1..7));
            let mut t = cal.instant(day, time_of_day(rng)).0;
            for _ in 0..rng.random_range(1..4) {
                let p = cat.pick_in(rng, plan.interests[0]);
                w.event(
                    EventType::View,
                    t,
                    None,
                    Some(&device),
                    Channel::App,
                    Some(cat.products[p].id.as_str()),
                );
                t += rng.random_range(10_000..90_000);
            }
        }
        let t = plan
            .user
            .registered_at
            .map_or(cal.instant(reg, 43_200).0, |r| r.0);
        w.event(
            EventType::SignIn,
            t,
            Some(&user_id),
            Some(&device),
            Channel::App,
            None,
        );
    }

    let sessions = poisson(
        rng,
        plan.rate * cal.weight_between(plan.first_active, plan.last_active) * scale,
    );
    for _ in 0..sessions {
        let day = cal.sample_day(rng, plan.first_active, plan.last_active);
        let festival = cal.is_festival(day);
        let channel = if plan.prefers_app {
            [Channel::App, Channel::App, Channel::MiniProgram][rng.random_range(0..3)]
        } else {
            Channel::Web
        };
        let dev = (channel != Channel::Web).then_some(device.as_str());
        let mut t = cal.instant(day, time_of_day(rng)).0;
        let step = |rng: &mut dyn rand::RngCore| rng.random_range(8_000..120_000);
        if rng.random_bool(0.05) {
            let e = w.event(
                EventType::MessageClick,
                t,
                Some(&user_id),
                dev,
                channel,
                None,
            );
            e.properties.insert(
                "campaign".into(),
                Value::String(if festival { "festival" } else { "weekly" }.into()),
            );
            t += step(rng);
        }
        if channel == Channel::App && rng.random_bool(0.35) {
            w.event(EventType::SignIn, t, Some(&user_id), dev, channel, None);
            t += step(rng);
        }
        let top = if rng.random_bool(0.75) {
            plan.interests[rng.random_range(0..2)]
        } else {
            rng.random_range(0..cat.tops())
        };
        if rng.random_bool(0.25) {
            let q = cat.search_term(rng, top);
            w.event(EventType::Search, t, Some(&user_id), dev, channel, None)
                .query = Some(q);
            t += step(rng);
        }
        let views = 1 + poisson(rng, if festival { 3.5 } else { 2.5 });
        let mut cart: Vec<usize> = Vec::new();
        for _ in 0..views {
            let p = if rng.random_bool(0.85) {
                cat.pick_in(rng, top)
            } else {
                cat.pick_any(rng)
            };
            let sku = cat.products[p].id.0.clone();
            w.event(EventType::View, t, Some(&user_id), dev, channel, Some(&sku));
            t += step(rng);
            if rng.random_bool(0.05) {
                w.event(
                    EventType::Favorite,
                    t,
                    Some(&user_id),
                    dev,
                    channel,
                    Some(&sku),
                );
                t += step(rng);
            }
            if rng.random_bool(if festival { 0.2 } else { 0.13 }) {
                w.event(
                    EventType::AddToCart,
                    t,
                    Some(&user_id),
                    dev,
                    channel,
                    Some(&sku),
                );
                t += step(rng);
                cart.push(p);
            }
            if rng.random_bool(0.02) {
                w.event(
                    EventType::Share,
                    t,
                    Some(&user_id),
                    dev,
                    channel,
                    Some(&sku),
                );
                t += step(rng);
            }
        }
        if cart.len() > 1 && rng.random_bool(0.15) {
            let removed = cart.remove(rng.random_range(0..cart.len()));
            w.event(
                EventType::RemoveFromCart,
                t,
                Some(&user_id),
                dev,
                channel,
                Some(cat.products[removed].id.as_str()),
            );
            t += step(rng);
        }
        if !cart.is_empty() && rng.random_bool(if festival { 0.55 } else { 0.35 }) {
            cart.dedup();
            let items: Vec<(usize, i64)> = cart
                .iter()
                .map(|&p| (p, if rng.random_bool(0.85) { 1 } else { 2 }))
                .collect();
            let id = w.order_id();
            let sale = Sale {
                id: id.clone(),
                buyer: &user_id,
                channel,
                store: None,
                time: t,
                festival,
            };
            let o = order(sale, &items, cat);
            w.chunk.orders.push(o);
            w.event(EventType::Purchase, t, Some(&user_id), dev, channel, None)
                .order_id = Some(id.clone().into());
            if rng.random_bool(0.04) {
                let later = t + rng.random_range(3..10) * 86_400_000;
                if later < cal.instant(cal.days() - 1, 86_399).0 {
                    w.event(EventType::Refund, later, Some(&user_id), dev, channel, None)
                        .order_id = Some(id.into());
                }
            } else if rng.random_bool(0.18) {
                let later = t + rng.random_range(2..6) * 86_400_000;
                if later < cal.instant(cal.days() - 1, 86_399).0 {
                    let good = rng.random_bool(0.85);
                    let text = if good {
                        GOOD_REVIEWS[rng.random_range(0..GOOD_REVIEWS.len())]
                    } else {
                        BAD_REVIEWS[rng.random_range(0..BAD_REVIEWS.len())]
                    };
                    let rating = if good {
                        rng.random_range(4..=5)
                    } else {
                        rng.random_range(1..=3)
                    };
                    let sku = cat.products[items[0].0].id.0.clone();
                    let e = w.event(
                        EventType::Review,
                        later,
                        Some(&user_id),
                        dev,
                        channel,
                        Some(&sku),
                    );
                    e.rating = Some(rating);
                    e.text = Some(text.to_owned());
                }
            }
        }
    }

    // Offline purchases at the home store, by the member card when the customer has one.
    if let Some(store) = plan.home_store {
        let store_id = cat.stores[store].id.0.clone();
        let buyer = plan
            .card
            .as_ref()
            .map_or(user_id.clone(), |c| c.id.0.clone());
        let active_days = plan.last_active.saturating_sub(plan.first_active) as f64;
        for _ in 0..poisson(rng, active_days / 45.0 * scale * 0.5) {
            let day = cal.sample_day(rng, plan.first_active, plan.last_active);
            let t = cal.instant(day, rng.random_range(10 * 3600..21 * 3600)).0;
            let items: Vec<(usize, i64)> = (0..rng.random_range(1..4))
                .map(|_| (cat.pick_in(rng, plan.interests[0]), 1))
                .collect();
            let mut items = items;
            items.sort_unstable();
            items.dedup_by_key(|i| i.0);
            let id = w.order_id();
            let sale = Sale {
                id: id.clone(),
                buyer: &buyer,
                channel: Channel::Store,
                store: Some(store_id.clone()),
                time: t,
                festival: cal.is_festival(day),
            };
            let o = order(sale, &items, cat);
            w.chunk.orders.push(o);
            let e = w.event(
                EventType::Purchase,
                t,
                Some(&buyer),
                None,
                Channel::Store,
                None,
            );
            e.order_id = Some(id.into());
            e.store_id = Some(store_id.clone().into());
        }
    }
}
