//! Cart pricing: the best legal combination of promotions for a cart, exact to the cent.
//!
//! [`price`] takes a cart (lines, shipping, codes presented), the customer, and the live
//! promotions, and returns a [`Quote`]: every line's discount, the totals, what each applied
//! promotion gave and to which lines, and for every other promotion why not ("满300减40: 还差
//! ¥12.50").
//!
//! - **Rules**: direct price cut, 满减 (single or tiered, per store or across stores), per-every
//!   满减 (每满 X 减 Y, capped), percent off (threshold, cap), N-th item off, buy X get Y (cheapest
//!   units free, repeating), gift with purchase (adds the item), bundle price, member price, free
//!   shipping. See [`Rule`].
//! - **Stacking**: a promotion is exclusive (alone), or in a category; at most one promotion of a
//!   category applies unless the category is joint. Promotions apply in priority order (then id),
//!   each on the original prices or on the prices after those before it ([`Base`]).
//! - **Choice**: every legal combination of the promotions that could apply is evaluated and the one
//!   giving the customer the most (discounts, free shipping, gift value) wins; ties go to fewer
//!   promotions, then to the smaller ids. Beyond [`MAX_COMBINATIONS`] the combination is built
//!   greedily by priority instead (reported in the quote).
//! - **Exactness**: money is integer minor units. A discount over several lines is split in
//!   proportion to their current amounts with [`shopgrowth_core::money::allocate`] (largest
//!   remainder, ties to the earlier line in the canonical order: SKU, unit price, quantity, store),
//!   so it sums to the cent and does not depend on the order lines were given in. Percentages round
//!   half up. No discount exceeds what is left of the lines it applies to, so no line and no total
//!   goes negative.

use serde::{Deserialize, Serialize};
use shopgrowth_core::money::allocate_into;
use std::collections::{BTreeMap, BTreeSet};

/// Most combinations evaluated before falling back to the greedy choice.
pub const MAX_COMBINATIONS: usize = 4096;

/// Basis points in a whole (10000 bp = 100%).
const BP: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub quantity: i64,
    /// Minor units.
    pub unit_price: i64,
    /// Category path from the root, e.g. `["母婴", "奶粉"]`.
    #[serde(default)]
    pub category: Vec<String>,
    #[serde(default)]
    pub store: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub lines: Vec<CartLine>,
    #[serde(default)]
    pub shipping_fee: i64,
    /// Promotion codes the customer entered.
    #[serde(default)]
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub segments: BTreeSet<String>,
    /// Sale orders so far (0: a new customer).
    #[serde(default)]
    pub orders: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub threshold: i64,
    pub off: i64,
}

/// What a promotion gives. Amounts in minor units; percentages in basis points (1500 = 15% off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    /// 直降: each unit of the lines in scope costs this much less.
    PriceCut { off_per_unit: i64 },
    /// 满减: the highest tier reached by the lines in scope (per store unless across stores).
    Threshold {
        tiers: Vec<Tier>,
        #[serde(default)]
        across_stores: bool,
    },
    /// 每满 X 减 Y, at most `cap` in all.
    PerEvery {
        every: i64,
        off: i64,
        #[serde(default)]
        cap: Option<i64>,
        #[serde(default)]
        across_stores: bool,
    },
    /// 折扣: percent off the lines in scope once they reach `threshold`, at most `cap`.
    PercentOff {
        percent_bp: i64,
        #[serde(default)]
        threshold: i64,
        #[serde(default)]
        cap: Option<i64>,
    },
    /// 第N件X折: every `nth` unit of a SKU is `percent_bp` off.
    NthItemOff { nth: i64, percent_bp: i64 },
    /// 买X送Y: of every `buy + get` units in scope (dearest first), the `get` cheapest are free;
    /// repeats, at most `max_times` times.
    BuyXGetY {
        buy: i64,
        get: i64,
        #[serde(default)]
        max_times: Option<i64>,
    },
    /// 满赠: the lines in scope reaching `threshold` add the item, free.
    Gift {
        threshold: i64,
        sku: String,
        value: i64,
    },
    /// 组合价: one of each SKU together costs `price`; as many bundles as the cart holds.
    Bundle { skus: Vec<String>, price: i64 },
    /// 会员价: customers of these tiers pay these unit prices.
    MemberPrice {
        tiers: Vec<String>,
        prices: BTreeMap<String, i64>,
    },
    /// 包邮: the lines in scope reaching `threshold` ship free.
    FreeShipping {
        #[serde(default)]
        threshold: i64,
    },
}

