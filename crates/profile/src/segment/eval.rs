//! The population a segment is evaluated over: columns of attributes, tag and segment bitmaps,
//! and behaviour by event type and day, all keyed by dense user index (0..n).
//!
//! Everything is kept as compressed bitmaps that change in place when one user changes, so an
//! update costs a few bitmap inserts and an evaluation never scans rows:
//! - a text column is one bitmap per value;
//! - a number column keeps cumulative bitmaps `value ≤ bound` for up to [`BUCKETS`] bounds taken
//!   at quantiles; a range is one of them plus a check of the users in one boundary bucket;
//! - behaviour is, per event (and per event and property value) and per day, the users with at
//!   least 1, 2, 3 … acts that day; "at least N times in D days" combines those levels.
//!
//! Two-valued logic: a comparison on a user who has no value for the field is false, and NOT is
//! the complement over all users.

use super::{parse, Expr, Op, SegmentError, Value, MAX_DAYS};
use roaring::{MultiOps, RoaringBitmap};
use std::collections::{BTreeMap, HashMap};

/// Most bounds a number column keeps; each costs one bitmap.
pub const BUCKETS: usize = 64;

#[derive(Debug, Default, Clone)]
struct TextColumn {
    codes: Vec<Option<u32>>,
    dict: HashMap<String, u32>,
    bitmaps: Vec<RoaringBitmap>,
    present: RoaringBitmap,
}

impl TextColumn {
    fn set(&mut self, user: u32, value: Option<&str>) {
        let u = user as usize;
        if self.codes.len() <= u {
            self.codes.resize(u + 1, None);
        }
        let code = value.map(|v| {
            let next = self.dict.len() as u32;
            let code = *self.dict.entry(v.to_owned()).or_insert(next);
            if code as usize == self.bitmaps.len() {
                self.bitmaps.push(RoaringBitmap::new());
            }
            code
        });
        if self.codes[u] == code {
            return;
        }
        if let Some(old) = self.codes[u] {
            self.bitmaps[old as usize].remove(user);
            self.present.remove(user);
        }
        if let Some(code) = code {
            self.bitmaps[code as usize].insert(user);
            self.present.insert(user);
        }
        self.codes[u] = code;
    }

    fn get(&self, user: u32) -> Option<u32> {
        self.codes.get(user as usize).copied().flatten()
    }
}

#[derive(Debug, Default, Clone)]
struct NumberColumn {
    values: Vec<Option<i64>>,
    /// Ascending, distinct; `le[k]` holds the users whose value is ≤ `bounds[k]`.
    bounds: Vec<i64>,
    le: Vec<RoaringBitmap>,
    /// The lowest value ever put in each bucket since the bounds were chosen (bucket k holds
    /// values in (bounds[k-1], bounds[k]]; the last, values above every bound). It never rises
    /// on removal, so it is at most the true minimum: a bucket whose lowest value is above the
    /// asked bound is skipped without looking at its users.
    lowest: Vec<i64>,
    present: RoaringBitmap,
    /// Stored as a day number; the language sees days ago (`today - day`).
    relative: bool,
}

impl NumberColumn {
    fn get(&self, user: u32) -> Option<i64> {
        self.values.get(user as usize).copied().flatten()
    }

    fn set(&mut self, user: u32, value: Option<i64>) {
        let u = user as usize;
        if self.values.len() <= u {
            self.values.resize(u + 1, None);
        }
        let old = self.values[u];
        if old == value {
            return;
        }
        if let Some(old) = old {
            let from = self.bounds.partition_point(|b| *b < old);
            for le in &mut self.le[from..] {
                le.remove(user);
            }
            self.present.remove(user);
        }
        if let Some(v) = value {
            let from = self.bounds.partition_point(|b| *b < v);
            for le in &mut self.le[from..] {
                le.insert(user);
            }
            if self.lowest.len() <= from {
                self.lowest.resize(from + 1, i64::MAX);
            }
            self.lowest[from] = self.lowest[from].min(v);
            self.present.insert(user);
        }
        self.values[u] = value;
    }

