//! Pricing: hand-checked cases for each rule and for stacking, and properties on random carts:
//! exact allocation, no negative totals, independence of line order, and the chosen combination
//! equal to brute force over every legal combination.

use super::*;
use proptest::prelude::*;

fn line(sku: &str, quantity: i64, unit_price: i64, category: &str, store: &str) -> CartLine {
    CartLine {
        sku: sku.into(),
        quantity,
        unit_price,
        category: vec![category.into()],
        store: Some(store.into()),
    }
}

fn promo(id: &str, rule: Rule, stacking: Stacking) -> Promotion {
    Promotion {
        id: id.into(),
        name: id.into(),
        rule,
        scope: Scope::default(),
        stacking,
        priority: 0,
        base: Base::Discounted,
        audience: Audience::default(),
        code: None,
    }
}

fn cat(name: &str) -> Stacking {
    Stacking::Category {
        name: name.into(),
        joint: false,
        limit: None,
    }
}

fn cart(lines: Vec<CartLine>) -> Cart {
    Cart {
        lines,
        shipping_fee: 1000,
        codes: Vec::new(),
    }
}

fn threshold(id: &str, t: i64, off: i64) -> Promotion {
    promo(
        id,
        Rule::Threshold {
            tiers: vec![Tier { threshold: t, off }],
            across_stores: true,
        },
        cat("shop"),
    )
}

#[test]
fn a_category_limit_lets_that_many_stack() {
    let c = cart(vec![line("a", 1, 40_000, "x", "s1")]);
    let shop = |id: &str, off: i64, limit: Option<u32>| {
        let mut p = threshold(id, 30_000, off);
        p.stacking = Stacking::Category {
            name: "shop".into(),
            joint: false,
            limit,
        };
        p
    };
    let applied = |q: &Quote| {
        q.applied
            .iter()
            .map(|a| a.id.to_string())
            .collect::<Vec<_>>()
    };
    // Up to two of three: the two that give the most.
    let two = [
        shop("s_a", 1_000, Some(2)),
        shop("s_b", 3_000, Some(2)),
        shop("s_c", 2_000, Some(2)),
    ];
    let q = price(&c, &Customer::default(), &two);
    assert_eq!(applied(&q), ["s_b", "s_c"]);
    assert_eq!(q.discount, 5_000);
    let left = q.not_applied.iter().find(|n| &*n.id == "s_a");
    assert_eq!(
        left.map(|n| n.message()).as_deref(),
        Some("s_a: 不与「s_b」同享"),
        "the category is full"
    );
    // One promotion naming a smaller limit sets the category's.
    let mut one = two.clone();
    one[0] = shop("s_a", 1_000, None);
    let q = price(&c, &Customer::default(), &one);
    assert_eq!(applied(&q), ["s_b"]);
    // A limit above the promotions there are: all of them.
    let all = two.map(|mut p| {
        if let Stacking::Category { limit, .. } = &mut p.stacking {
            *limit = Some(5);
        }
        p
    });
    assert_eq!(price(&c, &Customer::default(), &all).discount, 6_000);
}

#[test]
fn a_cart_that_cannot_be_priced_names_each_field() {
    assert!(cart(vec![line("a", 1, 0, "母婴", "s1")])
        .problems()
        .is_empty());
    let mut bad = cart(vec![line(" ", 0, -1, "母婴", "s1")]);
    bad.shipping_fee = -5;
    let fields: Vec<String> = bad.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            "lines[0].sku",
            "lines[0].quantity",
            "lines[0].unit_price",
            "shipping_fee"
        ]
    );
    assert_eq!(Cart::default().problems()[0].field, "lines");
}

#[test]
fn a_cart_whose_money_overflows_is_refused_not_wrapped() {
    let huge = 9_000_000_000_000_000_000;
    let one_line = cart(vec![line("a", 2, huge, "母婴", "s1")]);
    let fields: Vec<String> = one_line.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["lines[0].quantity"]);
    // Each line fits; together they do not.
    let two = cart(vec![
        line("a", 1, huge, "母婴", "s1"),
        line("b", 1, huge, "母婴", "s1"),
    ]);
    let fields: Vec<String> = two.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["lines"]);
}

