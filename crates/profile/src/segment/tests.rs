//! Segment language: parsing, errors, checking, and bitmap evaluation against the naive one.

use super::*;
use proptest::prelude::*;
use roaring::RoaringBitmap;

fn population() -> Population {
    let mut b = PopulationBuilder::new(6, 100);
    for (u, tier, city) in [
        (0, "tier1", "上海"),
        (1, "tier1", "北京"),
        (2, "tier2", "杭州"),
        (3, "tier3", "无锡"),
    ] {
        b.text("city_tier", u, tier).text("city", u, city);
    }
    for (u, m) in [(0, 90_000), (1, 20_000), (2, 50_000), (3, 0), (4, 70_000)] {
        b.number("monetary", u, m);
    }
    b.tag("high_value", 0)
        .tag("high_value", 4)
        .declare_tag("churn_risk");
    b.segment("vip", [1u32, 4].into_iter().collect());
    b.declare_event("view");
    b.act("purchase", 0, 95, &[("category", "母婴")]).act(
        "purchase",
        0,
        99,
        &[("category", "母婴")],
    );
    b.act("purchase", 1, 50, &[("category", "母婴")]).act(
        "purchase",
        1,
        99,
        &[("category", "数码")],
    );
    b.act("purchase", 2, 100, &[("category", "母婴")]).act(
        "purchase",
        2,
        101,
        &[("category", "母婴")],
    );
    b.build()
}

