//! `shopgrowth segment count EXPR`: sizes an audience over the store with the segment language.
//!
//! The population is read from the store (attributes, order totals, behaviour), turned into
//! bitmaps, and the expression is evaluated on them; `--repeat` times the evaluation alone.

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::Context;
use chrono::{Datelike, NaiveDate, TimeZone};
use clap::{Args, Subcommand};
use serde::Serialize;
use shopgrowth_core::model::EventType;
use shopgrowth_profile::rfm::{score, RfmClass, RfmConfig, RfmRow};
use shopgrowth_profile::segment::{Population, PopulationBuilder};
use shopgrowth_store::records::ProfileSource;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum SegmentVerb {
    /// Count the users an expression selects, e.g.
    /// `did purchase where category = "母婴" at least 2 times in last 90 days AND city_tier = "tier1"`.
    Count(CountArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CountArgs {
    /// The segment expression (see `shopgrowth segment count --help` and docs/segments.md).
    pub expr: String,
    /// The last day windows count (YYYY-MM-DD); default today in the shop's time zone.
    #[arg(long)]
    pub today: Option<NaiveDate>,
    /// The shop's time zone for calendar days.
    #[arg(long)]
    pub tz: Option<String>,
    /// How many matching user ids to show.
    #[arg(long, default_value_t = 5)]
    pub sample: usize,
    /// Evaluate this many times and report latency percentiles.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

#[derive(Debug, Serialize)]
struct CountReport {
    expr: String,
    users: u32,
    matched: u64,
    sample: Vec<String>,
    today: NaiveDate,
    load_seconds: f64,
    evaluations: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// Fields the language can use, beside behaviour: text attributes and numbers.
pub fn population(source: &ProfileSource, today: NaiveDate, tz: chrono_tz::Tz) -> Population {
    let day_of = |ms: i64| {
        tz.timestamp_millis_opt(ms)
            .earliest()
            .map_or(0, |t| t.date_naive().num_days_from_ce())
    };
    let today_n = today.num_days_from_ce();
    let mut b = PopulationBuilder::new(source.users.len() as u32, today_n);
    for (i, u) in source.users.iter().enumerate() {
        let i = i as u32;
        for (field, value) in [
            ("gender", &u.gender),
            ("city", &u.city),
            ("city_tier", &u.city_tier),
            ("registration_channel", &u.registration_channel),
        ] {
            if let Some(v) = value {
                b.text(field, i, v);
            }
        }
        b.number("orders", i, u.orders)
            .number("monetary", i, u.monetary);
        if let Some(last) = u.last_order_at {
            b.number("recency_days", i, i64::from(today_n - day_of(last)));
        }
    }
    // RFM of every customer with an order, as scores and as class tags (in Chinese and English).
    let (users, mut rows): (Vec<u32>, Vec<RfmRow>) = source
        .users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let last = u.last_order_at?;
            let row = RfmRow {
                customer: u.id.clone(),
                recency_days: i64::from(today_n - day_of(last)),
                frequency: u.orders,
                monetary: u.monetary,
                r: 0,
                f: 0,
                m: 0,
                class: RfmClass::GeneralRetain,
            };
            Some((i as u32, row))
        })
        .unzip();
    score(
        &mut rows,
        &RfmConfig {
            tz,
            ..RfmConfig::default()
        },
    );
    for (&i, row) in users.iter().zip(&rows) {
        b.number("rfm_r", i, i64::from(row.r))
            .number("rfm_f", i, i64::from(row.f))
            .number("rfm_m", i, i64::from(row.m))
            .tag(row.class.as_str(), i)
            .tag(row.class.zh(), i);
    }
    for class in RfmClass::ALL {
        b.declare_tag(class.as_str()).declare_tag(class.zh());
    }
    for kind in EventType::ALL {
        b.declare_event(kind.as_str());
    }
    for act in &source.acts {
        let day = day_of(act.time);
        match act.category {
            Some(c) => b.act(
                act.kind.as_str(),
                act.user,
                day,
                &[("category", source.categories[c as usize].as_str())],
            ),
            None => b.act(act.kind.as_str(), act.user, day, &[]),
        };
    }
    b.build()
}

pub async fn run(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: SegmentVerb,
    json: bool,
) -> anyhow::Result<()> {
    let SegmentVerb::Count(args) = verb;
    let tz = config::timezone(args.tz.as_deref(), file)?;
    let today = args
        .today
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
    let store = config::open_store(store_args, file).await?;
    let started = Instant::now();
    // Windows reach back at most MAX_DAYS, so older behaviour is not read.
    let since = tz
        .from_local_datetime(
            &(today - chrono::Duration::days(i64::from(shopgrowth_profile::segment::MAX_DAYS)))
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default(),
        )
        .earliest()
        .map_or(0, |t| t.timestamp_millis());
    let source = store
        .profile_source(since)
        .await
        .context("reading the population")?;
    let population = population(&source, today, tz);
    let load_seconds = started.elapsed().as_secs_f64();
    let expr = population
        .compile(&args.expr)
        .map_err(|e| anyhow::anyhow!("{e}\n  {}\n  {}^", args.expr, " ".repeat(e.position)))?;
    let mut timings = Vec::with_capacity(args.repeat.max(1));
    let mut matched = roaring::RoaringBitmap::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        matched = population.evaluate(&expr);
        timings.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    timings.sort_by(f64::total_cmp);
    let pct =
        |p: f64| timings[((timings.len() as f64 * p).ceil() as usize).clamp(1, timings.len()) - 1];
    let report = CountReport {
        expr: args.expr.clone(),
        users: population.users(),
        matched: matched.len(),
        sample: matched
            .iter()
            .take(args.sample)
            .map(|i| source.users[i as usize].id.clone())
            .collect(),
        today,
        load_seconds,
        evaluations: timings.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let share = if report.users > 0 {
            100.0 * report.matched as f64 / f64::from(report.users)
        } else {
            0.0
        };
        println!(
            "{} of {} users ({share:.2}%) match, windows ending {}",
            report.matched, report.users, report.today
        );
        println!(
            "  evaluated in {:.3} ms (p50 of {}; p99 {:.3} ms); population loaded in {:.2}s",
            report.p50_ms, report.evaluations, report.p99_ms, report.load_seconds
        );
        if !report.sample.is_empty() {
            println!("  e.g. {}", report.sample.join(", "));
        }
    }
    Ok(())
}