#[test]
fn a_rule_that_makes_no_sense_names_each_field() {
    let fields = |r: Rule| -> Vec<String> { r.problems().into_iter().map(|p| p.field).collect() };
    assert!(fields(threshold("m", 30_000, 4_000).rule).is_empty());
    assert_eq!(
        fields(Rule::Threshold {
            tiers: vec![
                Tier {
                    threshold: 10_000,
                    off: 1_000
                },
                Tier {
                    threshold: -5,
                    off: -100
                },
            ],
            across_stores: false,
        }),
        ["tiers[1].threshold", "tiers[1].off"]
    );
    assert_eq!(
        fields(Rule::Threshold {
            tiers: vec![],
            across_stores: false
        }),
        ["tiers"]
    );
    assert_eq!(
        fields(Rule::PercentOff {
            percent_bp: 15_000,
            threshold: 0,
            cap: Some(0)
        }),
        ["cap", "percent_bp"]
    );
    assert_eq!(
        fields(Rule::BuyXGetY {
            buy: 0,
            get: 0,
            max_times: None
        }),
        ["buy", "get"]
    );
    assert_eq!(
        fields(Rule::Bundle {
            skus: vec!["a".into(), "a".into()],
            price: 100
        }),
        ["skus"]
    );
    assert_eq!(
        fields(Rule::PerEvery {
            every: 0,
            off: 2_000,
            cap: None,
            across_stores: true
        }),
        ["every"]
    );
    // A promotion names its rule's fields under `rule`, and its own.
    let mut p = threshold("m", 30_000, 0);
    p.stacking = Stacking::Category {
        name: "shop".into(),
        joint: false,
        limit: Some(0),
    };
    let fields: Vec<String> = p.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["rule.tiers[0].off", "stacking.limit"]);
}

#[test]
fn says_how_much_is_missing() {
    let c = cart(vec![line("a", 1, 28_750, "母婴", "s1")]);
    let mut p = threshold("m", 30_000, 4_000);
    p.name = "满300减40".into();
    let q = price(&c, &Customer::default(), &[p]);
    assert_eq!(q.total, 28_750 + 1000);
    assert_eq!(q.not_applied[0].message(), "满300减40: 还差 ¥12.50");
    assert_eq!(q.not_applied[0].shortfall, Some(1_250));
}

#[test]
fn the_shortfall_is_on_the_amounts_a_promotion_would_read() {
    // ¥400 of goods: 满300减50 applies first, leaving ¥350 for what comes after it on the
    // discounted prices and may stack with it; a promotion on the original prices still reads
    // ¥400.
    let c = cart(vec![line("a", 1, 40_000, "母婴", "s1")]);
    let first = threshold("a-first", 30_000, 5_000);
    let mut after = threshold("b-after", 100_000, 20_000);
    after.stacking = cat("coupon");
    after.priority = 1;
    let mut original = after.clone();
    original.id = "c-original".into();
    original.name = "c-original".into();
    original.stacking = cat("platform");
    original.base = Base::Original;
    // A rival of the first in its category is never taken with it: it reads ¥400.
    let rival = threshold("a-rival", 50_000, 8_000);
    let q = price(&c, &Customer::default(), &[first, after, original, rival]);
    assert_eq!(q.total, 35_000 + 1000);
    let shortfall = |id: &str| {
        q.not_applied
            .iter()
            .find(|n| &*n.id == id)
            .and_then(|n| n.shortfall)
    };
    assert_eq!(shortfall("b-after"), Some(65_000));
    assert_eq!(shortfall("c-original"), Some(60_000));
    assert_eq!(shortfall("a-rival"), Some(10_000));
}

#[test]
fn a_promotion_the_customer_has_used_up_is_not_for_them() {
    let c = cart(vec![line("a", 1, 40_000, "母婴", "s1")]);
    let customer = Customer {
        used_up: ["once".to_owned()].into(),
        ..Customer::default()
    };
    let q = price(&c, &customer, &[threshold("once", 30_000, 5_000)]);
    assert_eq!(q.total, 40_000 + 1000);
    assert_eq!(q.not_applied[0].code, "used_up");
    assert_eq!(q.not_applied[0].message(), "once: 每人限享次数已用完");
}

