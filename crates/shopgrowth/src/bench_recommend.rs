//! `shopgrowth bench recommend`: the first recommenders on MovieLens (`u.data`: user, item,
//! rating, time, tab-separated) under protocol B (each item's ratings split 75/25 at random,
//! seed 42; every item not seen in training is ranked; k = 10). Reports the ranking metrics and the
//! fitting time. Needs ../shared/data; says so when the file is missing.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use shopgrowth_recommend::metrics::UserMetrics;
use shopgrowth_recommend::models::{evaluate, Interactions, ItemKnn, Popularity};
use shopgrowth_recommend::{split, Rating};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct RecommendBenchArgs {
    /// MovieLens `u.data`.
    #[arg(long, default_value = "../shared/data/movielens_100k/u.data")]
    pub data: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Neighbours kept per item by item kNN.
    #[arg(long, default_value_t = 100)]
    pub neighbours: usize,
}

#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub model: &'static str,
    pub fit_seconds: f64,
    pub metrics: UserMetrics,
}

pub fn run(args: RecommendBenchArgs) -> anyhow::Result<Vec<ModelReport>> {
    anyhow::ensure!(
        args.data.exists(),
        "benchmark not run: {} is missing (../shared beside the repository)",
        args.data.display()
    );
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let mut ratings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let field = |i: usize, name: &str| {
            f.get(i)
                .and_then(|v| v.trim().parse::<f32>().ok())
                .with_context(|| {
                    format!("{}:{}: {name} is not a number", args.data.display(), n + 1)
                })
        };
        ratings.push(Rating {
            user: field(0, "user")? as u32,
            item: field(1, "item")? as u32,
            rating: field(2, "rating")?,
        });
    }
    let split = split::per_item(&ratings, 0.75, 42);
    let train = Interactions::from_ratings(&split.train, None);
    let mut reports = Vec::new();
    let t = Instant::now();
    let pop = Popularity::fit(&train);
    reports.push(ModelReport {
        model: "popularity",
        fit_seconds: t.elapsed().as_secs_f64(),
        metrics: evaluate(&pop, &train, &split.test, args.k),
    });
    let t = Instant::now();
    let knn = ItemKnn::fit(&train, args.neighbours);
    reports.push(ModelReport {
        model: "item_knn",
        fit_seconds: t.elapsed().as_secs_f64(),
        metrics: evaluate(&knn, &train, &split.test, args.k),
    });
    Ok(reports)
}
