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
//! - **Choice**: the legal combination giving the customer the most (discounts, free shipping,
//!   gift value) wins; ties go to fewer promotions, then to the smaller ids. A branch and bound
//!   finds it: it starts from the best of each category plus every joint promotion, and drops a
//!   branch when what each remaining promotion gives alone cannot beat the best found. After
//!   [`MAX_COMBINATIONS`] evaluations it stops with the best found (reported in the quote).
//! - **Compiled once**: [`Pricer`] holds a live set with its scopes interned, so a cart is matched
//!   by comparing numbers; each quote works in a per-thread space and allocates little beyond its
//!   output, and the reasons' texts are written only when read ([`NotApplied::message`]).
//! - **Exactness**: money is integer minor units. A discount over several lines is split in
//!   proportion to their current amounts with [`shopgrowth_core::money::allocate`] (largest
//!   remainder, ties to the earlier line in the canonical order: SKU, unit price, quantity, store),
//!   so it sums to the cent and does not depend on the order lines were given in. Percentages round
//!   half up. No discount exceeds what is left of the lines it applies to, so no line and no total
//!   goes negative.

use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use shopgrowth_core::money::allocate_into;
use shopgrowth_core::FieldError;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

/// Most partial combinations evaluated before the search stops with the best found.
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

impl Cart {
    /// Why the cart cannot be priced, one problem per field (`lines[2].quantity`); empty when
    /// it can. The API and the CLI refuse such a cart rather than price what it might mean.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.lines.is_empty() {
            problems.push(FieldError::new("lines", "the cart has no lines"));
        }
        for (i, l) in self.lines.iter().enumerate() {
            let field = |name: &str| format!("lines[{i}].{name}");
            if l.sku.trim().is_empty() {
                problems.push(FieldError::new(field("sku"), "must not be empty"));
            }
            if l.quantity <= 0 {
                problems.push(FieldError::new(field("quantity"), "must be at least 1"));
            }
            if l.unit_price < 0 {
                problems.push(FieldError::new(field("unit_price"), "must not be negative"));
            } else if l.quantity > 0 && l.quantity.checked_mul(l.unit_price).is_none() {
                problems.push(FieldError::new(
                    field("quantity"),
                    "quantity × unit_price overflows",
                ));
            }
        }
        if self.shipping_fee < 0 {
            problems.push(FieldError::new("shipping_fee", "must not be negative"));
        }
        // The whole cart must be a sum of money the quote can hold.
        let total = self
            .lines
            .iter()
            .try_fold(self.shipping_fee.max(0), |sum, l| {
                sum.checked_add(l.quantity.max(0).checked_mul(l.unit_price.max(0))?)
            });
        if problems.is_empty() && total.is_none() {
            problems.push(FieldError::new(
                "lines",
                "the cart's total overflows a sum of money",
            ));
        }
        problems
    }
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
    /// Promotions this customer has had as often as each allows (每人限享 N 次): not for them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub used_up: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub threshold: i64,
    pub off: i64,
}

/// What a promotion gives. Amounts in minor units; percentages in basis points (1500 = 15% off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Unknown fields are refused here rather than by the input reader: an internally tagged enum is
// read from a buffer the reader cannot see into (a misspelt `threhsold` would be a 折扣 without
// its threshold).
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
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

impl Rule {
    /// Why the rule cannot be run as its operator means it, one problem per field
    /// (`tiers[1].off`); empty when it can. The engine never gives a negative discount whatever
    /// a rule says, but a rule saying 减-50 or 150% off is a mistake to refuse, not to price.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        match self {
            Rule::PriceCut { off_per_unit } => at_least(p, "off_per_unit", *off_per_unit, 1),
            Rule::Threshold { tiers, .. } => {
                if tiers.is_empty() {
                    p.push(FieldError::new("tiers", "at least one tier"));
                }
                for (k, t) in tiers.iter().enumerate() {
                    at_least(p, format!("tiers[{k}].threshold"), t.threshold, 0);
                    at_least(p, format!("tiers[{k}].off"), t.off, 1);
                }
            }
            Rule::PerEvery {
                every, off, cap, ..
            } => {
                at_least(p, "every", *every, 1);
                at_least(p, "off", *off, 1);
                if let Some(cap) = cap {
                    at_least(p, "cap", *cap, 1);
                }
            }
            Rule::PercentOff {
                percent_bp,
                threshold,
                cap,
            } => {
                at_least(p, "threshold", *threshold, 0);
                if let Some(cap) = cap {
                    at_least(p, "cap", *cap, 1);
                }
                percent_bp_in_range(p, *percent_bp);
            }
            Rule::NthItemOff { nth, percent_bp } => {
                at_least(p, "nth", *nth, 1);
                percent_bp_in_range(p, *percent_bp);
            }
            Rule::BuyXGetY {
                buy,
                get,
                max_times,
            } => {
                at_least(p, "buy", *buy, 1);
                at_least(p, "get", *get, 1);
                if let Some(times) = max_times {
                    at_least(p, "max_times", *times, 1);
                }
            }
            Rule::Gift {
                threshold,
                sku,
                value,
            } => {
                at_least(p, "threshold", *threshold, 0);
                at_least(p, "value", *value, 1);
                if sku.trim().is_empty() {
                    p.push(FieldError::new("sku", "must not be empty"));
                }
            }
            Rule::Bundle { skus, price } => {
                at_least(p, "price", *price, 0);
                let distinct: BTreeSet<&str> = skus.iter().map(|s| s.as_str()).collect();
                if !(2..=64).contains(&skus.len()) {
                    p.push(FieldError::new("skus", "2 to 64 SKUs"));
                } else if distinct.len() != skus.len() || distinct.contains("") {
                    p.push(FieldError::new("skus", "distinct, non-empty SKUs"));
                }
            }
            Rule::MemberPrice { tiers, prices } => {
                if tiers.is_empty() {
                    p.push(FieldError::new("tiers", "at least one tier"));
                }
                if prices.is_empty() {
                    p.push(FieldError::new("prices", "at least one SKU's price"));
                }
                for (sku, &price) in prices {
                    at_least(p, format!("prices.{sku}"), price, 0);
                }
            }
            Rule::FreeShipping { threshold } => at_least(p, "threshold", *threshold, 0),
        }
        problems
    }
}

/// Adds a problem unless `value` is at least `least`.
fn at_least(problems: &mut Vec<FieldError>, field: impl Into<String>, value: i64, least: i64) {
    if value < least {
        let reason = match least {
            0 => "must not be negative".to_owned(),
            _ => format!("must be at least {least}"),
        };
        problems.push(FieldError::new(field, reason));
    }
}

/// Adds a problem unless `bp` is a percentage off from 0.01% to 100%.
fn percent_bp_in_range(problems: &mut Vec<FieldError>, bp: i64) {
    if !(1..=BP).contains(&bp) {
        problems.push(FieldError::new(
            "percent_bp",
            "1 to 10000 basis points (10000 is 100% off)",
        ));
    }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Applies alone, never with another promotion.
    Exclusive,
    /// At most `limit` promotions of the category apply to one order (one when not given),
    /// unless it is joint: a joint promotion stacks with anything but exclusive ones. When the
    /// category's promotions name different limits, the smallest holds.
    Category {
        name: String,
        #[serde(default)]
        joint: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
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

impl Promotion {
    /// Why the promotion cannot be run as meant, one problem per field (`rule.tiers[0].off`,
    /// `stacking.limit`); empty when it can.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems: Vec<FieldError> = self
            .rule
            .problems()
            .into_iter()
            .map(|e| e.under("rule"))
            .collect();
        if let Stacking::Category { name, limit, .. } = &self.stacking {
            if name.trim().is_empty() {
                problems.push(FieldError::new("stacking.name", "must not be empty"));
            }
            if limit.is_some_and(|l| l < 1) {
                problems.push(FieldError::new("stacking.limit", "must be at least 1"));
            }
        }
        if self.code.as_ref().is_some_and(|c| c.trim().is_empty()) {
            problems.push(FieldError::new("code", "must not be empty"));
        }
        problems
    }
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
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub discount: i64,
    pub shipping_discount: i64,
    pub gift_value: i64,
    /// (line index as given, amount) for each line it discounted.
    pub allocation: Vec<(usize, i64)>,
}

/// Why a promotion gave nothing. The customer-facing text is [`NotApplied::message`], written
/// when the quote is read or serialised rather than for every promotion of every quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The customer is not in its audience.
    Audience,
    /// The customer has had it as often as it allows.
    UsedUp,
    /// It needs a code the cart did not present.
    CodeMissing,
    /// No line of the cart is in its scope.
    NoLines,
    /// The lines in scope are this much short of its threshold.
    Short(i64),
    /// A 满减 without tiers.
    NoTiers,
    /// N-th item off: no SKU has this many units.
    NthItem(i64),
    /// Buy X get Y: this many more units are needed.
    MoreUnits(i64),
    /// A bundle without some of its SKUs: `missing` has bit k set for `skus[k]`.
    BundleIncomplete { skus: Arc<[String]>, missing: u64 },
    /// Member price, and the customer's tier has none.
    MembersOnly,
    /// A price cut with nothing to cut.
    NothingToCut,
    /// It may not stack with this chosen promotion (its name).
    NotWith(Arc<str>),
    /// A better legal combination left it out.
    Outdone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    pub id: Arc<str>,
    pub name: Arc<str>,
    /// `audience`, `used_up`, `code_missing`, `no_lines`, `not_reached`, `not_chosen`.
    pub code: &'static str,
    pub reason: Reason,
    /// How much more the lines in scope must reach, when that is the reason.
    pub shortfall: Option<i64>,
}

