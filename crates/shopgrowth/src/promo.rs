//! `shopgrowth coupon|campaign|budget|flash|red-packet|group|pricing|promotion …`: promotions from the command line, on the
//! store the global options name. The same rules as the HTTP API: issuance takes each user's
//! quota and limit by conditional writes, and pricing is the engine the API serves.

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shopgrowth_api::routes::campaigns::{CreateCampaign, EditCampaign};
use shopgrowth_api::routes::coupons::TemplateRequest;
use shopgrowth_api::routes::flash::{FlashSaleRequest, FlashSaleView};
use shopgrowth_api::routes::pricing::RefundShareRequest;
use shopgrowth_api::routes::red_packets::{
    rain_view, red_packet_view, RainRequest, RainView, RedPacketRequest, RedPacketView,
};
use shopgrowth_core::time::Timestamp;
use shopgrowth_promo::budget::Period;
use shopgrowth_promo::campaign::{effective, CampaignState};
use shopgrowth_promo::pricing::{price, Cart, Customer, Promotion};
use shopgrowth_service::promotions::{
    campaign_record, campaign_spent, campaigns_with_spent, edit_change, issue_coupons,
    live_promotions, saved_segment_names, set_campaign_budget, transition_target, ISSUE_CHUNK,
};
use shopgrowth_store::records::{BudgetLine, CouponTemplateRecord};
use shopgrowth_store::Store;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum CouponVerb {
    /// One coupon: its template, holder, state and order.
    Show {
        /// The coupon code.
        code: String,
    },
    /// One template: its rule, quota, limits and how many were issued.
    Template {
        /// The template's id.
        id: String,
    },
    /// Every template by id, a page at a time: quota, issued and limits.
    Templates(PageArgs),
    /// Create a coupon template from a JSON file shaped like the API's body (`id`, `name`,
    /// `rule`, `quota`, `per_user_limit`, validity, device and phone limits, `in_centre`,
    /// `issue_on`, `scope`); the id is the idempotency key.
    CreateTemplate {
        /// The template, as JSON.
        file: PathBuf,
    },
    /// Issue a coupon of a template to every member of a saved segment, or to the users listed
    /// in a file (one id per line); the batch name keys the issuance, so running it again issues
    /// nothing twice.
    Issue(IssueArgs),
}

