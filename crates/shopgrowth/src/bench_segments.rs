//! `shopgrowth bench segments`: a generated shop of (by default) 1,000,000 users and a year of
//! behaviour goes through the server's own update path into the audience; then segment
//! expressions are timed on its bitmaps. The same users and behaviour are written as CSV tables
//! so `bench/segments_vs_duckdb.sh` can ask DuckDB the same questions and compare answers and
//! times. It measures; it asserts nothing about time.

use crate::segment::percentile;
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shopgrowth_core::model::{EventType, OrderKind};
use shopgrowth_demo::{DemoConfig, Generator};
use shopgrowth_profile::audience::{Audience, AudienceConfig};
use shopgrowth_profile::features::local_time;
use shopgrowth_service::{fold, Identity, Update};
use shopgrowth_store::records::UserAttributes;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

/// The questions asked, each five clauses with a behaviour window.
pub const QUESTIONS: [&str; 2] = [
    r#"did purchase where category = "母婴" in last 30 days AND city_tier in ("tier1", "tier2") AND monetary >= 50000 AND NOT tag "流失客户" AND rfm_f >= 3"#,
    r#"did add_to_cart at least 3 times in last 90 days AND gender = "female" AND orders >= 2 AND tag "interest:美妆" AND NOT tag "lifecycle:sleeping""#,
];

/// Custom tags defined in the benchmark shop.
const CUSTOM_TAGS: [(&str, &str); 8] = [
    (
        "母婴达人",
        r#"did purchase where category = "母婴" at least 2 times in last 180 days"#,
    ),
    (
        "数码控",
        r#"did view where category = "数码" at least 10 times in last 90 days"#,
    ),
    (
        "美妆常客",
        r#"did purchase where category = "美妆" at least 1 times in last 60 days"#,
    ),
    ("优惠敏感", "coupon_share_pct >= 50 AND orders >= 2"),
    ("高客单", "aov >= 50000"),
    ("深度浏览", "browse_depth >= 8"),
    (
        "弃购预警",
        r#"cart_abandonment_pct >= 80 AND did add_to_cart in last 14 days"#,
    ),
    (
        "沉睡高价值",
        r#"tag "value:high" AND (lifecycle = "sleeping" OR lifecycle = "churned")"#,
    ),
];

#[derive(Debug, Clone, Args)]
pub struct SegmentBenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub users: usize,
    /// Events aimed at over the year.
    #[arg(long, default_value_t = 30_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluations of each question.
    #[arg(long, default_value_t = 1000)]
    pub repeat: usize,
    /// Where to write users.csv and acts.csv for the reference run; nothing written without it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct QuestionReport {
    pub expr: String,
    pub matched: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// p50 of each top-level clause alone, with how many it selects.
    pub clauses: Vec<(String, u64, f64)>,
}

fn time(
    audience: &Audience,
    expr: &shopgrowth_profile::segment::Expr,
    repeat: usize,
) -> (u64, Vec<f64>) {
    let mut timings = Vec::with_capacity(repeat);
    let mut matched = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        matched = audience.population().evaluate(expr).len();
        timings.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    timings.sort_by(f64::total_cmp);
    (matched, timings)
}

#[derive(Debug, Serialize)]
pub struct SegmentBenchReport {
    pub users: u32,
    pub events: usize,
    pub orders: usize,
    pub tags: usize,
    pub today: i32,
    pub build_seconds: f64,
    pub questions: Vec<QuestionReport>,
}

