//! Profiles, tags and segments over a real socket: writes reach tags and segment memberships
//! within seconds without a rebuild, custom tags are versioned with history, saved segments
//! preview, export and snapshot, bad expressions are 400s that say where, and a rebuild agrees
//! with the incremental state.

mod common;

use chrono::{Duration, Utc};
use common::{test_app, Client};
use serde_json::{json, Value};
use std::time::Instant;

/// What these tests ask of the server besides plain requests.
trait AudienceClient {
    async fn count(&self, key: &str, expr: &str) -> u64;
    async fn eventually(&self, what: &str, check: impl AsyncFnMut(&Client) -> bool) -> f64;
}

impl AudienceClient for Client {
    async fn count(&self, key: &str, expr: &str) -> u64 {
        let (status, body) = self
            .post("/api/v1/segments/count", key, json!({ "expr": expr }))
            .await;
        assert_eq!(status, 200, "{expr}: {body}");
        body["matched"].as_u64().unwrap_or(u64::MAX)
    }

    /// Polls until `check` holds; the deadline only guards against hanging, it measures nothing.
    async fn eventually(&self, what: &str, mut check: impl AsyncFnMut(&Client) -> bool) -> f64 {
        let started = Instant::now();
        while started.elapsed().as_secs() < 60 {
            if check(self).await {
                return started.elapsed().as_secs_f64();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what} never happened");
    }
}

fn at(days_ago: i64) -> String {
    (Utc::now() - Duration::days(days_ago) - Duration::hours(1)).to_rfc3339()
}

fn order(id: &str, user: &str, sku: &str, price: i64, days_ago: i64) -> Value {
    json!({"id": id, "user_id": user, "channel": "app", "currency": "CNY", "placed_at": at(days_ago),
        "lines": [{"sku_id": sku, "quantity": 1, "unit_price": price}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_stay_fresh_and_definitions_are_versioned() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;

    let products = json!({"products": [
        {"id": "milk", "title": "奶粉", "category": ["母婴", "奶粉"], "brand": "飞鹤", "price": 19900, "currency": "CNY"},
        {"id": "phone", "title": "手机", "category": ["数码", "手机"], "brand": "小米", "price": 199900, "currency": "CNY"}]});
    assert_eq!(
        c.post("/api/v1/products/batch", &t.ingest, products)
            .await
            .0,
        200
    );
    let users = json!({"users": [
        {"id": "u1", "city": "上海", "city_tier": "tier1"}, {"id": "u2", "city": "杭州", "city_tier": "tier2"},
        {"id": "u3", "city": "北京", "city_tier": "tier1"}]});
    assert_eq!(c.post("/api/v1/users/batch", &t.ingest, users).await.0, 200);
    let orders = json!({"orders": [order("o1", "u1", "milk", 19900, 20), order("o2", "u1", "milk", 19900, 3),
        order("o3", "u2", "phone", 199900, 5)]});
    assert_eq!(
        c.post("/api/v1/orders/batch", &t.ingest, orders).await.0,
        200
    );

    // Freshness: the orders reach behaviour windows and tags without a rebuild.
    let baby = r#"did purchase where category = "母婴" at least 2 times in last 30 days"#;
    let waited = c
        .eventually("orders reaching segments", async |c| {
            c.count(&t.read, baby).await == 1
        })
        .await;
    eprintln!("orders visible to segments after {waited:.2}s");
    assert_eq!(
        c.count(&t.read, r#"tag "interest:母婴" AND city_tier = "tier1""#)
            .await,
        1
    );
    assert_eq!(
        c.count(&t.read, r#"tag "lifecycle:prospect""#).await,
        1,
        "u3 never bought"
    );

    // Custom tags: versions, idempotent re-definition, users and history.
    let (status, tag) = c
        .put(
            "/api/v1/tags/母婴达人",
            &t.admin,
            json!({"rule": baby, "weight": 0.8}),
        )
        .await;
    assert_eq!(
        (status, tag["version"].as_u64(), tag["users"].as_u64()),
        (201, Some(1), Some(1)),
        "{tag}"
    );
    let (status, tag) = c
        .put(
            "/api/v1/tags/母婴达人",
            &t.admin,
            json!({"rule": baby, "weight": 0.8}),
        )
        .await;
    assert_eq!(
        (status, tag["version"].as_u64()),
        (200, Some(1)),
        "same definition, same version"
    );
    let wider = r#"did purchase where category = "母婴" at least 1 times in last 30 days"#;
    let (status, tag) = c
        .put(
            "/api/v1/tags/母婴达人",
            &t.admin,
            json!({"rule": wider, "weight": 0.5}),
        )
        .await;
    assert_eq!((status, tag["version"].as_u64()), (201, Some(2)));
    let (status, _) = c
        .put(
            "/api/v1/tags/母婴达人",
            &t.admin,
            json!({"rule": baby, "weight": 0.8}),
        )
        .await;
    assert_eq!(status, 201, "back to the first rule is version 3");
    let (_, tags) = c.get("/api/v1/tags", &t.read).await;
    assert!(tags.as_array().is_some_and(|a| a
        .iter()
        .any(|x| x["name"] == "重要价值客户" && x["kind"] == "built_in")));

    // Saved segment: count, preview with profiles, CSV, snapshot.
    let (status, seg) = c
        .put(
            "/api/v1/segments/baby_fans",
            &t.admin,
            json!({"expr": r#"tag "母婴达人" OR tag "value:high""#}),
        )
        .await;
    assert_eq!((status, seg["members"].as_u64()), (200, Some(2)), "{seg}");
    let (_, page) = c
        .get("/api/v1/segments/baby_fans/members?limit=10", &t.read)
        .await;
    assert_eq!(page["total"], 2);
    let u1 = page["members"]
        .as_array()
        .and_then(|m| m.iter().find(|p| p["user_id"] == "u1").cloned())
        .unwrap_or_default();
    assert_eq!(
        (u1["frequency"].as_u64(), u1["monetary"].as_i64()),
        (Some(2), Some(39_800)),
        "{u1}"
    );
    assert!(u1["tags"].as_array().is_some_and(|t| t
        .iter()
        .any(|x| x["tag"] == "母婴达人" && x["weight"] == 0.8)));
    let (status, csv) = c
        .get("/api/v1/segments/baby_fans/export.csv", &t.read)
        .await;
    let csv = csv.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("user_id,lifecycle"));
    let (status, snap) = c
        .post("/api/v1/segments/baby_fans/snapshots", &t.admin, json!({}))
        .await;
    assert_eq!(
        (status, snap["size"].as_i64(), snap["entered"].as_i64()),
        (201, Some(2), Some(2)),
        "{snap}"
    );

    // A new order moves u3 into the tag and the saved segment, within seconds.
    let more = json!({"orders": [order("o4", "u3", "milk", 19900, 2), order("o5", "u3", "milk", 9900, 1)]});
    assert_eq!(c.post("/api/v1/orders/batch", &t.ingest, more).await.0, 200);
    let waited = c
        .eventually("u3 joining the saved segment", async |c| {
            c.get("/api/v1/segments/baby_fans", &t.read).await.1["members"] == 3
        })
        .await;
    eprintln!("segment membership updated after {waited:.2}s");
    // The history is written to the store in the same round, just after memberships change.
    c.eventually("u3's tag history being recorded", async |c| {
        let (_, h) = c.get("/api/v1/users/u3/tag-history", &t.read).await;
        h.as_array()
            .is_some_and(|a| a.iter().any(|x| x["tag"] == "母婴达人"))
    })
    .await;
    let (_, history) = c.get("/api/v1/users/u3/tag-history", &t.read).await;
    let history = history.as_array().cloned().unwrap_or_default();
    for (tag, change) in [
        ("母婴达人", "gained"),
        ("lifecycle:prospect", "lost"),
        ("lifecycle:prospect", "gained"),
    ] {
        assert!(
            history
                .iter()
                .any(|h| h["tag"] == tag && h["change"] == change),
            "{tag} {change} missing from {history:?}"
        );
    }
    assert!(history
        .iter()
        .any(|h| h["tag"] == "母婴达人" && h["version"] == 3));

    // Bad input says what and where; nothing is stored.
    let (status, problem) = c
        .post(
            "/api/v1/segments/count",
            &t.read,
            json!({"expr": "did purchase in last 0 days"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_expression")),
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["field"], "expr");
    assert!(problem["errors"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("at position 0") && r.contains("impossible")));
    let (status, problem) = c
        .post(
            "/api/v1/segments/count",
            &t.read,
            json!({"expr": "orders >= AND"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        problem["errors"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("at position 10")),
        "{problem}"
    );
    let (status, problem) = c
        .put("/api/v1/tags/x", &t.admin, json!({"rule": r#"tag "nope""#}))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("rule")),
        "{problem}"
    );
    let (status, _) = c
        .put("/api/v1/segments/y", &t.read, json!({"expr": "orders > 1"}))
        .await;
    assert_eq!(status, 403, "defining needs admin");
    let (status, _) = c.get("/api/v1/segments/nope/members", &t.read).await;
    assert_eq!(status, 404);

    // The JSON form counts the same as the text form.
    let (_, by_json) = c
        .post(
            "/api/v1/segments/count",
            &t.read,
            json!({"json": {"compare": {"field": "orders", "op": ">=", "value": 2}}}),
        )
        .await;
    assert_eq!(
        by_json["matched"].as_u64(),
        Some(c.count(&t.read, "orders >= 2").await)
    );

    // A full rebuild gives what the incremental path gave.
    let questions = [
        baby,
        r#"tag "母婴达人""#,
        r#"in segment "baby_fans""#,
        "monetary > 20000",
        r#"lifecycle = "new""#,
    ];
    let mut before = Vec::new();
    for q in questions {
        before.push(c.count(&t.read, q).await);
    }
    let (_, p_before) = c.get("/api/v1/users/u3/profile", &t.read).await;
    let (status, stats) = c
        .post("/api/v1/audience/rebuild", &t.admin, json!({}))
        .await;
    assert_eq!((status, stats["users"].as_u64()), (200, Some(3)), "{stats}");
    let mut after = Vec::new();
    for q in questions {
        after.push(c.count(&t.read, q).await);
    }
    assert_eq!(before, after);
    let (_, p_after) = c.get("/api/v1/users/u3/profile", &t.read).await;
    assert_eq!(p_before, p_after);
    assert_eq!(
        p_after["lifecycle"], "active",
        "two purchase days close together"
    );

    let (status, clusters) = c.post("/api/v1/discover", &t.read, json!({"k": 2})).await;
    assert_eq!(
        (status, clusters["k"].as_u64()),
        (200, Some(2)),
        "{clusters}"
    );
    assert!(clusters["clusters"][0]["description_zh"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));

    let _ = stop.send(());
}
