//! `shopgrowth bench pricing`: carts of 20 lines priced against 50 live promotions on one core.
//! Carts and promotions are generated from a seed over the demo catalogue's categories; the
//! report is carts per second and the spread of what the engine did (promotions applied,
//! combinations tried). It measures; it asserts nothing about time.

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use shopgrowth_promo::pricing::workload::{cart, promotions};
use shopgrowth_promo::pricing::{Cart, Customer, Pricer};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct PricingBenchArgs {
    #[arg(long, default_value_t = 200_000)]
    pub carts: usize,
    #[arg(long, default_value_t = 20)]
    pub lines: usize,
    #[arg(long, default_value_t = 50)]
    pub promotions: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct PricingBenchReport {
    pub carts: usize,
    pub lines: usize,
    pub promotions: usize,
    pub seconds: f64,
    pub carts_per_second: f64,
    pub mean_applied: f64,
    /// Promotions that could apply (audience, code, lines and threshold met), chosen or not.
    pub mean_candidates: f64,
    pub mean_combinations: f64,
    pub greedy_carts: usize,
    /// Compiling the live set once ([`Pricer::new`]), before the clock starts.
    pub compile_micros: f64,
}

pub fn run(args: PricingBenchArgs) -> PricingBenchReport {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let live = promotions(&mut rng, args.promotions);
    // A pool of distinct carts, generated before the clock starts.
    let pool: Vec<Cart> = (0..1_000).map(|_| cart(&mut rng, args.lines)).collect();
    let customer = Customer::default();
    // Compiled once, as a server holds its live set between changes.
    let compiling = Instant::now();
    let pricer = Pricer::new(&live);
    let compile_micros = compiling.elapsed().as_secs_f64() * 1e6;
    let (mut applied, mut candidates, mut combinations, mut greedy) = (0usize, 0, 0, 0);
    let started = Instant::now();
    for i in 0..args.carts {
        let q = pricer.price(&pool[i % pool.len()], &customer);
        applied += q.applied.len();
        candidates += q.applied.len()
            + q.not_applied
                .iter()
                .filter(|n| n.code == "not_chosen")
                .count();
        combinations += q.combinations;
        greedy += usize::from(q.cut_short);
    }
    let seconds = started.elapsed().as_secs_f64();
    PricingBenchReport {
        carts: args.carts,
        lines: args.lines,
        promotions: args.promotions,
        seconds,
        carts_per_second: args.carts as f64 / seconds,
        mean_applied: applied as f64 / args.carts as f64,
        mean_candidates: candidates as f64 / args.carts as f64,
        mean_combinations: combinations as f64 / args.carts as f64,
        greedy_carts: greedy,
        compile_micros,
    }
}
