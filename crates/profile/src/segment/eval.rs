//! The population a segment is evaluated over: columns of attributes, tag and segment bitmaps,
//! and behaviour by event type, all keyed by dense user index (0..n).
//!
//! Two-valued logic: a comparison on a user who has no value for the field is false, and NOT is
//! the complement over all users.

use super::{parse, Expr, Op, SegmentError, Value, MAX_DAYS};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct TextColumn {
    codes: Vec<Option<u32>>,
    dict: HashMap<String, u32>,
    bitmaps: Vec<RoaringBitmap>,
}

#[derive(Debug, Default)]
struct NumberColumn {
    values: Vec<Option<i64>>,
    /// (value, user) sorted by value: a range is a slice.
    sorted: Vec<(i64, u32)>,
}

/// One behaviour event of a user: its day and its properties.
#[derive(Debug, Clone)]
struct Act {
    day: i32,
    user: u32,
    props: Vec<(String, String)>,
}

/// Users and what is known about them.
#[derive(Debug, Default)]
pub struct Population {
    n: u32,
    today: i32,
    text: BTreeMap<String, TextColumn>,
    numbers: BTreeMap<String, NumberColumn>,
    tags: BTreeMap<String, RoaringBitmap>,
    segments: BTreeMap<String, RoaringBitmap>,
    /// Acts per event type, sorted by day.
    acts: BTreeMap<String, Vec<Act>>,
}

/// Builds a [`Population`] of `n` users; `today` is the last day a window counts.
pub struct PopulationBuilder {
    population: Population,
}

impl PopulationBuilder {
    pub fn new(n: u32, today: i32) -> Self {
        PopulationBuilder {
            population: Population {
                n,
                today,
                ..Population::default()
            },
        }
    }

    pub fn text(&mut self, field: &str, user: u32, value: &str) -> &mut Self {
        let n = self.population.n as usize;
        let col = self
            .population
            .text
            .entry(field.to_owned())
            .or_insert_with(|| TextColumn {
                codes: vec![None; n],
                ..TextColumn::default()
            });
        let next = col.dict.len() as u32;
        let code = *col.dict.entry(value.to_owned()).or_insert(next);
        if code as usize == col.bitmaps.len() {
            col.bitmaps.push(RoaringBitmap::new());
        }
        if let Some(old) = col.codes[user as usize].replace(code) {
            col.bitmaps[old as usize].remove(user);
        }
        col.bitmaps[code as usize].insert(user);
        self
    }

    pub fn number(&mut self, field: &str, user: u32, value: i64) -> &mut Self {
        let n = self.population.n as usize;
        let col = self
            .population
            .numbers
            .entry(field.to_owned())
            .or_insert_with(|| NumberColumn {
                values: vec![None; n],
                sorted: Vec::new(),
            });
        col.values[user as usize] = Some(value);
        self
    }

    pub fn tag(&mut self, tag: &str, user: u32) -> &mut Self {
        self.population
            .tags
            .entry(tag.to_owned())
            .or_default()
            .insert(user);
        self
    }

    /// Declares a tag that may have no users yet.
    pub fn declare_tag(&mut self, tag: &str) -> &mut Self {
        self.population.tags.entry(tag.to_owned()).or_default();
        self
    }

    pub fn segment(&mut self, name: &str, members: RoaringBitmap) -> &mut Self {
        self.population.segments.insert(name.to_owned(), members);
        self
    }

    /// Declares an event type that may have no acts yet.
    pub fn declare_event(&mut self, event: &str) -> &mut Self {
        self.population.acts.entry(event.to_owned()).or_default();
        self
    }

    pub fn act(&mut self, event: &str, user: u32, day: i32, props: &[(&str, &str)]) -> &mut Self {
        let props = props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.population
            .acts
            .entry(event.to_owned())
            .or_default()
            .push(Act { day, user, props });
        self
    }

    pub fn build(mut self) -> Population {
        for col in self.population.numbers.values_mut() {
            col.sorted = col
                .values
                .iter()
                .enumerate()
                .filter_map(|(u, v)| v.map(|v| (v, u as u32)))
                .collect();
            col.sorted.sort_unstable();
        }
        for acts in self.population.acts.values_mut() {
            acts.sort_by_key(|a| a.day);
        }
        self.population
    }
}

fn node_at(positions: Option<&[usize]>, index: usize) -> usize {
    positions
        .and_then(|p| p.get(index).copied())
        .unwrap_or(index)
}

