//! `shopgrowth recommend …`: the offline evaluation harness (`eval`) on public datasets, and
//! training and querying the shop's own recommender over the store (`train`, `query`).
//!
//! `eval` reads MovieLens (`u.data`, or ML-1M's `ratings_no_timestamp.csv.gz`), UCI Online
//! Retail or the Taobao UserBehavior sample, splits them by a protocol (B, C or T; see
//! docs/recommendations.md), fits each model and prints one row per model.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use shopgrowth_recommend::data::{FeedbackWeights, Interactions};
use shopgrowth_recommend::eval::{
    items_by_user, leave_last_basket_out, relevant_of, Protocol, Report, TimedRating,
};
use shopgrowth_recommend::hybrid::Blend;
use shopgrowth_recommend::models::{
    Als, AlsConfig, Bpr, BprConfig, Content, Ease, ItemContent, ItemKnn, Popularity, UserKnn,
};
use shopgrowth_recommend::score::Scorer;
use shopgrowth_recommend::{split, Rating};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// Microsoft Recommenders: per-item random 75/25, rank items not seen in training.
    B,
    /// RecBole ML-1M: ratings ≥ 3, 10-core, per-user 8:1:1, full ranking, tuned on valid.
    C,
    /// Temporal leave-last-basket-out on e-commerce data.
    T,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelName {
    Popularity,
    ItemKnn,
    UserKnn,
    Ease,
    Als,
    Bpr,
    Content,
    /// EASE, item kNN and ALS blended with weights chosen on the validation set (protocol C) or
    /// fixed (others).
    Blend,
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    #[arg(long, value_enum)]
    pub protocol: ProtocolName,
    /// The data file: MovieLens `u.data` or `ratings_no_timestamp.csv.gz` (B, C), UCI Online
    /// Retail CSV(.gz) or Taobao UserBehavior CSV (T). Defaults to ML-1M for B and C and
    /// Online Retail for T, under ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Models to evaluate (default: all that apply).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Vec<ModelName>,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Neighbours kept by item kNN.
    #[arg(long, default_value_t = 100)]
    pub item_neighbours: usize,
    /// Neighbours used by user kNN.
    #[arg(long, default_value_t = 50)]
    pub user_neighbours: usize,
    /// EASE's λ; protocol C picks it on the validation set from a grid around it.
    #[arg(long, default_value_t = 250.0)]
    pub ease_lambda: f64,
    #[arg(long, default_value_t = 64)]
    pub factors: usize,
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    #[arg(long, default_value_t = 0.05)]
    pub regularization: f32,
    /// ALS confidence scale.
    #[arg(long, default_value_t = 10.0)]
    pub alpha: f32,
    #[arg(long, default_value_t = 40)]
    pub bpr_epochs: usize,
    /// Seed of ALS's starting factors (default: --seed).
    #[arg(long)]
    pub als_seed: Option<u64>,
    /// Write the protocol-B train and test split as CSV files (user,item) into this folder,
    /// for running another tool on the same split.
    #[arg(long)]
    pub write_split: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ModelRow {
    pub model: ModelName,
    /// Hyperparameters used, as text.
    pub params: String,
    pub fit_seconds: f64,
    #[serde(flatten)]
    pub report: Report,
}

#[derive(Debug, Serialize)]
pub struct EvalOutput {
    pub protocol: ProtocolName,
    pub data: String,
    pub users: usize,
    pub items: usize,
    pub train_pairs: usize,
    pub test_users: usize,
    pub k: usize,
    pub rows: Vec<ModelRow>,
    pub peak_memory_mib: Option<f64>,
}

fn default_data(protocol: ProtocolName) -> PathBuf {
    match protocol {
        ProtocolName::B | ProtocolName::C => {
            PathBuf::from("../shared/data/movielens_1m/ratings_no_timestamp.csv.gz")
        }
        ProtocolName::T => PathBuf::from("../shared/data/online_retail/OnlineRetail.csv.gz"),
    }
}

fn lines(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        )))
    } else {
        Box::new(std::io::BufReader::new(file))
    })
}