/// Which lines a promotion looks at; empty lists mean no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub skus: Vec<String>,
    /// A line matches a category if any element of its path equals it.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub stores: Vec<String>,
    #[serde(default)]
    pub exclude_skus: Vec<String>,
    #[serde(default)]
    pub exclude_categories: Vec<String>,
}

impl Scope {
    pub fn contains(&self, line: &CartLine) -> bool {
        let in_category = |cats: &[String]| line.category.iter().any(|c| cats.contains(c));
        (self.skus.is_empty() || self.skus.contains(&line.sku))
            && (self.categories.is_empty() || in_category(&self.categories))
            && (self.stores.is_empty()
                || line.store.as_ref().is_some_and(|s| self.stores.contains(s)))
            && !self.exclude_skus.contains(&line.sku)
            && !in_category(&self.exclude_categories)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Applies alone, never with another promotion.
    Exclusive,
    /// At most one promotion of the category applies, unless it is joint.
    Category {
        name: String,
        #[serde(default)]
        joint: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// On the prices after the promotions applied before it.
    #[default]
    Discounted,
    /// On the original prices (still never more than what is left).
    Original,
}

/// Who a promotion is for; empty lists mean everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Any of these segments.
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub new_customers_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: String,
    pub name: String,
    pub rule: Rule,
    #[serde(default)]
    pub scope: Scope,
    pub stacking: Stacking,
    /// Lower applies first.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub base: Base,
    #[serde(default)]
    pub audience: Audience,
    /// The code the customer must enter, if any (case-insensitive).
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub original: i64,
    pub discount: i64,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GiftItem {
    pub promotion: String,
    pub sku: String,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub id: String,
    pub name: String,
    pub discount: i64,
    pub shipping_discount: i64,
    pub gift_value: i64,
    /// (line index as given, amount) for each line it discounted.
    pub allocation: Vec<(usize, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotApplied {
    pub id: String,
    pub name: String,
    /// `audience`, `code_missing`, `no_lines`, `not_reached`, `not_chosen`.
    pub code: &'static str,
    pub message: String,
    /// How much more the lines in scope must reach, when that is the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub lines: Vec<QuotedLine>,
    pub gifts: Vec<GiftItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub shipping_fee: i64,
    pub shipping_discount: i64,
    pub total: i64,
    pub applied: Vec<Applied>,
    pub not_applied: Vec<NotApplied>,
    /// Partial combinations the search looked at.
    pub combinations: usize,
    /// The search stopped at [`MAX_COMBINATIONS`]: the quote is the best found, maybe not the best.
    pub cut_short: bool,
}

/// Money as the customer reads it: ¥12.50.
pub fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}¥{}.{:02}", m / 100, m % 100)
}

/// `amount × bp / 10000`, rounded half up (amounts are non-negative).
fn percent_of(amount: i64, bp: i64) -> i64 {
    let x = i128::from(amount) * i128::from(bp.clamp(0, BP));
    ((x + i128::from(BP / 2)) / i128::from(BP)) as i64
}

/// The state a combination is applied to.
#[derive(Debug, Clone)]
struct State {
    /// Current amount of each canonical line.
    amounts: Vec<i64>,
    shipping: i64,
}

/// What one promotion gives on a state. Kept and refilled by the search, so evaluating a
/// promotion allocates nothing once the buffers have grown.
#[derive(Debug, Default, Clone)]
struct Effect {
    /// Per canonical line.
    lines: Vec<(usize, i64)>,
    shipping: i64,
    /// The value of the gift added (its SKU is the rule's), 0 for none.
    gift: i64,
}

impl Effect {
    fn clear(&mut self) {
        self.lines.clear();
        self.shipping = 0;
        self.gift = 0;
    }

    fn apply(&self, state: &mut State) {
        for &(i, d) in &self.lines {
            state.amounts[i] -= d;
        }
        state.shipping -= self.shipping;
    }

    fn undo(&self, state: &mut State) {
        for &(i, d) in &self.lines {
            state.amounts[i] += d;
        }
        state.shipping += self.shipping;
    }

    fn value(&self) -> i64 {
        self.lines.iter().map(|(_, d)| d).sum::<i64>() + self.shipping + self.gift
    }
}

/// Reused working space for evaluating promotions.
#[derive(Debug, Default)]
struct Scratch {
    weights: Vec<i64>,
    parts: Vec<i64>,
    remainders: Vec<(i128, usize)>,
    /// (unit value, canonical line, units) runs for buy X get Y.
    runs: Vec<(i64, usize, i64)>,
    members: Vec<usize>,
}

/// Splits `discount` over `lines` in proportion to their current amounts, never more than is
/// left, into `out`.
fn spread(
    discount: i64,
    lines: &[usize],
    state: &State,
    out: &mut Vec<(usize, i64)>,
    scratch: &mut Scratch,
) {
    scratch.weights.clear();
    scratch
        .weights
        .extend(lines.iter().map(|&i| state.amounts[i]));
    let left: i64 = scratch.weights.iter().sum();
    let discount = discount.clamp(0, left.max(0));
    if discount == 0 {
        return;
    }
    allocate_into(
        discount,
        &scratch.weights,
        &mut scratch.parts,
        &mut scratch.remainders,
    );
    out.extend(
        lines
            .iter()
            .copied()
            .zip(scratch.parts.iter().copied())
            .filter(|(_, d)| *d > 0),
    );
}

/// A promotion that could apply to the cart, with the lines it looks at.
struct Candidate<'a> {
    p: &'a Promotion,
    /// Canonical lines in scope; for a per-store threshold rule, ordered by store so that each
    /// store's lines are one run (in canonical order within it).
    eligible: Vec<usize>,
    /// The runs of `eligible` a threshold rule reads as one: one per store, or one for all.
    groups: Vec<std::ops::Range<usize>>,
}

impl<'a> Candidate<'a> {
    fn new(p: &'a Promotion, mut eligible: Vec<usize>, lines: &[&CartLine]) -> Self {
        let per_store = matches!(
            p.rule,
            Rule::Threshold {
                across_stores: false,
                ..
            } | Rule::PerEvery {
                across_stores: false,
                ..
            }
        );
        let mut groups = Vec::new();
        if per_store {
            eligible.sort_by(|&a, &b| {
                (lines[a].store.as_deref(), a).cmp(&(lines[b].store.as_deref(), b))
            });
            let mut start = 0;
            for k in 1..=eligible.len() {
                if k == eligible.len() || lines[eligible[k]].store != lines[eligible[start]].store {
                    groups.push(start..k);
                    start = k;
                }
            }
        } else {
            groups.push(0..eligible.len());
        }
        Candidate {
            p,
            eligible,
            groups,
        }
    }
}

struct Priced<'a> {
    lines: &'a [&'a CartLine],
    originals: Vec<i64>,
    customer: &'a Customer,
}