    /// Chooses bounds at the quantiles of the current values and rebuilds the bitmaps. Updates
    /// stay correct without it; it keeps the boundary buckets small as values drift.
    fn rebucket(&mut self, buckets: usize) {
        let mut sorted: Vec<(i64, u32)> = self
            .values
            .iter()
            .enumerate()
            .filter_map(|(u, v)| v.map(|v| (v, u as u32)))
            .collect();
        sorted.sort_unstable();
        let mut distinct: Vec<i64> = sorted.iter().map(|(v, _)| *v).collect();
        distinct.dedup();
        self.bounds = if distinct.len() <= buckets {
            distinct
        } else {
            let mut bounds: Vec<i64> = (1..=buckets)
                .map(|k| sorted[(k * sorted.len()).div_ceil(buckets) - 1].0)
                .collect();
            bounds.dedup();
            bounds
        };
        self.le = Vec::with_capacity(self.bounds.len());
        self.lowest = vec![i64::MAX; self.bounds.len() + 1];
        let mut acc = RoaringBitmap::new();
        let mut i = 0;
        for (k, &bound) in self.bounds.iter().enumerate() {
            if i < sorted.len() && sorted[i].0 <= bound {
                self.lowest[k] = sorted[i].0;
            }
            while i < sorted.len() && sorted[i].0 <= bound {
                acc.insert(sorted[i].1);
                i += 1;
            }
            self.le.push(acc.clone());
        }
        if let Some(&(v, _)) = sorted.get(i) {
            self.lowest[self.bounds.len()] = v;
        }
    }

    /// Users whose stored value is ≤ `v`.
    fn at_most(&self, v: i64) -> RoaringBitmap {
        let k = self.bounds.partition_point(|b| *b < v);
        if k < self.bounds.len() && self.bounds[k] == v {
            return self.le[k].clone();
        }
        let base = if k > 0 {
            self.le[k - 1].clone()
        } else {
            RoaringBitmap::new()
        };
        if self.lowest.get(k).is_none_or(|&lowest| lowest > v) {
            return base;
        }
        let upper = self.le.get(k).unwrap_or(&self.present);
        let boundary = upper - &base;
        let inside: RoaringBitmap = boundary
            .iter()
            .filter(|&u| self.get(u).is_some_and(|x| x <= v))
            .collect();
        base | inside
    }

    fn below(&self, v: i64) -> RoaringBitmap {
        v.checked_sub(1)
            .map_or_else(RoaringBitmap::new, |v| self.at_most(v))
    }

    fn compare(&self, op: Op, v: i64, today: i32) -> RoaringBitmap {
        // Days ago = today - day, so a bound on days ago is the reversed bound on the day.
        let (op, v) = if self.relative {
            (op.reversed(), i64::from(today).saturating_sub(v))
        } else {
            (op, v)
        };
        // Above an exact bound is everything present minus that bound's bitmap, without a copy.
        let exact = |v: i64| {
            self.bounds
                .binary_search(&v)
                .ok()
                .map(|k| &self.present - &self.le[k])
        };
        match op {
            Op::Le => self.at_most(v),
            Op::Lt => self.below(v),
            Op::Gt => exact(v).unwrap_or_else(|| &self.present - self.at_most(v)),
            Op::Ge if v > i64::MIN => exact(v - 1).unwrap_or_else(|| &self.present - self.below(v)),
            Op::Ge => &self.present - self.below(v),
            Op::Eq => self.at_most(v) - self.below(v),
            Op::Ne => &self.present - (self.at_most(v) - self.below(v)),
        }
    }

    fn seen(&self, user: u32, today: i32) -> Option<i64> {
        let v = self.get(user)?;
        Some(if self.relative {
            i64::from(today) - v
        } else {
            v
        })
    }
}

/// Per day, the users with at least 1, 2, 3 … acts that day (`levels[j]`: at least j + 1).
type Days = BTreeMap<i32, Vec<RoaringBitmap>>;

#[derive(Debug, Default, Clone)]
struct EventColumn {
    all: Days,
    /// Property name → value → days.
    by_property: HashMap<String, HashMap<String, Days>>,
}

