//! `shopgrowth segment …`, `shopgrowth tag …` and `shopgrowth profile …`: the audience from the
//! command line, over the store.
//!
//! Reading commands build the audience from the store and answer; defining commands (tags,
//! segments, snapshots) also write to the store. A running server sees definitions made here
//! after `POST /api/v1/audience/rebuild` or a restart.

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde::Serialize;
use shopgrowth_profile::audience::Audience;
use shopgrowth_profile::cluster;
use shopgrowth_service::{AudienceService, BuildStats};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum SegmentVerb {
    /// Count the users an expression selects, e.g.
    /// `did purchase where category = "母婴" at least 2 times in last 90 days AND city_tier = "tier1"`.
    Count(CountArgs),
    /// Save a segment (or replace one of the same name).
    Save {
        name: String,
        expr: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Saved segments and their sizes.
    List,
    /// Write a segment's members with their profiles as CSV.
    Export {
        name: String,
        /// File to write; default standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Take today's snapshot of a segment (size, entered, left) and list its snapshots.
    Snapshot {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Discover customer groups with k-means and describe them.
    Discover {
        /// Number of clusters; default: chosen by silhouette among 2..=8.
        #[arg(long)]
        k: Option<usize>,
        /// Only this saved segment's buyers.
        #[arg(long)]
        segment: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CountArgs {
    /// The segment expression (see docs/segments.md).
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

#[derive(Debug, Subcommand)]
pub enum TagVerb {
    /// Define a custom tag as a rule in the segment language, or its next version.
    Define {
        name: String,
        rule: String,
        #[arg(long, default_value_t = 1.0)]
        weight: f64,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every tag with its number of users.
    List,
    /// A user's tag history, newest first.
    History {
        user: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Retire a custom tag.
    Retire { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ProfileVerb {
    /// One user's profile: features, RFM, lifecycle, value tier, tags.
    Show { user: String },
    /// Rebuild every profile, tag and segment from the store and record tag changes.
    Rebuild,
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

/// The p-th percentile (nearest rank) of sorted timings.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn count(
    store_args: &StoreArgs,
    file: &FileConfig,
    args: CountArgs,
    json: bool,
) -> anyhow::Result<()> {
    let tz = config::timezone(args.tz.as_deref(), file)?;
    let today = args
        .today
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
    let store = config::open_store(store_args, file).await?;
    let started = Instant::now();
    let (audience, _, _) = shopgrowth_service::build(
        &store,
        config::audience_config(tz, file)?,
        shopgrowth_service::day_number(today),
    )
    .await
    .context("reading the audience")?;
    let load_seconds = started.elapsed().as_secs_f64();
    let expr = audience
        .population()
        .compile(&args.expr)
        .map_err(|e| anyhow::anyhow!("{e}\n  {}\n  {}^", args.expr, " ".repeat(e.position)))?;
    let mut timings = Vec::with_capacity(args.repeat.max(1));
    let mut matched = roaring::RoaringBitmap::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        matched = audience.population().evaluate(&expr);
        timings.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    timings.sort_by(f64::total_cmp);
    let report = CountReport {
        expr: args.expr.clone(),
        users: audience.users(),
        matched: matched.len(),
        sample: shopgrowth_service::member_ids(&audience, &matched, args.sample),
        today,
        load_seconds,
        evaluations: timings.len(),
        p50_ms: percentile(&timings, 0.5),
        p99_ms: percentile(&timings, 0.99),
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
            "  evaluated in {:.3} ms (p50 of {}; p99 {:.3} ms); audience built in {:.2}s",
            report.p50_ms, report.evaluations, report.p99_ms, report.load_seconds
        );
        if !report.sample.is_empty() {
            println!("  e.g. {}", report.sample.join(", "));
        }
    }
    Ok(())
}

async fn service(
    store_args: &StoreArgs,
    file: &FileConfig,
) -> anyhow::Result<Arc<AudienceService>> {
    let tz = config::timezone(None, file)?;
    let store = config::open_store(store_args, file).await?;
    AudienceService::load(Arc::new(store), config::audience_config(tz, file)?)
        .await
        .context("building the audience")
}

fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn run(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: SegmentVerb,
    json: bool,
) -> anyhow::Result<()> {
    if let SegmentVerb::Count(args) = verb {
        return count(store_args, file, args, json).await;
    }
    let service = service(store_args, file).await?;
    match verb {
        SegmentVerb::Count(_) => unreachable!("handled above"),
        SegmentVerb::Save {
            name,
            expr,
            description,
        } => {
            let members = service
                .save_segment(&name, &expr, &description)
                .await
                .map_err(|e| expression_error(e, &expr))?;
            if json {
                print(&serde_json::json!({ "name": name, "members": members }))?;
            } else {
                println!("saved segment {name:?}: {members} members");
            }
        }
        SegmentVerb::List => {
            let rows: Vec<(String, String, u64)> = service.read(|a| {
                a.segment_names()
                    .into_iter()
                    .filter_map(|n| {
                        let (e, m) = a.segment(&n)?;
                        Some((n.clone(), e.to_text(), m.len()))
                    })
                    .collect()
            });
            if json {
                print(&rows)?;
            } else {
                for (name, expr, members) in rows {
                    println!("{name:<24} {members:>9}  {expr}");
                }
            }
        }
        SegmentVerb::Export { name, out } => {
            let csv = service.read(|a| export(a, &name))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &csv)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "wrote {} members to {}",
                        csv.lines().count() - 1,
                        path.display()
                    );
                }
                None => print!("{csv}"),
            }
        }
        SegmentVerb::Snapshot { name } => {
            let taken = service.snapshot(&name).await?;
            let all = service.snapshots(&name).await?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|s| serde_json::json!({"day": s.day, "size": s.size, "entered": s.entered, "left": s.left}))
                    .collect();
                print(&rows)?;
            } else {
                println!(
                    "{}: {} members, {} entered, {} left",
                    taken.day, taken.size, taken.entered, taken.left
                );
                for s in all {
                    println!(
                        "  {}  size {:>8}  +{:<7} -{}",
                        s.day, s.size, s.entered, s.left
                    );
                }
            }
        }
        SegmentVerb::Delete { name } => {
            service.delete_segment(&name).await?;
            println!("deleted segment {name:?}");
        }
        SegmentVerb::Discover { k, segment } => {
            let points = service.read(|a| {
                let users = match &segment {
                    Some(name) => a
                        .segment(name)
                        .map(|(_, m)| m.clone())
                        .with_context(|| format!("no segment named {name:?}"))?,
                    None => {
                        let mut all = roaring::RoaringBitmap::new();
                        all.insert_range(0..a.users());
                        all
                    }
                };
                Ok::<_, anyhow::Error>(a.cluster_points(&users).1)
            })?;
            let result =
                cluster::discover(&points, k, 42).context("fewer than 2 buyers to cluster")?;
            if json {
                print(&result)?;
            } else {
                println!(
                    "{} clusters of {} buyers (silhouette {:.3})",
                    result.k,
                    points.len(),
                    result.silhouette
                );
                for (k, s) in &result.tried {
                    println!("  k={k}: silhouette {s:.3}");
                }
                for c in &result.clusters {
                    println!(
                        "  #{} {:>7} users  {}  ({})",
                        c.id, c.size, c.description_zh, c.description_en
                    );
                }
            }
        }
    }
    Ok(())
}

fn expression_error(e: shopgrowth_service::Error, text: &str) -> anyhow::Error {
    match e {
        shopgrowth_service::Error::Expression(e) => {
            anyhow::anyhow!("{e}\n  {text}\n  {}^", " ".repeat(e.position))
        }
        other => other.into(),
    }
}

/// A segment's members with their profiles, as CSV.
pub fn export(a: &Audience, name: &str) -> anyhow::Result<String> {
    let (_, members) = a
        .segment(name)
        .with_context(|| format!("no segment named {name:?}"))?;
    let mut out = String::from(shopgrowth_api::routes::audience::EXPORT_HEADER);
    out.push('\n');
    for u in members {
        out.push_str(&shopgrowth_api::routes::audience::export_row(a, u));
        out.push('\n');
    }
    Ok(out)
}

pub async fn run_tag(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: TagVerb,
    json: bool,
) -> anyhow::Result<()> {
    let service = service(store_args, file).await?;
    match verb {
        TagVerb::Define {
            name,
            rule,
            weight,
            description,
        } => {
            let (def, changed) = service
                .define_tag(&name, &rule, weight, &description)
                .await
                .map_err(|e| expression_error(e, &rule))?;
            let users = service.read(|a| a.population().tag_users(&name).map_or(0, |b| b.len()));
            if json {
                print(&serde_json::json!({ "tag": def, "new_version": changed, "users": users }))?;
            } else if changed {
                println!("tag {name:?} version {}: {users} users", def.version);
            } else {
                println!(
                    "tag {name:?} is unchanged at version {}: {users} users",
                    def.version
                );
            }
        }
        TagVerb::List => {
            let rows: Vec<(String, u64, Option<u32>)> = service.read(|a| {
                a.population()
                    .tags()
                    .map(|(t, b)| {
                        let version = a.tag_definitions().find(|d| d.name == t).map(|d| d.version);
                        (t.to_owned(), b.len(), version)
                    })
                    .collect()
            });
            if json {
                print(&rows)?;
            } else {
                for (tag, users, version) in rows {
                    let kind = version.map_or("built-in".to_owned(), |v| format!("custom v{v}"));
                    println!("{tag:<28} {users:>9}  {kind}");
                }
            }
        }
        TagVerb::History { user, limit } => {
            let items = service.tag_history(&user, limit).await?;
            if json {
                let rows: Vec<_> = items
                    .iter()
                    .map(|c| {
                        serde_json::json!({"tag": c.tag, "gained": c.gained, "version": c.version,
                        "at": shopgrowth_core::time::Timestamp(c.at).to_rfc3339()})
                    })
                    .collect();
                print(&rows)?;
            } else {
                for c in items {
                    let change = if c.gained { "gained" } else { "lost  " };
                    let version = c.version.map(|v| format!(" (v{v})")).unwrap_or_default();
                    println!(
                        "{}  {change} {}{version}",
                        shopgrowth_core::time::Timestamp(c.at).to_rfc3339(),
                        c.tag
                    );
                }
            }
        }
        TagVerb::Retire { name } => {
            service.retire_tag(&name).await?;
            println!("retired tag {name:?}");
        }
    }
    Ok(())
}

pub async fn run_profile(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: ProfileVerb,
    json: bool,
) -> anyhow::Result<()> {
    match verb {
        ProfileVerb::Show { user } => {
            let service = service(store_args, file).await?;
            let customer = service.customer_of(&user);
            let profile = service
                .read(|a| a.user_index(&customer).map(|u| a.profile(u)))
                .with_context(|| format!("no user {user:?}"))?;
            print(&profile)?;
            let _ = json;
        }
        ProfileVerb::Rebuild => {
            let started = Instant::now();
            let tz = config::timezone(None, file)?;
            let store = Arc::new(config::open_store(store_args, file).await?);
            let service =
                AudienceService::load(Arc::clone(&store), config::audience_config(tz, file)?)
                    .await?;
            let stats: BuildStats = service.last_build();
            let tags = service.read(|a| a.population().tags().count());
            if json {
                print(
                    &serde_json::json!({ "stats": stats, "tags": tags, "seconds": started.elapsed().as_secs_f64() }),
                )?;
            } else {
                println!(
                    "rebuilt {} users from {} orders and {} events: read {:.2}s, computed {:.2}s; {tags} tags",
                    stats.users, stats.orders, stats.events, stats.read_seconds, stats.compute_seconds
                );
            }
        }
    }
    Ok(())
}