fn users(p: &Population, text: &str) -> Vec<u32> {
    let expr = p.compile(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let fast = p.evaluate(&expr);
    assert_eq!(fast, p.evaluate_naive(&expr), "{text}");
    fast.iter().collect()
}

#[test]
fn the_issue_example_and_friends() {
    let p = population();
    let text = r#"did purchase where category = "母婴" at least 2 times in last 30 days AND city_tier = "tier1" AND NOT in segment "vip""#;
    assert_eq!(users(&p, text), [0]);
    assert_eq!(users(&p, "monetary >= 50000"), [0, 2, 4]);
    assert_eq!(
        users(&p, "monetary != 0 and not tag \"high_value\""),
        [1, 2]
    );
    assert_eq!(
        users(&p, r#"city in ("上海", "杭州") OR tag "high_value""#),
        [0, 2, 4]
    );
    // A missing value never matches a comparison, but NOT is the complement.
    assert_eq!(users(&p, r#"city_tier != "tier1""#), [2, 3]);
    assert_eq!(users(&p, r#"NOT city_tier = "tier1""#), [2, 3, 4, 5]);
    // Day 101 is after today (100): it does not count.
    assert_eq!(
        users(&p, "did purchase at least 2 times in last 10 days"),
        [0]
    );
    assert_eq!(users(&p, "did purchase in last 1 days"), [2]);
    assert_eq!(users(&p, "did purchase in last 2 days"), [0, 1, 2]);
    assert_eq!(users(&p, "did view in last 7 days"), Vec::<u32>::new());
}

#[test]
fn parse_errors_point_at_the_problem() {
    let cases = [
        ("", 0, "expected a condition"),
        ("monetary >= ", 12, "expected a value"),
        ("monetary >> 5", 10, "expected a value"),
        ("city = \"上海", 7, "unterminated text"),
        ("tag high_value", 4, "expected a tag name in quotes"),
        ("did purchase in last days", 21, "expected a number of days"),
        ("(monetary > 1", 13, "expected ')'"),
        (
            "monetary > 1 city = \"x\"",
            13,
            "expected AND, OR or the end",
        ),
        ("city in (\"a\" \"b\")", 13, "expected ',' or ')'"),
        ("monetary ! 3", 9, "expected '!=' after '!'"),
        (
            "did purchase at least -1 times in last 3 days",
            22,
            "is not a count of times",
        ),
    ];
    for (text, at, message) in cases {
        match parse(text) {
            Err(e) => {
                assert_eq!(e.position, at, "{text:?}: {e}");
                assert!(e.message.contains(message), "{text:?}: {e}");
            }
            Ok(p) => panic!("{text:?} parsed as {:?}", p.expr),
        }
    }
}

#[test]
fn checks_name_unknown_things_and_impossible_windows() {
    let p = population();
    let cases = [
        ("citytier = \"tier1\"", 0, "unknown field \"citytier\""),
        ("monetary > 5 AND tag \"vip\"", 17, "unknown tag \"vip\""),
        ("in segment \"gold\"", 0, "unknown segment \"gold\""),
        ("did buy in last 7 days", 0, "unknown event \"buy\""),
        ("did purchase in last 0 days", 0, "impossible"),
        ("did purchase in last 99999 days", 0, "impossible"),
        (
            "did purchase at least 0 times in last 3 days",
            0,
            "always true",
        ),
        ("city_tier > \"tier1\"", 0, "needs a number field"),
        ("monetary = \"lots\"", 0, "is a number"),
        ("city = 3", 0, "is text"),
    ];
    for (text, at, message) in cases {
        match p.compile(text) {
            Err(e) => {
                assert_eq!(e.position, at, "{text:?}: {e}");
                assert!(e.message.contains(message), "{text:?}: {e}");
            }
            Ok(expr) => panic!("{text:?} compiled to {expr:?}"),
        }
    }
}

#[test]
fn json_and_text_forms_agree() {
    let p = population();
    let expr = p.compile(r#"(tag "high_value" OR did purchase where category = "母婴" in last 30 days) AND NOT monetary < 100"#);
    let expr = expr.unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&expr).unwrap_or_default();
    assert!(
        json.starts_with(r#"{"and":[{"or":[{"tag":"high_value"},{"did":{"event":"purchase""#),
        "{json}"
    );
    let back: Expr = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, expr);
    assert_eq!(parse(&expr.to_text()).map(|p| p.expr), Ok(expr));
    let empty: Expr = serde_json::from_str(r#"{"and": []}"#).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.check(&empty).is_err());
}

const FIELDS_TEXT: [&str; 2] = ["city", "tier"];
const FIELDS_NUM: [&str; 3] = ["monetary", "orders", "recency_days"];
const TAGS: [&str; 3] = ["a", "b", "c"];
const EVENTS: [&str; 2] = ["view", "purchase"];
const CATS: [&str; 3] = ["母婴", "数码", "食品"];

fn arb_population() -> impl Strategy<Value = Population> {
    (1u32..60)
        .prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((0..n, 0usize..2, 0usize..4), 0..80),
                proptest::collection::vec((0..n, 0usize..3, -5i64..5), 0..80),
                proptest::collection::vec((0..n, 0usize..3), 0..40),
                proptest::collection::vec((0..n, 0usize..2, 80i32..105, 0usize..3), 0..150),
                1usize..5,
                proptest::collection::vec((0..n, 0usize..3, proptest::option::of(-7i64..7)), 0..20),
            )
        })
        .prop_map(|(n, texts, nums, tags, acts, buckets, later)| {
            let mut b = PopulationBuilder::new(n, 100);
            b.buckets(buckets);
            for f in FIELDS_TEXT {
                b.text(f, 0, "v0");
            }
            for f in FIELDS_NUM {
                if f == "recency_days" {
                    b.days_ago(f, 0, 100);
                } else {
                    b.number(f, 0, 0);
                }
            }
            for t in TAGS {
                b.declare_tag(t);
            }
            for e in EVENTS {
                b.declare_event(e);
            }
            for (u, f, v) in texts {
                b.text(FIELDS_TEXT[f], u, &format!("v{v}"));
            }
            for (u, f, v) in nums {
                if FIELDS_NUM[f] == "recency_days" {
                    b.days_ago(FIELDS_NUM[f], u, 100 - v as i32);
                } else {
                    b.number(FIELDS_NUM[f], u, v);
                }
            }
            for (u, t) in tags {
                b.tag(TAGS[t], u);
            }
            let vip: RoaringBitmap = (0..n).filter(|u| u % 3 == 0).collect();
            b.segment("vip", vip);
            for (u, e, day, c) in acts {
                b.act(EVENTS[e], u, day, &[("category", CATS[c])]);
            }
            let mut p = b.build();
            // Changes after the bounds were chosen: values move across and beyond them.
            for (u, f, v) in later {
                if FIELDS_NUM[f] == "recency_days" {
                    p.set_days_ago(FIELDS_NUM[f], u, v.map(|v| 100 - v as i32));
                } else {
                    p.set_number(FIELDS_NUM[f], u, v);
                }
            }
            p
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Gt),
        Just(Op::Ge)
    ]
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (0usize..2, 0usize..5).prop_map(|(f, v)| Expr::Compare {
            field: FIELDS_TEXT[f].into(),
            op: if v % 2 == 0 { Op::Eq } else { Op::Ne },
            value: Value::Text(format!("v{v}")),
        }),
        (0usize..3, arb_op(), -8i64..8).prop_map(|(f, op, v)| Expr::Compare {
            field: FIELDS_NUM[f].into(),
            op,
            value: Value::Number(v)
        }),
        (0usize..2, proptest::collection::vec(0usize..5, 1..4)).prop_map(|(f, vs)| Expr::In {
            field: FIELDS_TEXT[f].into(),
            values: vs
                .into_iter()
                .map(|v| Value::Text(format!("v{v}")))
                .collect(),
        }),
        (0usize..3).prop_map(|t| Expr::Tag(TAGS[t].into())),
        Just(Expr::Segment("vip".into())),
        (
            0usize..2,
            proptest::option::of(0usize..3),
            1u32..6,
            1u32..30
        )
            .prop_map(|(e, c, at_least, days)| Expr::Did {
                event: EVENTS[e].into(),
                filter: c.map(|c| ("category".to_owned(), Value::Text(CATS[c].into()))),
                at_least,
                days,
            }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bitmaps_equal_row_by_row(p in arb_population(), e in arb_expr()) {
        prop_assert!(p.check(&e).is_ok(), "{:?}", p.check(&e));
        prop_assert_eq!(p.evaluate(&e), p.evaluate_naive(&e));
    }

    #[test]
    fn text_form_round_trips(e in arb_expr()) {
        prop_assert_eq!(parse(&e.to_text()).map(|p| p.expr), Ok(e));
    }

    #[test]
    fn the_parser_never_panics(text in ".{0,80}") {
        let _ = parse(&text);
    }

    #[test]
    fn the_parser_never_panics_on_near_misses(words in proptest::collection::vec(prop_oneof![
        Just("did"), Just("purchase"), Just("in"), Just("last"), Just("days"), Just("at"), Just("least"),
        Just("times"), Just("AND"), Just("OR"), Just("NOT"), Just("("), Just(")"), Just("tag"), Just("\"x\""),
        Just("5"), Just("-"), Just("="), Just(">="), Just("!"), Just(","), Just("segment"), Just("where"), Just("city"),
    ], 0..25)) {
        let _ = parse(&words.join(" "));
    }
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let text = format!("{}tag \"a\"{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse(&text).is_err_and(|e| e.message.contains("nested more than")));
    let nots = format!("{}tag \"a\"", "NOT ".repeat(10_000));
    assert!(parse(&nots).is_err());
}