pub fn run(args: SegmentBenchArgs) -> anyhow::Result<SegmentBenchReport> {
    let config = DemoConfig {
        seed: args.seed,
        users: args.users,
        target_events: args.events,
        chunk_users: 2_000,
        ..DemoConfig::default()
    };
    let tz = chrono_tz::Asia::Shanghai;
    let today = shopgrowth_service::day_number(config.end);
    let mut generator = Generator::new(config);
    let mut audience = Audience::new(
        AudienceConfig {
            features: shopgrowth_profile::features::FeatureConfig {
                tz,
                ..Default::default()
            },
            ..AudienceConfig::default()
        },
        today,
    );
    let mut identity = Identity::none();
    let top: HashMap<String, String> = generator
        .catalogue()
        .products
        .iter()
        .map(|p| {
            (
                p.id.0.clone(),
                p.category.first().cloned().unwrap_or_default(),
            )
        })
        .collect();
    fold(
        &mut audience,
        &mut identity,
        &Update::Products(generator.catalogue().products.clone()),
    );
    let mut acts = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut w = BufWriter::new(std::fs::File::create(dir.join("acts.csv"))?);
            writeln!(w, "user,event,day,category")?;
            Some(w)
        }
        None => None,
    };
    let bar = ProgressBar::new(args.users as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} generating and folding users {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (mut events, mut orders) = (0usize, 0usize);
    for chunk in generator.by_ref() {
        bar.inc(chunk.users.len() as u64);
        events += chunk.events.len();
        orders += chunk.orders.len();
        let users: Vec<UserAttributes> = chunk
            .users
            .iter()
            .map(|u| UserAttributes {
                id: u.id.0.clone(),
                gender: u.gender.map(|g| g.as_str().to_owned()),
                city: u.city.clone(),
                city_tier: u.city_tier.map(|t| t.as_str().to_owned()),
                registration_channel: u.registration_channel.map(|c| c.as_str().to_owned()),
            })
            .collect();
        if let Some(w) = &mut acts {
            // The reference table: one row per act as docs/segments.md defines behaviour: a sale
            // order is one purchase per category it contains; a purchase event of an order is
            // the order itself.
            for o in chunk.orders.iter().filter(|o| o.kind == OrderKind::Sale) {
                let Some(user) = &o.user_id else { continue };
                let day = local_time(tz, o.placed_at.millis()).day;
                let cats: BTreeSet<&str> = o
                    .lines
                    .iter()
                    .filter_map(|l| top.get(l.sku_id.as_str()).map(String::as_str))
                    .collect();
                if cats.is_empty() {
                    writeln!(w, "{},purchase,{day},", user.as_str())?;
                }
                for c in cats {
                    writeln!(w, "{},purchase,{day},{c}", user.as_str())?;
                }
            }
            for e in &chunk.events {
                let Some(user) = &e.user_id else { continue };
                if e.kind == EventType::Purchase && e.order_id.is_some() {
                    continue;
                }
                let day = local_time(tz, e.time.millis()).day;
                let cat = e
                    .sku_id
                    .as_ref()
                    .and_then(|s| top.get(s.as_str()))
                    .map_or("", String::as_str);
                writeln!(w, "{},{},{day},{cat}", user.as_str(), e.kind.as_str())?;
            }
        }
        fold(&mut audience, &mut identity, &Update::Users(users));
        fold(&mut audience, &mut identity, &Update::Orders(chunk.orders));
        fold(&mut audience, &mut identity, &Update::Events(chunk.events));
    }
    bar.finish_and_clear();
    if let Some(mut w) = acts {
        w.flush()?;
    }
    audience.refresh();
    audience.rebucket();
    // Custom tags as an operator would define them, on top of the ~94 built-in ones.
    for (name, rule) in CUSTOM_TAGS {
        audience
            .define_tag(name, rule, 1.0, "")
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    audience.refresh();
    let build_seconds = started.elapsed().as_secs_f64();
    if let Some(dir) = &args.out {
        write_users(&audience, &dir.join("users.csv"))?;
    }
    let mut questions = Vec::new();
    for text in QUESTIONS {
        let expr = audience
            .population()
            .compile(text)
            .map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
        let (matched, timings) = time(&audience, &expr, args.repeat);
        let clauses = match &expr {
            shopgrowth_profile::segment::Expr::And(items) => items
                .iter()
                .map(|e| {
                    let (n, t) = time(&audience, e, args.repeat / 10);
                    (e.to_text(), n, percentile(&t, 0.5))
                })
                .collect(),
            _ => Vec::new(),
        };
        questions.push(QuestionReport {
            expr: text.to_owned(),
            matched,
            p50_ms: percentile(&timings, 0.5),
            p99_ms: percentile(&timings, 0.99),
            clauses,
        });
    }
    Ok(SegmentBenchReport {
        users: audience.users(),
        events,
        orders,
        tags: audience.population().tags().count(),
        today,
        build_seconds,
        questions,
    })
}

/// One row per user with the fields and tags the questions use, as the audience sees them.
fn write_users(audience: &Audience, path: &std::path::Path) -> anyhow::Result<()> {
    let p = audience.population();
    let n = audience.users() as usize;
    let mut tags: Vec<Vec<&str>> = vec![Vec::new(); n];
    for (tag, users) in p.tags() {
        for u in users {
            tags[u as usize].push(tag);
        }
    }
    let mut w = BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
    );
    writeln!(w, "user,gender,city_tier,monetary,orders,rfm_f,tags")?;
    let num = |f: &str, u: u32| p.number(f, u).map(|v| v.to_string()).unwrap_or_default();
    for u in 0..n as u32 {
        writeln!(
            w,
            "{},{},{},{},{},{},{}",
            audience.user_id(u),
            p.text("gender", u).unwrap_or(""),
            p.text("city_tier", u).unwrap_or(""),
            num("monetary", u),
            num("orders", u),
            num("rfm_f", u),
            tags[u as usize].join("|"),
        )?;
    }
    w.flush()?;
    Ok(())
}