#[test]
fn tiered_threshold_spreads_exactly() {
    let c = cart(vec![
        line("a", 1, 10_001, "x", "s1"),
        line("b", 1, 10_001, "x", "s1"),
        line("c", 1, 10_001, "x", "s1"),
    ]);
    let p = promo(
        "t",
        Rule::Threshold {
            tiers: vec![
                Tier {
                    threshold: 20_000,
                    off: 2_000,
                },
                Tier {
                    threshold: 30_000,
                    off: 5_000,
                },
            ],
            across_stores: false,
        },
        cat("shop"),
    );
    let q = price(&c, &Customer::default(), &[p]);
    assert_eq!(q.discount, 5_000);
    let d: Vec<i64> = q.lines.iter().map(|l| l.discount).collect();
    assert_eq!(d, [1_667, 1_667, 1_666], "remainder to the earlier line");
}

#[test]
fn per_store_thresholds_count_each_store_alone() {
    let c = cart(vec![
        line("a", 1, 20_000, "x", "s1"),
        line("b", 1, 20_000, "x", "s2"),
    ]);
    let mut per_store = threshold("p", 30_000, 3_000);
    per_store.rule = Rule::Threshold {
        tiers: vec![Tier {
            threshold: 30_000,
            off: 3_000,
        }],
        across_stores: false,
    };
    assert_eq!(price(&c, &Customer::default(), &[per_store]).discount, 0);
    assert_eq!(
        price(&c, &Customer::default(), &[threshold("x", 30_000, 3_000)]).discount,
        3_000
    );
}

#[test]
fn each_rule_on_a_hand_made_cart() {
    let c = cart(vec![
        line("shirt", 3, 9_900, "服饰", "s1"),
        line("socks", 4, 1_500, "服饰", "s1"),
        line("milk", 2, 19_900, "母婴", "s2"),
    ]);
    let customer = Customer {
        tier: Some("gold".into()),
        ..Customer::default()
    };
    let one = |rule: Rule| price(&c, &customer, &[promo("p", rule, cat("x"))]);
    // 直降 5 yuan per unit on everything: 9 units.
    assert_eq!(one(Rule::PriceCut { off_per_unit: 500 }).discount, 4_500);
    // 每满100减10, capped at 50: subtotal 755.00 gives 7 × 10 = 70 → 50.
    let q = one(Rule::PerEvery {
        every: 10_000,
        off: 1_000,
        cap: Some(5_000),
        across_stores: true,
    });
    assert_eq!(q.discount, 5_000);
    // 15% off, capped at 100 yuan: 15% of 755.00 = 113.25 → 100.
    assert_eq!(
        one(Rule::PercentOff {
            percent_bp: 1_500,
            threshold: 0,
            cap: Some(10_000)
        })
        .discount,
        10_000
    );
    // Half price on every 2nd unit: shirt 1 unit of 99 → 49.50; socks 2 units → 15.00; milk 1 → 99.50.
    assert_eq!(
        one(Rule::NthItemOff {
            nth: 2,
            percent_bp: 5_000
        })
        .discount,
        4_950 + 1_500 + 9_950
    );
    // Buy 2 get 1 on 9 units sorted by price: 199,199,99 | 99,99,15 | 15,15,15 → 99 + 15 + 15 free.
    assert_eq!(
        one(Rule::BuyXGetY {
            buy: 2,
            get: 1,
            max_times: None
        })
        .discount,
        9_900 + 1_500 + 1_500
    );
    assert_eq!(
        one(Rule::BuyXGetY {
            buy: 2,
            get: 1,
            max_times: Some(1)
        })
        .discount,
        9_900
    );
    // Gift: adds the item, lines unchanged.
    let q = one(Rule::Gift {
        threshold: 50_000,
        sku: "bag".into(),
        value: 2_900,
    });
    assert_eq!(
        (q.discount, q.gifts.len(), q.gifts[0].sku.as_str()),
        (0, 1, "bag")
    );
    // Bundle: a shirt and a pair of socks for 100 yuan, as many as the cart holds (3).
    let q = one(Rule::Bundle {
        skus: vec!["shirt".into(), "socks".into()],
        price: 10_000,
    });
    assert_eq!(q.discount, 3 * (9_900 + 1_500 - 10_000));
    // Member price for gold: milk at 179.00.
    let prices = BTreeMap::from([("milk".to_owned(), 17_900)]);
    assert_eq!(
        one(Rule::MemberPrice {
            tiers: vec!["gold".into()],
            prices: prices.clone()
        })
        .discount,
        4_000
    );
    let q = price(
        &c,
        &Customer::default(),
        &[promo(
            "m",
            Rule::MemberPrice {
                tiers: vec!["gold".into()],
                prices,
            },
            cat("x"),
        )],
    );
    assert_eq!(q.discount, 0);
    // Free shipping over 99.
    let q = one(Rule::FreeShipping { threshold: 9_900 });
    assert_eq!((q.shipping_discount, q.total), (1_000, 75_500));
}

