//! Group buying over a real socket: a deal, a group opened by its leader, concurrent joiners
//! that never overfill it, idempotent retries by order id, progress, and named bad fields.

mod common;

use chrono::{Duration, Utc};
use common::test_app;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_fill_to_their_size_and_no_further() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let deal = json!({"id": "durian", "sku": "sku-1", "group_size": 3, "leader_price": 5900, "member_price": 6900,
        "window_seconds": 3600, "starts_at": (Utc::now() - Duration::hours(1)).to_rfc3339(),
        "ends_at": (Utc::now() + Duration::days(1)).to_rfc3339()});
    let (status, made) = c.post("/api/v1/group-deals", &t.admin, deal.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(c.post("/api/v1/group-deals", &t.admin, deal).await.0, 200);

    let open = json!({"group_id": "g1", "user_id": "leader", "order_id": "o-leader"});
    let (status, group) = c
        .post("/api/v1/group-deals/durian/groups", &t.ingest, open.clone())
        .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(
        (group["joined"].as_i64(), group["missing"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(group["members"][0]["price"], 5900, "the leader's price");
    assert_eq!(
        c.post("/api/v1/group-deals/durian/groups", &t.ingest, open)
            .await
            .0,
        200,
        "a retry"
    );

    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (c, key) = (std::sync::Arc::clone(&c), t.ingest.clone());
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/v1/groups/g1/members",
                &key,
                json!({"user_id": format!("u{i}"), "order_id": format!("o{i}")}),
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
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        18,
        "{statuses:?}"
    );
    let (_, progress) = c.get("/api/v1/groups/g1", &t.read).await;
    assert_eq!(progress["state"], "complete", "{progress}");
    // A complete group counts down no more.
    assert_eq!(
        (
            progress["joined"].as_i64(),
            progress["missing"].as_i64(),
            progress["seconds_left"].as_i64()
        ),
        (Some(3), Some(0), Some(0))
    );
    let prices: Vec<i64> = progress["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["price"].as_i64())
        .collect();
    assert_eq!(prices.iter().sum::<i64>(), 5900 + 2 * 6900, "{progress}");

    let (status, bad) = c
        .post("/api/v1/group-deals", &t.admin, json!({"id": "x", "sku": "s", "group_size": 1, "leader_price": -1,
            "member_price": 1, "starts_at": Utc::now().to_rfc3339(), "ends_at": Utc::now().to_rfc3339()}))
        .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        vec!["group_size", "leader_price", "ends_at"],
        "{bad}"
    );
    assert_eq!(
        c.post(
            "/api/v1/groups/none/members",
            &t.ingest,
            json!({"user_id": "u", "order_id": "o"})
        )
        .await
        .0,
        404
    );
    let _ = stop.send(());
}