/// Adds `n` acts of `user` on `day`: the user joins the next `n` levels.
fn add_to_day(days: &mut Days, user: u32, day: i32, n: usize) {
    let levels = days.entry(day).or_default();
    let have = levels.partition_point(|l| l.contains(user));
    if levels.len() < have + n {
        levels.resize(have + n, RoaringBitmap::new());
    }
    for level in &mut levels[have..have + n] {
        level.insert(user);
    }
}

/// One act to record: who, which event, which day, and the properties a filter may ask about.
#[derive(Debug, Clone, Copy)]
pub struct NewAct<'a> {
    pub event: &'a str,
    pub user: u32,
    pub day: i32,
    pub props: &'a [(&'a str, &'a str)],
}

fn remove_from_days(days: &mut Days, user: u32) {
    for levels in days.values_mut() {
        for level in levels.iter_mut() {
            level.remove(user);
        }
        while levels.last().is_some_and(RoaringBitmap::is_empty) {
            levels.pop();
        }
    }
}

/// The users with at least `at_least` acts over the days in `window`, among `n` users.
///
/// One act is a union of the days' first levels. More is one pass over the window's levels with
/// a saturating counter per user: a user on level j of a day had at least j + 1 acts that day, so
/// each level a user is on adds one. The pass costs the acts in the window, not the users.
fn count_at_least<'a>(
    window: impl Iterator<Item = &'a Vec<RoaringBitmap>>,
    at_least: u32,
    n: u32,
    within: Option<&RoaringBitmap>,
) -> RoaringBitmap {
    if at_least == 1 {
        let any = window.filter_map(|levels| levels.first()).union();
        return match within {
            Some(w) => any & w,
            None => any,
        };
    }
    let cap = at_least.min(u32::from(u16::MAX)) as u16;
    COUNTS.with(|counts| {
        let mut counts = counts.borrow_mut();
        if counts.len() < n as usize {
            counts.resize(n as usize, 0);
        }
        let mut touched = Vec::new();
        let mut reached = Vec::new();
        // Counts stop at `cap`, so a day's levels past the cap-th add nothing. Each level is a
        // subset of the one before, so once the first is narrowed to the candidates the deeper
        // ones are narrowed by it (smaller), and an empty one ends the day.
        let deep = (cap as usize).min(u16::MAX as usize);
        for levels in window {
            let mut previous: Option<RoaringBitmap> = None;
            for level in levels.iter().take(deep) {
                let narrowed = match (&previous, within) {
                    (Some(p), _) => Some(level & p),
                    (None, Some(w)) => Some(level & w),
                    (None, None) => None,
                };
                let level = narrowed.as_ref().unwrap_or(level);
                if level.is_empty() {
                    break;
                }
                for user in level {
                    let Some(c) = counts.get_mut(user as usize) else {
                        continue;
                    };
                    if *c == 0 {
                        touched.push(user);
                    }
                    if *c < cap {
                        *c += 1;
                        if *c == cap {
                            reached.push(user);
                        }
                    }
                }
                if within.is_some() {
                    previous = narrowed;
                }
            }
        }
        for user in touched {
            counts[user as usize] = 0;
        }
        reached.sort_unstable();
        RoaringBitmap::from_sorted_iter(reached).unwrap_or_default()
    })
}