#[test]
fn stacking_rules_choose_the_best_legal_set() {
    let c = cart(vec![line("a", 1, 40_000, "x", "s1")]);
    let shop_a = threshold("shop_a", 30_000, 4_000);
    let shop_b = threshold("shop_b", 30_000, 5_000);
    let mut platform = threshold("platform", 30_000, 3_000);
    platform.stacking = cat("platform");
    platform.priority = 1;
    let mut solo = promo(
        "solo",
        Rule::PercentOff {
            percent_bp: 2_000,
            threshold: 0,
            cap: None,
        },
        Stacking::Exclusive,
    );
    solo.priority = 2;
    let q = price(
        &c,
        &Customer::default(),
        &[shop_a.clone(), shop_b.clone(), platform.clone()],
    );
    let ids: Vec<&str> = q.applied.iter().map(|a| &*a.id).collect();
    assert_eq!(
        ids,
        ["shop_b", "platform"],
        "one per category, categories stack"
    );
    assert_eq!(q.discount, 8_000);
    let reason = q
        .not_applied
        .iter()
        .find(|n| &*n.id == "shop_a")
        .map(|n| n.message());
    assert_eq!(reason.as_deref(), Some("shop_a: 不与「shop_b」同享"));
    // An exclusive 20% (80 yuan) beats 50 + 30.
    let q = price(
        &c,
        &Customer::default(),
        &[shop_a, shop_b, platform.clone(), solo],
    );
    assert_eq!(
        q.applied.iter().map(|a| &*a.id).collect::<Vec<_>>(),
        ["solo"]
    );
    // Joint categories stack within themselves.
    let mut j1 = threshold("j1", 30_000, 1_000);
    let mut j2 = threshold("j2", 30_000, 1_000);
    for j in [&mut j1, &mut j2] {
        j.stacking = Stacking::Category {
            name: "joint".into(),
            joint: true,
            limit: None,
        };
    }
    assert_eq!(price(&c, &Customer::default(), &[j1, j2]).discount, 2_000);
    // A threshold on discounted prices can fall below; on original prices it holds.
    let mut cut = promo(
        "cut",
        Rule::PriceCut {
            off_per_unit: 15_000,
        },
        cat("item"),
    );
    cut.priority = -1;
    let mut late = threshold("late", 30_000, 4_000);
    late.priority = 5;
    let q = price(&c, &Customer::default(), &[cut.clone(), late.clone()]);
    assert_eq!(
        q.discount, 15_000,
        "after the cut 250 < 300: the 满减 no longer applies"
    );
    late.base = Base::Original;
    assert_eq!(
        price(&c, &Customer::default(), &[cut, late]).discount,
        19_000
    );
}

