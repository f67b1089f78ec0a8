//! The audience: built-in tags on a hand-made shop, custom tags and segments, and the property
//! that any batching of a fact stream ends where a rebuild from all of it ends.

use super::*;
use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;

const DAY: i64 = 86_400_000;

fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

/// Noon in Shanghai on the given day number.
fn noon(day: i32) -> i64 {
    let epoch = day_number(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default());
    i64::from(day - epoch) * DAY + 4 * 3_600_000
}

fn today() -> i32 {
    day_number(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default())
}

fn shop() -> Audience {
    let mut a = Audience::new(AudienceConfig::default(), today());
    a.set_product("milk", "母婴/奶粉", Some("Feihe"));
    a.set_product("phone", "数码/手机", Some("Apple"));
    a
}

fn buy(a: &mut Audience, user: &str, days_ago: i32, amount: i64, sku: &str) -> Fact {
    a.order_fact(&OrderInput {
        user,
        time: noon(today() - days_ago),
        sale: true,
        amount,
        discount: 0,
        coupon: false,
        channel: "app",
        store: None,
        skus: vec![sku],
    })
}

#[test]
fn built_in_tags_on_a_small_shop() {
    let mut a = shop();
    let config = AudienceConfig {
        active_days: Some(30),
        churn_days: Some(90),
        ..AudienceConfig::default()
    };
    a.config = config;
    let facts = vec![
        buy(&mut a, "new", 3, 10_000, "milk"),
        buy(&mut a, "active", 40, 5_000, "milk"),
        buy(&mut a, "active", 20, 5_000, "milk"),
        buy(&mut a, "active", 2, 5_000, "milk"),
        buy(&mut a, "back", 200, 90_000, "phone"),
        buy(&mut a, "back", 1, 90_000, "phone"),
        buy(&mut a, "asleep", 60, 1_000, "milk"),
        buy(&mut a, "gone", 300, 2_000, "phone"),
    ];
    a.user("browser");
    a.apply(&facts);
    let changes = a.refresh();
    let stage = |a: &Audience, id: &str| a.profile(a.user_index(id).unwrap_or(0)).lifecycle;
    assert_eq!(stage(&a, "new"), Lifecycle::New);
    assert_eq!(stage(&a, "active"), Lifecycle::Active);
    assert_eq!(stage(&a, "back"), Lifecycle::Returning);
    assert_eq!(stage(&a, "asleep"), Lifecycle::Sleeping);
    assert_eq!(stage(&a, "gone"), Lifecycle::Churned);
    assert_eq!(stage(&a, "browser"), Lifecycle::Prospect);
    let users = |a: &Audience, text: &str| -> Vec<String> {
        let e = a
            .population()
            .compile(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        a.population()
            .evaluate(&e)
            .iter()
            .map(|u| a.user_id(u).to_owned())
            .collect()
    };
    assert_eq!(users(&a, r#"tag "回流客户""#), ["back"]);
    assert_eq!(
        users(&a, r#"tag "value:high""#),
        ["back"],
        "top 20% of 5 buyers"
    );
    assert_eq!(
        users(&a, r#"tag "interest:母婴""#),
        ["new", "active", "asleep"]
    );
    assert_eq!(users(&a, r#"tag "brand:Apple""#), ["back", "gone"]);
    assert_eq!(
        users(&a, "recency_days <= 3 AND orders >= 2"),
        ["active", "back"]
    );
    assert_eq!(
        users(
            &a,
            r#"did purchase where category = "母婴" at least 2 times in last 30 days"#
        ),
        ["active"]
    );
    assert!(changes
        .iter()
        .any(|c| c.gained && c.tag == "流失客户" && a.user_id(c.user) == "gone"));

    // Custom tag, versioned; a segment over it.
    let v1 = a
        .define_tag(
            "母婴达人",
            r#"did purchase where category = "母婴" at least 2 times in last 90 days"#,
            0.8,
            "",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v1.version, 1);
    a.save_segment("baby_fans", r#"tag "母婴达人" OR tag "新客""#)
        .unwrap_or_else(|e| panic!("{e}"));
    let changes = a.refresh();
    assert!(changes
        .iter()
        .any(|c| c.gained && c.tag == "母婴达人" && c.version == Some(1)));
    assert_eq!(users(&a, r#"in segment "baby_fans""#), ["new", "active"]);
    let v2 = a
        .define_tag(
            "母婴达人",
            r#"did purchase where category = "母婴" at least 1 times in last 90 days"#,
            0.5,
            "",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v2.version, 2);
    let changes = a.refresh();
    assert!(changes.iter().any(|c| c.gained
        && c.tag == "母婴达人"
        && c.version == Some(2)
        && a.user_id(c.user) == "asleep"));
    assert_eq!(
        users(&a, r#"in segment "baby_fans""#),
        ["new", "active", "asleep"]
    );
    // Freshness: one more purchase moves a user in and out of tags and the segment.
    let f = buy(&mut a, "gone", 0, 3_000, "milk");
    a.apply(&[f]);
    let changes = a.refresh();
    assert_eq!(stage(&a, "gone"), Lifecycle::Returning);
    assert!(changes.iter().any(|c| !c.gained && c.tag == "流失客户"));
    assert!(users(&a, r#"in segment "baby_fans""#).contains(&"gone".to_owned()));

    // Mistakes are refused with reasons.
    let err =
        |r: Result<TagDefinition, SegmentError>| r.err().map(|e| e.message).unwrap_or_default();
    assert!(err(a.define_tag("x", r#"tag "nope""#, 1.0, "")).contains("unknown tag"));
    assert!(err(a.define_tag("流失客户", "orders > 1", 1.0, "")).contains("built-in"));
    assert!(err(a.define_tag("y", r#"in segment "baby_fans""#, 1.0, "")).contains("segment"));
    a.define_tag("a", "orders > 1", 1.0, "")
        .unwrap_or_else(|e| panic!("{e}"));
    a.define_tag("b", r#"tag "a""#, 1.0, "")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(err(a.define_tag("a", r#"tag "b""#, 1.0, "")).contains("itself"));
    assert!(a
        .save_segment("loop", r#"in segment "loop""#)
        .is_err_and(|e| e.message.contains("unknown segment")));
}

#[derive(Debug, Clone)]
enum Step {
    Order {
        user: usize,
        day: i32,
        amount: i64,
        discount: i64,
        sku: usize,
        sale: bool,
    },
    Event {
        user: usize,
        day: i32,
        hour: i64,
        kind: usize,
        sku: usize,
    },
    Refund {
        user: usize,
        day: i32,
        amount: i64,
    },
    Promotion {
        user: usize,
        day: i32,
        promotion: usize,
        kind: usize,
        amount: i64,
    },
}

const SKUS: [&str; 4] = ["milk", "phone", "nappy", "case"];
const KINDS: [EventType; 4] = [
    EventType::View,
    EventType::AddToCart,
    EventType::Favorite,
    EventType::Purchase,
];

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0usize..8,
            0i32..400,
            1i64..50_000,
            0i64..3_000,
            0usize..4,
            proptest::bool::weighted(0.85)
        )
            .prop_map(|(user, day, amount, discount, sku, sale)| Step::Order {
                user,
                day,
                amount,
                discount,
                sku,
                sale
            }),
        (0usize..8, 0i32..400, 0i64..24, 0usize..4, 0usize..4).prop_map(
            |(user, day, hour, kind, sku)| Step::Event {
                user,
                day,
                hour,
                kind,
                sku
            }
        ),
        (0usize..8, 0i32..400, 1i64..5_000).prop_map(|(user, day, amount)| Step::Refund {
            user,
            day,
            amount
        }),
        (
            0usize..8,
            0i32..400,
            0usize..PromotionType::ALL.len(),
            0usize..PromotionKind::ALL.len(),
            0i64..2_000,
        )
            .prop_map(|(user, day, promotion, kind, amount)| Step::Promotion {
                user,
                day,
                promotion,
                kind,
                amount
            }),
    ]
}

fn fact(a: &mut Audience, step: &Step) -> Fact {
    let id = |u: usize| format!("u{u}");
    match step {
        Step::Order {
            user,
            day,
            amount,
            discount,
            sku,
            sale,
        } => a.order_fact(&OrderInput {
            user: &id(*user),
            time: noon(today() - day),
            sale: *sale,
            amount: *amount,
            discount: *discount,
            coupon: *discount > 0,
            channel: if user % 2 == 0 { "app" } else { "store" },
            store: (user % 2 == 1).then_some("s1"),
            skus: vec![SKUS[*sku], SKUS[(sku + 1) % 4]],
        }),
        Step::Event {
            user,
            day,
            hour,
            kind,
            sku,
        } => a.event_fact(&EventInput {
            user: &id(*user),
            kind: KINDS[*kind],
            time: noon(today() - day) + hour * 3_600_000,
            channel: "app",
            sku: Some(SKUS[*sku]),
            store: None,
            has_order: false,
        }),
        Step::Refund { user, day, amount } => {
            a.refund_fact(&id(*user), noon(today() - day), *amount)
        }
        Step::Promotion {
            user,
            day,
            promotion,
            kind,
            amount,
        } => a.promotion_fact(&PromotionInput {
            user: &id(*user),
            time: noon(today() - day),
            promotion: PromotionType::ALL[*promotion],
            kind: PromotionKind::ALL[*kind],
            id: if day % 2 == 0 { "p-even" } else { "p-odd" },
            amount: *amount,
        }),
    }
}

fn configured() -> Audience {
    let mut a = shop();
    a.set_product("nappy", "母婴/纸尿裤", Some("Pampers"));
    a.set_product("case", "数码/配件", None);
    for u in 0..8 {
        a.user(&format!("u{u}"));
    }
    a.define_tag(
        "baby",
        r#"did purchase where category = "母婴" at least 2 times in last 90 days"#,
        1.0,
        "",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    a.define_tag("baby_vip", r#"tag "baby" AND rfm_m >= 3"#, 2.0, "")
        .unwrap_or_else(|e| panic!("{e}"));
    a.save_segment("s", r#"tag "baby_vip" OR (lifecycle = "sleeping" AND did view at least 2 times in last 365 days)"#)
        .unwrap_or_else(|e| panic!("{e}"));
    a.save_segment("t", r#"in segment "s" AND NOT tag "value:low""#)
        .unwrap_or_else(|e| panic!("{e}"));
    a.save_segment(
        "hoarders",
        r#"coupons_received >= 2 AND coupon_use_pct < 50 OR did coupon_redeemed where promotion = "p-even" in last 90 days"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn incremental_updates_equal_a_rebuild(
        steps in proptest::collection::vec(arb_step(), 0..60),
        cuts in proptest::collection::vec(0usize..60, 0..6),
    ) {
        // Rebuild: every fact at once.
        let mut rebuilt = configured();
        let facts: Vec<Fact> = steps.iter().map(|s| fact(&mut rebuilt, s)).collect();
        rebuilt.apply(&facts);
        let all_changes = rebuilt.refresh();

        // Incremental: the same stream in batches, refreshing after each.
        let mut live = configured();
        let mut history: BTreeMap<String, RoaringBitmap> = BTreeMap::new();
        let mut record = |changes: Vec<TagChange>| {
            for c in changes {
                let users = history.entry(c.tag).or_default();
                if c.gained { users.insert(c.user); } else { users.remove(c.user); }
            }
        };
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(steps.len())).collect();
        bounds.push(steps.len());
        bounds.sort_unstable();
        let mut from = 0;
        for to in bounds {
            let batch: Vec<Fact> = steps[from..to].iter().map(|s| fact(&mut live, s)).collect();
            live.apply(&batch);
            record(live.refresh());
            from = to;
        }

        for u in 0..rebuilt.users() {
            prop_assert_eq!(live.state(u), rebuilt.state(u));
            let (p, q) = (live.profile(u), rebuilt.profile(u));
            prop_assert_eq!(serde_json::to_value(&p).ok(), serde_json::to_value(&q).ok());
        }
        let tags = |a: &Audience| -> Vec<(String, RoaringBitmap)> {
            a.population().tags().map(|(t, b)| (t.to_owned(), b.clone())).collect()
        };
        prop_assert_eq!(tags(&live), tags(&rebuilt));
        for name in ["s", "t"] {
            prop_assert_eq!(live.segment(name).map(|s| s.1.clone()), rebuilt.segment(name).map(|s| s.1.clone()));
        }
        for (field, _) in rebuilt.population().fields() {
            for u in 0..rebuilt.users() {
                prop_assert_eq!(live.population().number(field, u), rebuilt.population().number(field, u), "{}", field);
                prop_assert_eq!(live.population().text(field, u), rebuilt.population().text(field, u), "{}", field);
            }
        }
        // Replaying the incremental tag history gives the tags a rebuild gives.
        let rebuilt_tags: BTreeMap<String, RoaringBitmap> = tags(&rebuilt).into_iter().filter(|(_, b)| !b.is_empty()).collect();
        let replayed: BTreeMap<String, RoaringBitmap> = history.into_iter().filter(|(_, b)| !b.is_empty()).collect();
        prop_assert_eq!(replayed, rebuilt_tags);
        prop_assert!(all_changes.iter().all(|c| c.gained));
    }
}
