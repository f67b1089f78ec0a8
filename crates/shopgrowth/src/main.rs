//! The `shopgrowth` binary: parses arguments, sets up logging, and calls the libraries.
//!
//! Commands are `shopgrowth <noun> <verb>` (`keys create`), plus the verbs `serve`, `demo`,
//! `import` and `migrate` that act on the whole store.

mod bench;
mod bench_flash;
mod bench_issue;
mod bench_pricing;
mod bench_segments;
mod bench_serving;
mod config;
mod demo;
mod import;
mod promo;
mod recommend;
mod rfm;
mod segment;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{FileConfig, StoreArgs};
use std::io::IsTerminal;

#[derive(Debug, Parser)]
#[command(
    name = "shopgrowth",
    version,
    about = "Growth and precision-operations platform for e-commerce"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on an existing store.
    Serve(serve::ServeArgs),
    /// Generate a realistic demo shop into an embedded store, then serve it.
    Demo(demo::DemoArgs),
    /// Import a file (CSV, gzip accepted) into the store.
    Import(import::ImportArgs),
    /// RFM scores and the eight RFM classes for every customer, straight from a file.
    Rfm(rfm::RfmArgs),
    /// Audiences (人群圈选) over the store.
    Segment {
        #[command(subcommand)]
        verb: segment::SegmentVerb,
    },
    /// Custom tags (rules in the segment language, versioned) and users' tag history.
    Tag {
        #[command(subcommand)]
        verb: segment::TagVerb,
    },
    /// Customer profiles: show one, or rebuild all from the store.
    Profile {
        #[command(subcommand)]
        verb: segment::ProfileVerb,
    },
    /// Recommendations: offline evaluation on public datasets; training and querying the shop's.
    Recommend {
        #[command(subcommand)]
        verb: recommend::RecommendVerb,
    },
    /// Coupons: show one or a template; create a template; issue a template to a segment or a
    /// list of users.
    Coupon {
        #[command(subcommand)]
        verb: promo::CouponVerb,
    },
    /// Campaigns: list them with their state and spend; show one with its changes.
    Campaign {
        #[command(subcommand)]
        verb: promo::CampaignVerb,
    },
    /// Budgets and limits per scope and period.
    Budget {
        #[command(subcommand)]
        verb: promo::BudgetVerb,
    },
    /// Flash sales (秒杀).
    Flash {
        #[command(subcommand)]
        verb: promo::FlashVerb,
    },
    /// Red packets (红包): send one; a packet's split and claims.
    RedPacket {
        #[command(subcommand)]
        verb: promo::RedPacketVerb,
    },
    /// Group buying (拼团): create a deal; a group's progress.
    Group {
        #[command(subcommand)]
        verb: promo::GroupVerb,
    },
    /// The promotion trail and each promotion's funnel.
    Promotion {
        #[command(subcommand)]
        verb: promo::PromotionVerb,
    },
    /// Cart pricing: a dry run against promotions or the live campaigns.
    Pricing {
        #[command(subcommand)]
        verb: promo::PricingVerb,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        verb: KeysVerb,
    },
    /// Personal-data encryption key.
    PiiKey {
        #[command(subcommand)]
        verb: PiiKeyVerb,
    },
    /// Load generators and benchmarks that drive a running server.
    Bench {
        #[command(subcommand)]
        verb: bench::BenchVerb,
    },
}

