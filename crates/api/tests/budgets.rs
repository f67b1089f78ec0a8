//! Budgets over a real socket: limits per scope and period, concurrent spends that never pass a
//! limit, reverts that happen once, and coupon redemptions that spend from their template's
//! budget — refused, and nothing redeemed, when the budget would be passed.

mod common;

use common::test_app;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_hold_under_concurrency_and_coupons_spend_from_them() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;

    // A shop-wide daily limit of 1,000; 30 spends of 100 at once: exactly 10 go through.
    let (status, view) = c
        .put(
            "/api/v1/budgets/shop:promo/limits/day",
            &t.admin,
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (c, key) = (std::sync::Arc::clone(&c), t.ingest.clone());
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/v1/budgets/spend",
                &key,
                json!({"key": format!("o{i}"), "scopes": ["shop:promo"], "amount": 100}),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        20,
        "{statuses:?}"
    );
    let (_, view) = c.get("/api/v1/budgets/shop:promo", &t.read).await;
    let day = view["periods"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["period"] == "day").cloned());
    assert_eq!(
        day.as_ref()
            .map(|d| (d["used"].as_i64(), d["limit"].as_i64())),
        Some((Some(1000), Some(1000)))
    );
    // A spend that went through, reverted twice, gives back once.
    let won = (0..30).find(|i| statuses[*i] == 200).unwrap_or(0);
    let revert = json!({"key": format!("o{won}")});
    assert_eq!(
        c.post("/api/v1/budgets/revert", &t.ingest, revert.clone())
            .await
            .1["reverted"],
        true
    );
    assert_eq!(
        c.post("/api/v1/budgets/revert", &t.ingest, revert).await.1["reverted"],
        false
    );
    let (_, view) = c.get("/api/v1/budgets/shop:promo", &t.read).await;
    assert!(
        view["periods"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["period"] == "day" && p["used"] == 900),
        "{view}"
    );

    // Bad input names its fields.
    let (status, bad) = c
        .post(
            "/api/v1/budgets/spend",
            &t.ingest,
            json!({"key": "", "scopes": ["planet:x"], "amount": 0}),
        )
        .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["key", "scopes[0]", "amount"], "{bad}");

    // A coupon template with a total budget of 1,500: the first redemption of 1,000 fits, the
    // second would pass the limit and is refused without redeeming; a smaller one fits.
    let template = json!({"id": "t1", "name": "满100减10", "quota": 10, "valid_days": 7,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    assert_eq!(
        c.post("/api/v1/coupon-templates", &t.admin, template)
            .await
            .0,
        201
    );
    assert_eq!(
        c.put(
            "/api/v1/budgets/coupon:t1/limits/total",
            &t.admin,
            json!({"amount": 1500})
        )
        .await
        .0,
        200
    );
    let mut codes = Vec::new();
    for u in ["a", "b"] {
        let (status, claimed) = c
            .post(
                "/api/v1/coupon-templates/t1/claims",
                &t.ingest,
                json!({"user_id": u, "claim_key": u}),
            )
            .await;
        assert_eq!(status, 201, "{claimed}");
        codes.push(claimed["code"].as_str().unwrap_or_default().to_string());
    }
    let redeem = |user: &str, order: &str, discount: i64| json!({"user_id": user, "order_id": order, "discount": discount});
    let first = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", codes[0]),
            &t.ingest,
            redeem("a", "order-a", 1000),
        )
        .await;
    assert_eq!(first.0, 200, "{}", first.1);
    let again = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", codes[0]),
            &t.ingest,
            redeem("a", "order-a", 1000),
        )
        .await;
    assert_eq!(
        (again.0, again.1["status"].as_str()),
        (200, Some("duplicate")),
        "a retry spends nothing more"
    );
    let over = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", codes[1]),
            &t.ingest,
            redeem("b", "order-b", 1000),
        )
        .await;
    assert_eq!(over.0, 409, "{}", over.1);
    let (_, coupon) = c
        .get(&format!("/api/v1/coupons/{}", codes[1]), &t.read)
        .await;
    assert_eq!(
        coupon["state"], "claimed",
        "refused by the budget, so not redeemed: {coupon}"
    );
    let fits = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", codes[1]),
            &t.ingest,
            redeem("b", "order-b2", 500),
        )
        .await;
    assert_eq!(fits.0, 200, "{}", fits.1);
    let used = |v: &serde_json::Value| {
        v["periods"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["period"] == "total")
            .and_then(|p| p["used"].as_i64())
    };
    assert_eq!(
        used(&c.get("/api/v1/budgets/coupon:t1", &t.read).await.1),
        Some(1500)
    );
    // Releasing a redemption gives its spend back.
    let released = c
        .post(
            &format!("/api/v1/coupons/{}/release", codes[0]),
            &t.ingest,
            json!({"order_id": "order-a"}),
        )
        .await;
    assert_eq!(released.1["released"], true, "{}", released.1);
    assert_eq!(
        used(&c.get("/api/v1/budgets/coupon:t1", &t.read).await.1),
        Some(500)
    );
    assert_eq!(
        used(&c.get("/api/v1/budgets/customer:b", &t.read).await.1),
        Some(500),
        "counted per customer"
    );
    let _ = stop.send(());
}