thread_local! {
    /// Per-user counters for [`count_at_least`], kept zeroed between calls so a query touches
    /// only the users in its window.
    static COUNTS: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One act kept row by row, for [`Population::evaluate_naive`].
#[derive(Debug, Clone)]
struct Row {
    event: String,
    day: i32,
    user: u32,
    props: Vec<(String, String)>,
}

/// Runs `f` on the column named `name`, made empty first if there is none: the name is copied
/// only then (setting a user's value is per user and field, so most calls find the column).
fn with_column<V: Default, R>(
    columns: &mut BTreeMap<String, V>,
    name: &str,
    f: impl FnOnce(&mut V) -> R,
) -> R {
    match columns.get_mut(name) {
        Some(column) => f(column),
        None => f(columns.entry(name.to_owned()).or_default()),
    }
}

/// Users and what is known about them.
#[derive(Debug, Clone)]
pub struct Population {
    n: u32,
    today: i32,
    buckets: usize,
    text: BTreeMap<String, TextColumn>,
    numbers: BTreeMap<String, NumberColumn>,
    tags: BTreeMap<String, RoaringBitmap>,
    segments: BTreeMap<String, RoaringBitmap>,
    events: BTreeMap<String, EventColumn>,
    /// Acts row by row, kept only when asked for (tests compare against them).
    rows: Option<Vec<Row>>,
}

impl Population {
    /// An empty population of `n` users; `today` is the last day a window counts.
    pub fn new(n: u32, today: i32) -> Self {
        Population {
            n,
            today,
            buckets: BUCKETS,
            text: BTreeMap::new(),
            numbers: BTreeMap::new(),
            tags: BTreeMap::new(),
            segments: BTreeMap::new(),
            events: BTreeMap::new(),
            rows: None,
        }
    }

    pub fn users(&self) -> u32 {
        self.n
    }

    pub fn today(&self) -> i32 {
        self.today
    }

    pub fn set_today(&mut self, today: i32) {
        self.today = today;
    }

    /// Grows the population to `n` users (new users have no values).
    pub fn grow(&mut self, n: u32) {
        self.n = self.n.max(n);
    }

    /// Keeps every act row by row as well, so [`Population::evaluate_naive`] can answer.
    pub fn keep_rows(&mut self) {
        self.rows.get_or_insert_with(Vec::new);
    }

    /// Sets how many bounds number columns keep from the next [`Population::rebucket`].
    pub fn set_buckets(&mut self, buckets: usize) {
        self.buckets = buckets.max(1);
    }

    pub fn set_text(&mut self, field: &str, user: u32, value: Option<&str>) {
        self.grow(user + 1);
        if value.is_none() && !self.text.contains_key(field) {
            return;
        }
        with_column(&mut self.text, field, |c| c.set(user, value));
    }

    pub fn set_number(&mut self, field: &str, user: u32, value: Option<i64>) {
        self.grow(user + 1);
        if value.is_none() && !self.numbers.contains_key(field) {
            return;
        }
        with_column(&mut self.numbers, field, |c| c.set(user, value));
    }

    /// A field stored as a day number (days since 0001-01-01) that the language sees as whole
    /// days before today, so it stays right as days pass without rewriting any user.
    pub fn set_days_ago(&mut self, field: &str, user: u32, day: Option<i32>) {
        self.declare_days_ago(field);
        self.set_number(field, user, day.map(i64::from));
    }

    pub fn declare_number(&mut self, field: &str) {
        self.numbers.entry(field.to_owned()).or_default();
    }

    pub fn declare_text(&mut self, field: &str) {
        self.text.entry(field.to_owned()).or_default();
    }

    pub fn declare_days_ago(&mut self, field: &str) {
        with_column(&mut self.numbers, field, |c| c.relative = true);
    }

    pub fn set_tag(&mut self, tag: &str, user: u32, on: bool) {
        self.grow(user + 1);
        with_column(&mut self.tags, tag, |bitmap| {
            if on {
                bitmap.insert(user);
            } else {
                bitmap.remove(user);
            }
        });
    }

    /// Replaces a tag's users.
    pub fn set_tag_users(&mut self, tag: &str, users: RoaringBitmap) {
        self.tags.insert(tag.to_owned(), users);
    }

    /// Declares a tag that may have no users yet.
    pub fn declare_tag(&mut self, tag: &str) {
        self.tags.entry(tag.to_owned()).or_default();
    }

    pub fn remove_tag(&mut self, tag: &str) {
        self.tags.remove(tag);
    }

    pub fn tag_users(&self, tag: &str) -> Option<&RoaringBitmap> {
        self.tags.get(tag)
    }

    pub fn tags(&self) -> impl Iterator<Item = (&str, &RoaringBitmap)> {
        self.tags.iter().map(|(t, b)| (t.as_str(), b))
    }

    pub fn set_segment(&mut self, name: &str, members: RoaringBitmap) {
        self.segments.insert(name.to_owned(), members);
    }

    pub fn remove_segment(&mut self, name: &str) {
        self.segments.remove(name);
    }

    pub fn segment_members(&self, name: &str) -> Option<&RoaringBitmap> {
        self.segments.get(name)
    }

    /// Declares an event type that may have no acts yet.
    pub fn declare_event(&mut self, event: &str) {
        self.events.entry(event.to_owned()).or_default();
    }

    /// Records one act of `user` on `day`, with the properties a filter may ask about.
    /// A property named twice with the same value counts once.
    pub fn add_act(&mut self, event: &str, user: u32, day: i32, props: &[(&str, &str)]) {
        self.add_acts(&[NewAct {
            event,
            user,
            day,
            props,
        }]);
    }

    /// Records many acts at once: each (event or property, day, user) is placed once with its
    /// count, in sorted order, which is much cheaper than one act at a time.
    pub fn add_acts(&mut self, acts: &[NewAct<'_>]) {
        type Key<'a> = (&'a str, Option<(&'a str, &'a str)>);
        let mut grouped: HashMap<Key<'_>, HashMap<(i32, u32), usize>> = HashMap::new();
        for a in acts {
            self.grow(a.user + 1);
            let mut props = a.props.to_vec();
            props.sort_unstable();
            props.dedup();
            *grouped
                .entry((a.event, None))
                .or_default()
                .entry((a.day, a.user))
                .or_default() += 1;
            for &p in &props {
                *grouped
                    .entry((a.event, Some(p)))
                    .or_default()
                    .entry((a.day, a.user))
                    .or_default() += 1;
            }
            if let Some(rows) = &mut self.rows {
                rows.push(Row {
                    event: a.event.to_owned(),
                    day: a.day,
                    user: a.user,
                    props: props
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                });
            }
        }
        for ((event, prop), counts) in grouped {
            let column = self.events.entry(event.to_owned()).or_default();
            let days = match prop {
                None => &mut column.all,
                Some((k, v)) => column
                    .by_property
                    .entry(k.to_owned())
                    .or_default()
                    .entry(v.to_owned())
                    .or_default(),
            };
            let mut counts: Vec<((i32, u32), usize)> = counts.into_iter().collect();
            counts.sort_unstable();
            for ((day, user), n) in counts {
                add_to_day(days, user, day, n);
            }
        }
    }

    /// Forgets every act of one user (before re-adding them, e.g. after an identity change).
    pub fn remove_acts_of(&mut self, user: u32) {
        for column in self.events.values_mut() {
            remove_from_days(&mut column.all, user);
            for days in column.by_property.values_mut().flat_map(|m| m.values_mut()) {
                remove_from_days(days, user);
            }
        }
        if let Some(rows) = &mut self.rows {
            rows.retain(|r| r.user != user);
        }
    }

    /// Rebuilds every number column's bounds from its current values.
    pub fn rebucket(&mut self) {
        for col in self.numbers.values_mut() {
            col.rebucket(self.buckets);
        }
    }

    /// The fields the language can compare: (name, is a number).
    pub fn fields(&self) -> impl Iterator<Item = (&str, bool)> {
        self.numbers
            .keys()
            .map(|k| (k.as_str(), true))
            .chain(self.text.keys().map(|k| (k.as_str(), false)))
    }

    /// Parses and checks the text form against this population's fields, tags and events.
    pub fn compile(&self, text: &str) -> Result<Expr, SegmentError> {
        let parsed = parse(text)?;
        self.check_at(&parsed.expr, Some(&parsed.positions), &mut 0)?;
        Ok(parsed.expr)
    }

    /// Checks an expression (e.g. the JSON form); the position of an error is the node's index in
    /// pre-order.
    pub fn check(&self, expr: &Expr) -> Result<(), SegmentError> {
        self.check_at(expr, None, &mut 0)
    }

    fn check_at(
        &self,
        expr: &Expr,
        positions: Option<&[usize]>,
        next: &mut usize,
    ) -> Result<(), SegmentError> {
        let at = node_at(positions, *next);
        *next += 1;
        let err = |message: String| Err(SegmentError::new(at, message));
        match expr {
            Expr::And(items) | Expr::Or(items) => {
                if items.is_empty() {
                    return err("AND and OR need at least one condition".into());
                }
                for item in items {
                    self.check_at(item, positions, next)?;
                }
                Ok(())
            }
            Expr::Not(inner) => self.check_at(inner, positions, next),
            Expr::Compare { field, op, value } => {
                self.check_field(field, std::slice::from_ref(value), Some(*op), at)
            }
            Expr::In { field, values } => {
                if values.is_empty() {
                    return err(format!("{field} in (): the list is empty"));
                }
                self.check_field(field, values, None, at)
            }
            Expr::Tag(t) if !self.tags.contains_key(t) => err(format!("unknown tag {t:?}")),
            Expr::Segment(s) if !self.segments.contains_key(s) => {
                err(format!("unknown segment {s:?}"))
            }
            Expr::Tag(_) | Expr::Segment(_) => Ok(()),
            Expr::Did {
                event,
                at_least,
                days,
                ..
            } => {
                if !self.events.contains_key(event) {
                    let known: Vec<&str> = self.events.keys().map(String::as_str).collect();
                    return err(format!(
                        "unknown event {event:?}; known: {}",
                        known.join(", ")
                    ));
                }
                if *days == 0 || *days > MAX_DAYS {
                    return err(format!(
                        "a window of {days} days is impossible: use 1 to {MAX_DAYS}"
                    ));
                }
                if *at_least == 0 {
                    return err("'at least 0 times' is always true: use 1 or more".into());
                }
                if *at_least > MAX_AT_LEAST {
                    return err(format!(
                        "'at least {at_least} times' is beyond the {MAX_AT_LEAST} this counts to"
                    ));
                }
                Ok(())
            }
        }
    }

    fn check_field(
        &self,
        field: &str,
        values: &[Value],
        op: Option<Op>,
        at: usize,
    ) -> Result<(), SegmentError> {
        let err = |m: String| Err(SegmentError::new(at, m));
        if self.numbers.contains_key(field) {
            if values.iter().any(|v| matches!(v, Value::Text(_))) {
                return err(format!("{field} is a number: compare it with a number"));
            }
            Ok(())
        } else if self.text.contains_key(field) {
            if values.iter().any(|v| matches!(v, Value::Number(_))) {
                return err(format!("{field} is text: compare it with \"text\""));
            }
            match op {
                Some(Op::Eq | Op::Ne) | None => Ok(()),
                Some(op) => err(format!(
                    "{field} is text: '{}' needs a number field; use = or != or in",
                    op.as_str()
                )),
            }
        } else {
            let known: Vec<&str> = self.fields().map(|(f, _)| f).collect();
            err(format!(
                "unknown field {field:?}; known: {}",
                known.join(", ")
            ))
        }
    }

    fn all(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.n);
        all
    }

    /// The users matching a checked expression, as a compressed bitmap.
    pub fn evaluate(&self, expr: &Expr) -> RoaringBitmap {
        match expr {
            Expr::And(items) => {
                // Cheap conditions first; `A AND NOT B` is A minus B (no complement is built
                // unless nothing is positive); then acts are counted only for the users left.
                let (counted, rest): (Vec<&Expr>, Vec<&Expr>) =
                    items.iter().partition(|e| is_counting(e));
                let (negative, positive): (Vec<&Expr>, Vec<&Expr>) =
                    rest.into_iter().partition(|e| matches!(e, Expr::Not(_)));
                let mut parts: Vec<RoaringBitmap> =
                    positive.iter().map(|e| self.evaluate(e)).collect();
                parts.sort_by_key(RoaringBitmap::len);
                let mut it = parts.into_iter();
                let mut acc = it.next().map(|first| it.fold(first, |acc, b| acc & b));
                let mut counted = counted.into_iter();
                if acc.is_none() {
                    acc = counted.next().map(|e| self.evaluate(e));
                }
                let mut acc = acc.unwrap_or_else(|| self.all());
                for e in negative {
                    if acc.is_empty() {
                        break;
                    }
                    if let Expr::Not(inner) = e {
                        acc -= self.evaluate(inner);
                    }
                }
                for e in counted {
                    if acc.is_empty() {
                        break;
                    }
                    if let Expr::Did {
                        event,
                        filter,
                        at_least,
                        days,
                    } = e
                    {
                        acc = self.did(event, filter.as_ref(), *at_least, *days, Some(&acc));
                    }
                }
                acc
            }
            Expr::Or(items) => items.iter().map(|e| self.evaluate(e)).union(),
            Expr::Not(inner) => self.all() - self.evaluate(inner),
            Expr::Compare { field, op, value } => self.compare(field, *op, value),
            Expr::In { field, values } => values
                .iter()
                .map(|v| self.compare(field, Op::Eq, v))
                .union(),
            Expr::Tag(t) => self.tags.get(t).cloned().unwrap_or_default(),
            Expr::Segment(s) => self.segments.get(s).cloned().unwrap_or_default(),
            Expr::Did {
                event,
                filter,
                at_least,
                days,
            } => self.did(event, filter.as_ref(), *at_least, *days, None),
        }
    }

    fn compare(&self, field: &str, op: Op, value: &Value) -> RoaringBitmap {
        match (self.numbers.get(field), self.text.get(field), value) {
            (Some(col), _, Value::Number(v)) => col.compare(op, *v, self.today),
            (_, Some(col), Value::Text(v)) => {
                let eq = col
                    .dict
                    .get(v)
                    .map(|&c| col.bitmaps[c as usize].clone())
                    .unwrap_or_default();
                match op {
                    Op::Eq => eq,
                    Op::Ne => &col.present - eq,
                    _ => RoaringBitmap::new(),
                }
            }
            _ => RoaringBitmap::new(),
        }
    }

    fn did(
        &self,
        event: &str,
        filter: Option<&(String, Value)>,
        at_least: u32,
        days: u32,
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        let Some(column) = self.events.get(event) else {
            return RoaringBitmap::new();
        };
        let days_map = match filter {
            None => Some(&column.all),
            Some((k, v)) => column
                .by_property
                .get(k)
                .and_then(|values| values.get(&value_string(v))),
        };
        let Some(days_map) = days_map else {
            return RoaringBitmap::new();
        };
        let from = self.today.saturating_sub(days as i32); // exclusive
        count_at_least(
            days_map
                .range(from.saturating_add(1)..=self.today)
                .map(|(_, l)| l),
            at_least,
            self.n,
            within,
        )
    }

    /// Whether one user matches, row by row: the reference the bitmap evaluation is tested
    /// against. Behaviour conditions need [`Population::keep_rows`].
    pub fn matches_naive(&self, expr: &Expr, user: u32) -> bool {
        match expr {
            Expr::And(items) => items.iter().all(|e| self.matches_naive(e, user)),
            Expr::Or(items) => items.iter().any(|e| self.matches_naive(e, user)),
            Expr::Not(inner) => !self.matches_naive(inner, user),
            Expr::Compare { field, op, value } => self.compare_one(field, *op, value, user),
            Expr::In { field, values } => values
                .iter()
                .any(|v| self.compare_one(field, Op::Eq, v, user)),
            Expr::Tag(t) => self.tags.get(t).is_some_and(|b| b.contains(user)),
            Expr::Segment(s) => self.segments.get(s).is_some_and(|b| b.contains(user)),
            Expr::Did {
                event,
                filter,
                at_least,
                days,
            } => {
                let wanted = filter.as_ref().map(|(k, v)| (k.as_str(), value_string(v)));
                let count = self
                    .rows
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .filter(|a| {
                        &a.event == event
                            && a.user == user
                            && a.day > self.today - *days as i32
                            && a.day <= self.today
                    })
                    .filter(|a| {
                        wanted
                            .as_ref()
                            .is_none_or(|(k, v)| a.props.iter().any(|(pk, pv)| pk == k && pv == v))
                    })
                    .count();
                count >= *at_least as usize
            }
        }
    }

    fn compare_one(&self, field: &str, op: Op, value: &Value, user: u32) -> bool {
        match (self.numbers.get(field), self.text.get(field), value) {
            (Some(col), _, Value::Number(v)) => col
                .seen(user, self.today)
                .is_some_and(|x| op.holds(x.cmp(v))),
            (_, Some(col), Value::Text(v)) => match (col.get(user), op) {
                (Some(code), Op::Eq) => col.dict.get(v) == Some(&code),
                (Some(code), Op::Ne) => col.dict.get(v) != Some(&code),
                _ => false,
            },
            _ => false,
        }
    }

    /// Row-by-row evaluation of every user.
    pub fn evaluate_naive(&self, expr: &Expr) -> RoaringBitmap {
        (0..self.n)
            .filter(|&u| self.matches_naive(expr, u))
            .collect()
    }

    /// A user's value of a number field as the language sees it.
    pub fn number(&self, field: &str, user: u32) -> Option<i64> {
        self.numbers.get(field)?.seen(user, self.today)
    }

    /// A user's value of a text field.
    pub fn text(&self, field: &str, user: u32) -> Option<&str> {
        let col = self.text.get(field)?;
        let code = col.get(user)?;
        col.dict
            .iter()
            .find(|(_, &c)| c == code)
            .map(|(v, _)| v.as_str())
    }
}