impl NotApplied {
    fn new(p: &Compiled, reason: Reason) -> Self {
        let (code, shortfall) = code_and_shortfall(&reason);
        NotApplied {
            id: p.id.clone(),
            name: p.name.clone(),
            code,
            reason,
            shortfall,
        }
    }

    fn set_reason(&mut self, reason: Reason) {
        (self.code, self.shortfall) = code_and_shortfall(&reason);
        self.reason = reason;
    }

    /// The reason as the customer reads it: "满300减40: 还差 ¥12.50".
    pub fn message(&self) -> String {
        let name = &self.name;
        match &self.reason {
            Reason::Audience => format!("{name}: 不适用于该顾客"),
            Reason::UsedUp => format!("{name}: 每人限享次数已用完"),
            Reason::CodeMissing => format!("{name}: 需要输入优惠码"),
            Reason::NoLines => format!("{name}: 购物车中没有适用商品"),
            Reason::Short(s) => format!("{name}: 还差 {}", yuan(*s)),
            Reason::NoTiers => format!("{name}: 没有档位"),
            Reason::NthItem(nth) => format!("{name}: 同一商品买满 {nth} 件可享"),
            Reason::MoreUnits(n) => format!("{name}: 再买 {n} 件可享"),
            Reason::BundleIncomplete { skus, missing } => {
                let missing: Vec<&str> = skus
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k < 64 && missing >> k & 1 == 1)
                    .map(|(_, s)| s.as_str())
                    .collect();
                format!("{name}: 还缺 {}", missing.join("、"))
            }
            Reason::MembersOnly => format!("{name}: 仅限会员等级"),
            Reason::NothingToCut => format!("{name}: 没有可减的金额"),
            Reason::NotWith(other) => format!("{name}: 不与「{other}」同享"),
            Reason::Outdone => format!("{name}: 已选择更优惠的组合"),
        }
    }
}

/// A reason's code, and the shortfall when that is the reason.
fn code_and_shortfall(reason: &Reason) -> (&'static str, Option<i64>) {
    match reason {
        Reason::Audience => ("audience", None),
        Reason::UsedUp => ("used_up", None),
        Reason::CodeMissing => ("code_missing", None),
        Reason::NoLines => ("no_lines", None),
        Reason::Short(s) => ("not_reached", Some(*s)),
        Reason::NotWith(_) | Reason::Outdone => ("not_chosen", None),
        _ => ("not_reached", None),
    }
}

impl Serialize for NotApplied {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("NotApplied", 5)?;
        st.serialize_field("id", &*self.id)?;
        st.serialize_field("name", &*self.name)?;
        st.serialize_field("code", self.code)?;
        st.serialize_field("message", &self.message())?;
        match self.shortfall {
            Some(v) => st.serialize_field("shortfall", &v)?,
            None => st.skip_field("shortfall")?,
        }
        st.end()
    }
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
    let bp = bp.clamp(0, BP);
    match amount.checked_mul(bp) {
        Some(x) => (x + BP / 2) / BP,
        None => {
            ((i128::from(amount) * i128::from(bp) + i128::from(BP / 2)) / i128::from(BP)) as i64
        }
    }
}

/// `a × b / c` rounded down, for non-negative `a`, `b` and positive `c`.
fn mul_div(a: i64, b: i64, c: i64) -> i64 {
    match a.checked_mul(b) {
        Some(x) => x / c,
        None => (i128::from(a) * i128::from(b) / i128::from(c)) as i64,
    }
}

/// Where a promotion stacks: alone, with anything, or with at most its category's limit of its
/// category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Exclusive,
    Joint,
    /// The index of its (non-joint) category among the set's.
    Single(u32),
}

/// A scope with its SKUs, categories and stores as interned ids (each list sorted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InternedScope {
    skus: Vec<u32>,
    categories: Vec<u32>,
    stores: Vec<u32>,
    exclude_skus: Vec<u32>,
    exclude_categories: Vec<u32>,
}

/// A cart line's SKU, store and categories as the set's ids (`None`: named by no promotion).
#[derive(Debug, Clone)]
struct LineIds {
    sku: Option<u32>,
    store: Option<u32>,
    /// Into [`Work::category_ids`].
    categories: Range<usize>,
}

impl InternedScope {
    /// A line matches a category if any element of its path equals it.
    fn contains(&self, line: &LineIds, categories: &[u32]) -> bool {
        let has =
            |list: &[u32], id: Option<u32>| id.is_some_and(|x| list.binary_search(&x).is_ok());
        let in_category = |list: &[u32]| categories.iter().any(|&c| list.binary_search(&c).is_ok());
        (self.skus.is_empty() || has(&self.skus, line.sku))
            && (self.categories.is_empty() || in_category(&self.categories))
            && (self.stores.is_empty() || has(&self.stores, line.store))
            && !has(&self.exclude_skus, line.sku)
            && !in_category(&self.exclude_categories)
    }
}

/// One promotion as the pricer reads it.
#[derive(Debug, Clone)]
struct Compiled {
    p: Promotion,
    id: Arc<str>,
    name: Arc<str>,
    /// Lowercased.
    code: Option<String>,
    /// Index into [`Pricer::scopes`].
    scope: usize,
    stack: Stack,
    /// A 满减 or 每满减 read store by store.
    per_store: bool,
    /// Bundle: each SKU's id, in the rule's order; and the SKUs for the reason's text.
    bundle: Vec<u32>,
    bundle_skus: Arc<[String]>,
    /// Member price: (SKU id, unit price), sorted by id.
    member_prices: Vec<(u32, i64)>,
    /// Its place in application order (priority, then id) and in id order.
    order_rank: u32,
    id_rank: u32,
}

/// Live promotions compiled once to price many carts: scopes deduplicated, their SKUs, categories
/// and stores interned (a cart is matched by comparing numbers), codes lowercased, stacking
/// categories numbered. [`price`] compiles and prices in one call.
#[derive(Debug, Clone)]
pub struct Pricer {
    promotions: Vec<Compiled>,
    scopes: Vec<InternedScope>,
    skus: HashMap<String, u32>,
    categories: HashMap<String, u32>,
    stores: HashMap<String, u32>,
    /// How many promotions of each (non-joint) category may apply to one order, by its number.
    category_limits: Vec<u32>,
    /// Some promotion is a buy X get Y: carts lay out their unit runs.
    buys_x_gets_y: bool,
}

fn intern(table: &mut HashMap<String, u32>, name: &str) -> u32 {
    let next = table.len() as u32;
    *table.entry(name.to_owned()).or_insert(next)
}

