//! `shopgrowth bench pricing`: carts of 20 lines priced against 50 live promotions on one core.
//! Carts and promotions are generated from a seed over the demo catalogue's categories; the
//! report is carts per second and the spread of what the engine did (promotions applied,
//! combinations tried). It measures; it asserts nothing about time.

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use shopgrowth_promo::pricing::{
    price, Audience, Base, Cart, CartLine, Customer, Promotion, Rule, Scope, Stacking, Tier,
};
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
}

const CATEGORIES: [&str; 8] = [
    "母婴", "数码", "服饰", "美妆", "食品", "家居", "运动", "图书",
];
const STORES: [&str; 4] = ["s1", "s2", "s3", "s4"];

fn promotions(rng: &mut ChaCha8Rng, n: usize) -> Vec<Promotion> {
    (0..n)
        .map(|i| {
            let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_owned();
            let rule = match i % 10 {
                0 => Rule::PriceCut {
                    off_per_unit: rng.random_range(100..2_000),
                },
                1 | 2 => {
                    let t = rng.random_range(10_000..60_000);
                    Rule::Threshold {
                        tiers: vec![
                            Tier {
                                threshold: t,
                                off: t / 10,
                            },
                            Tier {
                                threshold: t * 2,
                                off: t / 4,
                            },
                        ],
                        across_stores: i % 2 == 0,
                    }
                }
                3 => Rule::PerEvery {
                    every: 20_000,
                    off: 2_000,
                    cap: Some(10_000),
                    across_stores: true,
                },
                4 => Rule::PercentOff {
                    percent_bp: rng.random_range(500..3_000),
                    threshold: 0,
                    cap: Some(20_000),
                },
                5 => Rule::NthItemOff {
                    nth: 2,
                    percent_bp: 5_000,
                },
                6 => Rule::BuyXGetY {
                    buy: 2,
                    get: 1,
                    max_times: Some(3),
                },
                7 => Rule::Gift {
                    threshold: 30_000,
                    sku: format!("gift-{i}"),
                    value: 2_000,
                },
                8 => Rule::Bundle {
                    skus: vec![
                        format!("sku-{}", rng.random_range(0..200)),
                        format!("sku-{}", rng.random_range(0..200)),
                    ],
                    price: 10_000,
                },
                _ => Rule::FreeShipping { threshold: 9_900 },
            };
            let stacking = match i % 7 {
                0 => Stacking::Exclusive,
                1 | 2 => Stacking::Category {
                    name: "item".into(),
                    joint: false,
                },
                3 | 4 => Stacking::Category {
                    name: "shop".into(),
                    joint: false,
                },
                5 => Stacking::Category {
                    name: "platform".into(),
                    joint: false,
                },
                _ => Stacking::Category {
                    name: "shipping".into(),
                    joint: true,
                },
            };
            Promotion {
                id: format!("p{i:02}"),
                name: format!("promotion {i}"),
                rule,
                scope: Scope {
                    categories: if i % 3 == 0 {
                        Vec::new()
                    } else {
                        vec![category]
                    },
                    ..Scope::default()
                },
                stacking,
                priority: (i % 5) as i32,
                base: if i % 4 == 0 {
                    Base::Original
                } else {
                    Base::Discounted
                },
                audience: Audience::default(),
                code: None,
            }
        })
        .collect()
}

fn cart(rng: &mut ChaCha8Rng, lines: usize) -> Cart {
    Cart {
        lines: (0..lines)
            .map(|_| CartLine {
                sku: format!("sku-{}", rng.random_range(0..200)),
                quantity: rng.random_range(1..4),
                unit_price: rng.random_range(500..30_000),
                category: vec![CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_owned()],
                store: Some(STORES[rng.random_range(0..STORES.len())].to_owned()),
            })
            .collect(),
        shipping_fee: 1_000,
        codes: Vec::new(),
    }
}

pub fn run(args: PricingBenchArgs) -> PricingBenchReport {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let live = promotions(&mut rng, args.promotions);
    // A pool of distinct carts, generated before the clock starts.
    let pool: Vec<Cart> = (0..1_000).map(|_| cart(&mut rng, args.lines)).collect();
    let customer = Customer::default();
    let (mut applied, mut candidates, mut combinations, mut greedy) = (0usize, 0, 0, 0);
    let started = Instant::now();
    for i in 0..args.carts {
        let q = price(&pool[i % pool.len()], &customer, &live);
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
    }
}