/// Dense ids in order of first appearance.
#[derive(Default)]
struct Ids(HashMap<String, u32>);

impl Ids {
    fn of(&mut self, key: &str) -> u32 {
        let next = self.0.len() as u32;
        *self.0.entry(key.to_string()).or_insert(next)
    }
}

/// MovieLens ratings with dense ids; the ML-1M file's ItemIndex, or u.data's item, keyed as text.
fn movielens(path: &Path) -> anyhow::Result<(Vec<Rating>, Ids)> {
    let (mut users, mut items) = (Ids::default(), Ids::default());
    let mut ratings = Vec::new();
    let csv = path.to_string_lossy().contains(".csv");
    for (n, line) in lines(path)?.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let f: Vec<&str> = if csv {
            line.split(',').collect()
        } else {
            line.split('\t').collect()
        };
        if csv && n == 0 {
            continue;
        }
        let (user, item, rating) = if csv {
            (f.first(), f.get(1), f.get(3))
        } else {
            (f.first(), f.get(1), f.get(2))
        };
        let rating: f32 = rating
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{}:{}: rating is not a number", path.display(), n + 1))?;
        let (Some(user), Some(item)) = (user, item) else {
            anyhow::bail!(
                "{}:{}: expected user, item and rating",
                path.display(),
                n + 1
            );
        };
        ratings.push(Rating {
            user: users.of(user.trim()),
            item: items.of(item.trim()),
            rating,
        });
    }
    Ok((ratings, items))
}

/// ML-1M titles and genres by ItemIndex, for the content model and diversity; empty when
/// movies.dat or the index map is missing.
fn movielens_content(path: &Path, items: &Ids) -> Vec<ItemContent> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut content = vec![ItemContent::default(); items.0.len()];
    let (Ok(index), Ok(movies)) = (
        std::fs::read_to_string(dir.join("item_index_to_movieid.csv")),
        std::fs::read(dir.join("movies.dat")),
    ) else {
        return Vec::new();
    };
    // movies.dat is ISO-8859-1: each byte is its own code point.
    let movies: String = movies.iter().map(|&b| b as char).collect();
    let mut by_movie: HashMap<&str, (&str, &str)> = HashMap::new();
    for line in movies.lines() {
        let f: Vec<&str> = line.split("::").collect();
        if let [id, title, genres] = f[..] {
            by_movie.insert(id, (title, genres));
        }
    }
    for line in index.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let (Some(ix), Some(movie)) = (f.first(), f.get(1)) {
            if let (Some(&i), Some((title, genres))) = (items.0.get(*ix), by_movie.get(movie)) {
                content[i as usize] = ItemContent {
                    title: title.to_string(),
                    category: Vec::new(),
                    brand: None,
                    attributes: genres
                        .split('|')
                        .map(|g| ("genre".into(), g.into()))
                        .collect(),
                };
            }
        }
    }
    content
}

