//! `shopgrowth coupon|budget|pricing …` on a store prepared through the store's own API.

use serde_json::{json, Value};
use shopgrowth_store::records::CouponTemplateRecord;
use shopgrowth_store::{Location, Store};
use std::path::Path;
use std::process::Command;

fn shopgrowth(data: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shopgrowth"))
        .arg("--data-dir")
        .arg(data)
        .arg("--json")
        .args(args)
        .env("SHOPGROWTH_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn coupons_budgets_and_pricing_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path();
    {
        let store = Store::open(&Location::Sqlite(data.join("shopgrowth.db")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let template = CouponTemplateRecord {
            id: "new10".into(),
            name: "新人满100减10".into(),
            rule: json!({"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]})
                .to_string(),
            quota: Some(3),
            issued: 0,
            per_user_limit: 1,
            valid_from: None,
            valid_until: None,
            valid_days: Some(7),
            created_at: 0,
            per_device_limit: None,
            per_phone_limit: None,
            in_centre: false,
            issue_on: None,
            scope: None,
        };
        assert!(store
            .create_coupon_template(template)
            .await
            .unwrap_or(false));
    }
    let users = data.join("users.txt");
    std::fs::write(&users, "u1\nu2\n\nu2\nu3\nu4\n").unwrap_or_else(|e| panic!("{e}"));
    let users = users.to_string_lossy().into_owned();
    let issue = [
        "coupon",
        "issue",
        "new10",
        "--batch",
        "w1",
        "--users-file",
        &users,
    ];
    let first = shopgrowth(data, &issue);
    assert_eq!(
        first["summary"],
        json!({"issued": 3, "duplicates": 1, "sold_out": 1, "over_user_limit": 0}),
        "{first}"
    );
    let again = shopgrowth(data, &issue);
    assert_eq!(again["summary"]["issued"], 0, "{again}");
    let template = shopgrowth(data, &["coupon", "template", "new10"]);
    assert_eq!(template["issued"], 3);
    let trail = shopgrowth(data, &["promotion", "trail", "--type", "coupon"]);
    let kinds: Vec<&str> = trail
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["issued"; 3], "{trail}");
    let report = shopgrowth(data, &["promotion", "report", "--days", "7"]);
    assert_eq!(
        (
            report[0]["promotion_id"].as_str(),
            report[0]["issued"].as_u64()
        ),
        (Some("new10"), Some(3)),
        "{report}"
    );

    shopgrowth(data, &["budget", "limit", "campaign:d11", "day", "50000"]);
    let budget = shopgrowth(data, &["budget", "show", "campaign:d11"]);
    let day = budget["periods"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["period"] == "day"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (day["limit"].as_i64(), day["used"].as_i64()),
        (Some(50000), Some(0))
    );

    let cart = data.join("cart.json");
    std::fs::write(
        &cart,
        json!({"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]}).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let promotions = data.join("promotions.json");
    std::fs::write(
        &promotions,
        json!([{"id": "d11", "name": "满300减50",
        "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]},
        "stacking": {"category": {"name": "shop"}}}])
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (cart, promotions) = (cart.to_string_lossy(), promotions.to_string_lossy());
    let quote = shopgrowth(
        data,
        &["pricing", "quote", &cart, "--promotions", &promotions],
    );
    assert_eq!(
        (quote["discount"].as_i64(), quote["total"].as_i64()),
        (Some(5000), Some(35000))
    );
    // No campaigns live in this store: nothing off.
    let live = shopgrowth(data, &["pricing", "quote", &cart]);
    assert_eq!(live["discount"], 0);
}
