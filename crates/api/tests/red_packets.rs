//! Red packets over a real socket: a lucky packet's shares sum exactly to its total, concurrent
//! claims take each share once and one per claimant, a repeated claim returns the same share, an
//! empty packet refuses with 409, bad requests name their fields. A share-to-unlock packet stays
//! locked until its helpers have helped, each counted once, however many help at once. A rain's
//! claims go to the round that is on, one share per customer and round, and none between rounds.

mod common;

use common::test_app;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lucky_packets_are_claimed_once_per_share_and_claimant() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;

    let packet = json!({"id": "cny-1", "sender": "shop", "kind": "lucky", "total": 8888, "currency": "CNY",
        "shares": 20, "min_share": 10});
    let (status, made) = c
        .post("/api/v1/red-packets", &t.ingest, packet.clone())
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["state"].as_str(), made["claimed_count"].as_i64()),
        (Some("open"), Some(0))
    );
    assert_eq!(
        c.post("/api/v1/red-packets", &t.ingest, packet).await.0,
        200,
        "same id, nothing new"
    );

    // 60 customers at once, twice each, for 20 shares.
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..120 {
        let (c, key) = (std::sync::Arc::clone(&c), t.ingest.clone());
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/v1/red-packets/cny-1/claims",
                &key,
                json!({"user_id": format!("u{}", i % 60)}),
            )
            .await
        }));
    }
    let (mut won, mut again, mut empty) = (Vec::new(), 0, 0);
    for task in tasks {
        let (status, body) = task.await.unwrap_or_else(|e| panic!("{e}"));
        match status {
            201 => won.push(body),
            200 => again += 1,
            409 => empty += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won.len(), 20, "every share once");
    assert_eq!(won.len() + again + empty, 120);
    let winners: HashSet<&str> = won.iter().filter_map(|w| w["user_id"].as_str()).collect();
    assert_eq!(winners.len(), 20, "one share per claimant");
    assert_eq!(
        won.iter().filter_map(|w| w["amount"].as_i64()).sum::<i64>(),
        8888
    );
    assert!(
        won.iter()
            .all(|w| w["amount"].as_i64().is_some_and(|a| a >= 10)),
        "minimum share"
    );

    // A winner asking again gets the same share.
    let first = &won[0];
    let user = first["user_id"].as_str().unwrap_or("");
    let (status, repeat) = c
        .post(
            "/api/v1/red-packets/cny-1/claims",
            &t.ingest,
            json!({"user_id": user}),
        )
        .await;
    assert_eq!(
        (status, &repeat["amount"], repeat["new"].as_bool()),
        (200, &first["amount"], Some(false))
    );

    let (_, seen) = c.get("/api/v1/red-packets/cny-1", &t.read).await;
    assert_eq!(
        (seen["state"].as_str(), seen["claimed_amount"].as_i64()),
        (Some("finished"), Some(8888))
    );
    assert_eq!(seen["claims"].as_array().map(Vec::len), Some(20));

    // Bad requests name their fields; unknown packets are 404.
    let (status, bad) = c
        .post(
            "/api/v1/red-packets",
            &t.ingest,
            json!({"id": "x", "sender": "s", "kind": "lucky", "total": 5,
            "currency": "CNY", "shares": 10}),
        )
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (400, Some("total")),
        "{bad}"
    );
    let (status, _) = c
        .post(
            "/api/v1/red-packets/none/claims",
            &t.ingest,
            json!({"user_id": "u1"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        c.get("/api/v1/red-packets/cny-1", &t.ingest).await.0,
        403,
        "reading needs the read scope"
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_to_unlock_packet_opens_with_its_last_helper() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let packet = json!({"id": "share-1", "sender": "amy", "kind": "fixed", "total": 1000,
        "currency": "CNY", "shares": 1, "unlock_helpers": 3});
    let (status, made) = c.post("/api/v1/red-packets", &t.ingest, packet).await;
    assert_eq!(
        (
            status,
            made["state"].as_str(),
            made["unlock_helpers"].as_i64()
        ),
        (201, Some("locked"), Some(3)),
        "{made}"
    );
    let (status, locked) = c
        .post(
            "/api/v1/red-packets/share-1/claims",
            &t.ingest,
            json!({"user_id": "amy"}),
        )
        .await;
    assert_eq!(status, 409, "{locked}");
    assert!(
        locked["detail"]
            .as_str()
            .is_some_and(|d| d.contains("locked until 3 more")),
        "{locked}"
    );
    let (status, own) = c
        .post(
            "/api/v1/red-packets/share-1/helps",
            &t.ingest,
            json!({"user_id": "amy"}),
        )
        .await;
    assert_eq!(status, 409, "the sender cannot help: {own}");

    // 20 friends help at once: three are counted, the third opens it, the rest are told so.
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (c, key) = (std::sync::Arc::clone(&c), t.ingest.clone());
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/v1/red-packets/share-1/helps",
                &key,
                json!({"user_id": format!("friend{i}")}),
            )
            .await
        }));
    }
    let (mut counted, mut late) = (Vec::new(), 0);
    for task in tasks {
        let (status, body) = task.await.unwrap_or_else(|e| panic!("{e}"));
        match status {
            201 => counted.push(body),
            409 => late += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((counted.len(), late), (3, 17));
    assert_eq!(
        counted
            .iter()
            .filter(|h| h["unlocked"].as_bool() == Some(true))
            .count(),
        1,
        "only the third help opens it"
    );
    let helper = counted[0]["user_id"].as_str().unwrap_or("").to_owned();
    let (status, again) = c
        .post(
            "/api/v1/red-packets/share-1/helps",
            &t.ingest,
            json!({"user_id": helper}),
        )
        .await;
    assert_eq!(
        (status, again["new"].as_bool(), again["helpers"].as_i64()),
        (200, Some(false), Some(3)),
        "a helper counts once: {again}"
    );
    let (status, claimed) = c
        .post(
            "/api/v1/red-packets/share-1/claims",
            &t.ingest,
            json!({"user_id": "amy"}),
        )
        .await;
    assert_eq!((status, claimed["amount"].as_i64()), (201, Some(1000)));
    let (status, bad) = c
        .post(
            "/api/v1/red-packets/share-1/helps",
            &t.ingest,
            json!({"user_id": " "}),
        )
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (400, Some("user_id"))
    );
    let (status, bad) = c
        .post(
            "/api/v1/red-packets",
            &t.ingest,
            json!({"id": "share-2", "sender": "amy", "kind": "fixed", "total": 1000,
                "currency": "CNY", "shares": 1, "unlock_helpers": 5000,
                "helps_per_helper_per_day": 0}),
        )
        .await;
    assert_eq!(
        (
            status,
            bad["errors"][0]["field"].as_str(),
            bad["errors"][1]["field"].as_str()
        ),
        (
            400,
            Some("unlock_helpers"),
            Some("helps_per_helper_per_day")
        ),
        "{bad}"
    );
    // A friend capped at one help a day helps one capped packet, not a second.
    for id in ["cap-1", "cap-2"] {
        let packet = json!({"id": id, "sender": "amy", "kind": "fixed", "total": 100,
            "currency": "CNY", "shares": 1, "unlock_helpers": 2, "helps_per_helper_per_day": 1});
        assert_eq!(
            c.post("/api/v1/red-packets", &t.ingest, packet).await.0,
            201
        );
    }
    let help = |id: &str| format!("/api/v1/red-packets/{id}/helps");
    let friend = json!({"user_id": "busy-friend"});
    assert_eq!(
        c.post(&help("cap-1"), &t.ingest, friend.clone()).await.0,
        201
    );
    let (status, refused) = c.post(&help("cap-2"), &t.ingest, friend).await;
    assert_eq!(status, 409, "{refused}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rain_hands_out_the_round_that_is_on() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let now = shopgrowth_core::time::Timestamp::now().0;
    let at = |ms: i64| shopgrowth_core::time::Timestamp(ms).to_rfc3339();
    let rain = json!({"id": "night", "sender": "shop", "currency": "CNY", "rounds": [
        {"starts_at": at(now - 1_000), "seconds": 600, "total": 5000, "shares": 10, "min_share": 100},
        {"starts_at": at(now + 3_600_000), "seconds": 60, "total": 2000, "shares": 5}
    ]});
    let (status, made) = c
        .post("/api/v1/red-packet-rains", &t.ingest, rain.clone())
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (
            made["total"].as_i64(),
            made["rounds"][0]["packet_id"].as_str(),
            made["rounds"][1]["packet_id"].as_str()
        ),
        (Some(7000), Some("night:1"), Some("night:2"))
    );
    assert_eq!(
        c.post("/api/v1/red-packet-rains", &t.ingest, rain).await.0,
        200,
        "same id, nothing new"
    );

    // 30 customers at once for the first round's 10 shares.
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (c, key) = (std::sync::Arc::clone(&c), t.ingest.clone());
        tasks.push(tokio::spawn(async move {
            c.post(
                "/api/v1/red-packet-rains/night/claims",
                &key,
                json!({"user_id": format!("u{i}")}),
            )
            .await
        }));
    }
    let (mut caught, mut missed) = (Vec::new(), 0);
    for task in tasks {
        let (status, body) = task.await.unwrap_or_else(|e| panic!("{e}"));
        match status {
            201 => caught.push(body),
            409 => missed += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((caught.len(), missed), (10, 20));
    assert!(caught.iter().all(|x| x["packet_id"] == "night:1"));
    assert_eq!(
        caught
            .iter()
            .filter_map(|x| x["amount"].as_i64())
            .sum::<i64>(),
        5000,
        "the round's budget, exactly"
    );
    let winner = caught[0]["user_id"].as_str().unwrap_or("").to_owned();
    let (status, again) = c
        .post(
            "/api/v1/red-packet-rains/night/claims",
            &t.ingest,
            json!({"user_id": winner}),
        )
        .await;
    assert_eq!((status, &again["amount"]), (200, &caught[0]["amount"]));
    let (_, seen) = c.get("/api/v1/red-packet-rains/night", &t.read).await;
    assert_eq!(
        (
            seen["claimed_amount"].as_i64(),
            seen["rounds"][0]["state"].as_str(),
            seen["rounds"][1]["state"].as_str()
        ),
        (Some(5000), Some("finished"), Some("scheduled")),
        "{seen}"
    );
    let (_, packet) = c.get("/api/v1/red-packets/night:2", &t.read).await;
    assert_eq!(
        (packet["rain_id"].as_str(), packet["state"].as_str()),
        (Some("night"), Some("scheduled")),
        "a round not open yet shows so as a packet too: {packet}"
    );

    // Between rounds: told when the next opens.
    let later = json!({"id": "dawn", "sender": "shop", "currency": "CNY", "rounds": [
        {"starts_at": at(now + 3_600_000), "seconds": 60, "total": 1000, "shares": 5}]});
    assert_eq!(
        c.post("/api/v1/red-packet-rains", &t.ingest, later).await.0,
        201
    );
    let (status, body) = c
        .post(
            "/api/v1/red-packet-rains/dawn/claims",
            &t.ingest,
            json!({"user_id": "u1"}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("the next opens at")),
        "{body}"
    );

    // Bad rains name each field; unknown rains are 404.
    let bad = json!({"id": "bad", "sender": "shop", "currency": "yuan", "rounds": [
        {"starts_at": at(now), "seconds": 0, "total": 1000, "shares": 5},
        {"starts_at": at(now), "seconds": 60, "total": 3, "shares": 5},
        {"starts_at": at(now + 600_000), "seconds": 60, "total": 1000, "shares": 5}]});
    let (status, body) = c.post("/api/v1/red-packet-rains", &t.ingest, bad).await;
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    fields.sort_unstable();
    assert_eq!(
        (status, fields),
        (
            400,
            vec![
                "currency",
                "rounds[0].seconds",
                "rounds[1].starts_at",
                "rounds[1].total"
            ]
        ),
        "{body}"
    );
    let (status, _) = c
        .post(
            "/api/v1/red-packet-rains/none/claims",
            &t.ingest,
            json!({"user_id": "u1"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(c.get("/api/v1/red-packet-rains/none", &t.read).await.0, 404);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_what_they_made_a_page_at_a_time() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    for id in ["p3", "p1", "p2"] {
        let packet = json!({"id": id, "sender": "shop", "kind": "fixed", "total": 300,
            "currency": "CNY", "shares": 3});
        assert_eq!(
            c.post("/api/v1/red-packets", &t.ingest, packet).await.0,
            201
        );
        let template = json!({"id": id, "name": "满100减10",
            "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
        assert_eq!(
            c.post("/api/v1/coupon-templates", &t.admin, template)
                .await
                .0,
            201
        );
        let sale = json!({"id": id, "sku": "phone", "price": 99900, "stock": 10,
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"});
        assert_eq!(c.post("/api/v1/flash-sales", &t.admin, sale).await.0, 201);
        let deal = json!({"id": id, "sku": "durian", "group_size": 3, "leader_price": 5900,
            "member_price": 6900, "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z"});
        let (status, body) = c.post("/api/v1/group-deals", &t.admin, deal).await;
        assert_eq!(status, 201, "{body}");
    }
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for listing in [
        "/api/v1/red-packets",
        "/api/v1/coupon-templates",
        "/api/v1/flash-sales",
        "/api/v1/group-deals",
    ] {
        let (status, first) = c.get(&format!("{listing}?limit=2"), &t.read).await;
        assert_eq!(
            (status, ids(&first)),
            (200, vec!["p1".into(), "p2".into()]),
            "{listing}"
        );
        let (_, rest) = c.get(&format!("{listing}?after=p2&limit=2"), &t.read).await;
        assert_eq!(ids(&rest), vec!["p3".to_string()], "{listing}");
        let (status, bad) = c.get(&format!("{listing}?limit=5000"), &t.read).await;
        assert_eq!(
            (status, bad["errors"][0]["field"].as_str()),
            (400, Some("limit")),
            "{listing}"
        );
    }
    let (_, packets) = c.get("/api/v1/red-packets", &t.read).await;
    assert_eq!(packets[0]["total"], 300);
    let _ = stop.send(());
}
