//! The promotion trail over a real socket: a coupon claimed and redeemed, a flash-sale unit bought
//! and a red-packet share claimed each leave their entries; the list filters and pages; the feed
//! gives every entry once and then nothing; the report counts each promotion's funnel; the
//! profile and the segment language see the customer's promotion behaviour within a second or
//! so; bad parameters are named.

mod common;

use common::test_app;
use serde_json::{json, Value};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_feeds_lists_reports_and_reaches_profiles() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let now = chrono::Utc::now();

    let template = json!({"id": "new10", "name": "新人券", "quota": 100, "valid_days": 7,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    assert_eq!(
        c.post("/api/v1/coupon-templates", &t.admin, template)
            .await
            .0,
        201
    );
    let mut codes = Vec::new();
    for u in ["u1", "u2", "u3", "u4"] {
        let (status, body) = c
            .post(
                "/api/v1/coupon-templates/new10/claims",
                &t.ingest,
                json!({"user_id": u, "claim_key": format!("k-{u}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        codes.push(body["code"].as_str().unwrap_or_default().to_owned());
    }
    let (status, body) = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", codes[0]),
            &t.ingest,
            json!({"user_id": "u1", "order_id": "o1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sale = json!({"id": "fs1", "sku": "phone", "price": 99900, "stock": 5, "per_user_limit": 1,
        "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(), "hold_seconds": 60});
    assert_eq!(c.post("/api/v1/flash-sales", &t.admin, sale).await.0, 201);
    for (r, u) in [("r1", "u1"), ("r2", "u2")] {
        let (status, body) = c
            .post(
                "/api/v1/flash-sales/fs1/reservations",
                &t.ingest,
                json!({"reservation_id": r, "user_id": u}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        c.post(
            "/api/v1/flash-reservations/r1/confirm",
            &t.ingest,
            json!({})
        )
        .await
        .0,
        200
    );
    let packet = json!({"id": "rp", "sender": "shop", "kind": "fixed", "total": 1000, "currency": "CNY",
        "shares": 4});
    assert_eq!(
        c.post("/api/v1/red-packets", &t.ingest, packet).await.0,
        201
    );
    assert_eq!(
        c.post(
            "/api/v1/red-packets/rp/claims",
            &t.ingest,
            json!({"user_id": "u1"})
        )
        .await
        .0,
        201
    );

    // u1's trail, newest first, in pages of 2.
    let (status, page) = c
        .get("/api/v1/promotion-events?user_id=u1&limit=2", &t.read)
        .await;
    assert_eq!(status, 200, "{page}");
    let kinds = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{}:{}",
                            e["promotion_type"].as_str().unwrap_or(""),
                            e["kind"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(kinds(&page), ["red_packet:claimed", "flash_sale:redeemed"]);
    assert_eq!(page["items"][0]["amount"], 250);
    assert_eq!(page["items"][1]["amount"], 99900);
    let before = page["next_before"].as_i64().unwrap_or_default();
    let (_, older) = c
        .get(
            &format!("/api/v1/promotion-events?user_id=u1&limit=10&before={before}"),
            &t.read,
        )
        .await;
    assert_eq!(
        kinds(&older),
        ["flash_sale:reserved", "coupon:redeemed", "coupon:claimed"]
    );
    assert!(older["next_before"].is_null(), "the last page");
    assert_eq!(older["items"][1]["order_id"], "o1");
    let (_, by_code) = c
        .get(
            &format!("/api/v1/promotion-events?subject={}", codes[0]),
            &t.read,
        )
        .await;
    assert_eq!(kinds(&by_code), ["coupon:redeemed", "coupon:claimed"]);

    // The feed: every entry once, then nothing new.
    let mut after = String::new();
    let mut fed = Vec::new();
    loop {
        let (status, feed) = c
            .get(
                &format!("/api/v1/promotion-events/feed?limit=3&after={after}"),
                &t.read,
            )
            .await;
        assert_eq!(status, 200, "{feed}");
        let items = feed["items"].as_array().cloned().unwrap_or_default();
        after = feed["next"].as_str().unwrap_or_default().to_owned();
        if items.is_empty() {
            break;
        }
        fed.extend(items.iter().filter_map(|e| e["id"].as_i64()));
    }
    // 4 claims, 1 redemption, 2 reservations, 1 purchase, 1 packet sent, 1 share claimed.
    assert_eq!(fed.len(), 10, "{fed:?}");
    assert!(fed.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");

    // The report: each promotion's funnel.
    let (status, report) = c.get("/api/v1/promotions/report", &t.read).await;
    assert_eq!(status, 200, "{report}");
    let of = |kind: &str| {
        report["promotions"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["promotion_type"] == kind).cloned())
            .unwrap_or(Value::Null)
    };
    let coupon = of("coupon");
    assert_eq!(
        (coupon["claimed"].as_u64(), coupon["redeemed"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(coupon["conversion"].as_f64(), Some(0.25));
    let flash = of("flash_sale");
    assert_eq!(
        (
            flash["reserved"].as_u64(),
            flash["redeemed"].as_u64(),
            flash["amount_converted"].as_i64()
        ),
        (Some(2), Some(1), Some(99900))
    );
    assert_eq!(of("red_packet")["conversion"].as_f64(), Some(0.25));

    // Profiles and segments follow the trail.
    let started = Instant::now();
    loop {
        let (_, body) = c
            .post(
                "/api/v1/segments/count",
                &t.read,
                json!({"expr": "coupons_redeemed >= 1 AND flash_purchases >= 1 AND did red_packet_claimed in last 7 days"}),
            )
            .await;
        if body["matched"].as_u64() == Some(1) {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "profiles never saw the trail: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, body) = c
        .post(
            "/api/v1/segments/count",
            &t.read,
            json!({"expr": "coupons_received >= 1 AND coupon_use_pct < 50"}),
        )
        .await;
    assert_eq!(
        body["matched"], 3,
        "u2, u3, u4 hold an unused coupon: {body}"
    );
    let (_, profile) = c.get("/api/v1/users/u1/profile", &t.read).await;
    let f = &profile;
    assert_eq!(
        (
            f["coupons_received"].as_u64(),
            f["coupons_redeemed"].as_u64(),
            f["red_packet_amount"].as_i64()
        ),
        (Some(1), Some(1), Some(250)),
        "{profile}"
    );

    // Bad parameters are named.
    for (query, field) in [
        (
            "/api/v1/promotion-events?promotion_type=voucher",
            "promotion_type",
        ),
        ("/api/v1/promotion-events?limit=0", "limit"),
        ("/api/v1/promotion-events?before=x", "before"),
        ("/api/v1/promotion-events/feed?after=nope", "after"),
        ("/api/v1/promotions/report?from=yesterday", "from"),
        (
            "/api/v1/promotions/report?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "from",
        ),
    ] {
        let (status, problem) = c.get(query, &t.read).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (400, Some(field)),
            "{query}: {problem}"
        );
    }
    let _ = stop.send(());
}