/// Protocol T's input: purchases (Online Retail) or weighted behaviour (Taobao), timed.
fn timed(path: &Path) -> anyhow::Result<Vec<TimedRating>> {
    let (mut users, mut items) = (Ids::default(), Ids::default());
    let mut out = Vec::new();
    let name = path.to_string_lossy().to_lowercase();
    let weights = FeedbackWeights::default();
    if name.contains("userbehavior") {
        for (n, line) in lines(path)?.lines().enumerate() {
            let line = line?;
            let f: Vec<&str> = line.split(',').collect();
            let [user, item, _category, kind, at] = f[..] else {
                anyhow::bail!("{}:{}: expected 5 fields", path.display(), n + 1);
            };
            let at: i64 = at
                .trim()
                .parse()
                .with_context(|| format!("{}:{}: timestamp", path.display(), n + 1))?;
            if let Some(w) = weights.of(kind.trim()) {
                out.push(TimedRating {
                    user: users.of(user),
                    item: items.of(item),
                    weight: w,
                    at: at / 86_400,
                });
            }
        }
    } else {
        let mut reader = csv::ReaderBuilder::new().from_reader(lines(path)?);
        let headers = reader.headers()?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{}: no {name} column", path.display()))
        };
        let (invoice, code, customer, quantity) = (
            col("InvoiceNo")?,
            col("StockCode")?,
            col("CustomerID")?,
            col("Quantity")?,
        );
        let mut baskets: HashMap<String, i64> = HashMap::new();
        for (n, row) in reader.records().enumerate() {
            let row = row.with_context(|| format!("{}:{}", path.display(), n + 2))?;
            let (inv, cust) = (&row[invoice], &row[customer]);
            if inv.starts_with('C') || cust.trim().is_empty() {
                continue;
            }
            if row[quantity].trim().parse::<i64>().unwrap_or(0) <= 0 {
                continue;
            }
            // Invoice numbers are issued in time order, so a basket's first appearance orders it.
            let next = baskets.len() as i64;
            let at = *baskets.entry(inv.to_string()).or_insert(next);
            out.push(TimedRating {
                user: users.of(cust),
                item: items.of(&row[code]),
                weight: 1.0,
                at,
            });
        }
    }
    Ok(out)
}

fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn timed_fit<T>(fit: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let model = fit();
    (model, t.elapsed().as_secs_f64())
}