/// One page of a listing, by id.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Start after this id (the last one of the page before).
    #[arg(long, default_value = "")]
    pub after: String,
    /// Most items.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The coupon template's id.
    pub template: String,
    /// The issuance's name, its idempotency key (`wave-1`): the same batch again issues nothing
    /// twice.
    #[arg(long)]
    pub batch: String,
    /// Every member of this saved segment.
    #[arg(
        long,
        conflicts_with = "users_file",
        required_unless_present = "users_file"
    )]
    pub segment: Option<String>,
    /// A file of user ids, one per line.
    #[arg(long)]
    pub users_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CampaignVerb {
    /// Every campaign with its stored and effective state, budget and spend.
    List,
    /// One campaign and every recorded change.
    Show {
        /// The campaign's id.
        id: String,
    },
    /// Create a campaign, as a draft, from a JSON file shaped like the API's body (`id`, `name`,
    /// `promotion`, `starts_at`, `ends_at`, `segment`, `budget`); the id is the idempotency key.
    Create {
        /// The campaign, as JSON.
        file: PathBuf,
    },
    /// Edit a campaign, also a running one, from a JSON file shaped like the API's body
    /// (`version` as `show` gives it, then the fields as for `create`, without `id`); refused if
    /// the campaign changed since that version. The change is recorded with each field's value
    /// before and after.
    Edit {
        /// The campaign's id.
        id: String,
        /// The edit, as JSON.
        file: PathBuf,
    },
    /// Move a campaign: schedule, start, pause, resume or end it.
    Transition {
        /// The campaign's id.
        id: String,
        /// scheduled, running, paused or ended.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BudgetVerb {
    /// A scope's limits and what its current periods used (`campaign:ID`, `coupon:ID`,
    /// `customer:ID`, `device:ID`, `store:ID`).
    Show {
        /// `campaign:ID`, `coupon:ID`, `customer:ID`, `device:ID` or `store:ID`.
        scope: String,
    },
    /// Set the limit of a scope for a period kind (total, day, week, month), in minor units.
    Limit {
        /// `campaign:ID`, `coupon:ID`, `customer:ID`, `device:ID` or `store:ID`.
        scope: String,
        /// total, day, week or month (in the shop's time zone).
        period: String,
        /// Most the scope may use in each such period, in minor units (分).
        amount: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlashVerb {
    /// A flash sale's stock, units taken and available.
    Show {
        /// The flash sale's id.
        id: String,
    },
    /// Every flash sale by id, a page at a time.
    List(PageArgs),
    /// Create a flash sale from a JSON file shaped like the API's body (`id`, `sku`, `price`,
    /// `stock`, `per_user_limit`, `starts_at`, `ends_at`, `hold_seconds`); the id is the
    /// idempotency key.
    Create {
        /// The flash sale, as JSON.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RedPacketVerb {
    /// A red packet: its split, what was claimed and by whom, and what went back on expiry.
    Show {
        /// The red packet's id.
        id: String,
    },
    /// Every red packet (rain rounds included) by id, a page at a time, without its claims.
    List(PageArgs),
    /// Make a red packet (fixed or 拼手气) from a JSON file shaped like the API's body (`id`,
    /// `sender`, `kind`, `total`, `currency`, `shares`, `min_share`, `expires_in_seconds`); the id
    /// is the idempotency key; `unlock_helpers` makes it a share-to-unlock packet. Customers
    /// claim it through the API.
    Send {
        /// The red packet, as JSON.
        file: PathBuf,
    },
    /// Schedule a red-packet rain (红包雨) from a JSON file shaped like the API's body (`id`,
    /// `sender`, `currency`, `rounds`: each `starts_at`, `seconds`, `total`, `shares`,
    /// `min_share`); the id is the idempotency key. Customers catch packets through the API.
    Rain {
        /// The rain, as JSON.
        file: PathBuf,
    },
    /// A red-packet rain: each round's time, budget, what was claimed and what went back.
    RainShow {
        /// The rain's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupVerb {
    /// A group's progress (拼团): seats taken and missing, the deadline and every member.
    Show {
        /// The group's id.
        id: String,
    },
    /// Every group-buying deal by id, a page at a time.
    Deals(PageArgs),
    /// Create a group-buying deal from a JSON file shaped like the API's body (`id`, `sku`,
    /// `group_size`, `leader_price`, `member_price`, `window_seconds`, `starts_at`, `ends_at`);
    /// the id is the idempotency key.
    CreateDeal {
        /// The group deal, as JSON.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PromotionVerb {
    /// The promotion trail, newest first: what was issued, claimed, reserved, redeemed, rolled
    /// back or expired.
    Trail {
        /// Only this customer's entries.
        #[arg(long)]
        user: Option<String>,
        /// coupon, flash_sale, red_packet, group_buy or campaign.
        #[arg(long = "type")]
        promotion_type: Option<String>,
        /// The coupon template, flash sale, red packet, group deal or campaign.
        #[arg(long)]
        id: Option<String>,
        /// Most entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Each promotion's funnel over the last `--days` days: counts per step, users, money and
    /// conversion (docs/promotion-trail.md).
    Report {
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum PricingVerb {
    /// Price a cart (a JSON file like the API's `cart`): against the promotions in a JSON file,
    /// or else the campaigns live now. Changes nothing.
    Quote {
        /// A JSON file with the cart: lines (sku, quantity, unit_price, category, store),
        /// shipping_fee, codes.
        cart: PathBuf,
        /// A JSON file with a list of promotions, as the API's `promotions`; without it, the
        /// campaigns live now.
        #[arg(long)]
        promotions: Option<PathBuf>,
        /// A JSON file with the customer (tier, segments, orders).
        #[arg(long)]
        customer: Option<PathBuf>,
    },
    /// What a partial refund takes back of each promotion's discount (a JSON file like the
    /// API's body: each paid line's units, the discounts its quote allocated to it, the units
    /// refunded before and now). Changes nothing.
    RefundShare {
        /// The order's lines with their discounts and the units refunded, as JSON.
        file: PathBuf,
    },
}

/// A JSON file shaped like an API body; an error names the file, the field (and the line) and
/// the reason.
fn read_json_file<T: serde::de::DeserializeOwned>(file: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    shopgrowth_core::json::from_slice(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: field {}: {}", file.display(), e.field, e.reason))
}

/// A file's content refused by the API's checks: the file, then each field's problem.
fn refused_file(
    file: &std::path::Path,
    title: &str,
    errors: &[shopgrowth_core::FieldError],
) -> anyhow::Error {
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("{}: {title}; {}", file.display(), errors.join("; "))
}

/// What a create from a file answers: whether it created the thing (the id is the idempotency
/// key) and the thing as the API shows it, as JSON (`{"created", NAME: view}`) or as text.
fn print_created<T: Serialize>(
    created: bool,
    name: &str,
    view: T,
    json: bool,
    text: impl FnOnce(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({"created": created, name: view}));
    }
    println!("{}", if created { "created" } else { "already there" });
    text(view)
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), |t| Timestamp(t).to_rfc3339())
}

pub async fn run_coupon(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: CouponVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        CouponVerb::Show { code } => {
            let code = shopgrowth_promo::canonical_code(&code);
            let c = store
                .coupon(code.clone())
                .await?
                .with_context(|| format!("no coupon {code:?}"))?;
            let view = serde_json::json!({"code": c.code, "template_id": c.template_id,
                "user_id": c.user_id, "state": c.state, "order_id": c.order_id,
                "claimed_at": time(Some(c.claimed_at)), "expires_at": time(c.expires_at),
                "held_until": time(c.reserved_until), "redeemed_at": time(c.redeemed_at)});
            if json {
                print_json(&view)?;
            } else {
                for (k, v) in view.as_object().into_iter().flatten() {
                    println!(
                        "{k:12} {}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    );
                }
            }
        }
        CouponVerb::Template { id } => {
            let t = store
                .coupon_template(id.clone())
                .await?
                .with_context(|| format!("no coupon template {id:?}"))?;
            print_template(&template_view(t), json)?;
        }
        CouponVerb::Templates(page) => {
            let templates = store.coupon_templates_after(page.after, page.limit).await?;
            let views: Vec<serde_json::Value> = templates.into_iter().map(template_view).collect();
            if json {
                return print_json(&views);
            }
            for v in &views {
                let quota = v["quota"]
                    .as_i64()
                    .map_or("∞".to_owned(), |q| q.to_string());
                println!(
                    "{:20} {} of {} issued, {} per user: {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["issued"],
                    quota,
                    v["per_user_limit"],
                    v["name"].as_str().unwrap_or_default()
                );
            }
        }
        CouponVerb::CreateTemplate { file } => {
            let req: TemplateRequest = read_json_file(&file)?;
            let record = req.record(Timestamp::now().0).map_err(|errors| {
                refused_file(&file, "the coupon template is not valid", &errors)
            })?;
            let created = store.create_coupon_template(record).await?;
            let t = store
                .coupon_template(req.id.clone())
                .await?
                .with_context(|| format!("coupon template {:?} vanished", req.id))?;
            print_created(created, "template", template_view(t), json, |v| {
                print_template(&v, false)
            })?;
        }
        CouponVerb::Issue(args) => issue(std::sync::Arc::new(store), file, args, json).await?,
    }
    Ok(())
}

/// A coupon template as the CLI shows it: the API's fields and its validity.
fn template_view(t: CouponTemplateRecord) -> serde_json::Value {
    serde_json::json!({"id": t.id, "name": t.name,
        "rule": serde_json::from_str::<serde_json::Value>(&t.rule).unwrap_or_default(),
        "quota": t.quota, "issued": t.issued, "per_user_limit": t.per_user_limit,
        "per_device_limit": t.per_device_limit, "per_phone_limit": t.per_phone_limit,
        "valid_from": time(t.valid_from), "valid_until": time(t.valid_until),
        "valid_days": t.valid_days, "in_centre": t.in_centre, "issue_on": t.issue_on,
        "scope": t.scope.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
        "code_prefix": t.code_prefix})
}

fn print_template(view: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    for (k, v) in view.as_object().into_iter().flatten() {
        println!("{k:16} {v}");
    }
    Ok(())
}

async fn issue(
    store: std::sync::Arc<Store>,
    file: &FileConfig,
    args: IssueArgs,
    json: bool,
) -> anyhow::Result<()> {
    let users: Vec<String> = match (&args.segment, &args.users_file) {
        (Some(name), _) => {
            let tz = config::timezone(None, file)?;
            let service = shopgrowth_service::AudienceService::load(
                std::sync::Arc::clone(&store),
                config::audience_config(tz, file)?,
            )
            .await
            .context("building the audience")?;
            service.read(|a| {
                let (_, members) = a
                    .segment(name)
                    .with_context(|| format!("no saved segment {name:?}"))?;
                anyhow::Ok(shopgrowth_service::member_ids(a, members, usize::MAX))
            })?
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, None) => anyhow::bail!("give --segment or --users-file"),
    };
    let bar = ProgressBar::new(users.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "issuing {bar:40} {pos}/{len} {per_sec}",
    )?);
    let started = std::time::Instant::now();
    let summary = issue_coupons(
        &store,
        &args.template,
        &users,
        &args.batch,
        ISSUE_CHUNK,
        |n| bar.inc(n as u64),
    )
    .await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if json {
        print_json(
            &serde_json::json!({"template_id": args.template, "batch": args.batch,
            "users": users.len(), "summary": summary, "seconds": seconds}),
        )?;
    } else {
        println!(
            "{} users in {seconds:.1}s: {} issued, {} already had this batch, {} sold out, {} over the user limit",
            users.len(), summary.issued, summary.duplicates, summary.sold_out, summary.over_user_limit
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct CampaignRow {
    id: String,
    name: String,
    state: String,
    effective_state: String,
    budget: Option<i64>,
    spent: i64,
    version: i64,
}

async fn campaign_row(
    store: &Store,
    c: shopgrowth_store::records::CampaignRecord,
) -> anyhow::Result<CampaignRow> {
    let spent = campaign_spent(store, &c.id).await?;
    Ok(campaign_row_spent(c, spent))
}

/// A campaign's row, given what it has spent.
fn campaign_row_spent(c: shopgrowth_store::records::CampaignRecord, spent: i64) -> CampaignRow {
    let stored = CampaignState::parse(&c.state).unwrap_or(CampaignState::Draft);
    CampaignRow {
        effective_state: effective(stored, c.starts_at, c.ends_at, Timestamp::now().0)
            .as_str()
            .to_owned(),
        spent,
        id: c.id,
        name: c.name,
        state: c.state,
        budget: c.budget,
        version: c.version,
    }
}

pub async fn run_campaign(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: CampaignVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        CampaignVerb::List => {
            let rows: Vec<CampaignRow> = campaigns_with_spent(&store)
                .await?
                .into_iter()
                .map(|(c, spent)| campaign_row_spent(c, spent))
                .collect();
            if json {
                return print_json(&rows);
            }
            println!(
                "{:20} {:10} {:10} {:>12} {:>12}  name",
                "id", "state", "effective", "budget", "spent"
            );
            for r in rows {
                println!(
                    "{:20} {:10} {:10} {:>12} {:>12}  {}",
                    r.id,
                    r.state,
                    r.effective_state,
                    r.budget
                        .map_or_else(|| "-".into(), shopgrowth_promo::pricing::yuan),
                    shopgrowth_promo::pricing::yuan(r.spent),
                    r.name
                );
            }
        }
        CampaignVerb::Show { id } => {
            let c = store
                .campaign(id.clone())
                .await?
                .with_context(|| format!("no campaign {id:?}"))?;
            let promotion: serde_json::Value =
                serde_json::from_str(&c.promotion).unwrap_or_default();
            let recurrence: Option<serde_json::Value> = c
                .recurrence
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok());
            let per_customer_limit = c.per_customer_limit;
            let row = campaign_row(&store, c).await?;
            let changes: Vec<serde_json::Value> = store
                .campaign_changes(id)
                .await?
                .into_iter()
                .map(|ch| {
                    serde_json::json!({"at": time(Some(ch.at)),
                        "change": serde_json::from_str::<serde_json::Value>(&ch.change).unwrap_or_default()})
                })
                .collect();
            if json {
                return print_json(&serde_json::json!({"campaign": row, "promotion": promotion,
                    "recurrence": recurrence, "per_customer_limit": per_customer_limit,
                    "changes": changes}));
            }
            println!(
                "{} {} ({}; effective {}), budget {}, spent {}, version {}",
                row.id,
                row.name,
                row.state,
                row.effective_state,
                row.budget
                    .map_or_else(|| "-".into(), shopgrowth_promo::pricing::yuan),
                shopgrowth_promo::pricing::yuan(row.spent),
                row.version
            );
            println!("promotion: {promotion}");
            if let Some(r) = recurrence {
                println!("recurs (shop's local time): {r}");
            }
            if let Some(n) = per_customer_limit {
                println!("per customer: at most {n} order(s)");
            }
            for ch in changes {
                println!("{} {}", ch["at"].as_str().unwrap_or_default(), ch["change"]);
            }
        }
        CampaignVerb::Create { file } => {
            let req: CreateCampaign = read_json_file(&file)?;
            let segments = saved_segment_names(&store).await?;
            let record = campaign_record(
                &req.id,
                &req.campaign.input(),
                &segments,
                Timestamp::now().0,
            )
            .map_err(|r| refused_file(&file, r.title, &r.errors))?;
            let change = serde_json::json!({"action": "created", "by": "cli"}).to_string();
            let created = store.create_campaign(record, change).await?;
            let stored = store
                .campaign(req.id.clone())
                .await?
                .with_context(|| format!("campaign {:?} vanished", req.id))?;
            set_campaign_budget(&store, &stored).await?;
            let row = campaign_row(&store, stored).await?;
            if json {
                return print_json(&serde_json::json!({"created": created, "campaign": row}));
            }
            let what = if created { "created" } else { "already there" };
            println!("{} {} ({}): {what}", row.id, row.name, row.state);
        }
        CampaignVerb::Edit { id, file } => {
            let req: EditCampaign = read_json_file(&file)?;
            let now = Timestamp::now().0;
            let segments = saved_segment_names(&store).await?;
            let record = campaign_record(&id, &req.campaign.input(), &segments, now)
                .map_err(|r| refused_file(&file, r.title, &r.errors))?;
            let before = store
                .campaign(id.clone())
                .await?
                .with_context(|| format!("no campaign {id:?}"))?;
            let change = edit_change(&before, &record, "cli");
            let c = store
                .edit_campaign(record, req.version, change, now)
                .await?;
            set_campaign_budget(&store, &c).await?;
            let row = campaign_row(&store, c).await?;
            if json {
                return print_json(&row);
            }
            println!(
                "{} {} ({}): edited, now version {}",
                row.id, row.name, row.state, row.version
            );
        }
        CampaignVerb::Transition { id, to } => {
            let now = Timestamp::now().0;
            let current = store.campaign(id.clone()).await?;
            let to = transition_target(&to, current.as_ref(), now)
                .map_err(|r| anyhow::anyhow!("{r}"))?;
            let change =
                serde_json::json!({"action": "state", "to": to.as_str(), "by": "cli"}).to_string();
            let c = store
                .transition_campaign(id, to.as_str(), to.allowed_from(), change, now)
                .await?;
            let row = campaign_row(&store, c).await?;
            if json {
                return print_json(&row);
            }
            println!(
                "{} {}: {} (effective {})",
                row.id, row.name, row.state, row.effective_state
            );
        }
    }
    Ok(())
}

pub async fn run_budget(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: BudgetVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        BudgetVerb::Limit {
            scope,
            period,
            amount,
        } => {
            anyhow::ensure!(
                Period::parse(&period).is_some(),
                "period {period:?}: use total, day, week or month"
            );
            anyhow::ensure!(amount >= 0, "the amount must not be negative");
            store
                .set_budget_limit(scope.clone(), period.clone(), amount)
                .await?;
            if json {
                print_json(
                    &serde_json::json!({"scope": scope, "period": period, "limit": amount}),
                )?;
            } else {
                println!(
                    "{scope}: {period} limit {}",
                    shopgrowth_promo::pricing::yuan(amount)
                );
            }
        }
        BudgetVerb::Show { scope } => {
            let tz = config::timezone(None, file)?;
            let today = chrono::Utc::now().with_timezone(&tz).date_naive();
            let limits = store.budget_limits(scope.clone()).await?;
            let mut rows = Vec::new();
            for p in Period::ALL {
                let line = BudgetLine {
                    scope: scope.clone(),
                    period: p.as_str().into(),
                    period_key: p.key(today),
                };
                let used = store.budget_used(line.clone()).await?;
                let limit = limits.iter().find(|(k, _)| k == p.as_str()).map(|l| l.1);
                rows.push(
                    serde_json::json!({"period": line.period, "key": line.period_key,
                    "used": used, "limit": limit}),
                );
            }
            if json {
                return print_json(&serde_json::json!({"scope": scope, "periods": rows}));
            }
            for r in rows {
                println!(
                    "{scope} {:6} {:12} used {:>12}  limit {}",
                    r["period"].as_str().unwrap_or_default(),
                    r["key"].as_str().unwrap_or_default(),
                    shopgrowth_promo::pricing::yuan(r["used"].as_i64().unwrap_or(0)),
                    r["limit"]
                        .as_i64()
                        .map_or_else(|| "-".into(), shopgrowth_promo::pricing::yuan)
                );
            }
        }
    }
    Ok(())
}

pub async fn run_flash(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: FlashVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        FlashVerb::Show { id } => {
            let f = store
                .flash_sale(id.clone())
                .await?
                .with_context(|| format!("no flash sale {id:?}"))?;
            print_flash_sale(f.into(), json)?;
        }
        FlashVerb::List(page) => {
            let sales: Vec<FlashSaleView> = store
                .flash_sales_after(page.after, page.limit)
                .await?
                .into_iter()
                .map(FlashSaleView::from)
                .collect();
            if json {
                return print_json(&sales);
            }
            for f in sales {
                print_flash_sale(f, false)?;
            }
        }
        FlashVerb::Create { file } => {
            let req: FlashSaleRequest = read_json_file(&file)?;
            let record = req
                .record(Timestamp::now().0)
                .map_err(|errors| refused_file(&file, "the flash sale is not valid", &errors))?;
            let created = store.create_flash_sale(record).await?;
            let f = store
                .flash_sale(req.id.clone())
                .await?
                .with_context(|| format!("flash sale {:?} vanished", req.id))?;
            print_created(created, "sale", FlashSaleView::from(f), json, |v| {
                print_flash_sale(v, false)
            })?;
        }
    }
    Ok(())
}

/// A flash sale as the API shows it: stock, units taken and available, and its window.
fn print_flash_sale(f: FlashSaleView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&f);
    }
    println!(
        "{} ({} at {}): {} of {} taken, {} available, {} to {}",
        f.id,
        f.sku,
        shopgrowth_promo::pricing::yuan(f.price),
        f.taken,
        f.stock,
        f.available,
        f.starts_at,
        f.ends_at
    );
    Ok(())
}

pub async fn run_red_packet(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: RedPacketVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        RedPacketVerb::Show { id } => {
            let (packet, shares) = store
                .red_packet(id.clone())
                .await?
                .with_context(|| format!("no red packet {id:?}"))?;
            print_red_packet(red_packet_view(packet, shares), json)?;
        }
        RedPacketVerb::List(page) => {
            let packets: Vec<RedPacketView> = store
                .red_packets_after(page.after, page.limit)
                .await?
                .into_iter()
                .map(|p| red_packet_view(p, Vec::new()))
                .collect();
            if json {
                return print_json(&packets);
            }
            for p in packets {
                print_red_packet(p, false)?;
            }
        }
        RedPacketVerb::Send { file } => {
            let req: RedPacketRequest = read_json_file(&file)?;
            let (packet, amounts) = req
                .record(Timestamp::now().0)
                .map_err(|errors| refused_file(&file, "the red packet is not valid", &errors))?;
            let created = store.create_red_packet(packet, amounts).await?;
            let (packet, shares) = store
                .red_packet(req.id.clone())
                .await?
                .with_context(|| format!("red packet {:?} vanished", req.id))?;
            print_created(
                created,
                "packet",
                red_packet_view(packet, shares),
                json,
                |v| print_red_packet(v, false),
            )?;
        }
        RedPacketVerb::Rain { file } => {
            let req: RainRequest = read_json_file(&file)?;
            let rounds = req.records(Timestamp::now().0).map_err(|errors| {
                refused_file(&file, "the red-packet rain is not valid", &errors)
            })?;
            let created =
                shopgrowth_service::promotions::create_rain_rounds(&store, rounds).await?;
            let rounds = store.rain_rounds(req.id.clone()).await?;
            let rain = rain_view(&req.id, rounds, Timestamp::now().0)
                .with_context(|| format!("red-packet rain {:?} vanished", req.id))?;
            print_created(created, "rain", rain, json, |v| print_rain(v, false))?;
        }
        RedPacketVerb::RainShow { id } => {
            let rain = rain_view(
                &id,
                store.rain_rounds(id.clone()).await?,
                Timestamp::now().0,
            )
            .with_context(|| format!("no red-packet rain {id:?}"))?;
            print_rain(rain, json)?;
        }
    }
    Ok(())
}

/// A red-packet rain: its rounds in time order, each with its budget and progress.
fn print_rain(r: RainView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&r);
    }
    let yuan = shopgrowth_promo::pricing::yuan;
    println!(
        "{} (from {}): {} rounds, {} in all, {} claimed, returned {}",
        r.id,
        r.sender,
        r.rounds.len(),
        yuan(r.total),
        yuan(r.claimed_amount),
        yuan(r.returned)
    );
    for round in &r.rounds {
        println!(
            "  {} {} to {}: {} of {} shares claimed ({} of {}), {}, returned {}",
            round.packet_id,
            round.opens_at,
            round.expires_at,
            round.claimed_count,
            round.shares,
            yuan(round.claimed_amount),
            yuan(round.total),
            round.state,
            yuan(round.returned)
        );
    }
    Ok(())
}