#[derive(Debug, Subcommand)]
enum KeysVerb {
    /// Create an API key; it is printed once.
    Create {
        /// A name that says who uses the key.
        #[arg(long)]
        name: String,
        /// Scopes: ingest, read, admin, pii (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// List API keys (never their secrets).
    List,
    /// Revoke an API key by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum PiiKeyVerb {
    /// Print a new random key for SHOPGROWTH_PII_KEY.
    Generate,
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOPGROWTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json || !std::io::stderr().is_terminal() {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `shopgrowth … | head` closes standard output early; the next print then fails with a broken
/// pipe, which Rust reports as a panic. Exit quietly instead, with the status a shell gives a
/// process ended by SIGPIPE, as Unix tools do.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() {
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    init_logging(cli.json);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    if let Err(e) = result {
        // The whole chain, without a backtrace: these are messages for a person.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = FileConfig::load(cli.store.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, &file, args).await,
        Command::Demo(args) => demo::run(&cli.store, &file, args, cli.json).await,
        Command::Import(args) => import::run(&cli.store, &file, args, cli.json).await,
        Command::Rfm(args) => rfm::run(&file, args, cli.json),
        Command::Segment { verb } => segment::run(&cli.store, &file, verb, cli.json).await,
        Command::Tag { verb } => segment::run_tag(&cli.store, &file, verb, cli.json).await,
        Command::Profile { verb } => segment::run_profile(&cli.store, &file, verb, cli.json).await,
        Command::Recommend { verb } => recommend::run(&cli.store, &file, verb, cli.json).await,
        Command::Coupon { verb } => promo::run_coupon(&cli.store, &file, verb, cli.json).await,
        Command::Campaign { verb } => promo::run_campaign(&cli.store, &file, verb, cli.json).await,
        Command::Budget { verb } => promo::run_budget(&cli.store, &file, verb, cli.json).await,
        Command::Flash { verb } => promo::run_flash(&cli.store, &file, verb, cli.json).await,
        Command::RedPacket { verb } => {
            promo::run_red_packet(&cli.store, &file, verb, cli.json).await
        }
        Command::Group { verb } => promo::run_group(&cli.store, &file, verb, cli.json).await,
        Command::Pricing { verb } => promo::run_pricing(&cli.store, &file, verb, cli.json).await,
        Command::Promotion { verb } => {
            promo::run_promotion(&cli.store, &file, verb, cli.json).await
        }
        Command::Migrate => {
            let store = config::open_store(
                &StoreArgs {
                    no_migrate: false,
                    ..cli.store.clone()
                },
                &file,
            )
            .await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Keys { verb } => keys(&cli.store, &file, verb, cli.json).await,
        Command::PiiKey {
            verb: PiiKeyVerb::Generate,
        } => {
            println!("{}", shopgrowth_core::pii::PiiCipher::generate_key());
            Ok(())
        }
        Command::Bench { verb } => bench::run(&cli.store, &file, verb, cli.json).await,
    }
}

async fn keys(
    args: &StoreArgs,
    file: &FileConfig,
    verb: KeysVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(args, file).await?;
    let now = shopgrowth_core::time::Timestamp::now().0;
    match verb {
        KeysVerb::Create { name, scopes } => {
            let parsed = scopes
                .iter()
                .map(|s| {
                    shopgrowth_api::auth::Scope::parse(s.trim()).with_context(|| {
                        format!("--scopes: {s:?} is not one of ingest, read, admin, pii")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let new = shopgrowth_api::auth::generate(&name, &parsed, now);
            let (id, scopes, key) = (
                new.record.id.clone(),
                new.record.scopes.clone(),
                new.plaintext,
            );
            store.create_api_key(new.record).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": id, "name": name, "scopes": scopes, "key": key })
                );
            } else {
                println!("{key}");
                eprintln!(
                    "created key {id} ({name}) with scopes {}; it is shown only once",
                    scopes.join(",")
                );
            }
        }
        KeysVerb::List => {
            let keys = store.api_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<18} {:<8} {:<24} {}",
                        k.id,
                        state,
                        k.scopes.join(","),
                        k.name
                    );
                }
            }
        }
        KeysVerb::Revoke { id } => {
            if store.revoke_api_key(id.clone(), now).await? {
                println!("revoked {id}");
            } else {
                anyhow::bail!("no active API key {id:?}");
            }
        }
    }
    Ok(())
}