/// Units of value `v` at positions `[from, from + n)` of the dearest-first order that are free
/// under buy X get Y: the last `get` of every `buy + get`, in the first `times` rounds.
fn free_units(from: i64, n: i64, buy: i64, size: i64, times: i64) -> i64 {
    let free_before = |x: i64| {
        let x = x.min(times * size);
        (x / size) * (size - buy) + (x % size - buy).max(0)
    };
    free_before(from + n) - free_before(from)
}

impl Priced<'_> {
    /// The amounts a promotion's rule reads: original or current, never above current.
    fn base_of(&self, p: &Promotion, state: &State, i: usize) -> i64 {
        match p.base {
            Base::Original => self.originals[i],
            Base::Discounted => state.amounts[i],
        }
    }

    /// What `c` gives on `state`, into `out` (cleared first).
    fn effect(&self, c: &Candidate<'_>, state: &State, out: &mut Effect, scratch: &mut Scratch) {
        out.clear();
        let (p, eligible) = (c.p, c.eligible.as_slice());
        let lines = self.lines;
        let base_sum = |group: &[usize]| {
            group
                .iter()
                .map(|&i| self.base_of(p, state, i))
                .sum::<i64>()
        };
        match &p.rule {
            Rule::PriceCut { off_per_unit } => {
                for &i in eligible {
                    let d = off_per_unit
                        .saturating_mul(lines[i].quantity)
                        .min(state.amounts[i])
                        .max(0);
                    if d > 0 {
                        out.lines.push((i, d));
                    }
                }
            }
            Rule::Threshold { tiers, .. } => {
                for g in &c.groups {
                    let group = &eligible[g.clone()];
                    let base = base_sum(group);
                    let off = tiers
                        .iter()
                        .filter(|t| base >= t.threshold)
                        .map(|t| t.off)
                        .max()
                        .unwrap_or(0);
                    spread(off, group, state, &mut out.lines, scratch);
                }
            }
            Rule::PerEvery {
                every, off, cap, ..
            } => {
                for g in &c.groups {
                    let group = &eligible[g.clone()];
                    let base = base_sum(group);
                    let mut d = if *every > 0 {
                        (base / every).saturating_mul(*off)
                    } else {
                        0
                    };
                    if let Some(c) = cap {
                        d = d.min(*c);
                    }
                    spread(d, group, state, &mut out.lines, scratch);
                }
            }
            Rule::PercentOff {
                percent_bp,
                threshold,
                cap,
            } => {
                let base = base_sum(eligible);
                if base >= *threshold {
                    let mut d = percent_of(base, *percent_bp);
                    if let Some(c) = cap {
                        d = d.min(*c);
                    }
                    spread(d, eligible, state, &mut out.lines, scratch);
                }
            }
            Rule::NthItemOff { nth, percent_bp } => {
                for &i in eligible {
                    let q = lines[i].quantity;
                    if *nth <= 0 || q < *nth {
                        continue;
                    }
                    let units = q / nth;
                    let base = self.base_of(p, state, i);
                    // The discounted units' share of the line, then the percentage of it.
                    let share = (i128::from(base) * i128::from(units) / i128::from(q)) as i64;
                    let d = percent_of(share, *percent_bp).min(state.amounts[i]);
                    if d > 0 {
                        out.lines.push((i, d));
                    }
                }
            }
            Rule::BuyXGetY {
                buy,
                get,
                max_times,
            } => {
                if *buy < 0 || *get <= 0 {
                    return;
                }
                // Every unit with its value (a line's amount spread over its units, the extra
                // cents on its first units), dearest first, ties by canonical line: as runs of
                // equal units, at most two per line.
                let runs = &mut scratch.runs;
                runs.clear();
                for &i in eligible {
                    let (q, a) = (lines[i].quantity, self.base_of(p, state, i));
                    if q <= 0 {
                        continue;
                    }
                    let counted = q.min(10_000);
                    let dearer = (a % q).min(counted);
                    if dearer > 0 {
                        runs.push((a / q + 1, i, dearer));
                    }
                    if counted > dearer {
                        runs.push((a / q, i, counted - dearer));
                    }
                }
                runs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                let size = buy + get;
                let total: i64 = runs.iter().map(|r| r.2).sum();
                let mut times = total / size;
                if let Some(m) = max_times {
                    times = times.min(*m);
                }
                let mut at = 0;
                let start = out.lines.len();
                for &(v, i, n) in runs.iter() {
                    let free = free_units(at, n, *buy, size, times);
                    at += n;
                    if free == 0 {
                        continue;
                    }
                    match out.lines[start..].iter_mut().find(|(l, _)| *l == i) {
                        Some(entry) => entry.1 += free * v,
                        None => out.lines.push((i, free * v)),
                    }
                }
                for entry in &mut out.lines[start..] {
                    entry.1 = entry.1.min(state.amounts[entry.0]);
                }
                out.lines.retain(|(_, d)| *d > 0);
            }
            Rule::Gift {
                threshold, value, ..
            } => {
                if !eligible.is_empty() && base_sum(eligible) >= *threshold && *value > 0 {
                    out.gift = *value;
                }
            }
            Rule::Bundle { skus, price } => {
                if skus.is_empty() {
                    return;
                }
                // Per bundle SKU: its units and value; as many bundles as the scarcest allows.
                let member = |sku: &String| {
                    eligible
                        .iter()
                        .filter(|&&i| &lines[i].sku == sku)
                        .fold((0i64, 0i64), |(u, v), &i| {
                            (u + lines[i].quantity, v + self.base_of(p, state, i))
                        })
                };
                let bundles = skus.iter().map(|s| member(s).0).min().unwrap_or(0);
                if bundles <= 0 {
                    return;
                }
                let in_bundles: i64 = skus
                    .iter()
                    .map(|s| {
                        let (units, value) = member(s);
                        (i128::from(value) * i128::from(bundles) / i128::from(units)) as i64
                    })
                    .sum();
                let d = in_bundles - price.saturating_mul(bundles);
                let mut all = std::mem::take(&mut scratch.members);
                all.clear();
                for sku in skus {
                    all.extend(eligible.iter().copied().filter(|&i| &lines[i].sku == sku));
                }
                spread(d, &all, state, &mut out.lines, scratch);
                scratch.members = all;
            }
            Rule::MemberPrice { tiers, prices } => {
                if !self
                    .customer
                    .tier
                    .as_ref()
                    .is_some_and(|t| tiers.contains(t))
                {
                    return;
                }
                for &i in eligible {
                    if let Some(&price) = prices.get(&lines[i].sku) {
                        let d = (self.base_of(p, state, i)
                            - price.saturating_mul(lines[i].quantity))
                        .min(state.amounts[i]);
                        if d > 0 {
                            out.lines.push((i, d));
                        }
                    }
                }
            }
            Rule::FreeShipping { threshold } => {
                if !eligible.is_empty() && base_sum(eligible) >= *threshold {
                    out.shipping = state.shipping;
                }
            }
        }
    }

    /// Why a promotion gives nothing even on the original prices (its shortfall, when it is one).
    fn not_reached(&self, p: &Promotion, eligible: &[usize]) -> (String, Option<i64>) {
        let base: i64 = eligible.iter().map(|&i| self.originals[i]).sum();
        let short = |threshold: i64| (threshold - base).max(0);
        match &p.rule {
            Rule::Threshold { tiers, .. } => {
                let first = tiers.iter().min_by_key(|t| t.threshold);
                match first {
                    Some(t) => (
                        format!("{}: 还差 {}", p.name, yuan(short(t.threshold))),
                        Some(short(t.threshold)),
                    ),
                    None => (format!("{}: 没有档位", p.name), None),
                }
            }
            Rule::PerEvery { every, .. } => (
                format!("{}: 还差 {}", p.name, yuan(short(*every))),
                Some(short(*every)),
            ),
            Rule::PercentOff { threshold, .. }
            | Rule::Gift { threshold, .. }
            | Rule::FreeShipping { threshold } => (
                format!("{}: 还差 {}", p.name, yuan(short(*threshold))),
                Some(short(*threshold)),
            ),
            Rule::NthItemOff { nth, .. } => {
                (format!("{}: 同一商品买满 {nth} 件可享", p.name), None)
            }
            Rule::BuyXGetY { buy, get, .. } => {
                let units: i64 = eligible.iter().map(|&i| self.lines[i].quantity).sum();
                (
                    format!("{}: 再买 {} 件可享", p.name, (buy + get - units).max(1)),
                    None,
                )
            }
            Rule::Bundle { skus, .. } => {
                let missing: Vec<&str> = skus
                    .iter()
                    .filter(|s| !eligible.iter().any(|&i| &&self.lines[i].sku == s))
                    .map(String::as_str)
                    .collect();
                (format!("{}: 还缺 {}", p.name, missing.join("、")), None)
            }
            Rule::MemberPrice { .. } => (format!("{}: 仅限会员等级", p.name), None),
            Rule::PriceCut { .. } => (format!("{}: 没有可减的金额", p.name), None),
        }
    }
}