#[test]
fn codes_and_audiences_gate_promotions() {
    let c = cart(vec![line("a", 1, 40_000, "x", "s1")]);
    let mut coded = threshold("c", 10_000, 1_000);
    coded.code = Some("SAVE10".into());
    assert_eq!(
        price(&c, &Customer::default(), std::slice::from_ref(&coded)).not_applied[0].code,
        "code_missing"
    );
    let with_code = Cart {
        codes: vec!["save10".into()],
        ..c.clone()
    };
    assert_eq!(
        price(&with_code, &Customer::default(), &[coded]).discount,
        1_000
    );
    let mut newbie = threshold("n", 10_000, 1_000);
    newbie.audience.new_customers_only = true;
    let old = Customer {
        orders: 3,
        ..Customer::default()
    };
    assert_eq!(price(&c, &old, std::slice::from_ref(&newbie)).discount, 0);
    assert_eq!(price(&c, &Customer::default(), &[newbie]).discount, 1_000);
    let mut vip = threshold("v", 10_000, 1_000);
    vip.audience.segments = vec!["vip".into()];
    let member = Customer {
        segments: BTreeSet::from(["vip".to_owned()]),
        ..Customer::default()
    };
    assert_eq!(price(&c, &member, &[vip]).discount, 1_000);
}

// ---- properties ----

const SKUS: [&str; 4] = ["a", "b", "c", "d"];

fn arb_line() -> impl Strategy<Value = CartLine> {
    (0usize..4, 1i64..5, 1i64..30_000, 0usize..2, 0usize..2).prop_map(|(s, q, p, c, st)| CartLine {
        sku: SKUS[s].into(),
        quantity: q,
        unit_price: p,
        category: vec![["x", "y"][c].into()],
        store: Some(["s1", "s2"][st].into()),
    })
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (1i64..3_000).prop_map(|off_per_unit| Rule::PriceCut { off_per_unit }),
        (1i64..60_000, 1i64..20_000, any::<bool>()).prop_map(|(t, off, across)| Rule::Threshold {
            tiers: vec![
                Tier { threshold: t, off },
                Tier {
                    threshold: t * 2,
                    off: off * 2
                }
            ],
            across_stores: across,
        }),
        (
            1i64..30_000,
            1i64..5_000,
            proptest::option::of(1i64..20_000)
        )
            .prop_map(|(every, off, cap)| Rule::PerEvery {
                every,
                off,
                cap,
                across_stores: true,
            }),
        (
            1i64..10_000,
            0i64..40_000,
            proptest::option::of(1i64..20_000)
        )
            .prop_map(|(percent_bp, threshold, cap)| Rule::PercentOff {
                percent_bp,
                threshold,
                cap,
            }),
        (2i64..4, 1i64..10_000).prop_map(|(nth, percent_bp)| Rule::NthItemOff { nth, percent_bp }),
        (1i64..3, 1i64..2).prop_map(|(buy, get)| Rule::BuyXGetY {
            buy,
            get,
            max_times: None
        }),
        (0i64..50_000, 1i64..5_000).prop_map(|(threshold, value)| Rule::Gift {
            threshold,
            sku: "gift".into(),
            value
        }),
        (0i64..40_000).prop_map(|price| Rule::Bundle {
            skus: vec!["a".into(), "b".into()],
            price
        }),
        (0i64..20_000).prop_map(|threshold| Rule::FreeShipping { threshold }),
    ]
}

fn arb_promotion(id: usize) -> impl Strategy<Value = Promotion> {
    (
        arb_rule(),
        0usize..4,
        -2i32..3,
        any::<bool>(),
        proptest::option::of(0usize..2),
    )
        .prop_map(
            move |(rule, stacking, priority, original, category)| Promotion {
                id: format!("p{id}"),
                name: format!("p{id}"),
                rule,
                scope: Scope {
                    categories: category
                        .map(|c| vec![["x", "y"][c].to_owned()])
                        .unwrap_or_default(),
                    ..Scope::default()
                },
                stacking: match stacking {
                    0 => Stacking::Exclusive,
                    1 => Stacking::Category {
                        name: "item".into(),
                        joint: false,
                        limit: None,
                    },
                    // Up to two of the shop's promotions per order.
                    2 => Stacking::Category {
                        name: "shop".into(),
                        joint: false,
                        limit: Some(2),
                    },
                    _ => Stacking::Category {
                        name: "joint".into(),
                        joint: true,
                        limit: None,
                    },
                },
                priority,
                base: if original {
                    Base::Original
                } else {
                    Base::Discounted
                },
                audience: Audience::default(),
                code: None,
            },
        )
}