impl Population {
    pub fn users(&self) -> u32 {
        self.n
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
                if !self.acts.contains_key(event) {
                    let known: Vec<&str> = self.acts.keys().map(String::as_str).collect();
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
            let known: Vec<&str> = self
                .numbers
                .keys()
                .chain(self.text.keys())
                .map(String::as_str)
                .collect();
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
                let mut parts: Vec<RoaringBitmap> =
                    items.iter().map(|e| self.evaluate(e)).collect();
                parts.sort_by_key(RoaringBitmap::len);
                let mut it = parts.into_iter();
                let first = it.next().unwrap_or_else(|| self.all());
                it.fold(first, |acc, b| acc & b)
            }
            Expr::Or(items) => items
                .iter()
                .map(|e| self.evaluate(e))
                .fold(RoaringBitmap::new(), |acc, b| acc | b),
            Expr::Not(inner) => self.all() - self.evaluate(inner),
            Expr::Compare { field, op, value } => self.compare(field, *op, value),
            Expr::In { field, values } => values
                .iter()
                .map(|v| self.compare(field, Op::Eq, v))
                .fold(RoaringBitmap::new(), |acc, b| acc | b),
            Expr::Tag(t) => self.tags.get(t).cloned().unwrap_or_default(),
            Expr::Segment(s) => self.segments.get(s).cloned().unwrap_or_default(),
            Expr::Did {
                event,
                filter,
                at_least,
                days,
            } => self.did(event, filter.as_ref(), *at_least, *days),
        }
    }

    fn compare(&self, field: &str, op: Op, value: &Value) -> RoaringBitmap {
        match (self.numbers.get(field), self.text.get(field), value) {
            (Some(col), _, Value::Number(v)) => {
                let s = &col.sorted;
                let lo = s.partition_point(|(x, _)| x < v);
                let hi = s.partition_point(|(x, _)| x <= v);
                let ranges: Vec<&[(i64, u32)]> = match op {
                    Op::Eq => vec![&s[lo..hi]],
                    Op::Ne => vec![&s[..lo], &s[hi..]],
                    Op::Lt => vec![&s[..lo]],
                    Op::Le => vec![&s[..hi]],
                    Op::Gt => vec![&s[hi..]],
                    Op::Ge => vec![&s[lo..]],
                };
                let mut users: Vec<u32> = ranges
                    .iter()
                    .flat_map(|r| r.iter().map(|(_, u)| *u))
                    .collect();
                users.sort_unstable();
                RoaringBitmap::from_sorted_iter(users).unwrap_or_default()
            }
            (_, Some(col), Value::Text(v)) => {
                let eq = col
                    .dict
                    .get(v)
                    .map(|&c| col.bitmaps[c as usize].clone())
                    .unwrap_or_default();
                match op {
                    Op::Eq => eq,
                    Op::Ne => {
                        let has_value = col
                            .bitmaps
                            .iter()
                            .fold(RoaringBitmap::new(), |acc, b| acc | b);
                        has_value - eq
                    }
                    _ => RoaringBitmap::new(),
                }
            }
            _ => RoaringBitmap::new(),
        }
    }

    fn window(&self, event: &str, days: u32) -> &[Act] {
        let acts = self.acts.get(event).map_or(&[][..], Vec::as_slice);
        let from = self.today - days as i32; // exclusive
        let lo = acts.partition_point(|a| a.day <= from);
        let hi = acts.partition_point(|a| a.day <= self.today);
        &acts[lo..hi]
    }

    fn did(
        &self,
        event: &str,
        filter: Option<&(String, Value)>,
        at_least: u32,
        days: u32,
    ) -> RoaringBitmap {
        let wanted = filter.map(|(k, v)| (k.as_str(), value_string(v)));
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for act in self.window(event, days) {
            if wanted
                .as_ref()
                .is_none_or(|(k, v)| act.props.iter().any(|(pk, pv)| pk == k && pv == v))
            {
                *counts.entry(act.user).or_default() += 1;
            }
        }
        let mut users: Vec<u32> = counts
            .into_iter()
            .filter(|&(_, c)| c >= at_least)
            .map(|(u, _)| u)
            .collect();
        users.sort_unstable();
        RoaringBitmap::from_sorted_iter(users).unwrap_or_default()
    }

    /// Whether one user matches, row by row: the reference the bitmap evaluation is tested against.
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
                let count = self.acts.get(event).map_or(0, |acts| {
                    acts.iter()
                        .filter(|a| {
                            a.user == user
                                && a.day > self.today - *days as i32
                                && a.day <= self.today
                        })
                        .filter(|a| {
                            wanted.as_ref().is_none_or(|(k, v)| {
                                a.props.iter().any(|(pk, pv)| pk == k && pv == v)
                            })
                        })
                        .count()
                });
                count >= *at_least as usize
            }
        }
    }

    fn compare_one(&self, field: &str, op: Op, value: &Value, user: u32) -> bool {
        match (self.numbers.get(field), self.text.get(field), value) {
            (Some(col), _, Value::Number(v)) => {
                col.values[user as usize].is_some_and(|x| op.holds(x.cmp(v)))
            }
            (_, Some(col), Value::Text(v)) => match (col.codes[user as usize], op) {
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
}

fn value_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Text(t) => t.clone(),
    }
}
