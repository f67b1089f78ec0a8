//! `shopgrowth segment count` over a small generated demo shop.

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
}
