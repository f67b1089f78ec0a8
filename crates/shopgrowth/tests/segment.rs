//! `shopgrowth segment …`, `tag …` and `profile …` over a small generated demo shop.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn shopgrowth(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopgrowth"));
    c.arg("--data-dir")
        .arg(data)
        .env("SHOPGROWTH_LOG", "warn")
        .env_remove("SHOPGROWTH_PII_KEY");
    c
}

fn count(data: &Path, expr: &str) -> Value {
    let out = shopgrowth(data)
        .args(["--json", "segment", "count", expr, "--today", "2026-11-20"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{expr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn counts_audiences_of_the_demo_shop() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let made = shopgrowth(dir.path())
        .args([
            "demo",
            "--no-serve",
            "--users",
            "300",
            "--products",
            "200",
            "--events",
            "15000",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let expr =
        r#"did add_to_cart at least 2 times in last 180 days AND city_tier in ("tier1", "tier2")"#;
    let some = count(dir.path(), expr);
    let rest = count(dir.path(), &format!("NOT ({expr})"));
    let users = some["users"].as_u64().unwrap_or(0);
    assert!(users >= 300);
    assert!(some["matched"].as_u64().unwrap_or(0) > 0, "{some}");
    assert_eq!(
        some["matched"].as_u64().unwrap_or(0) + rest["matched"].as_u64().unwrap_or(0),
        users
    );
    // The eight RFM class tags split exactly the customers with an order.
    let classes = [
        "important_value",
        "important_develop",
        "important_keep",
        "important_retain",
        "general_value",
        "general_develop",
        "general_keep",
        "general_retain",
    ];
    let any_class = classes
        .iter()
        .map(|c| format!("tag \"{c}\""))
        .collect::<Vec<_>>()
        .join(" OR ");
    let buyers = count(dir.path(), "orders >= 1")["matched"]
        .as_u64()
        .unwrap_or(0);
    assert!(buyers > 0);
    assert_eq!(
        count(dir.path(), &any_class)["matched"].as_u64(),
        Some(buyers)
    );
    let per_class: u64 = classes
        .iter()
        .map(|c| {
            count(dir.path(), &format!("tag \"{c}\""))["matched"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(per_class, buyers, "each buyer is in exactly one class");
    assert_eq!(
        count(dir.path(), r#"tag "重要价值客户""#)["matched"],
        count(dir.path(), r#"tag "important_value""#)["matched"]
    );
    let out = shopgrowth(dir.path())
        .args(["segment", "count", "monetary >= ", "--today", "2026-11-20"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at 12: expected a value"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");

    // Definitions from the command line: a custom tag, a saved segment over it, its export and
    // snapshot, and the rebuild that gives the same counts.
    let run = |args: &[&str]| -> String {
        let out = shopgrowth(dir.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rule = r#"did add_to_cart at least 2 times in last 180 days"#;
    let defined: Value = serde_json::from_str(&run(&[
        "--json",
        "tag",
        "define",
        "cart_fans",
        rule,
        "--weight",
        "0.7",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defined["tag"]["version"], 1);
    assert!(defined["users"].as_u64().unwrap_or(0) > 0);
    let again: Value = serde_json::from_str(&run(&[
        "--json",
        "tag",
        "define",
        "cart_fans",
        rule,
        "--weight",
        "0.7",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            again["tag"]["version"].as_u64(),
            again["new_version"].as_bool()
        ),
        (Some(1), Some(false))
    );
    run(&[
        "segment",
        "save",
        "fans",
        r#"tag "cart_fans" AND city_tier in ("tier1", "tier2")"#,
    ]);
    let csv_path = dir.path().join("fans.csv");
    run(&[
        "segment",
        "export",
        "fans",
        "--out",
        csv_path.to_str().unwrap_or_default(),
    ]);
    let csv = std::fs::read_to_string(&csv_path).unwrap_or_default();
    let members = csv.lines().count() - 1;
    assert!(csv.starts_with("user_id,lifecycle,value_tier"));
    assert!(members > 0);
    let snapshots: Value = serde_json::from_str(&run(&["--json", "segment", "snapshot", "fans"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snapshots[0]["size"].as_u64(), Some(members as u64));
    assert_eq!(snapshots[0]["entered"].as_u64(), Some(members as u64));
    let rebuilt: Value = serde_json::from_str(&run(&["--json", "profile", "rebuild"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rebuilt["stats"]["users"].as_u64().unwrap_or(0) >= 300);
    let listed = run(&["segment", "list"]);
    assert!(listed.contains(&format!("{members:>9}")), "{listed}");
    let user = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .unwrap_or_default()
        .to_owned();
    let profile: Value =
        serde_json::from_str(&run(&["profile", "show", &user])).unwrap_or_else(|e| panic!("{e}"));
    assert!(profile["tags"].as_array().is_some_and(|t| t
        .iter()
        .any(|x| x["tag"] == "cart_fans" && x["weight"] == 0.7)));
    let history = run(&["tag", "history", &user]);
    assert!(history.contains("gained cart_fans (v1)"), "{history}");
    let bad = shopgrowth(dir.path())
        .args(["tag", "define", "x", "did purchase in last 0 days"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("impossible"));
}