/// Branch and bound over the non-exclusive candidates in application order: each is taken or
/// left; a branch is dropped when even the best the rest could add alone cannot beat the best
/// found (ties: fewer promotions, then smaller ids). One state is changed and changed back as
/// the search goes down and up, and each candidate's effect is evaluated into its own buffer.
struct Search<'a, 'b> {
    priced: &'b Priced<'a>,
    candidates: &'b [Candidate<'a>],
    standalone: &'b [i64],
    /// Each candidate's non-joint category as a bit (0 for exclusive or joint ones).
    category_bit: Vec<u64>,
    /// From each position on: the sum of joint candidates' values, and per non-joint category
    /// (by bit index, `categories` per position) the largest value.
    joint_rest: Vec<i64>,
    category_rest: Vec<i64>,
    categories: usize,
    best: Option<(i64, Vec<usize>)>,
    nodes: usize,
    cut_short: bool,
    state: State,
    effects: Vec<Effect>,
    scratch: Scratch,
}

impl<'a, 'b> Search<'a, 'b> {
    fn new(
        priced: &'b Priced<'a>,
        candidates: &'b [Candidate<'a>],
        standalone: &'b [i64],
        start: State,
    ) -> Self {
        let mut names: Vec<&str> = Vec::new();
        let category_bit: Vec<u64> = candidates
            .iter()
            .map(|c| match &c.p.stacking {
                Stacking::Category { name, joint: false } => {
                    let k = names.iter().position(|n| n == name).unwrap_or_else(|| {
                        names.push(name);
                        names.len() - 1
                    });
                    1u64 << k.min(63)
                }
                _ => 0,
            })
            .collect();
        let n = candidates.len();
        let k = names.len().min(64);
        let mut joint_rest = vec![0; n + 1];
        let mut category_rest = vec![0; (n + 1) * k];
        for c in (0..n).rev() {
            joint_rest[c] = joint_rest[c + 1];
            category_rest.copy_within((c + 1) * k..(c + 2) * k, c * k);
            match &candidates[c].p.stacking {
                Stacking::Category { joint: true, .. } => joint_rest[c] += standalone[c],
                Stacking::Category { .. } => {
                    let slot = c * k + category_bit[c].trailing_zeros() as usize;
                    category_rest[slot] = category_rest[slot].max(standalone[c]);
                }
                Stacking::Exclusive => {}
            }
        }
        Search {
            priced,
            candidates,
            standalone,
            category_bit,
            joint_rest,
            category_rest,
            categories: k,
            best: None,
            nodes: 0,
            cut_short: false,
            state: start,
            effects: (0..n).map(|_| Effect::default()).collect(),
            scratch: Scratch::default(),
        }
    }

    /// Keeps `set` if it beats the best so far (copied only then).
    fn offer(&mut self, value: i64, set: &[usize]) {
        let ids = |s: &[usize]| {
            s.iter()
                .map(|&c| self.candidates[c].p.id.as_str())
                .collect::<Vec<_>>()
        };
        let better = match &self.best {
            None => true,
            Some((v, s)) => {
                value > *v
                    || (value == *v
                        && (set.len() < s.len() || (set.len() == s.len() && ids(set) < ids(s))))
            }
        };
        if better {
            let mut kept = self.best.take().map(|b| b.1).unwrap_or_default();
            kept.clear();
            kept.extend_from_slice(set);
            self.best = Some((value, kept));
        }
    }

    /// The most the candidates from `from` on could add, given the categories already used.
    fn bound(&self, from: usize, used: u64) -> i64 {
        let k = self.categories;
        self.joint_rest[from]
            + self.category_rest[from * k..(from + 1) * k]
                .iter()
                .enumerate()
                .filter(|(c, _)| used >> c & 1 == 0)
                .map(|(_, v)| v)
                .sum::<i64>()
    }

    fn branch(&mut self, from: usize, value: i64, chosen: &mut Vec<usize>, used: u64) {
        self.nodes += 1;
        if self.nodes > MAX_COMBINATIONS {
            self.cut_short = true;
            return;
        }
        if !chosen.is_empty() {
            self.offer(value, chosen);
        }
        if from == self.candidates.len() {
            return;
        }
        if let Some((best, set)) = &self.best {
            let bound = value + self.bound(from, used);
            if bound < *best || (bound == *best && chosen.len() >= set.len()) {
                return;
            }
        }
        let c = &self.candidates[from];
        let bit = self.category_bit[from];
        if c.p.stacking != Stacking::Exclusive && used & bit == 0 && self.standalone[from] > 0 {
            let mut e = std::mem::take(&mut self.effects[from]);
            self.priced
                .effect(c, &self.state, &mut e, &mut self.scratch);
            let gain = e.value();
            if gain > 0 {
                e.apply(&mut self.state);
                chosen.push(from);
                self.branch(from + 1, value + gain, chosen, used | bit);
                chosen.pop();
                e.undo(&mut self.state);
            }
            self.effects[from] = e;
        }
        self.branch(from + 1, value, chosen, used);
    }
}