/// A behaviour condition that counts acts per user (costly), rather than taking a union.
fn is_counting(e: &Expr) -> bool {
    matches!(e, Expr::Did { at_least, .. } if *at_least > 1)
}

/// Highest "at least N times" a behaviour condition counts to.
pub const MAX_AT_LEAST: u32 = 1000;

fn node_at(positions: Option<&[usize]>, index: usize) -> usize {
    positions
        .and_then(|p| p.get(index).copied())
        .unwrap_or(index)
}

fn value_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Text(t) => t.clone(),
    }
}

/// Builds a [`Population`] in one go (tests, one-off counts); the population itself can also be
/// changed in place.
pub struct PopulationBuilder {
    population: Population,
}

impl PopulationBuilder {
    pub fn new(n: u32, today: i32) -> Self {
        let mut population = Population::new(n, today);
        population.keep_rows();
        PopulationBuilder { population }
    }

    /// Number columns keep at most this many bounds (tests use few to exercise the boundaries).
    pub fn buckets(&mut self, buckets: usize) -> &mut Self {
        self.population.set_buckets(buckets);
        self
    }

    /// Do not keep acts row by row (saves memory; [`Population::evaluate_naive`] then sees none).
    pub fn without_rows(&mut self) -> &mut Self {
        self.population.rows = None;
        self
    }

