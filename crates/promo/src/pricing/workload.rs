//! The generated workload `shopgrowth bench pricing` measures: 20-line carts over 200 SKUs, 8
//! categories and 4 stores, against a dense set of live promotions of every rule type in four
//! stacking categories (one joint) plus exclusives. A third of the promotions apply to every line,
//! so most of them could apply to any cart. Deterministic from the seed.

use super::{Audience, Base, Cart, CartLine, Promotion, Rule, Scope, Stacking, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const CATEGORIES: [&str; 8] = [
    "母婴", "数码", "服饰", "美妆", "食品", "家居", "运动", "图书",
];
const STORES: [&str; 4] = ["s1", "s2", "s3", "s4"];

/// `n` live promotions.
pub fn promotions(rng: &mut ChaCha8Rng, n: usize) -> Vec<Promotion> {
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
                    limit: None,
                },
                3 | 4 => Stacking::Category {
                    name: "shop".into(),
                    joint: false,
                    limit: None,
                },
                5 => Stacking::Category {
                    name: "platform".into(),
                    joint: false,
                    limit: None,
                },
                _ => Stacking::Category {
                    name: "shipping".into(),
                    joint: true,
                    limit: None,
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

/// A cart of `lines` lines.
pub fn cart(rng: &mut ChaCha8Rng, lines: usize) -> Cart {
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