/// Whether two promotions may not apply together.
fn clash(a: &Promotion, b: &Promotion) -> bool {
    match (&a.stacking, &b.stacking) {
        (Stacking::Exclusive, _) | (_, Stacking::Exclusive) => true,
        (
            Stacking::Category {
                name: x,
                joint: false,
            },
            Stacking::Category {
                name: y,
                joint: false,
            },
        ) => x == y,
        _ => false,
    }
}

/// Whether a set of promotions may apply together: no two clash.
#[cfg(test)]
fn is_legal(chosen: &[&Promotion]) -> bool {
    chosen
        .iter()
        .enumerate()
        .all(|(i, a)| chosen[i + 1..].iter().all(|b| !clash(a, b)))
}

/// Prices a cart: the best legal combination of `promotions` for this customer.
pub fn price(cart: &Cart, customer: &Customer, promotions: &[Promotion]) -> Quote {
    quote(cart, customer, promotions, false)
}

/// Applies every promotion that gives something, in priority order, without choosing (the set
/// must be legal): what a given combination is worth. Tests compare [`price`] with it.
pub fn apply_all(cart: &Cart, customer: &Customer, promotions: &[Promotion]) -> Quote {
    quote(cart, customer, promotions, true)
}

/// What the customer gets from a quote: discounts, free shipping and gifts.
pub fn benefit(q: &Quote) -> i64 {
    q.discount + q.shipping_discount + q.gifts.iter().map(|g| g.value).sum::<i64>()
}