pub fn eval(args: EvalArgs) -> anyhow::Result<EvalOutput> {
    let path = args
        .data
        .clone()
        .unwrap_or_else(|| default_data(args.protocol));
    anyhow::ensure!(
        path.exists(),
        "evaluation not run: {} is missing (../shared beside the repository)",
        path.display()
    );
    let (train, valid, test, content) = match args.protocol {
        ProtocolName::B => {
            let (ratings, items) = movielens(&path)?;
            let s = split::per_item(&ratings, 0.75, args.seed);
            (
                s.train,
                Vec::new(),
                s.test,
                movielens_content(&path, &items),
            )
        }
        ProtocolName::C => {
            let (ratings, items) = movielens(&path)?;
            let s = split::per_user_811(&ratings, 3.0, 10, args.seed);
            (s.train, s.valid, s.test, movielens_content(&path, &items))
        }
        ProtocolName::T => {
            let (train, test) = leave_last_basket_out(&timed(&path)?);
            (train, Vec::new(), test, Vec::new())
        }
    };
    if let Some(dir) = &args.write_split {
        std::fs::create_dir_all(dir)?;
        for (name, rows) in [("train.csv", &train), ("test.csv", &test)] {
            let mut w = csv::Writer::from_path(dir.join(name))?;
            w.write_record(["user", "item", "rating"])?;
            for r in rows.iter() {
                w.write_record([r.user.to_string(), r.item.to_string(), r.rating.to_string()])?;
            }
            w.flush()?;
        }
    }
    let all: Vec<Rating> = train.iter().chain(&valid).chain(&test).copied().collect();
    let (users, items) = shopgrowth_recommend::data::dimensions(&all);
    let data = match args.protocol {
        ProtocolName::T => Interactions::from_feedback(&train, users, items),
        _ => Interactions::from_ratings(&train, None),
    };
    let data = Interactions {
        users,
        items,
        ..data
    };
    let genres: Vec<Vec<&str>> = content
        .iter()
        .map(|c| c.attributes.iter().map(|(_, v)| v.as_str()).collect())
        .collect();
    let distance = |a: u32, b: u32| -> f64 {
        let (Some(x), Some(y)) = (genres.get(a as usize), genres.get(b as usize)) else {
            return 0.0;
        };
        let shared = x.iter().filter(|g| y.contains(g)).count();
        let union = x.len() + y.len() - shared;
        if union == 0 {
            0.0
        } else {
            1.0 - shared as f64 / union as f64
        }
    };
    let has_content = !content.is_empty();
    let test_protocol = Protocol {
        train: &data,
        relevant: relevant_of(&test),
        also_masked: items_by_user(&valid),
        k: args.k,
        distance: has_content.then_some(&distance as &(dyn Fn(u32, u32) -> f64 + Sync)),
    };
    let valid_protocol = (!valid.is_empty()).then(|| Protocol {
        train: &data,
        relevant: relevant_of(&valid),
        also_masked: items_by_user(&test),
        k: args.k,
        distance: None,
    });
    let models = if args.models.is_empty() {
        let mut m = vec![
            ModelName::Popularity,
            ModelName::ItemKnn,
            ModelName::UserKnn,
            ModelName::Ease,
            ModelName::Als,
            ModelName::Bpr,
        ];
        if has_content {
            m.push(ModelName::Content);
        }
        m.push(ModelName::Blend);
        m
    } else {
        args.models.clone()
    };
    let als_config = AlsConfig {
        factors: args.factors,
        regularization: args.regularization,
        alpha: args.alpha,
        iterations: args.iterations,
        cg_steps: 3,
        seed: args.als_seed.unwrap_or(args.seed),
    };
    let mut rows = Vec::new();
    let mut fitted: HashMap<ModelName, (Box<dyn Scorer>, f64)> = HashMap::new();
    for &model in &models {
        let (boxed, params, seconds): (Box<dyn Scorer>, String, f64) = match model {
            ModelName::Popularity => {
                let (m, s) = timed_fit(|| Popularity::fit(&data));
                (Box::new(m), String::new(), s)
            }
            ModelName::ItemKnn => {
                let (m, s) = timed_fit(|| ItemKnn::fit(&data, args.item_neighbours));
                (
                    Box::new(m),
                    format!("neighbours={}", args.item_neighbours),
                    s,
                )
            }
            ModelName::UserKnn => {
                let (m, s) = timed_fit(|| UserKnn::fit(&data, args.user_neighbours));
                (
                    Box::new(m),
                    format!("neighbours={}", args.user_neighbours),
                    s,
                )
            }
            ModelName::Ease if data.items > Ease::MAX_ITEMS => {
                eprintln!(
                    "Ease: skipped, {} items is more than its dense model allows ({})",
                    data.items,
                    Ease::MAX_ITEMS
                );
                continue;
            }
            ModelName::Ease => {
                let mut lambda = args.ease_lambda;
                let mut seconds = 0.0;
                if let Some(valid) = &valid_protocol {
                    let mut best = (f64::MIN, lambda);
                    for factor in [0.5, 1.0, 2.0, 4.0, 8.0] {
                        let l = args.ease_lambda * factor;
                        let (m, s) = timed_fit(|| Ease::fit(&data, l));
                        seconds += s;
                        let ndcg = valid.evaluate(&m?).metrics.ndcg;
                        if ndcg > best.0 {
                            best = (ndcg, l);
                        }
                    }
                    lambda = best.1;
                }
                let (m, s) = timed_fit(|| Ease::fit(&data, lambda));
                let params = if valid_protocol.is_some() {
                    format!("lambda={lambda} (chosen on valid; grid took {seconds:.1}s)")
                } else {
                    format!("lambda={lambda}")
                };
                (Box::new(m?), params, s)
            }
            ModelName::Als => {
                let (m, s) = timed_fit(|| Als::fit(&data, &als_config));
                (
                    Box::new(m),
                    format!(
                        "factors={} reg={} alpha={} iterations={} cg_steps=3",
                        als_config.factors,
                        als_config.regularization,
                        als_config.alpha,
                        als_config.iterations
                    ),
                    s,
                )
            }
            ModelName::Bpr => {
                let config = BprConfig {
                    factors: args.factors,
                    epochs: args.bpr_epochs,
                    seed: args.seed,
                    ..BprConfig::default()
                };
                let (m, s) = timed_fit(|| Bpr::fit(&data, &config));
                (
                    Box::new(m),
                    format!(
                        "factors={} epochs={} lr={}",
                        config.factors, config.epochs, config.learning_rate
                    ),
                    s,
                )
            }
            ModelName::Content => {
                let (m, s) = timed_fit(|| Content::fit(&content, args.item_neighbours));
                (
                    Box::new(m),
                    format!("neighbours={}", args.item_neighbours),
                    s,
                )
            }
            ModelName::Blend => {
                let mut parts = Vec::new();
                let mut seconds = 0.0;
                let usable = |n: &ModelName| *n != ModelName::Ease || data.items <= Ease::MAX_ITEMS;
                for name in [ModelName::Ease, ModelName::ItemKnn, ModelName::Als]
                    .into_iter()
                    .filter(usable)
                {
                    let (m, s) = match fitted.remove(&name) {
                        Some(x) => x,
                        None => match name {
                            ModelName::Ease => {
                                let (m, s) = timed_fit(|| Ease::fit(&data, args.ease_lambda));
                                (Box::new(m?) as Box<dyn Scorer>, s)
                            }
                            ModelName::ItemKnn => {
                                let (m, s) =
                                    timed_fit(|| ItemKnn::fit(&data, args.item_neighbours));
                                (Box::new(m) as Box<dyn Scorer>, s)
                            }
                            _ => {
                                let (m, s) = timed_fit(|| Als::fit(&data, &als_config));
                                (Box::new(m) as Box<dyn Scorer>, s)
                            }
                        },
                    };
                    seconds += s;
                    parts.push(m);
                }
                let mut blend = Blend::new(parts.into_iter().map(|m| (m, 1.0)).collect());
                if let Some(valid) = &valid_protocol {
                    blend.tune(|b| valid.evaluate(b).metrics.ndcg);
                }
                let params = blend.describe();
                (Box::new(blend), params, seconds)
            }
        };
        let report = test_protocol.evaluate(boxed.as_ref());
        eprintln!(
            "{:?}: fitted in {seconds:.2}s, nDCG@{} {:.4}",
            model, args.k, report.metrics.ndcg
        );
        rows.push(ModelRow {
            model,
            params,
            fit_seconds: seconds,
            report,
        });
        fitted.insert(model, (boxed, seconds));
    }
    Ok(EvalOutput {
        protocol: args.protocol,
        data: path.display().to_string(),
        users,
        items,
        train_pairs: data.pairs(),
        test_users: test_protocol.relevant.len(),
        k: args.k,
        rows,
        peak_memory_mib: peak_memory_mib(),
    })
}