/// A red packet as the API shows it: its split, the claims (unclaimed amounts stay secret) and
/// what went back.
fn print_red_packet(p: RedPacketView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&p);
    }
    let yuan = shopgrowth_promo::pricing::yuan;
    println!(
        "{} ({}, from {}): {} of {} shares claimed ({} of {}), {}, returned {}, expires {}",
        p.id,
        p.kind,
        p.sender,
        p.claimed_count,
        p.shares,
        yuan(p.claimed_amount),
        yuan(p.total),
        p.state,
        yuan(p.returned),
        p.expires_at
    );
    if p.unlock_helpers > 0 {
        println!(
            "  share to unlock: {} of {} helpers",
            p.helpers, p.unlock_helpers
        );
    }
    for c in &p.claims {
        println!(
            "  #{} {} {} {}",
            c.position,
            yuan(c.amount),
            c.claimed_by.as_deref().unwrap_or_default(),
            c.claimed_at.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// A group-buying deal on one line: its groups' size and prices, and its window.
fn deal_line(d: &shopgrowth_api::routes::groups::GroupDealView) -> String {
    format!(
        "{} ({}): groups of {}, leader {}, members {}, {} s to fill, {} to {}",
        d.id,
        d.sku,
        d.group_size,
        shopgrowth_promo::pricing::yuan(d.leader_price),
        shopgrowth_promo::pricing::yuan(d.member_price),
        d.window_seconds,
        d.starts_at,
        d.ends_at
    )
}

pub async fn run_group(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: GroupVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        GroupVerb::CreateDeal { file } => {
            let req: shopgrowth_api::routes::groups::GroupDealRequest = read_json_file(&file)?;
            let record = req
                .record(Timestamp::now().0)
                .map_err(|errors| refused_file(&file, "the group deal is not valid", &errors))?;
            let created = store.create_group_deal(record).await?;
            let deal = store
                .group_deal(req.id.clone())
                .await?
                .with_context(|| format!("group deal {:?} vanished", req.id))?;
            let view = shopgrowth_api::routes::groups::GroupDealView::from(deal);
            if json {
                return print_json(&serde_json::json!({"created": created, "deal": view}));
            }
            println!(
                "{}: {}",
                deal_line(&view),
                if created { "created" } else { "already there" }
            );
        }
        GroupVerb::Deals(page) => {
            let deals: Vec<shopgrowth_api::routes::groups::GroupDealView> = store
                .group_deals_after(page.after, page.limit)
                .await?
                .into_iter()
                .map(Into::into)
                .collect();
            if json {
                return print_json(&deals);
            }
            for d in &deals {
                println!("{}", deal_line(d));
            }
        }
        GroupVerb::Show { id } => {
            let (group, members) = store
                .group(id.clone())
                .await?
                .with_context(|| format!("no group {id:?}"))?;
            let g = shopgrowth_api::routes::groups::group_view(group, members);
            if json {
                print_json(&g)?;
            } else {
                println!(
                    "{} (deal {}, led by {}): {} of {} joined, {} missing, {}, deadline {} ({} s left)",
                    g.id,
                    g.deal_id,
                    g.leader,
                    g.joined,
                    g.size,
                    g.missing,
                    g.state,
                    g.deadline,
                    g.seconds_left
                );
                for m in &g.members {
                    println!(
                        "  {}{} order {} at {} {} {}",
                        m.user_id,
                        if m.leader { " (leader)" } else { "" },
                        m.order_id,
                        shopgrowth_promo::pricing::yuan(m.price),
                        m.state,
                        m.joined_at
                    );
                }
            }
        }
    }
    Ok(())
}

pub async fn run_pricing(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: PricingVerb,
    json: bool,
) -> anyhow::Result<()> {
    let (cart_file, promotions, customer) = match verb {
        PricingVerb::Quote {
            cart,
            promotions,
            customer,
        } => (cart, promotions, customer),
        PricingVerb::RefundShare { file } => {
            let req: RefundShareRequest = read_json_file(&file)?;
            let shares = req
                .shares()
                .map_err(|errors| refused_file(&file, "the refund is not valid", &errors))?;
            if json {
                return print_json(&shares);
            }
            let yuan = shopgrowth_promo::pricing::yuan;
            println!(
                "the refunded units' share of the discounts: {}",
                yuan(shares.total)
            );
            for s in &shares.shares {
                println!("  {}: {}", s.promotion, yuan(s.amount));
            }
            return Ok(());
        }
    };
    let cart: Cart = read_json_file(&cart_file)?;
    let problems = cart.problems();
    if !problems.is_empty() {
        return Err(refused_file(
            &cart_file,
            "the cart cannot be priced",
            &problems,
        ));
    }
    let customer: Customer = match &customer {
        Some(path) => read_json_file(path)?,
        None => Customer::default(),
    };
    let promotions: Vec<Promotion> = match &promotions {
        Some(path) => {
            let promotions: Vec<Promotion> = read_json_file(path)?;
            let problems: Vec<shopgrowth_core::FieldError> = promotions
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    let at = format!("[{i}]");
                    p.problems().into_iter().map(move |e| e.under(&at))
                })
                .collect();
            if !problems.is_empty() {
                return Err(refused_file(
                    path,
                    "the promotions cannot be run",
                    &problems,
                ));
            }
            promotions
        }
        None => {
            let store = config::open_store(store_args, file).await?;
            live_promotions(&store, config::timezone(None, file)?).await?
        }
    };
    let q = price(&cart, &customer, &promotions);
    if json {
        return print_json(&q);
    }
    let yuan = shopgrowth_promo::pricing::yuan;
    println!(
        "subtotal {}, discount {}, shipping {} (−{}), total {}",
        yuan(q.subtotal),
        yuan(q.discount),
        yuan(q.shipping_fee),
        yuan(q.shipping_discount),
        yuan(q.total)
    );
    for a in &q.applied {
        println!(
            "  applied {}: −{}",
            a.name,
            yuan(a.discount + a.shipping_discount)
        );
    }
    for n in &q.not_applied {
        println!("  not applied: {}", n.message());
    }
    Ok(())
}