fn quote(cart: &Cart, customer: &Customer, promotions: &[Promotion], all: bool) -> Quote {
    // Canonical line order, so nothing depends on the order lines were given in.
    let mut order: Vec<usize> = (0..cart.lines.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&cart.lines[a], &cart.lines[b]);
        (&x.sku, x.unit_price, x.quantity, &x.store, &x.category, a).cmp(&(
            &y.sku,
            y.unit_price,
            y.quantity,
            &y.store,
            &y.category,
            b,
        ))
    });
    let lines: Vec<&CartLine> = order.iter().map(|&i| &cart.lines[i]).collect();
    let originals: Vec<i64> = lines
        .iter()
        .map(|l| l.unit_price.max(0).saturating_mul(l.quantity.max(0)))
        .collect();
    let priced = Priced {
        lines: &lines,
        originals: originals.clone(),
        customer,
    };
    let start = State {
        amounts: originals.clone(),
        shipping: cart.shipping_fee.max(0),
    };
    let codes: BTreeSet<String> = cart.codes.iter().map(|c| c.to_lowercase()).collect();
    let mut not_applied = Vec::new();
    let mut candidates: Vec<(Candidate<'_>, i64)> = Vec::new();
    let mut scratch = Scratch::default();
    let mut effect = Effect::default();
    for p in promotions {
        let a = &p.audience;
        let audience_ok = (a.tiers.is_empty()
            || customer.tier.as_ref().is_some_and(|t| a.tiers.contains(t)))
            && (a.segments.is_empty() || a.segments.iter().any(|s| customer.segments.contains(s)))
            && (!a.new_customers_only || customer.orders == 0);
        if !audience_ok {
            not_applied.push(NotApplied {
                id: p.id.clone(),
                name: p.name.clone(),
                code: "audience",
                message: format!("{}: 不适用于该顾客", p.name),
                shortfall: None,
            });
            continue;
        }
        if let Some(code) = &p.code {
            if !codes.contains(&code.to_lowercase()) {
                not_applied.push(NotApplied {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    code: "code_missing",
                    message: format!("{}: 需要输入优惠码", p.name),
                    shortfall: None,
                });
                continue;
            }
        }
        // One allocation of the right size (collecting a filter grows it step by step).
        let mut eligible: Vec<usize> = Vec::with_capacity(lines.len());
        eligible
            .extend((0..lines.len()).filter(|&i| p.scope.contains(lines[i]) && originals[i] > 0));
        if eligible.is_empty() && !matches!(p.rule, Rule::FreeShipping { .. }) {
            not_applied.push(NotApplied {
                id: p.id.clone(),
                name: p.name.clone(),
                code: "no_lines",
                message: format!("{}: 购物车中没有适用商品", p.name),
                shortfall: None,
            });
            continue;
        }
        // Rules only give less on lower prices, so nothing on the original prices is never.
        // What each gives alone on the original prices is also no more than it can give in any
        // combination (and never more than is left), so it bounds the search.
        let candidate = Candidate::new(p, eligible, &lines);
        priced.effect(&candidate, &start, &mut effect, &mut scratch);
        let standalone = effect.value();
        if standalone == 0 {
            let (message, shortfall) = priced.not_reached(p, &candidate.eligible);
            not_applied.push(NotApplied {
                id: p.id.clone(),
                name: p.name.clone(),
                code: "not_reached",
                message,
                shortfall,
            });
            continue;
        }
        candidates.push((candidate, standalone));
    }
    candidates.sort_by(|a, b| (a.0.p.priority, &a.0.p.id).cmp(&(b.0.p.priority, &b.0.p.id)));
    let (candidates, standalone): (Vec<Candidate<'_>>, Vec<i64>) = candidates.into_iter().unzip();

    let n = candidates.len();
    let (best, tried, cut_short) = if all {
        (Some((0, (0..n).collect::<Vec<_>>())), 0, false)
    } else {
        let mut search = Search::new(&priced, &candidates, &standalone, start.clone());
        // Exclusive promotions stand alone; the others are searched together.
        for c in 0..n {
            if candidates[c].p.stacking == Stacking::Exclusive {
                search.offer(standalone[c], &[c]);
            }
        }
        search.branch(0, 0, &mut Vec::new(), 0);
        (search.best, search.nodes, search.cut_short)
    };
    let chosen = best.map(|b| b.1).unwrap_or_default();
    // The chosen set, evaluated once more in priority order for its allocation.
    let mut state = start.clone();
    let mut effects: Vec<(usize, Effect)> = Vec::with_capacity(chosen.len());
    for &c in &chosen {
        let mut e = Effect::default();
        priced.effect(&candidates[c], &state, &mut e, &mut scratch);
        e.apply(&mut state);
        effects.push((c, e));
    }

    let chosen_promotions: Vec<&Promotion> = chosen.iter().map(|&c| candidates[c].p).collect();
    for (c, candidate) in candidates.iter().enumerate() {
        if chosen.contains(&c) {
            continue;
        }
        let p = candidate.p;
        let clash = chosen_promotions
            .iter()
            .find(|q| clash(q, p) && q.id != p.id);
        let message = match clash {
            Some(q) => format!("{}: 不与「{}」同享", p.name, q.name),
            None => format!("{}: 已选择更优惠的组合", p.name),
        };
        not_applied.push(NotApplied {
            id: p.id.clone(),
            name: p.name.clone(),
            code: "not_chosen",
            message,
            shortfall: None,
        });
    }

    // Back to the order the lines were given in.
    let mut position = vec![0; order.len()];
    for (canonical, &given) in order.iter().enumerate() {
        position[canonical] = given;
    }
    let mut quoted: Vec<QuotedLine> = cart
        .lines
        .iter()
        .map(|l| QuotedLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            original: 0,
            discount: 0,
            total: 0,
        })
        .collect();
    for (canonical, &given) in order.iter().enumerate() {
        let q = &mut quoted[given];
        q.original = originals[canonical];
        q.total = state.amounts[canonical];
        q.discount = q.original - q.total;
    }
    let mut gifts = Vec::new();
    let applied: Vec<Applied> = effects
        .into_iter()
        .map(|(c, e)| {
            let p = candidates[c].p;
            let mut allocation: Vec<(usize, i64)> =
                e.lines.iter().map(|&(i, d)| (position[i], d)).collect();
            allocation.sort_unstable();
            if let (Rule::Gift { sku, .. }, true) = (&p.rule, e.gift > 0) {
                gifts.push(GiftItem {
                    promotion: p.id.clone(),
                    sku: sku.clone(),
                    value: e.gift,
                });
            }
            Applied {
                id: p.id.clone(),
                name: p.name.clone(),
                discount: e.lines.iter().map(|(_, d)| d).sum(),
                shipping_discount: e.shipping,
                gift_value: e.gift,
                allocation,
            }
        })
        .collect();
    let subtotal: i64 = originals.iter().sum();
    let goods: i64 = state.amounts.iter().sum();
    Quote {
        lines: quoted,
        gifts,
        subtotal,
        discount: subtotal - goods,
        shipping_fee: start.shipping,
        shipping_discount: start.shipping - state.shipping,
        total: goods + state.shipping,
        applied,
        not_applied,
        combinations: tried,
        cut_short,
    }
}

#[cfg(test)]
mod tests;