pub fn print_eval(out: &EvalOutput) {
    println!(
        "protocol {:?} on {}: {} users, {} items, {} training pairs, {} test users, k = {}",
        out.protocol, out.data, out.users, out.items, out.train_pairs, out.test_users, out.k
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}  params",
        "model",
        "nDCG",
        "prec",
        "recall",
        "MAP",
        "hit",
        "MRR",
        "cover",
        "divers",
        "novelty",
        "fit s"
    );
    for r in &out.rows {
        let m = &r.report.metrics;
        println!(
            "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.2} {:>9.2}  {}",
            format!("{:?}", r.model).to_lowercase(),
            m.ndcg,
            m.precision,
            m.recall,
            m.map,
            m.hit,
            m.mrr,
            r.report.coverage,
            r.report.diversity,
            r.report.novelty,
            r.fit_seconds,
            r.params
        );
    }
    if let Some(mib) = out.peak_memory_mib {
        println!("peak memory {mib:.0} MiB");
    }
}

#[derive(Debug, Subcommand)]
pub enum RecommendVerb {
    /// Evaluate the recommenders offline under protocol B, C or T (see docs/recommendations.md).
    Eval(EvalArgs),
    /// Train the shop's recommender from the store and report what it learned and how long it
    /// took (the server trains the same way at start and on its schedule).
    Train,
    /// Train from the store, then answer one request as the API would.
    Query(QueryArgs),
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// home, product_page, cart or after_purchase.
    #[arg(long, default_value = "home")]
    pub scene: String,
    #[arg(long)]
    pub user: Option<String>,
    /// The product (product_page).
    #[arg(long)]
    pub item: Option<String>,
    /// Cart SKUs (cart).
    #[arg(long, value_delimiter = ',')]
    pub cart: Vec<String>,
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Answer this many times and report the mean time per answer (the engine alone, no HTTP).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

#[derive(Debug, Serialize)]
struct TrainReport {
    #[serde(flatten)]
    stats: shopgrowth_recommend::engine::TrainStats,
    read_seconds: f64,
    peak_memory_mib: Option<f64>,
}

async fn train(
    store: &crate::config::StoreArgs,
    file: &crate::config::FileConfig,
) -> anyhow::Result<(shopgrowth_recommend::engine::Model, TrainReport)> {
    let store = crate::config::open_store(store, file).await?;
    let started = Instant::now();
    let now = shopgrowth_core::time::Timestamp::now().0;
    let (data, _) = shopgrowth_service::recommend::shop_data(&store, now).await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let config = file.recommend.clone();
    let model = tokio::task::spawn_blocking(move || {
        shopgrowth_recommend::engine::Model::train(&data, &config)
    })
    .await?;
    let report = TrainReport {
        stats: model.stats.clone(),
        read_seconds,
        peak_memory_mib: peak_memory_mib(),
    };
    Ok((model, report))
}

pub async fn run(
    store: &crate::config::StoreArgs,
    file: &crate::config::FileConfig,
    verb: RecommendVerb,
    json: bool,
) -> anyhow::Result<()> {
    match verb {
        RecommendVerb::Eval(args) => {
            let out = tokio::task::spawn_blocking(move || eval(args)).await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_eval(&out);
            }
            Ok(())
        }
        RecommendVerb::Train => {
            let (_, report) = train(store, file).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let s = &report.stats;
                println!(
                    "trained on {} users, {} items, {} interactions, {} baskets (EASE {}): read {:.2}s, trained {:.2}s, peak memory {:.0} MiB",
                    s.users, s.items, s.pairs, s.baskets, if s.ease { "on" } else { "off" },
                    report.read_seconds, s.seconds, report.peak_memory_mib.unwrap_or(0.0)
                );
            }
            Ok(())
        }
        RecommendVerb::Query(args) => {
            let scene: shopgrowth_recommend::engine::Scene = args
                .scene
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--scene: {e}"))?;
            let (model, _) = train(store, file).await?;
            let request = shopgrowth_recommend::engine::Request {
                user: args.user.clone(),
                scene: Some(scene),
                n: args.n,
                item: args.item.clone(),
                cart: args.cart.clone(),
                ..Default::default()
            };
            let shown = std::collections::HashSet::new();
            let started = Instant::now();
            let mut items = Vec::new();
            for _ in 0..args.repeat.max(1) {
                items = model.recommend(&request, &[], &shown);
            }
            let micros = started.elapsed().as_secs_f64() * 1e6 / args.repeat.max(1) as f64;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"items": items, "microseconds_per_answer": micros})
                    )?
                );
            } else {
                for (rank, r) in items.iter().enumerate() {
                    println!(
                        "{:>2}. {:<12} {:<30} {:.3}  {}",
                        rank + 1,
                        r.sku,
                        r.title,
                        r.score,
                        r.reason.zh
                    );
                }
                println!("({micros:.0} µs per answer)");
            }
            Ok(())
        }
    }
}