fn arb_promotions() -> impl Strategy<Value = Vec<Promotion>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(arb_promotion).collect::<Vec<_>>())
}

fn arb_cart() -> impl Strategy<Value = Cart> {
    (proptest::collection::vec(arb_line(), 1..6), 0i64..2_000).prop_map(|(lines, shipping_fee)| {
        Cart {
            lines,
            shipping_fee,
            codes: Vec::new(),
        }
    })
}

/// Lines a, b, c, … (so in canonical order already) of (quantity, unit price).
fn lettered_lines(units: &[(i64, i64)]) -> Vec<CartLine> {
    units
        .iter()
        .enumerate()
        .map(|(i, &(q, price))| line(&format!("{}", (b'a' + i as u8) as char), q, price, "x", "s"))
        .collect()
}

/// Buy X get Y's reference: every unit laid out with its value (a line's amount over its units,
/// the extra cents on its first units), dearest first, ties to the earlier line; of every
/// `buy + get`, the last `get` free. What each line (in canonical order) gets off.
fn free_unit_by_unit(
    amounts: &[i64],
    quantities: &[i64],
    buy: i64,
    get: i64,
    max_times: Option<i64>,
) -> Vec<i64> {
    let mut laid: Vec<(i64, usize)> = Vec::new();
    for (i, (&a, &q)) in amounts.iter().zip(quantities).enumerate() {
        for u in 0..q {
            laid.push((a / q + i64::from(u < a % q), i));
        }
    }
    laid.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    let size = (buy + get) as usize;
    let mut times = laid.len() / size;
    if let Some(m) = max_times {
        times = times.min(m as usize);
    }
    let mut free = vec![0i64; amounts.len()];
    for g in 0..times {
        for &(v, i) in &laid[g * size + buy as usize..(g + 1) * size] {
            free[i] += v;
        }
    }
    free
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn allocations_are_exact_and_nothing_goes_negative(c in arb_cart(), ps in arb_promotions()) {
        let q = price(&c, &Customer::default(), &ps);
        let line_discounts: i64 = q.lines.iter().map(|l| l.discount).sum();
        prop_assert_eq!(line_discounts, q.discount);
        prop_assert_eq!(q.applied.iter().map(|a| a.discount).sum::<i64>(), q.discount);
        for a in &q.applied {
            prop_assert_eq!(a.allocation.iter().map(|x| x.1).sum::<i64>(), a.discount);
        }
        for l in &q.lines {
            prop_assert!(l.total >= 0 && l.discount >= 0 && l.total == l.original - l.discount);
        }
        prop_assert!(q.total >= 0 && q.shipping_discount <= q.shipping_fee);
        prop_assert_eq!(q.total, q.subtotal - q.discount + q.shipping_fee - q.shipping_discount);
    }

    #[test]
    fn line_order_does_not_matter(c in arb_cart(), ps in arb_promotions(), seed in any::<u64>()) {
        let q = price(&c, &Customer::default(), &ps);
        let mut shuffled = c.clone();
        // A deterministic permutation from the seed.
        let n = shuffled.lines.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) >> 33) as usize % (i + 1);
            shuffled.lines.swap(i, j);
        }
        let r = price(&shuffled, &Customer::default(), &ps);
        prop_assert_eq!((q.total, q.discount, q.shipping_discount), (r.total, r.discount, r.shipping_discount));
        let ids = |q: &Quote| q.applied.iter().map(|a| (a.id.clone(), a.discount)).collect::<Vec<_>>();
        prop_assert_eq!(ids(&q), ids(&r));
        let mut a: Vec<_> = q.lines.iter().map(|l| (l.sku.clone(), l.quantity, l.unit_price, l.discount)).collect();
        let mut b: Vec<_> = r.lines.iter().map(|l| (l.sku.clone(), l.quantity, l.unit_price, l.discount)).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn buy_x_get_y_after_a_discount_frees_the_cheapest_units_of_what_is_left(
        units in proptest::collection::vec((1i64..6, 1i64..5_000), 1..8),
        percent_bp in 100i64..9_000,
        discounted in any::<u8>(),
        buy in 0i64..4,
        get in 1i64..3,
        max_times in proptest::option::of(1i64..4),
    ) {
        // A percentage off some lines first (priority 0), then buy X get Y on the amounts it
        // left: unit values fall unevenly, so the dearest units at the start need not be the
        // dearest after.
        let lines = lettered_lines(&units);
        let joint = Stacking::Category { name: "j".into(), joint: true, limit: None };
        let mut off = promo("off", Rule::PercentOff { percent_bp, threshold: 0, cap: None }, joint.clone());
        off.priority = 0;
        // Only some lines: theirs fall, the others' stay.
        off.scope.skus = lines.iter().enumerate().filter(|(i, _)| discounted >> i & 1 == 1).map(|(_, l)| l.sku.clone()).collect();
        if off.scope.skus.is_empty() {
            off.scope.skus.push(lines[0].sku.clone());
        }
        let mut bxgy = promo("bxgy", Rule::BuyXGetY { buy, get, max_times }, joint);
        bxgy.priority = 1;
        let cart = Cart { lines: lines.clone(), shipping_fee: 0, codes: Vec::new() };
        let q = apply_all(&cart, &Customer::default(), &[off, bxgy]);
        let after_off: Vec<i64> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let cut: i64 = q.applied.iter().filter(|a| &*a.id == "off").flat_map(|a| &a.allocation).filter(|x| x.0 == i).map(|x| x.1).sum();
                l.unit_price * l.quantity - cut
            })
            .collect();
        let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
        let want = free_unit_by_unit(&after_off, &quantities, buy, get, max_times);
        let mut got = vec![0i64; lines.len()];
        for a in q.applied.iter().filter(|a| &*a.id == "bxgy") {
            for &(i, d) in &a.allocation {
                got[i] += d;
            }
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn buy_x_get_y_frees_the_cheapest_unit_by_unit(
        units in proptest::collection::vec((1i64..6, 1i64..5_000), 1..6),
        buy in 0i64..4,
        get in 1i64..3,
        max_times in proptest::option::of(1i64..4),
    ) {
        // The reference lays every unit out.
        let lines = lettered_lines(&units);
        let amounts: Vec<i64> = lines.iter().map(|l| l.unit_price * l.quantity).collect();
        let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
        let want = free_unit_by_unit(&amounts, &quantities, buy, get, max_times);
        let p = promo("bxgy", Rule::BuyXGetY { buy, get, max_times }, Stacking::Exclusive);
        let cart = Cart { lines, shipping_fee: 0, codes: Vec::new() };
        let q = price(&cart, &Customer::default(), &[p]);
        let got: Vec<i64> = q.lines.iter().map(|l| l.discount).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn the_choice_equals_brute_force(c in arb_cart(), ps in arb_promotions()) {
        let q = price(&c, &Customer::default(), &ps);
        prop_assert!(!q.cut_short);
        let mut best = 0;
        for mask in 0u32..(1 << ps.len()) {
            let subset: Vec<Promotion> = (0..ps.len()).filter(|i| mask >> i & 1 == 1).map(|i| ps[i].clone()).collect();
            let refs: Vec<&Promotion> = subset.iter().collect();
            if !is_legal(&refs, &ps) {
                continue;
            }
            best = best.max(benefit(&apply_all(&c, &Customer::default(), &subset)));
        }
        prop_assert_eq!(benefit(&q), best);
    }

    #[test]
    fn one_pricer_prices_each_cart_as_if_alone(
        carts in proptest::collection::vec(arb_cart(), 1..6),
        ps in arb_promotions(),
    ) {
        // The per-thread working space carries nothing from one quote to the next.
        let pricer = Pricer::new(&ps);
        let forward: Vec<Quote> = carts.iter().map(|c| pricer.price(c, &Customer::default())).collect();
        let backward: Vec<Quote> = carts.iter().rev().map(|c| pricer.price(c, &Customer::default())).collect();
        for (k, c) in carts.iter().enumerate() {
            let alone = price(c, &Customer::default(), &ps);
            prop_assert_eq!(&forward[k], &alone);
            prop_assert_eq!(&backward[carts.len() - 1 - k], &alone);
        }
    }
}