pub async fn run_promotion(
    store_args: &StoreArgs,
    file: &FileConfig,
    verb: PromotionVerb,
    json: bool,
) -> anyhow::Result<()> {
    let store = config::open_store(store_args, file).await?;
    match verb {
        PromotionVerb::Trail {
            user,
            promotion_type,
            id,
            limit,
        } => {
            if let Some(t) = &promotion_type {
                anyhow::ensure!(
                    shopgrowth_core::model::PromotionType::parse(t).is_some(),
                    "--type {t:?} is not coupon, flash_sale, red_packet or group_buy"
                );
            }
            anyhow::ensure!((1..=10_000).contains(&limit), "--limit must be 1 to 10000");
            let entries = store
                .promotion_trail(shopgrowth_store::records::TrailFilter {
                    user_id: user,
                    promotion_type,
                    promotion_id: id,
                    subject: None,
                    before_id: None,
                    limit,
                })
                .await?;
            if json {
                return print_json(&entries);
            }
            for e in entries {
                println!(
                    "{}  {:<10} {:<11} {:<20} {:<18} user={} order={} amount={}",
                    time(Some(e.at)),
                    e.promotion_type,
                    e.kind,
                    e.promotion_id,
                    e.subject,
                    e.user_id.as_deref().unwrap_or("-"),
                    e.order_id.as_deref().unwrap_or("-"),
                    e.amount
                        .map_or_else(|| "-".into(), shopgrowth_promo::pricing::yuan)
                );
            }
        }
        PromotionVerb::Report { days } => {
            anyhow::ensure!(days > 0, "--days must be positive");
            let to = Timestamp::now().0;
            let from = to - days * 86_400_000;
            let report = shopgrowth_service::promotions::trail_report(&store, from, to).await?;
            if json {
                return print_json(&report);
            }
            println!(
                "{:<10} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12} {:>10}",
                "type",
                "id",
                "issued",
                "claimed",
                "reserved",
                "redeemed",
                "rolled",
                "expired",
                "refunded",
                "users",
                "money",
                "returned",
                "conversion"
            );
            for r in report {
                println!(
                    "{:<10} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12} {:>10}",
                    r.promotion_type,
                    r.promotion_id,
                    r.issued,
                    r.claimed,
                    r.reserved,
                    r.redeemed,
                    r.rolled_back,
                    r.expired,
                    r.refunded,
                    r.users_reached,
                    shopgrowth_promo::pricing::yuan(r.amount_converted),
                    shopgrowth_promo::pricing::yuan(r.amount_returned),
                    r.conversion
                        .map_or_else(|| "-".into(), |c| format!("{:.1}%", c * 100.0))
                );
            }
        }
    }
    Ok(())
}