    pub fn text(&mut self, field: &str, user: u32, value: &str) -> &mut Self {
        self.population.set_text(field, user, Some(value));
        self
    }

    pub fn number(&mut self, field: &str, user: u32, value: i64) -> &mut Self {
        self.population.set_number(field, user, Some(value));
        self
    }

    pub fn days_ago(&mut self, field: &str, user: u32, day: i32) -> &mut Self {
        self.population.set_days_ago(field, user, Some(day));
        self
    }

    pub fn tag(&mut self, tag: &str, user: u32) -> &mut Self {
        self.population.set_tag(tag, user, true);
        self
    }

    pub fn declare_tag(&mut self, tag: &str) -> &mut Self {
        self.population.declare_tag(tag);
        self
    }

    pub fn segment(&mut self, name: &str, members: RoaringBitmap) -> &mut Self {
        self.population.set_segment(name, members);
        self
    }

    pub fn declare_event(&mut self, event: &str) -> &mut Self {
        self.population.declare_event(event);
        self
    }

    pub fn act(&mut self, event: &str, user: u32, day: i32, props: &[(&str, &str)]) -> &mut Self {
        self.population.add_act(event, user, day, props);
        self
    }

    pub fn build(mut self) -> Population {
        self.population.rebucket();
        self.population
    }
}
