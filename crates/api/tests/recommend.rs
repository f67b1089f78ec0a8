//! Recommendations over a real socket: a shop with two tastes is trained, every scene answers
//! with reasons and ids, paging never repeats, filters and pins hold, bad parameters are named —
//! and an add-to-cart in the session changes the very next product-page answer, without
//! retraining.

mod common;

use chrono::{Duration, Utc};
use common::{test_app, Client};
use serde_json::{json, Value};
use std::collections::HashSet;

async fn recs(c: &Client, key: &str, query: &str) -> Value {
    let (status, body) = c
        .get(&format!("/api/v1/recommendations?{query}"), key)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn skus(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["sku"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn at(hours_ago: i64) -> String {
    (Utc::now() - Duration::hours(hours_ago)).to_rfc3339()
}

const BABY: [&str; 5] = ["milk1", "milk2", "diaper1", "diaper2", "wipes"];
const DIGITAL: [&str; 5] = ["phone1", "phone2", "case", "charger", "earbuds"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_reasons_paging_and_real_time() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;

    let mut products = Vec::new();
    for (i, sku) in BABY.iter().enumerate() {
        products.push(
            json!({"id": sku, "title": format!("婴儿{sku}"), "category": ["母婴"], "brand": "飞鹤",
            "price": 10000 + i as i64 * 1000, "currency": "CNY"}),
        );
    }
    for (i, sku) in DIGITAL.iter().enumerate() {
        products.push(json!({"id": sku, "title": format!("数码{sku}"), "category": ["数码"], "brand": "小米",
            "price": 100000 + i as i64 * 10000, "currency": "CNY", "stock": if *sku == "earbuds" { 0 } else { 50 }}));
    }
    assert_eq!(
        c.post(
            "/api/v1/products/batch",
            &t.ingest,
            json!({"products": products})
        )
        .await
        .0,
        200
    );

    // Forty customers: the first twenty buy baby items, the rest digital ones. Each buys the
    // first two of their taste together (so they are bought together), and views two more.
    let (mut orders, mut events) = (Vec::new(), Vec::new());
    for u in 0..40usize {
        let taste = if u < 20 { BABY } else { DIGITAL };
        let user = format!("c{u:02}");
        orders.push(
            json!({"id": format!("o{u}"), "user_id": user, "channel": "app", "currency": "CNY",
            "placed_at": at(48), "lines": [
                {"sku_id": taste[0], "quantity": 1, "unit_price": 10000},
                {"sku_id": taste[2], "quantity": 1, "unit_price": 10000}]}),
        );
        for k in 0..2 {
            let sku = taste[1 + (u + k) % 4];
            events.push(
                json!({"id": format!("e{u}-{k}"), "type": "view", "time": at(24), "channel": "app",
                "user_id": user, "sku_id": sku}),
            );
        }
    }
    assert_eq!(
        c.post("/api/v1/orders/batch", &t.ingest, json!({"orders": orders}))
            .await
            .0,
        200
    );
    assert_eq!(
        c.post("/api/v1/events/batch", &t.ingest, json!({"events": events}))
            .await
            .0,
        200
    );

    // Retraining swaps a model in; only an admin may ask for it.
    assert_eq!(
        c.post("/api/v1/recommendations/retrain", &t.read, json!({}))
            .await
            .0,
        403
    );
    let (status, model) = c
        .post("/api/v1/recommendations/retrain", &t.admin, json!({}))
        .await;
    assert_eq!(status, 200, "{model}");
    assert_eq!(model["items"], 10);
    assert_eq!(model["users"], 40);
    assert_eq!(
        c.get("/api/v1/recommendations/model", &t.read).await.1["baskets"],
        40
    );

    // Home: a baby customer gets baby items first, with ids and reasons in both languages; what
    // they bought is not offered again.
    let home = recs(&c, &t.read, "user_id=c03&n=3").await;
    assert!(
        home["recommendation_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{home}"
    );
    let first = skus(&home);
    assert_eq!(first.len(), 3, "{home}");
    assert!(BABY.contains(&first[0].as_str()), "{home}");
    assert!(
        !first.contains(&"milk1".to_string()) && !first.contains(&"diaper1".to_string()),
        "bought: {home}"
    );
    let reason = &home["items"][0]["reason"];
    assert!(
        reason["zh"].as_str().is_some_and(|s| !s.is_empty()) && reason["en"].as_str().is_some(),
        "{home}"
    );
    assert!(
        reason["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("similar_to") || c == "for_you"),
        "{home}"
    );

    // Paging: the next page never repeats the first.
    let next = recs(
        &c,
        &t.read,
        &format!(
            "user_id=c03&n=3&cursor={}",
            home["recommendation_id"].as_str().unwrap_or("")
        ),
    )
    .await;
    let second: HashSet<String> = skus(&next).into_iter().collect();
    assert!(!second.is_empty());
    assert!(
        first.iter().all(|s| !second.contains(s)),
        "{home} then {next}"
    );
    let (status, bad) = c
        .get("/api/v1/recommendations?user_id=c03&cursor=nope", &t.read)
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (400, Some("cursor")),
        "{bad}"
    );

    // A stranger gets what is popular now.
    let cold = recs(&c, &t.read, "user_id=nobody&n=4").await;
    assert_eq!(skus(&cold).len(), 4);
    assert!(
        matches!(
            cold["items"][0]["reason"]["code"].as_str(),
            Some("trending" | "popular")
        ),
        "{cold}"
    );

    // Cart: complements bought together with what is in it.
    let cart = recs(&c, &t.read, "scene=cart&cart=phone1&n=3").await;
    assert_eq!(skus(&cart)[0], "case", "{cart}");
    assert_eq!(cart["items"][0]["reason"]["code"], "bought_together");
    assert_eq!(cart["items"][0]["reason"]["because_of"], "phone1");

    // Filters and pins: price cap, stock, exclusions, a pinned slot.
    let filtered = recs(
        &c,
        &t.read,
        "user_id=c25&n=5&max_price=125000&in_stock=true&exclude=phone2&pin=wipes@0",
    )
    .await;
    let got = skus(&filtered);
    assert_eq!(got[0], "wipes", "{filtered}");
    assert_eq!(filtered["items"][0]["reason"]["code"], "pinned");
    assert!(
        !got.iter()
            .any(|s| s == "phone2" || s == "earbuds" || s == "charger"),
        "{filtered}"
    );

    // Bad parameters are named.
    let (status, bad) = c
        .get("/api/v1/recommendations?scene=checkout&n=0", &t.read)
        .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = bad["errors"].as_array().map_or(Vec::new(), |a| {
        a.iter().filter_map(|e| e["field"].as_str()).collect()
    });
    assert_eq!(fields, vec!["scene", "n"], "{bad}");

    // Real time: an anonymous visitor on a baby product page adds a phone to the cart; the very
    // next product-page answer follows it, with the reason, without retraining.
    let page = "scene=product_page&item=milk2&device_id=visitor-1&n=6";
    let before = recs(&c, &t.read, page).await;
    assert!(BABY.contains(&skus(&before)[0].as_str()), "{before}");
    let cart_add = json!({"id": "rt-1", "type": "add_to_cart", "time": at(0), "channel": "app",
        "device_id": "visitor-1", "sku_id": "phone2"});
    assert_eq!(c.post("/api/v1/events", &t.ingest, cart_add).await.0, 201);
    let after = recs(&c, &t.read, page).await;
    assert_ne!(
        skus(&before),
        skus(&after),
        "the session changed nothing: {after}"
    );
    let followed = after["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["reason"]["code"] == "similar_to_carted")
        .unwrap_or_else(|| panic!("no item follows the cart: {after}"));
    assert_eq!(followed["reason"]["because_of"], "phone2", "{after}");
    assert!(
        DIGITAL.contains(&followed["sku"].as_str().unwrap_or("")),
        "{after}"
    );
    assert_eq!(
        before["model_trained_at"], after["model_trained_at"],
        "no retraining happened"
    );

    let _ = stop.send(());
}
