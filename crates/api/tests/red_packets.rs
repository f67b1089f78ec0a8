//! Red packets over a real socket: a lucky packet's shares sum exactly to its total, concurrent
//! claims take each share once and one per claimant, a repeated claim returns the same share, an
//! empty packet refuses with 409, bad requests name their fields. A share-to-unlock packet stays
//! locked until its helpers have helped, each counted once, however many help at once.

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
                "currency": "CNY", "shares": 1, "unlock_helpers": 5000}),
        )
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (400, Some("unlock_helpers")),
        "{bad}"
    );
    let _ = stop.send(());
}