fn intern_all(table: &mut HashMap<String, u32>, names: &[String]) -> Vec<u32> {
    let mut ids: Vec<u32> = names.iter().map(|n| intern(table, n)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Pricer {
    pub fn new(promotions: &[Promotion]) -> Self {
        let (mut skus, mut categories, mut stores) = Default::default();
        let mut scopes: Vec<InternedScope> = Vec::new();
        let mut scope_index: HashMap<InternedScope, usize> = HashMap::default();
        let mut stacking: Vec<&str> = Vec::new();
        // Each category's limit: the smallest its promotions name.
        let mut limits: Vec<u32> = Vec::new();
        let mut compiled: Vec<Compiled> = promotions
            .iter()
            .map(|p| {
                let s = &p.scope;
                let scope = InternedScope {
                    skus: intern_all(&mut skus, &s.skus),
                    categories: intern_all(&mut categories, &s.categories),
                    stores: intern_all(&mut stores, &s.stores),
                    exclude_skus: intern_all(&mut skus, &s.exclude_skus),
                    exclude_categories: intern_all(&mut categories, &s.exclude_categories),
                };
                let scope = *scope_index.entry(scope.clone()).or_insert_with(|| {
                    scopes.push(scope);
                    scopes.len() - 1
                });
                let stack = match &p.stacking {
                    Stacking::Exclusive => Stack::Exclusive,
                    Stacking::Category { joint: true, .. } => Stack::Joint,
                    Stacking::Category { name, limit, .. } => {
                        let limit = limit.unwrap_or(1).max(1);
                        let k = match stacking.iter().position(|n| n == name) {
                            Some(k) => {
                                limits[k] = limits[k].min(limit);
                                k
                            }
                            None => {
                                stacking.push(name);
                                limits.push(limit);
                                stacking.len() - 1
                            }
                        };
                        Stack::Single(k as u32)
                    }
                };
                let (bundle, bundle_skus) = match &p.rule {
                    Rule::Bundle { skus: list, .. } => (
                        list.iter().map(|s| intern(&mut skus, s)).collect(),
                        list.clone().into(),
                    ),
                    _ => (Vec::new(), Arc::from(Vec::new())),
                };
                let mut member_prices: Vec<(u32, i64)> = match &p.rule {
                    Rule::MemberPrice { prices, .. } => prices
                        .iter()
                        .map(|(s, &price)| (intern(&mut skus, s), price))
                        .collect(),
                    _ => Vec::new(),
                };
                member_prices.sort_unstable();
                Compiled {
                    id: p.id.as_str().into(),
                    name: p.name.as_str().into(),
                    code: p.code.as_ref().map(|c| c.to_lowercase()),
                    scope,
                    stack,
                    per_store: matches!(
                        p.rule,
                        Rule::Threshold {
                            across_stores: false,
                            ..
                        } | Rule::PerEvery {
                            across_stores: false,
                            ..
                        }
                    ),
                    bundle,
                    bundle_skus,
                    member_prices,
                    order_rank: 0,
                    id_rank: 0,
                    p: p.clone(),
                }
            })
            .collect();
        let mut by: Vec<usize> = (0..compiled.len()).collect();
        by.sort_by(|&a, &b| (&compiled[a].id, a).cmp(&(&compiled[b].id, b)));
        for (rank, &k) in by.iter().enumerate() {
            compiled[k].id_rank = rank as u32;
        }
        by.sort_by_key(|&k| (compiled[k].p.priority, compiled[k].id_rank));
        for (rank, &k) in by.iter().enumerate() {
            compiled[k].order_rank = rank as u32;
        }
        Pricer {
            category_limits: limits,
            buys_x_gets_y: compiled
                .iter()
                .any(|c| matches!(c.p.rule, Rule::BuyXGetY { .. })),
            promotions: compiled,
            scopes,
            skus,
            categories,
            stores,
        }
    }

    /// The best legal combination of the promotions for this cart and customer.
    pub fn price(&self, cart: &Cart, customer: &Customer) -> Quote {
        self.quote(cart, customer, false)
    }

    fn quote(&self, cart: &Cart, customer: &Customer, all: bool) -> Quote {
        thread_local! {
            static WORK: RefCell<Work> = RefCell::new(Work::default());
        }
        WORK.with(|w| match w.try_borrow_mut() {
            Ok(mut work) => self.quote_in(&mut work, cart, customer, all),
            Err(_) => self.quote_in(&mut Work::default(), cart, customer, all),
        })
    }

    /// The customer is in the promotion's audience and the cart presents its code.
    fn gate(&self, c: &Compiled, customer: &Customer, codes: &[String]) -> Option<Reason> {
        let a = &c.p.audience;
        let audience_ok = (a.tiers.is_empty()
            || customer.tier.as_ref().is_some_and(|t| a.tiers.contains(t)))
            && (a.segments.is_empty() || a.segments.iter().any(|s| customer.segments.contains(s)))
            && (!a.new_customers_only || customer.orders == 0);
        if !audience_ok {
            return Some(Reason::Audience);
        }
        if !customer.used_up.is_empty() && customer.used_up.contains(&c.p.id) {
            return Some(Reason::UsedUp);
        }
        match &c.code {
            Some(code) if !codes.contains(code) => Some(Reason::CodeMissing),
            _ => None,
        }
    }

    fn quote_in(&self, work: &mut Work, cart: &Cart, customer: &Customer, all: bool) -> Quote {
        let Work {
            order,
            ids,
            category_ids,
            quantities,
            originals,
            scope_lines,
            layout,
            candidates,
            memos,
            scratch,
            codes,
            search_space,
            store_ranks,
            distinct_stores,
            store_rank_of,
            kept,
            short_later,
            canonical_of,
            less,
            by_rank,
            start,
            state,
            chosen,
            positions,
        } = work;
        // Canonical line order, so nothing depends on the order lines were given in.
        // Ordered first by the SKU's first eight bytes (as a number: the same order as the
        // bytes'), and only on a tie by the whole line.
        let prefix = |sku: &str| {
            let mut bytes = [0u8; 8];
            let n = sku.len().min(8);
            bytes[..n].copy_from_slice(&sku.as_bytes()[..n]);
            u64::from_be_bytes(bytes)
        };
        order.clear();
        order.extend(
            cart.lines
                .iter()
                .enumerate()
                .map(|(i, l)| (prefix(&l.sku), i)),
        );
        order.sort_unstable();
        if order.windows(2).any(|w| w[0].0 == w[1].0) {
            order.sort_by(|&(pa, a), &(pb, b)| {
                pa.cmp(&pb).then_with(|| {
                    let (x, y) = (&cart.lines[a], &cart.lines[b]);
                    (&x.sku, x.unit_price, x.quantity, &x.store, &x.category, a).cmp(&(
                        &y.sku,
                        y.unit_price,
                        y.quantity,
                        &y.store,
                        &y.category,
                        b,
                    ))
                })
            });
        }
        // Each canonical line's store as its rank among the cart's store names, so per-store
        // rules group lines by comparing numbers.
        store_ranks.clear();
        distinct_stores.clear();
        for &(_, given) in order.iter() {
            let store = cart.lines[given].store.as_deref();
            let known = distinct_stores
                .iter()
                .position(|&k| cart.lines[k].store.as_deref() == store);
            store_ranks.push(known.unwrap_or_else(|| {
                distinct_stores.push(given);
                distinct_stores.len() - 1
            }) as u32);
        }
        if distinct_stores.len() > 1 {
            // Each store's rank: how many of the cart's store names sort before its own.
            let name = |k: usize| cart.lines[distinct_stores[k]].store.as_deref();
            store_rank_of.clear();
            store_rank_of.extend((0..distinct_stores.len()).map(|k| {
                (0..distinct_stores.len())
                    .filter(|&j| name(j) < name(k))
                    .count() as u32
            }));
            for x in store_ranks.iter_mut() {
                *x = store_rank_of[*x as usize];
            }
        }
        ids.clear();
        category_ids.clear();
        quantities.clear();
        originals.clear();
        for &(_, given) in order.iter() {
            let l = &cart.lines[given];
            let start = category_ids.len();
            category_ids.extend(l.category.iter().filter_map(|c| self.categories.get(c)));
            ids.push(LineIds {
                sku: self.skus.get(&l.sku).copied(),
                store: l.store.as_ref().and_then(|s| self.stores.get(s)).copied(),
                categories: start..category_ids.len(),
            });
            quantities.push(l.quantity);
            originals.push(l.unit_price.max(0).saturating_mul(l.quantity.max(0)));
        }
        codes.clear();
        codes.extend(cart.codes.iter().map(|c| c.to_lowercase()));
        scope_lines.clear();
        scope_lines.resize(self.scopes.len(), None);
        layout.flat.clear();
        layout.groups.clear();
        layout.bundle_parts.clear();
        layout.per_line.clear();
        layout.unit_runs.clear();
        candidates.clear();
        if memos.len() < self.promotions.len() {
            memos.resize_with(self.promotions.len(), Memo::default);
        }

        if self.buys_x_gets_y {
            for (i, &q) in quantities.iter().enumerate() {
                // A line of one unit has no extra cents, ever: no dearer run. A dearer run with
                // no units now may gain some as the amount falls, so it stays.
                if originals[i] > 0 {
                    if q > 1 {
                        layout.unit_runs.push(Run::of(i, true, q, originals[i]));
                    }
                    layout.unit_runs.push(Run::of(i, false, q, originals[i]));
                }
            }
            layout
                .unit_runs
                .sort_unstable_by(|a, b| b.value.cmp(&a.value).then(a.tie.cmp(&b.tie)));
        }
        // Which promotions could apply: each one's lines, laid out once.
        let mut not_applied = Vec::with_capacity(self.promotions.len());
        kept.clear();
        for (k, c) in self.promotions.iter().enumerate() {
            if let Some(reason) = self.gate(c, customer, codes) {
                not_applied.push(NotApplied::new(c, reason));
                continue;
            }
            let in_scope = match scope_lines[c.scope].clone() {
                Some(r) => r,
                None => {
                    let start = layout.flat.len();
                    let scope = &self.scopes[c.scope];
                    for (i, line) in ids.iter().enumerate() {
                        if originals[i] > 0
                            && scope.contains(line, &category_ids[line.categories.clone()])
                        {
                            layout.flat.push(i);
                        }
                    }
                    scope_lines[c.scope] = Some(start..layout.flat.len());
                    start..layout.flat.len()
                }
            };
            if in_scope.is_empty() && !matches!(c.p.rule, Rule::FreeShipping { .. }) {
                not_applied.push(NotApplied::new(c, Reason::NoLines));
                continue;
            }
            let mut eligible = in_scope.clone();
            let groups_start = layout.groups.len();
            if c.per_store {
                let start = layout.flat.len();
                layout.flat.extend_from_within(in_scope);
                // By the store's name (its rank among the cart's).
                let store = |i: usize| store_ranks[i];
                layout.flat[start..].sort_unstable_by_key(|&i| (store(i), i));
                let mut from = 0;
                let n = layout.flat.len() - start;
                for k in 1..=n {
                    if k == n || store(layout.flat[start + k]) != store(layout.flat[start + from]) {
                        layout.groups.push(from..k);
                        from = k;
                    }
                }
                eligible = start..layout.flat.len();
            } else {
                layout.groups.push(0..eligible.len());
            }
            let extra = if !c.bundle.is_empty() {
                let parts_start = layout.bundle_parts.len();
                for &sku in &c.bundle {
                    let start = layout.flat.len();
                    for j in eligible.clone() {
                        let i = layout.flat[j];
                        if ids[i].sku == Some(sku) {
                            layout.flat.push(i);
                        }
                    }
                    layout.bundle_parts.push(start..layout.flat.len());
                }
                parts_start..layout.bundle_parts.len()
            } else if let Rule::NthItemOff { nth, .. } = c.p.rule {
                // Only lines with at least `nth` units get anything.
                let start = layout.per_line.len();
                for j in eligible.clone() {
                    let i = layout.flat[j];
                    if nth > 0 && quantities[i] >= nth {
                        layout.per_line.push((i, quantities[i] / nth));
                    }
                }
                start..layout.per_line.len()
            } else if !c.member_prices.is_empty() {
                let start = layout.per_line.len();
                for j in eligible.clone() {
                    let i = layout.flat[j];
                    let price = ids[i].sku.and_then(|s| {
                        c.member_prices
                            .binary_search_by_key(&s, |&(id, _)| id)
                            .ok()
                            .map(|at| c.member_prices[at].1)
                    });
                    if let Some(price) = price {
                        layout.per_line.push((i, price));
                    }
                }
                start..layout.per_line.len()
            } else {
                0..0
            };
            memos[k].valid = false;
            memos[k].units.forget();
            kept.push(Candidate {
                promo: k,
                eligible,
                groups: groups_start..layout.groups.len(),
                extra,
            });
        }
        let priced = Priced {
            pricer: self,
            quantities,
            originals,
            layout,
            customer,
        };
        start.amounts.clone_from(originals);
        start.shipping = cart.shipping_fee.max(0);
        let start = &*start;
        // Rules only give less on lower prices, so nothing on the original prices is never.
        // What each gives alone on the original prices is also no more than it can give in any
        // combination (and never more than is left), so it bounds the search.
        // Candidates go in application order: each into its promotion's place in that order.
        by_rank.clear();
        by_rank.resize(self.promotions.len(), None);
        // A promotion on discounted prices that is short of its threshold is short of it on the
        // amounts it would read taken with the chosen combination: worked out at the end.
        short_later.clear();
        for c in kept.drain(..) {
            let standalone = priced.evaluate(&c, start, &mut memos[c.promo], scratch);
            if standalone == 0 {
                let original = priced.sum_of(&c, originals);
                let p = &self.promotions[c.promo].p;
                let reads_a_sum = matches!(
                    p.rule,
                    Rule::Threshold { .. }
                        | Rule::PerEvery { .. }
                        | Rule::PercentOff { .. }
                        | Rule::Gift { .. }
                        | Rule::FreeShipping { .. }
                );
                if p.base == Base::Discounted && reads_a_sum {
                    short_later.push((c.clone(), not_applied.len()));
                }
                not_applied.push(NotApplied::new(
                    &self.promotions[c.promo],
                    priced.not_reached(&c, original),
                ));
            } else {
                let rank = self.promotions[c.promo].order_rank as usize;
                by_rank[rank] = Some((c, standalone));
            }
        }
        candidates.extend(by_rank.drain(..).flatten());
        let promotion = |c: &Candidate| &self.promotions[c.promo];
        let n = candidates.len();

        let (tried, cut_short) = if all {
            chosen.clear();
            chosen.extend(0..n);
            (0, false)
        } else {
            state.clone_from(start);
            let mut search = Search::new(&priced, candidates, state, search_space, memos, scratch);
            // Exclusive promotions stand alone; the others are searched together.
            for (c, (_, standalone)) in candidates.iter().enumerate() {
                if search.space.bits[c] == EXCLUSIVE {
                    search.offer_alone(*standalone, c);
                }
            }
            // A good first answer lets the bound drop more branches.
            search.greedy_start();
            search.branch(0, 0, EXCLUSIVE);
            chosen.clear();
            chosen.extend_from_slice(search.best());
            (search.nodes, search.cut_short)
        };
        // Where each canonical line was given.
        positions.clear();
        positions.resize(order.len(), 0);
        for (canonical, &(_, given)) in order.iter().enumerate() {
            positions[canonical] = given;
        }
        // The chosen set, evaluated once more in priority order for its allocation.
        state.clone_from(start);
        let mut gifts = Vec::new();
        let mut applied: Vec<Applied> = Vec::with_capacity(chosen.len());
        for &c in chosen.iter() {
            let compiled = promotion(&candidates[c].0);
            let memo = &mut memos[candidates[c].0.promo];
            priced.evaluate(&candidates[c].0, state, memo, scratch);
            let e = &mut memo.effect;
            e.split(&layout.flat, state, scratch);
            e.apply(state);
            let mut allocation: Vec<(usize, i64)> =
                e.lines.iter().map(|&(i, d)| (positions[i], d)).collect();
            allocation.sort_unstable();
            if let (Rule::Gift { sku, .. }, true) = (&compiled.p.rule, e.gift > 0) {
                gifts.push(GiftItem {
                    promotion: compiled.p.id.clone(),
                    sku: sku.clone(),
                    value: e.gift,
                });
            }
            applied.push(Applied {
                id: compiled.id.clone(),
                name: compiled.name.clone(),
                discount: e.lines.iter().map(|(_, d)| d).sum(),
                shipping_discount: e.shipping,
                gift_value: e.gift,
                allocation,
            });
        }
        if !short_later.is_empty() {
            // What each line lost to the chosen promotions that apply before a short one and may
            // stack with it: the amounts it would read if taken with them.
            canonical_of.clear();
            canonical_of.resize(positions.len(), 0);
            for (canonical, &given) in positions.iter().enumerate() {
                canonical_of[given] = canonical;
            }
            less.resize(originals.len(), 0);
            for (c, at) in short_later.iter() {
                let p = &self.promotions[c.promo];
                less.fill(0);
                for (k, &chosen_c) in chosen.iter().enumerate() {
                    let q = promotion(&candidates[chosen_c].0);
                    if q.order_rank >= p.order_rank {
                        break;
                    }
                    if !clash(q.stack, p.stack) {
                        for &(given, d) in &applied[k].allocation {
                            less[canonical_of[given]] += d;
                        }
                    }
                }
                let base = priced
                    .eligible(c)
                    .iter()
                    .map(|&i| originals[i] - less[i])
                    .sum();
                not_applied[*at].set_reason(priced.not_reached(c, base));
            }
        }

        for (c, (candidate, _)) in candidates.iter().enumerate() {
            if chosen.contains(&c) {
                continue;
            }
            let p = promotion(candidate);
            let mut chosen_promotions = chosen.iter().map(|&k| promotion(&candidates[k].0));
            let other = match p.stack {
                // Its category has room: only an exclusive promotion keeps it out.
                Stack::Single(x)
                    if self.category_limits[x as usize] > 1
                        && chosen_promotions
                            .clone()
                            .filter(|q| q.stack == p.stack)
                            .count()
                            < self.category_limits[x as usize] as usize =>
                {
                    chosen_promotions.find(|q| q.stack == Stack::Exclusive)
                }
                _ => chosen_promotions.find(|q| clash(q.stack, p.stack) && q.id != p.id),
            };
            let reason = match other {
                Some(q) => Reason::NotWith(q.name.clone()),
                None => Reason::Outdone,
            };
            not_applied.push(NotApplied::new(p, reason));
        }

        // Back to the order the lines were given in.
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
        for (canonical, &given) in positions.iter().enumerate() {
            let q = &mut quoted[given];
            q.original = originals[canonical];
            q.total = state.amounts[canonical];
            q.discount = q.original - q.total;
        }
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
}

/// Prices a cart: the best legal combination of `promotions` for this customer.
pub fn price(cart: &Cart, customer: &Customer, promotions: &[Promotion]) -> Quote {
    Pricer::new(promotions).price(cart, customer)
}

/// Applies every promotion that gives something, in priority order, without choosing (the set
/// must be legal): what a given combination is worth. Tests compare [`price`] with it.
pub fn apply_all(cart: &Cart, customer: &Customer, promotions: &[Promotion]) -> Quote {
    Pricer::new(promotions).quote(cart, customer, true)
}

/// What the customer gets from a quote: discounts, free shipping and gifts.
pub fn benefit(q: &Quote) -> i64 {
    q.discount + q.shipping_discount + q.gifts.iter().map(|g| g.value).sum::<i64>()
}

/// The state a combination is applied to.
#[derive(Debug, Clone, Default)]
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
    /// Discounts still to be split over their lines (a range of [`Layout::flat`]) in proportion
    /// to their amounts: what a discount gives is known before it is split, and most of the
    /// search only needs that. [`Effect::split`] moves them into `lines`.
    pending: Vec<(Range<usize>, i64)>,
    shipping: i64,
    /// The value of the gift added (its SKU is the rule's), 0 for none.
    gift: i64,
}

impl Effect {
    fn clear(&mut self) {
        self.lines.clear();
        self.pending.clear();
        self.shipping = 0;
        self.gift = 0;
    }

    /// Keeps `discount` to be split over lines (a range of [`Layout::flat`]) whose amounts
    /// sum to `left`, never more than that.
    fn defer(&mut self, discount: i64, lines: Range<usize>, left: i64) {
        let discount = discount.clamp(0, left.max(0));
        if discount > 0 {
            self.pending.push((lines, discount));
        }
    }

    /// Splits the pending discounts over their lines, on the state the effect was worked out
    /// on; needed before the effect is applied or reported.
    fn split(&mut self, flat: &[usize], state: &State, scratch: &mut Scratch) {
        for (lines, discount) in self.pending.drain(..) {
            spread(discount, &flat[lines], state, &mut self.lines, scratch);
        }
    }

    fn apply(&self, state: &mut State) {
        debug_assert!(
            self.pending.is_empty(),
            "an effect is split before it is applied"
        );
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
        self.lines.iter().map(|(_, d)| d).sum::<i64>()
            + self.pending.iter().map(|(_, d)| d).sum::<i64>()
            + self.shipping
            + self.gift
    }
}

/// Reused working space for evaluating promotions.
#[derive(Debug, Default)]
struct Scratch {
    weights: Vec<i64>,
    parts: Vec<i64>,
    remainders: Vec<u128>,
    /// Buy X get Y: the lines in the candidate's scope (by canonical line), and the runs that
    /// count, dearest first.
    in_scope: Vec<bool>,
    top_runs: Vec<Run>,
}

/// A unit run for buy X get Y: `units` units of one canonical line worth `value` each; each line
/// of several units has a dearer run (its extra cents) and a plain one. Runs go dearest first,
/// then by `tie`: the line, then the dearer run first.
#[derive(Debug, Clone, Copy)]
struct Run {
    value: i64,
    /// The canonical line shifted left by one, the low bit set for the plain run.
    tie: u64,
    units: i64,
}

impl Run {
    /// The dearer or the plain run of canonical line `line`, of `quantity` units worth `amount`
    /// together (units beyond 10,000 are not counted).
    fn of(line: usize, dearer: bool, quantity: i64, amount: i64) -> Run {
        let counted = quantity.clamp(0, 10_000);
        let (value, cents) = if quantity > 0 {
            (amount / quantity, (amount % quantity).min(counted))
        } else {
            (0, 0)
        };
        let (value, units) = if dearer {
            (value + 1, cents)
        } else {
            (value, counted - cents)
        };
        Run {
            value,
            tie: (line as u64) << 1 | u64::from(!dearer),
            units,
        }
    }

    fn line(&self) -> usize {
        (self.tie >> 1) as usize
    }

    fn dearer(&self) -> bool {
        self.tie & 1 == 0
    }
}

/// A promotion's last effect, the amounts it was worked out from (its lines', then shipping) and
/// what it gave; and buy X get Y's memory for the cart. An effect depends only on those amounts,
/// so when they come round again (another branch that did not touch its lines) it is reused, not
/// worked out again (buy X get Y only: the other rules cost no more to work out than to check).
#[derive(Debug, Default)]
struct Memo {
    effect: Effect,
    input: Vec<i64>,
    valid: bool,
    gain: i64,
    units: UnitMemo,
}

/// Buy X get Y's own memory for one cart: its runs in their order at the start, and when it
/// reads original amounts, what it frees before what is left limits it (the same in every
/// state).
#[derive(Debug, Default)]
struct UnitMemo {
    runs: Vec<Run>,
    free: Vec<(usize, i64)>,
    free_known: bool,
}

impl UnitMemo {
    fn forget(&mut self) {
        self.runs.clear();
        self.free.clear();
        self.free_known = false;
    }
}

/// Working space for one quote, kept per thread so a quote allocates little beyond its output.
#[derive(Debug, Default)]
struct Work {
    /// Canonical order: (SKU prefix, line index as given).
    order: Vec<(u64, usize)>,
    ids: Vec<LineIds>,
    category_ids: Vec<u32>,
    quantities: Vec<i64>,
    originals: Vec<i64>,
    /// Per scope of the set: its eligible canonical lines in `flat`, once asked for.
    scope_lines: Vec<Option<Range<usize>>>,
    layout: Layout,
    candidates: Vec<(Candidate, i64)>,
    /// Per promotion of the set.
    memos: Vec<Memo>,
    scratch: Scratch,
    codes: Vec<String>,
    search_space: SearchSpace,
    /// Per canonical line: its store's rank among the cart's store names.
    store_ranks: Vec<u32>,
    /// A given line of each store of the cart, in order of first appearance, and each one's
    /// rank by name.
    distinct_stores: Vec<usize>,
    store_rank_of: Vec<u32>,
    /// Promotions whose audience, code and lines let them be evaluated, in set order.
    kept: Vec<Candidate>,
    /// Promotions on discounted prices that gave nothing, with their place in `not_applied`: their
    /// shortfall is worked out on the amounts they would read taken with the chosen combination.
    short_later: Vec<(Candidate, usize)>,
    /// For those: each given line's canonical place, and what each canonical line lost.
    canonical_of: Vec<usize>,
    less: Vec<i64>,
    /// Per place in application order: its candidate and what it gives alone, if any.
    by_rank: Vec<Option<(Candidate, i64)>>,
    /// The cart as given, and the state the search and then the chosen set change.
    start: State,
    state: State,
    /// The chosen candidates, in application order.
    chosen: Vec<usize>,
    /// Per canonical line: where it was given.
    positions: Vec<usize>,
}

/// Line lists the candidates point into, fixed once the candidates are built.
#[derive(Debug, Default)]
struct Layout {
    /// Canonical line indices: each scope's eligible lines, per-store orders, bundle members.
    flat: Vec<usize>,
    /// The runs of a candidate's eligible lines a threshold rule reads as one (offsets into
    /// them): one per store, or one for all.
    groups: Vec<Range<usize>>,
    /// Bundle: per bundle SKU, its lines (in `flat`).
    bundle_parts: Vec<Range<usize>>,
    /// Buy X get Y: every line's runs at the start (original amounts), dearest first; each
    /// candidate visits its own lines' runs in this order.
    unit_runs: Vec<Run>,
    /// A number per line a rule needs: member price, (canonical line, member unit price); N-th
    /// item off, (canonical line, units discounted) for the lines with that many units.
    per_line: Vec<(usize, i64)>,
}

/// A promotion that could apply to the cart, with the lines it looks at.
#[derive(Debug, Clone)]
struct Candidate {
    /// Index into [`Pricer::promotions`].
    promo: usize,
    /// Its canonical lines in scope (in `flat`); for a per-store rule, ordered by store so that
    /// each store's lines are one run (in canonical order within it).
    eligible: Range<usize>,
    /// Into [`Layout::groups`].
    groups: Range<usize>,
    /// Bundle: into [`Layout::bundle_parts`] (its members laid out together in `flat`, from the
    /// first part's start to the last part's end); member price and N-th item off: into
    /// [`Layout::per_line`].
    extra: Range<usize>,
}

/// The cart as the rules read it.
struct Priced<'a> {
    pricer: &'a Pricer,
    quantities: &'a [i64],
    originals: &'a [i64],
    layout: &'a Layout,
    customer: &'a Customer,
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
    fn promotion(&self, c: &Candidate) -> &Promotion {
        &self.pricer.promotions[c.promo].p
    }

    fn eligible(&self, c: &Candidate) -> &[usize] {
        &self.layout.flat[c.eligible.clone()]
    }

    /// The amounts a promotion's rule reads: original or current, never above current.
    fn base_of(&self, p: &Promotion, state: &State, i: usize) -> i64 {
        match p.base {
            Base::Original => self.originals[i],
            Base::Discounted => state.amounts[i],
        }
    }

    /// What `c` gives on `state`, into `out` (cleared first). `units` is the candidate's own
    /// buy-X-get-Y memory, kept between calls.
    fn effect(
        &self,
        c: &Candidate,
        state: &State,
        out: &mut Effect,
        units: &mut UnitMemo,
        scratch: &mut Scratch,
    ) {
        out.clear();
        let p = self.promotion(c);
        let eligible = self.eligible(c);
        let quantities = self.quantities;
        // What the rule reads of a group (original or current amounts) and what is left on it,
        // in one pass.
        let sums = |group: &[usize]| match p.base {
            Base::Discounted => {
                let left = group.iter().map(|&i| state.amounts[i]).sum::<i64>();
                (left, left)
            }
            Base::Original => group.iter().fold((0i64, 0i64), |(b, l), &i| {
                (b + self.originals[i], l + state.amounts[i])
            }),
        };
        let flat = &self.layout.flat;
        let at = c.eligible.start;
        // Each group as its lines and their range in `flat`.
        let groups = || {
            self.layout.groups[c.groups.clone()]
                .iter()
                .map(move |g| (&eligible[g.clone()], at + g.start..at + g.end))
        };
        match &p.rule {
            Rule::PriceCut { off_per_unit } => {
                for &i in eligible {
                    let d = off_per_unit
                        .saturating_mul(quantities[i])
                        .min(state.amounts[i])
                        .max(0);
                    if d > 0 {
                        out.lines.push((i, d));
                    }
                }
            }
            Rule::Threshold { tiers, .. } => {
                for (group, range) in groups() {
                    let (base, left) = sums(group);
                    let off = tiers
                        .iter()
                        .filter(|t| base >= t.threshold)
                        .map(|t| t.off)
                        .max()
                        .unwrap_or(0);
                    out.defer(off, range, left);
                }
            }
            Rule::PerEvery {
                every, off, cap, ..
            } => {
                for (group, range) in groups() {
                    let (base, left) = sums(group);
                    let mut d = if *every > 0 {
                        (base / every).saturating_mul(*off)
                    } else {
                        0
                    };
                    if let Some(c) = cap {
                        d = d.min(*c);
                    }
                    out.defer(d, range, left);
                }
            }
            Rule::PercentOff {
                percent_bp,
                threshold,
                cap,
            } => {
                let (base, left) = sums(eligible);
                if base >= *threshold {
                    let mut d = percent_of(base, *percent_bp);
                    if let Some(c) = cap {
                        d = d.min(*c);
                    }
                    out.defer(d, c.eligible.clone(), left);
                }
            }
            Rule::NthItemOff { percent_bp, .. } => {
                for &(i, units) in &self.layout.per_line[c.extra.clone()] {
                    // The discounted units' share of the line, then the percentage of it.
                    let share = mul_div(self.base_of(p, state, i), units, quantities[i]);
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
                // equal units, a dearer run (the extra cents) and a plain one per line. Only the
                // first `buy + get` times `times` units count. Amounts only fall from the start,
                // so no unit is worth more than it was then: the runs are visited in their order
                // at the start, and the visit stops once no later run can come before the last
                // unit that counts.
                if units.free_known {
                    out.lines.extend_from_slice(&units.free);
                } else {
                    let runs = &mut units.runs;
                    if runs.is_empty() {
                        let in_scope = &mut scratch.in_scope;
                        in_scope.clear();
                        in_scope.resize(quantities.len(), false);
                        for &i in eligible {
                            in_scope[i] = true;
                        }
                        runs.extend(self.layout.unit_runs.iter().filter(|r| in_scope[r.line()]));
                    }
                    let size = buy + get;
                    let total: i64 = runs.iter().map(|r| r.units).sum();
                    let mut times = total / size;
                    if let Some(m) = max_times {
                        times = times.min(*m);
                    }
                    let counted_units = times * size;
                    let top = &mut scratch.top_runs;
                    top.clear();
                    let mut covered = 0;
                    for r in runs.iter() {
                        if let (true, Some(last)) = (covered >= counted_units, top.last()) {
                            if (r.value, std::cmp::Reverse(r.tie))
                                < (last.value, std::cmp::Reverse(last.tie))
                            {
                                break;
                            }
                        }
                        let now = Run::of(
                            r.line(),
                            r.dearer(),
                            quantities[r.line()],
                            self.base_of(p, state, r.line()),
                        );
                        if now.units == 0 {
                            continue;
                        }
                        let at = top
                            .iter()
                            .rposition(|t| {
                                t.value > now.value || (t.value == now.value && t.tie < now.tie)
                            })
                            .map_or(0, |k| k + 1);
                        top.insert(at, now);
                        covered += now.units;
                        while let Some(last) = top.last() {
                            if covered - last.units >= counted_units {
                                covered -= last.units;
                                top.pop();
                            } else {
                                break;
                            }
                        }
                    }
                    let mut at = 0;
                    for r in top.iter() {
                        let free = free_units(at, r.units, *buy, size, times);
                        at += r.units;
                        if free == 0 {
                            continue;
                        }
                        let line = r.line();
                        match out.lines.iter_mut().find(|(l, _)| *l == line) {
                            Some(entry) => entry.1 += free * r.value,
                            None => out.lines.push((line, free * r.value)),
                        }
                    }
                    if p.base == Base::Original {
                        units.free.clone_from(&out.lines);
                        units.free_known = true;
                    }
                }
                for entry in &mut out.lines {
                    entry.1 = entry.1.min(state.amounts[entry.0]);
                }
                out.lines.retain(|(_, d)| *d > 0);
            }
            Rule::Gift {
                threshold, value, ..
            } => {
                if !eligible.is_empty() && sums(eligible).0 >= *threshold && *value > 0 {
                    out.gift = *value;
                }
            }
            Rule::Bundle { price, .. } => {
                let parts = &self.layout.bundle_parts[c.extra.clone()];
                let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
                    return;
                };
                // Per bundle SKU: its units and value; as many bundles as the scarcest allows.
                let member = |part: &Range<usize>| {
                    self.layout.flat[part.clone()]
                        .iter()
                        .fold((0i64, 0i64), |(u, v), &i| {
                            (u + quantities[i], v + self.base_of(p, state, i))
                        })
                };
                let bundles = parts.iter().map(|s| member(s).0).min().unwrap_or(0);
                if bundles <= 0 {
                    return;
                }
                let in_bundles: i64 = parts
                    .iter()
                    .map(|s| {
                        let (units, value) = member(s);
                        mul_div(value, bundles, units)
                    })
                    .sum();
                let d = in_bundles - price.saturating_mul(bundles);
                let members = first.start..last.end;
                let left = flat[members.clone()]
                    .iter()
                    .map(|&i| state.amounts[i])
                    .sum();
                out.defer(d, members, left);
            }
            Rule::MemberPrice { tiers, .. } => {
                if !self
                    .customer
                    .tier
                    .as_ref()
                    .is_some_and(|t| tiers.contains(t))
                {
                    return;
                }
                for &(i, price) in &self.layout.per_line[c.extra.clone()] {
                    let d = (self.base_of(p, state, i) - price.saturating_mul(quantities[i]))
                        .min(state.amounts[i]);
                    if d > 0 {
                        out.lines.push((i, d));
                    }
                }
            }
            Rule::FreeShipping { threshold } => {
                if !eligible.is_empty() && sums(eligible).0 >= *threshold {
                    out.shipping = state.shipping;
                }
            }
        }
    }

    /// What `c` gives on `state`, into `memo` unless it holds it already; returns the gain.
    fn evaluate(
        &self,
        c: &Candidate,
        state: &State,
        memo: &mut Memo,
        scratch: &mut Scratch,
    ) -> i64 {
        let eligible = self.eligible(c);
        // Only buy X get Y costs more to work out than to check: the others read each line
        // once, as the check would.
        if !matches!(self.promotion(c).rule, Rule::BuyXGetY { .. }) {
            self.effect(c, state, &mut memo.effect, &mut memo.units, scratch);
            memo.valid = false;
            memo.gain = memo.effect.value();
            return memo.gain;
        }
        let same = memo.valid
            && memo.input.len() == eligible.len() + 1
            && memo.input[eligible.len()] == state.shipping
            && eligible
                .iter()
                .zip(&memo.input)
                .all(|(&i, &a)| state.amounts[i] == a);
        if !same {
            self.effect(c, state, &mut memo.effect, &mut memo.units, scratch);
            memo.input.clear();
            memo.input
                .extend(eligible.iter().map(|&i| state.amounts[i]));
            memo.input.push(state.shipping);
            memo.valid = true;
            memo.gain = memo.effect.value();
        }
        memo.gain
    }

    /// The sum of `amounts` over the lines `c` reads.
    fn sum_of(&self, c: &Candidate, amounts: &[i64]) -> i64 {
        self.eligible(c).iter().map(|&i| amounts[i]).sum()
    }

    /// Why a promotion gives nothing when its lines sum to `base`.
    fn not_reached(&self, c: &Candidate, base: i64) -> Reason {
        let compiled = &self.pricer.promotions[c.promo];
        let eligible = self.eligible(c);
        let short = |threshold: i64| Reason::Short((threshold - base).max(0));
        match &compiled.p.rule {
            Rule::Threshold { tiers, .. } => match tiers.iter().map(|t| t.threshold).min() {
                Some(t) => short(t),
                None => Reason::NoTiers,
            },
            Rule::PerEvery { every, .. } => short(*every),
            Rule::PercentOff { threshold, .. }
            | Rule::Gift { threshold, .. }
            | Rule::FreeShipping { threshold } => short(*threshold),
            Rule::NthItemOff { nth, .. } => Reason::NthItem(*nth),
            Rule::BuyXGetY { buy, get, .. } => {
                let units: i64 = eligible.iter().map(|&i| self.quantities[i]).sum();
                Reason::MoreUnits((buy + get - units).max(1))
            }
            Rule::Bundle { .. } => {
                let parts = &self.layout.bundle_parts[c.extra.clone()];
                let missing = parts
                    .iter()
                    .enumerate()
                    .filter(|(k, part)| *k < 64 && part.is_empty())
                    .fold(0u64, |m, (k, _)| m | 1 << k);
                Reason::BundleIncomplete {
                    skus: compiled.bundle_skus.clone(),
                    missing,
                }
            }
            Rule::MemberPrice { .. } => Reason::MembersOnly,
            Rule::PriceCut { .. } => Reason::NothingToCut,
        }
    }
}

/// Branch and bound over the non-exclusive candidates in application order: each is taken or
/// left; a branch is dropped when even the best the rest could add alone cannot beat the best
/// found (ties: fewer promotions, then smaller ids). One state is changed and changed back as
/// the search goes down and up, and each candidate's effect is evaluated into its own buffer.
struct Search<'a, 'b> {
    priced: &'b Priced<'a>,
    candidates: &'b [(Candidate, i64)],
    space: &'b mut SearchSpace,
    /// Number of non-joint categories among the candidates (`category_rest` per position).
    categories: usize,
    /// How many of each category (by bit index) the combination being decided holds.
    counts: [u32; 64],
    best_value: Option<i64>,
    nodes: usize,
    cut_short: bool,
    state: &'b mut State,
    memos: &'b mut [Memo],
    scratch: &'b mut Scratch,
}

/// The search's per-candidate tables, kept per thread with the rest of the working space.
#[derive(Debug, Default)]
struct SearchSpace {
    /// Each candidate's non-joint category as a bit; [`EXCLUSIVE`] for an exclusive one, 0 for
    /// a joint one. A combination's used bits always hold [`EXCLUSIVE`], so one test tells
    /// whether a candidate may join.
    bits: Vec<u64>,
    /// Each candidate's place in id order, for ties.
    id_ranks: Vec<u32>,
    /// Each category's limit, by bit index (1 for the last bit when categories share it).
    limits: Vec<u32>,
    /// The bits of the categories whose limit is above one: only those count their members.
    counted: u64,
    /// From each position on: per non-joint category (by bit index, `categories` per position)
    /// the sum of its `limit` largest values; and the sum of joint candidates' values plus every
    /// category's.
    category_rest: Vec<i64>,
    /// Per category with a limit above one, its largest values so far, largest first.
    tops: Vec<Vec<i64>>,
    all_rest: Vec<i64>,
    best: Vec<usize>,
    chosen: Vec<usize>,
    /// The state the first answer is worked out on.
    greedy_state: State,
}

/// The bit no category uses: it marks exclusive candidates, which never join a combination.
const EXCLUSIVE: u64 = 1 << 63;

impl<'a, 'b> Search<'a, 'b> {
    fn new(
        priced: &'b Priced<'a>,
        candidates: &'b [(Candidate, i64)],
        start: &'b mut State,
        space: &'b mut SearchSpace,
        memos: &'b mut [Memo],
        scratch: &'b mut Scratch,
    ) -> Self {
        let stack = |c: &Candidate| priced.pricer.promotions[c.promo].stack;
        // The set's category numbers, renumbered densely over this cart's candidates; categories
        // beyond the 63rd share the last bit (they then exclude each other: still legal).
        let mut numbers: [u32; 63] = [0; 63];
        let mut k = 0;
        space.bits.clear();
        space.id_ranks.clear();
        space.limits.clear();
        for (c, _) in candidates {
            space
                .id_ranks
                .push(priced.pricer.promotions[c.promo].id_rank);
            space.bits.push(match stack(c) {
                Stack::Single(x) => {
                    let at = numbers[..k]
                        .iter()
                        .position(|&n| n == x)
                        .unwrap_or_else(|| {
                            if k < numbers.len() {
                                numbers[k] = x;
                                k += 1;
                                space.limits.push(priced.pricer.category_limits[x as usize]);
                            } else {
                                space.limits[k - 1] = 1;
                            }
                            k - 1
                        });
                    1u64 << at
                }
                Stack::Joint => 0,
                Stack::Exclusive => EXCLUSIVE,
            });
        }
        let n = candidates.len();
        space.category_rest.clear();
        space.category_rest.resize((n + 1) * k, 0);
        space.all_rest.clear();
        space.all_rest.resize(n + 1, 0);
        space.counted = space
            .limits
            .iter()
            .enumerate()
            .filter(|&(_, &limit)| limit > 1)
            .fold(0, |bits, (at, _)| bits | 1 << at);
        if space.tops.len() < k {
            space.tops.resize_with(k, Vec::new);
        }
        for top in &mut space.tops[..k] {
            top.clear();
        }
        // The joint candidates' values from the current position on.
        let mut joint = 0;
        for c in (0..n).rev() {
            space
                .category_rest
                .copy_within((c + 1) * k..(c + 2) * k, c * k);
            let standalone = candidates[c].1;
            match space.bits[c] {
                0 => joint += standalone,
                EXCLUSIVE => {}
                bit => {
                    let at = bit.trailing_zeros() as usize;
                    let slot = c * k + at;
                    let limit = space.limits[at] as usize;
                    if limit == 1 {
                        space.category_rest[slot] = space.category_rest[slot].max(standalone);
                    } else {
                        let top = &mut space.tops[at];
                        let place = top.partition_point(|&v| v >= standalone);
                        if place < limit {
                            top.insert(place, standalone);
                            top.truncate(limit);
                            space.category_rest[slot] = top.iter().sum();
                        }
                    }
                }
            }
            space.all_rest[c] = joint + space.category_rest[c * k..(c + 1) * k].iter().sum::<i64>();
        }
        space.best.clear();
        space.chosen.clear();
        Search {
            priced,
            candidates,
            space,
            categories: k,
            counts: [0; 64],
            best_value: None,
            nodes: 0,
            cut_short: false,
            state: start,
            memos,
            scratch,
        }
    }

    /// The best combination found (empty for none).
    fn best(&self) -> &[usize] {
        &self.space.best
    }

    /// Keeps `chosen` if it beats the best so far (copied only then).
    fn offer_chosen(&mut self, value: i64) {
        let space = &mut *self.space;
        let (set, best) = (&space.chosen, &space.best);
        let better = match self.best_value {
            None => true,
            Some(v) => {
                value > v
                    || (value == v
                        && (set.len() < best.len()
                            || (set.len() == best.len()
                                && set
                                    .iter()
                                    .map(|&c| space.id_ranks[c])
                                    .lt(best.iter().map(|&c| space.id_ranks[c])))))
            }
        };
        if better {
            space.best.clear();
            space.best.extend_from_slice(&space.chosen);
            self.best_value = Some(value);
        }
    }

    /// Offers a combination of exclusive candidate `c` alone.
    fn offer_alone(&mut self, value: i64, c: usize) {
        self.space.chosen.clear();
        self.space.chosen.push(c);
        self.offer_chosen(value);
        self.space.chosen.clear();
    }

    /// Candidate `c`'s category (its bit index) when it is one that counts its members (a limit
    /// above one).
    fn counted_category(&self, c: usize) -> Option<usize> {
        let bit = self.space.bits[c] & self.space.counted;
        (bit != 0).then(|| bit.trailing_zeros() as usize)
    }

    /// The categories closed once candidate `c` joins a combination that has closed `used`: its
    /// category closes when the combination reaches the category's limit.
    fn used_after_taking(&self, c: usize, used: u64) -> u64 {
        match self.counted_category(c) {
            Some(at) if self.counts[at] + 1 < self.space.limits[at] => used,
            _ => used | self.space.bits[c],
        }
    }

    /// The most the candidates from `from` on could add, given the categories already used.
    fn bound(&self, from: usize, used: u64) -> i64 {
        let k = self.categories;
        let rest = &self.space.category_rest[from * k..(from + 1) * k];
        // Everything from here on, less the categories already used.
        let mut sum = self.space.all_rest[from];
        let mut taken = used & !EXCLUSIVE;
        while taken != 0 {
            sum -= rest
                .get(taken.trailing_zeros() as usize)
                .copied()
                .unwrap_or(0);
            taken &= taken - 1;
        }
        sum
    }

    /// A first answer to prune with: the best of each category alone and every joint
    /// candidate, applied in order.
    fn greedy_start(&mut self) {
        let n = self.candidates.len();
        // Per category bit, the candidate giving the most alone (the first on ties).
        let mut best_of = [usize::MAX; 64];
        for c in 0..n {
            let bit = self.space.bits[c];
            if bit != 0 && bit != EXCLUSIVE {
                let slot = &mut best_of[bit.trailing_zeros() as usize];
                if *slot == usize::MAX || self.candidates[c].1 > self.candidates[*slot].1 {
                    *slot = c;
                }
            }
        }
        let state = &mut self.space.greedy_state;
        state.clone_from(self.state);
        let mut value = 0;
        self.space.chosen.clear();
        for c in 0..n {
            let pick = match self.space.bits[c] {
                0 => true,
                EXCLUSIVE => false,
                bit => best_of[bit.trailing_zeros() as usize] == c,
            };
            if !pick {
                continue;
            }
            let memo = &mut self.memos[self.candidates[c].0.promo];
            let gain = self
                .priced
                .evaluate(&self.candidates[c].0, state, memo, self.scratch);
            if gain > 0 {
                memo.effect
                    .split(&self.priced.layout.flat, state, self.scratch);
                memo.effect.apply(state);
                value += gain;
                self.space.chosen.push(c);
            }
        }
        if !self.space.chosen.is_empty() {
            self.offer_chosen(value);
        }
        self.space.chosen.clear();
    }

    /// The first candidate from `from` on that may join a combination of `len` members worth
    /// `value` using the categories in `used`, unless even the best the rest could add cannot
    /// beat the best found (ties: fewer promotions).
    fn next_worth_deciding(&self, from: usize, value: i64, len: usize, used: u64) -> Option<usize> {
        let bits = &self.space.bits;
        let next = from + bits.get(from..)?.iter().position(|&b| used & b == 0)?;
        if let Some(best) = self.best_value {
            let bound = value + self.bound(next, used);
            if bound < best || (bound == best && len >= self.space.best.len()) {
                return None;
            }
        }
        Some(next)
    }

    /// Decides the candidates from `from` on: the next one that may join is taken (when it gives
    /// something on the state so far) or left. A combination is offered when its last member is
    /// taken; `nodes` counts the decisions. `used` always holds [`EXCLUSIVE`].
    fn branch(&mut self, from: usize, value: i64, used: u64) {
        let len = self.space.chosen.len();
        if let Some(next) = self.next_worth_deciding(from, value, len, used) {
            self.decide(next, value, used);
        }
    }

    /// Takes or leaves candidate `next`, found worth deciding by [`Search::next_worth_deciding`].
    fn decide(&mut self, next: usize, value: i64, used: u64) {
        // Taking it cannot beat the best found even if it gives all it gives alone and the rest
        // all theirs: only leaving it is worth deciding, without evaluating it.
        let taken_used = self.used_after_taking(next, used);
        if let Some(best) = self.best_value {
            let len = self.space.chosen.len();
            let bound = value + self.candidates[next].1 + self.bound(next + 1, taken_used);
            if bound < best || (bound == best && len >= self.space.best.len()) {
                return self.branch(next + 1, value, used);
            }
        }
        self.nodes += 1;
        if self.nodes > MAX_COMBINATIONS {
            self.cut_short = true;
            return;
        }
        // Deeper decisions are about later candidates, so this one's memo stays as it is until
        // its effect is undone.
        let promo = self.candidates[next].0.promo;
        let gain = self.priced.evaluate(
            &self.candidates[next].0,
            self.state,
            &mut self.memos[promo],
            self.scratch,
        );
        if gain > 0 {
            self.space.chosen.push(next);
            self.offer_chosen(value + gain);
            let len = self.space.chosen.len();
            // Its discounts are split over lines only when something may follow it.
            if let Some(after) = self.next_worth_deciding(next + 1, value + gain, len, taken_used) {
                let effect = &mut self.memos[promo].effect;
                effect.split(&self.priced.layout.flat, self.state, self.scratch);
                effect.apply(self.state);
                let category = self.counted_category(next);
                if let Some(at) = category {
                    self.counts[at] += 1;
                }
                self.decide(after, value + gain, taken_used);
                if let Some(at) = category {
                    self.counts[at] -= 1;
                }
                self.memos[promo].effect.undo(self.state);
            }
            self.space.chosen.pop();
        }
        self.branch(next + 1, value, used);
    }
}

/// Whether two promotions may not apply together.
fn clash(a: Stack, b: Stack) -> bool {
    match (a, b) {
        (Stack::Exclusive, _) | (_, Stack::Exclusive) => true,
        (Stack::Single(x), Stack::Single(y)) => x == y,
        _ => false,
    }
}

/// Whether a set of promotions may apply together: an exclusive one alone, and no category
/// beyond its limit (the limits as the whole `set` names them).
#[cfg(test)]
fn is_legal(chosen: &[&Promotion], set: &[Promotion]) -> bool {
    let pricer = Pricer::new(set);
    let stack_of = |p: &Promotion| {
        pricer
            .promotions
            .iter()
            .find(|c| c.p.id == p.id)
            .map(|c| c.stack)
    };
    let mut counts = vec![0u32; pricer.category_limits.len()];
    for p in chosen {
        match stack_of(p) {
            Some(Stack::Exclusive) if chosen.len() > 1 => return false,
            Some(Stack::Single(x)) => {
                counts[x as usize] += 1;
                if counts[x as usize] > pricer.category_limits[x as usize] {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests;
pub mod workload;
