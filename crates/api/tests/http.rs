//! The HTTP API end to end over a real SQLite store: auth, errors, idempotency, batches,
//! masking, ID-Mapping, refunds, OpenAPI; and one test over a real socket.

mod common;

use axum::http::StatusCode;
use common::{test_app, test_app_with, view};
use serde_json::{json, Value};
use shopgrowth_api::ApiConfig;
#[tokio::test]
async fn health_needs_no_key_but_everything_else_does() {
    let t = test_app().await;
    let (status, body) = t.call("GET", "/health", None, None).await;
    assert_eq!(
        (status, body["backend"].as_str()),
        (StatusCode::OK, Some("sqlite"))
    );
    for (method, path) in [
        ("GET", "/api/v1/stats"),
        ("POST", "/api/v1/events/batch"),
        ("GET", "/api/v1/openapi.json"),
    ] {
        let (status, body) = t.call(method, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["code"], "unauthorized");
    }
    let (status, body) = t
        .call("GET", "/api/v1/stats", Some("sg_nope_nope"), None)
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown API key"))
    );
    let (status, _) = t
        .call("GET", "/api/v1/stats", Some("not-a-key"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let t = test_app().await;
    let (status, body) = t
        .call("GET", "/api/v1/api-keys", Some(&t.ingest), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["detail"],
        "this endpoint needs an API key with the admin scope"
    );
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&t.read),
            Some(json!({"events": []}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .call("GET", "/api/v1/api-keys", Some(&t.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Erasing personal data needs pii as well as admin.
    let (status, _) = t
        .call(
            "DELETE",
            "/api/v1/users/u1/personal-data",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An admin without pii cannot mint a pii key.
    let req = json!({"name": "x", "scopes": ["pii"]}).to_string();
    let (status, _) = t
        .call("POST", "/api/v1/api-keys", Some(&t.admin), Some(req))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_json_is_a_400_that_names_the_problem() {
    let t = test_app().await;
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/events",
            Some(&t.ingest),
            Some("{\"id\": \"e1\", ".into()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    assert!(
        body["detail"].as_str().unwrap_or("").contains("line 1"),
        "{body}"
    );
    let bad_time =
        json!({"id": "e1", "type": "view", "time": "yesterday", "channel": "app", "sku_id": "s"});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/events",
            Some(&t.ingest),
            Some(bad_time.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "time", "{body}");
    let bad_batch = json!({"events": [view("a", Some("u"), None)], "extra": 1}).to_string();
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&t.ingest),
            Some(bad_batch),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("extra"))
    );
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/orders/batch",
            Some(&t.ingest),
            Some("[1,2]".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A missing field is named, at the root and inside a list; a missing time says it is
    // missing rather than badly written.
    let no_times =
        json!({"id": "g1", "sku": "s", "group_size": 2, "leader_price": 1, "member_price": 1});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/group-deals",
            Some(&t.admin),
            Some(no_times.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "starts_at", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("missing field `starts_at`"),
        "{body}"
    );
    let no_price = json!({"cart": {"lines": [{"sku": "a", "quantity": 1}]}, "promotions": []});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/pricing/quote",
            Some(&t.read),
            Some(no_price.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["field"], "cart.lines[0].unit_price",
        "{body}"
    );
    // A bad query or path parameter is a problem naming it too, not plain text.
    let (status, body) = t
        .call(
            "GET",
            "/api/v1/coupon-templates?limit=abc",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["errors"][0]["field"].as_str()),
        (Some("invalid_query"), Some("limit"))
    );
    // A parameter the endpoint does not take is named, not ignored (the answer would not be
    // filtered as asked).
    let (status, body) = t
        .call(
            "GET",
            "/api/v1/promotion-events?kind=redeemed",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("kind"))
    );
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/identity-links/abc/undo",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["errors"][0]["field"].as_str()),
        (Some("invalid_path"), Some("link_id"))
    );
    // An unknown route or method is a problem too, not an empty answer.
    let (status, body) = t.call("GET", "/api/v1/nope", Some(&t.admin), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = t
        .call("DELETE", "/api/v1/campaigns", Some(&t.admin), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let t = test_app_with(ApiConfig {
        body_limit_bytes: 4096,
        ..ApiConfig::default()
    })
    .await;
    let events: Vec<Value> = (0..100)
        .map(|i| view(&format!("e{i}"), Some("u1"), None))
        .collect();
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&t.ingest),
            Some(json!({ "events": events }).to_string()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
}

#[tokio::test]
async fn batches_store_the_good_items_and_report_the_rest() {
    let t = test_app().await;
    let mut bad = view("e3", Some("u1"), None);
    bad["rating"] = json!(9);
    bad["type"] = json!("review");
    let batch = json!({"events": [
        view("e1", Some("u1"), None),
        view("e2", None, Some("d1")),
        bad,
        {"id": "e4", "type": "teleport", "time": 1, "channel": "app"},
        view("e1", Some("u1"), None),
    ]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&t.ingest),
            Some(batch.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["received"].as_u64(), body["inserted"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(body["duplicates"], json!([{"index": 4, "id": "e1"}]));
    assert_eq!(body["rejected"][0]["index"], 2);
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "rating");
    assert_eq!(body["rejected"][1]["index"], 3);
    assert_eq!(body["rejected"][1]["errors"][0]["field"], "type");
    // Sending it all again: the stored ones are duplicates now.
    let again = json!({"events": [view("e1", Some("u1"), None), view("e2", None, Some("d1"))]});
    let (_, body) = t
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&t.ingest),
            Some(again.to_string()),
        )
        .await;
    assert_eq!(
        (
            body["inserted"].as_u64(),
            body["duplicates"].as_array().map(Vec::len)
        ),
        (Some(0), Some(2))
    );
    let (_, stats) = t.call("GET", "/api/v1/stats", Some(&t.read), None).await;
    assert_eq!(stats["events"], 2);
    // A single event: 201 then 200 duplicate.
    let one = view("e9", Some("u1"), None).to_string();
    let (s1, b1) = t
        .call("POST", "/api/v1/events", Some(&t.ingest), Some(one.clone()))
        .await;
    let (s2, b2) = t
        .call("POST", "/api/v1/events", Some(&t.ingest), Some(one))
        .await;
    assert_eq!(
        (s1, b1["status"].as_str(), s2, b2["status"].as_str()),
        (
            StatusCode::CREATED,
            Some("inserted"),
            StatusCode::OK,
            Some("duplicate")
        )
    );
}

#[tokio::test]
async fn personal_data_is_masked_encrypted_and_erasable() {
    let t = test_app().await;
    let users = json!({"users": [
        {"id": "card:7", "phone": "13812341234", "name": "张三丰", "email": "Zhang@Example.com", "birthday": "1990-05-06", "city": "上海", "city_tier": "tier1"},
        {"id": "web:7", "phone": "+86 138 1234 1234"},
        {"id": "bad", "phone": "12", "email": "nope"}
    ]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/users/batch",
            Some(&t.ingest),
            Some(users.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["merged"],
        json!([{"index": 1, "id": "web:7", "merged_into": "card:7"}])
    );
    let fields: Vec<&str> = body["rejected"][0]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["phone", "email"]);
    let (_, masked) = t
        .call("GET", "/api/v1/users/web:7", Some(&t.read), None)
        .await;
    assert_eq!(masked["id"], "card:7");
    assert_eq!(masked["merged_user_ids"], json!(["web:7"]));
    assert_eq!(
        (
            masked["phone"].as_str(),
            masked["email"].as_str(),
            masked["name"].as_str()
        ),
        (Some("138****1234"), Some("z***@example.com"), Some("张**"))
    );
    assert_eq!(masked["birthday"], "1990-**-**");
    let (_, clear) = t
        .call("GET", "/api/v1/users/card:7", Some(&t.pii), None)
        .await;
    assert_eq!(
        (clear["phone"].as_str(), clear["pii_masked"].as_bool()),
        (Some("+8613812341234"), Some(false))
    );
    // At rest: the database file never holds the phone, email or name in clear.
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(t.dir.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        raw.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    for secret in ["13812341234", "zhang@example.com", "张三丰"] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the database files"
        );
    }
    let (status, _) = t
        .call(
            "DELETE",
            "/api/v1/users/card:7/personal-data",
            Some(&t.pii),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, erased) = t
        .call("GET", "/api/v1/users/card:7", Some(&t.pii), None)
        .await;
    assert!(
        erased["phone"].is_null() && erased["name"].is_null() && !erased["erased_at"].is_null(),
        "{erased}"
    );
}

#[tokio::test]
async fn anonymous_history_follows_a_login_and_can_be_undone() {
    let t = test_app().await;
    let batch =
        json!({"events": [view("a1", None, Some("dev-1")), view("a2", None, Some("dev-1"))]});
    t.call(
        "POST",
        "/api/v1/events/batch",
        Some(&t.ingest),
        Some(batch.to_string()),
    )
    .await;
    let (status, link) = t
        .call(
            "POST",
            "/api/v1/identify",
            Some(&t.ingest),
            Some(json!({"device_id": "dev-1", "user_id": "u5"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let (_, user) = t
        .call("GET", "/api/v1/users/u5?events=10", Some(&t.read), None)
        .await;
    let ids: Vec<&str> = user["recent_events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(user["device_ids"], json!(["dev-1"]));
    let undo = format!("/api/v1/identity-links/{}/undo", link["id"]);
    let (status, _) = t.call("POST", &undo, Some(&t.ingest), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, undone) = t.call("POST", &undo, Some(&t.admin), None).await;
    assert_eq!(
        (status, undone["undone_at"].is_null()),
        (StatusCode::OK, false)
    );
    let (_, user) = t.call("GET", "/api/v1/users/u5", Some(&t.read), None).await;
    assert_eq!(user["recent_events"], json!([]));
    let (status, _) = t
        .call("GET", "/api/v1/users/nobody", Some(&t.read), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = t
        .call("GET", "/api/v1/users/u5?events=9999", Some(&t.read), None)
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("events"))
    );
}

/// Waits until two more rounds of the audience's background task have run: the first to begin
/// after this call has folded in everything queued before it.
async fn settle(audience: &shopgrowth_service::AudienceService) {
    let start = audience.rounds();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while audience.rounds() < start + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the audience ran no round"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_login_rebuilds_the_audience_once_and_a_repeated_one_not_at_all() {
    let t = test_app().await;
    let audience = &t.state.audience;
    let login = |user: &str| json!({"device_id": "dev-7", "user_id": user}).to_string();
    settle(audience).await;
    let before = audience.rebuilds();
    let (status, first) = t
        .call(
            "POST",
            "/api/v1/identify",
            Some(&t.ingest),
            Some(login("u7")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    settle(audience).await;
    assert_eq!(audience.rebuilds(), before + 1, "a new link moves history");
    // Apps identify at every login: the same again, and the device for someone else, change
    // nothing (a device stays with the first user it logged in as).
    for user in ["u7", "u7", "u8"] {
        let (status, again) = t
            .call(
                "POST",
                "/api/v1/identify",
                Some(&t.ingest),
                Some(login(user)),
            )
            .await;
        assert_eq!(
            (status, &again["id"], again["target_user_id"].as_str()),
            (StatusCode::OK, &first["id"], Some("u7"))
        );
    }
    settle(audience).await;
    assert_eq!(
        audience.rebuilds(),
        before + 1,
        "nothing changed: no rebuild"
    );
}

#[tokio::test]
async fn orders_are_idempotent_and_refunds_exact() {
    let t = test_app().await;
    let order = json!({"id": "o1", "user_id": "u1", "channel": "web", "currency": "CNY", "placed_at": "2026-11-11T00:00:05+08:00",
        "lines": [{"sku_id": "a", "quantity": 2, "unit_price": 19900, "discount": 1905}, {"sku_id": "b", "quantity": 1, "unit_price": 9900, "discount": 947}],
        "coupon_codes": ["FESTIVAL-300-30"], "total": 46848});
    let (s1, _) = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&t.ingest),
            Some(order.to_string()),
        )
        .await;
    let (s2, b2) = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&t.ingest),
            Some(order.to_string()),
        )
        .await;
    assert_eq!(
        (s1, s2, b2["status"].as_str()),
        (StatusCode::CREATED, StatusCode::OK, Some("duplicate"))
    );
    let mut wrong = order.clone();
    wrong["id"] = json!("o2");
    wrong["total"] = json!(1);
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&t.ingest),
            Some(wrong.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("total"))
    );
    let refund = json!({"id": "r1", "refunded_at": "2026-11-15T10:00:00+08:00", "lines": [{"line_no": 1, "quantity": 1, "amount": 8953}]});
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/orders/o1/refunds",
            Some(&t.ingest),
            Some(refund.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let too_much = json!({"id": "r2", "refunded_at": "2026-11-15T10:00:00+08:00", "lines": [{"line_no": 1, "quantity": 0, "amount": 1}]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/orders/o1/refunds",
            Some(&t.ingest),
            Some(too_much.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (_, user) = t.call("GET", "/api/v1/users/u1", Some(&t.read), None).await;
    assert_eq!(user["recent_orders"][0]["refunded_amount"], 8953);
    assert_eq!(user["recent_orders"][0]["total"], 46848);
}

#[tokio::test]
async fn openapi_matches_the_committed_document() {
    let t = test_app().await;
    let (status, served) = t
        .call("GET", "/api/v1/openapi.json", Some(&t.read), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let generated = shopgrowth_api::openapi::document_json();
    assert_eq!(
        served,
        serde_json::from_str::<Value>(&generated).unwrap_or(Value::Null)
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{generated}\n")).unwrap_or_else(|e| panic!("{e}"));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        generated,
        "docs/openapi.json is stale: rerun this test with UPDATE_OPENAPI=1"
    );
    for path in [
        "/api/v1/events/batch",
        "/api/v1/users/{user_id}",
        "/api/v1/orders/{order_id}/refunds",
        "/health",
    ] {
        assert!(
            served["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let t = test_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shopgrowth_api::serve(listener, t.state.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let batch = json!({"events": (0..500).map(|i| view(&format!("s{i}"), Some(&format!("u{}", i % 7)), None)).collect::<Vec<_>>()});
    let resp = client
        .post(format!("http://{addr}/api/v1/events/batch"))
        .bearer_auth(&t.ingest)
        .json(&batch)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(body["inserted"], 500);
    let resp = client
        .get(format!("http://{addr}/api/v1/users/u3"))
        .header("x-api-key", &t.read)
        .send()
        .await;
    let user: Value = match resp {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(user["recent_events"].as_array().map(Vec::len), Some(20));
    // Each request is counted at work while it is served and counted out once answered, so the
    // store's writer lingers for company only while others are being served.
    let at_work = t
        .state
        .store
        .at_work()
        .unwrap_or_else(|| panic!("the embedded store has a gauge"));
    let requests: Vec<_> = (0..32)
        .map(|_| {
            let (client, url) = (client.clone(), format!("http://{addr}/health"));
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        assert!(matches!(request.await, Ok(Ok(s)) if s == 200));
    }
    assert_eq!(at_work.count(), 0);
    assert!(!at_work.company_likely(), "counted, and nobody at work");
    let _ = stop.send(());
    assert!(server.await.is_ok());
}

#[tokio::test]
async fn quotes_a_cart_and_explains_every_promotion() {
    let t = test_app().await;
    let body = json!({
        "cart": {"lines": [
            {"sku": "milk", "quantity": 1, "unit_price": 18750, "category": ["母婴"], "store": "s1"},
            {"sku": "nappy", "quantity": 1, "unit_price": 10000, "category": ["母婴"], "store": "s1"}],
            "shipping_fee": 1000},
        "customer": {"orders": 2},
        "promotions": [
            {"id": "m300", "name": "满300减40", "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 4000}]},
             "stacking": {"category": {"name": "shop"}}},
            {"id": "m200", "name": "满200减20", "rule": {"type": "threshold", "tiers": [{"threshold": 20000, "off": 2000}]},
             "stacking": {"category": {"name": "shop"}}},
            {"id": "ship", "name": "满99包邮", "rule": {"type": "free_shipping", "threshold": 9900},
             "stacking": {"category": {"name": "shipping"}}},
            {"id": "new", "name": "新人立减", "rule": {"type": "price_cut", "off_per_unit": 500},
             "stacking": {"category": {"name": "item"}}, "audience": {"new_customers_only": true}}]
    });
    let (status, q) = t
        .call(
            "POST",
            "/api/v1/pricing/quote",
            Some(&t.read),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(
        (
            q["subtotal"].as_i64(),
            q["discount"].as_i64(),
            q["total"].as_i64()
        ),
        (Some(28_750), Some(2_000), Some(26_750))
    );
    let lines: Vec<i64> = q["lines"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["discount"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(lines.iter().sum::<i64>(), 2_000);
    let reason = |id: &str| {
        q["not_applied"].as_array().and_then(|a| {
            a.iter()
                .find(|x| x["id"] == id)
                .map(|x| x["message"].clone())
        })
    };
    assert_eq!(reason("m300"), Some(json!("满300减40: 还差 ¥12.50")));
    assert_eq!(reason("new"), Some(json!("新人立减: 不适用于该顾客")));
    let (status, problem) = t
        .call("POST", "/api/v1/pricing/quote", Some(&t.read),
            Some(json!({"cart": {"lines": [{"sku": "a", "quantity": 0, "unit_price": 1}]}, "promotions": []}).to_string()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "cart.lines[0].quantity");
    let (status, problem) = t
        .call("POST", "/api/v1/pricing/quote", Some(&t.read),
            Some(json!({"cart": {"lines": [{"sku": "", "quantity": 1, "unit_price": 1}]}, "promotions": []}).to_string()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "cart.lines[0].sku");
}

/// A rule saying 减-50 or 150% off is refused wherever a rule comes in (a campaign, a coupon
/// template, a dry run's promotions), naming the field; so is a misspelt field, and a cart whose
/// money overflows.
#[tokio::test]
async fn rules_and_carts_that_make_no_sense_are_refused_naming_the_field() {
    let t = test_app().await;
    // What a POST of `body` is refused for: its status and the fields it names.
    let refused = |path: &'static str, key: String, body: serde_json::Value| {
        let t = &t;
        async move {
            let (status, problem) = t
                .call("POST", path, Some(&key), Some(body.to_string()))
                .await;
            let fields: Vec<String> = problem["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|x| x["field"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (status, fields)
        }
    };
    let bad = StatusCode::BAD_REQUEST;
    let campaign = |id: &str, promotion: serde_json::Value| json!({"id": id, "name": "x", "promotion": promotion});
    let cases = [
        (
            "/api/v1/campaigns",
            campaign(
                "minus",
                json!({
                "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": -5000}]},
                "stacking": {"category": {"name": "shop", "limit": 0}}}),
            ),
            vec!["promotion.rule.tiers[0].off", "promotion.stacking.limit"],
        ),
        (
            "/api/v1/coupon-templates",
            json!({"id": "too-much", "name": "150% off",
                   "rule": {"type": "percent_off", "percent_bp": 15000}}),
            vec!["rule.percent_bp"],
        ),
        (
            "/api/v1/coupon-templates",
            json!({"id": "nameless", "name": " ", "rule": {"type": "free_shipping"}}),
            vec!["name"],
        ),
        // A typo must not pass as "no restriction": `skuz` would have put the promotion on the
        // whole cart, `threhsold` made a 折扣 without its threshold, `budgett` a campaign
        // without its budget.
        (
            "/api/v1/campaigns",
            campaign(
                "typo",
                json!({"rule": {"type": "free_shipping"}, "stacking": "exclusive",
                                    "scope": {"skuz": ["a"]}}),
            ),
            vec!["promotion.scope.skuz"],
        ),
        (
            "/api/v1/campaigns",
            campaign(
                "typo2",
                json!({"stacking": "exclusive",
                "rule": {"type": "percent_off", "percent_bp": 1000, "threhsold": 30000}}),
            ),
            vec!["promotion.rule.threhsold"],
        ),
        (
            "/api/v1/coupon-templates",
            json!({"id": "typo", "name": "x", "rule": {"type": "free_shipping"},
                   "scope": {"categorys": ["母婴"]}}),
            vec!["scope.categorys"],
        ),
    ];
    for (path, body, fields) in cases {
        assert_eq!(
            refused(path, t.admin.clone(), body).await,
            (bad, fields.iter().map(|f| f.to_string()).collect())
        );
    }
    let mut no_budget = campaign(
        "typo3",
        json!({"rule": {"type": "free_shipping"}, "stacking": "exclusive"}),
    );
    no_budget["budgett"] = json!(5000);
    assert_eq!(
        refused("/api/v1/campaigns", t.admin.clone(), no_budget).await,
        (bad, vec!["budgett".to_owned()])
    );
    let quote = |body: serde_json::Value| refused("/api/v1/pricing/quote", t.read.clone(), body);
    assert_eq!(
        quote(json!({
            "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 1000}]},
            "promotions": [
                {"id": "ok", "name": "ok", "rule": {"type": "free_shipping"}, "stacking": "exclusive"},
                {"id": "b", "name": "b", "rule": {"type": "buy_x_get_y", "buy": 2, "get": 0},
                 "stacking": "exclusive"}]}))
        .await,
        (bad, vec!["promotions[1].rule.get".to_owned()])
    );
    // Two lines of ¥90,000,000,000,000,000 each: every line fits, the cart's total does not
    // (it used to wrap round to a negative subtotal).
    assert_eq!(
        quote(json!({
            "cart": {"lines": [
                {"sku": "a", "quantity": 1, "unit_price": 9_000_000_000_000_000_000_i64},
                {"sku": "b", "quantity": 1, "unit_price": 9_000_000_000_000_000_000_i64}]},
            "promotions": []}))
        .await,
        (bad, vec!["cart.lines".to_owned()])
    );
}

#[tokio::test]
async fn coupons_are_claimed_within_quota_and_redeemed_once() {
    let t = test_app().await;
    let template = json!({"id": "c10", "name": "满100减10", "quota": 3, "valid_days": 7,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["issued"].as_i64()),
        (StatusCode::CREATED, Some(0)),
        "{body}"
    );
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the same id again");
    let claim = |user: &str, key: &str| json!({"user_id": user, "claim_key": key}).to_string();
    let mut codes = Vec::new();
    let mut refused = 0;
    for i in 0..5 {
        let (status, body) = t
            .call(
                "POST",
                "/api/v1/coupon-templates/c10/claims",
                Some(&t.ingest),
                Some(claim(&format!("u{i}"), &format!("k{i}"))),
            )
            .await;
        match status {
            StatusCode::CREATED => codes.push(body["code"].as_str().unwrap_or_default().to_owned()),
            StatusCode::CONFLICT => {
                refused += 1;
                assert!(
                    body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("sold out")),
                    "{body}"
                );
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((codes.len(), refused), (3, 2));
    let (status, again) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/c10/claims",
            Some(&t.ingest),
            Some(claim("u0", "k0")),
        )
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::OK, Some(codes[0].as_str()))
    );
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/c10/claims",
            Some(&t.ingest),
            Some(claim("u9", "k0")),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a claim key never hands over another user's coupon"
    );
    let redeem = |order: &str| json!({"user_id": "u0", "order_id": order}).to_string();
    let path = format!("/api/v1/coupons/{}/redeem", codes[0]);
    let (status, body) = t
        .call("POST", &path, Some(&t.ingest), Some(redeem("o1")))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("redeemed"))
    );
    let (_, body) = t
        .call("POST", &path, Some(&t.ingest), Some(redeem("o1")))
        .await;
    assert_eq!(body["status"], "duplicate");
    let (status, _) = t
        .call("POST", &path, Some(&t.ingest), Some(redeem("o2")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let release = format!("/api/v1/coupons/{}/release", codes[0]);
    let (_, body) = t
        .call(
            "POST",
            &release,
            Some(&t.ingest),
            Some(json!({"order_id": "o1"}).to_string()),
        )
        .await;
    assert_eq!(body["released"], true);
    let (_, body) = t
        .call(
            "POST",
            &release,
            Some(&t.ingest),
            Some(json!({"order_id": "o1"}).to_string()),
        )
        .await;
    assert_eq!(body["released"], false);
    let (_, coupon) = t
        .call(
            "GET",
            &format!("/api/v1/coupons/{}", codes[0]),
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(coupon["state"], "claimed");
    let (status, problem) = t
        .call("POST", "/api/v1/coupon-templates", Some(&t.admin),
            Some(json!({"id": "bad", "name": "x", "per_user_limit": 0, "rule": {"type": "price_cut", "off_per_unit": 100}}).to_string()))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("per_user_limit"))
    );
}

#[tokio::test]
async fn campaigns_move_through_their_states_and_price_carts_while_live() {
    let t = test_app().await;
    // A campaign may target only a saved segment: a misspelt one is refused, naming it.
    let misspelt = json!({"id": "typo", "name": "x", "segment": "vpi",
        "promotion": {"rule": {"type": "free_shipping"}, "stacking": "exclusive"}});
    let (status, problem) = t
        .call(
            "POST",
            "/api/v1/campaigns",
            Some(&t.admin),
            Some(misspelt.to_string()),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("segment")),
        "{problem}"
    );
    let (status, _) = t
        .call(
            "PUT",
            "/api/v1/segments/vip",
            Some(&t.admin),
            Some(json!({"expr": r#"tag "value:high""#}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let campaign = json!({"id": "double11", "name": "双11 满300减50",
        "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]},
                      "stacking": {"category": {"name": "shop"}}},
        "segment": "vip"});
    let (status, c) = t
        .call(
            "POST",
            "/api/v1/campaigns",
            Some(&t.admin),
            Some(campaign.to_string()),
        )
        .await;
    assert_eq!(
        (status, c["state"].as_str(), c["version"].as_i64()),
        (StatusCode::CREATED, Some("draft"), Some(1)),
        "{c}"
    );
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/campaigns",
            Some(&t.admin),
            Some(campaign.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the same id again");
    let cart = |segments: Value| {
        json!({"cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]},
        "customer": {"segments": segments}})
        .to_string()
    };
    let quote = |body: String| async {
        t.call("POST", "/api/v1/pricing/quote", Some(&t.read), Some(body))
            .await
            .1
    };
    assert_eq!(
        quote(cart(json!(["vip"]))).await["discount"],
        0,
        "a draft prices nothing"
    );
    let go = |to: &str| json!({"to": to}).to_string();
    let (status, c) = t
        .call(
            "POST",
            "/api/v1/campaigns/double11/transition",
            Some(&t.admin),
            Some(go("running")),
        )
        .await;
    assert_eq!(
        (status, c["effective_state"].as_str()),
        (StatusCode::OK, Some("running")),
        "{c}"
    );
    assert_eq!(quote(cart(json!(["vip"]))).await["discount"], 5000);
    let q = quote(cart(json!([]))).await;
    assert_eq!(
        (q["discount"].as_i64(), q["not_applied"][0]["code"].as_str()),
        (Some(0), Some("audience")),
        "only the segment"
    );
    // Editing a running campaign: the version the editor saw, and the change is recorded.
    let mut edit = campaign.clone();
    edit.as_object_mut().map(|o| o.remove("id"));
    edit["version"] = json!(1);
    edit["promotion"]["rule"]["tiers"][0]["off"] = json!(6000);
    let (status, _) = t
        .call(
            "PUT",
            "/api/v1/campaigns/double11",
            Some(&t.admin),
            Some(edit.to_string()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "version 1 is stale after the start"
    );
    edit["version"] = json!(2);
    let (status, c) = t
        .call(
            "PUT",
            "/api/v1/campaigns/double11",
            Some(&t.admin),
            Some(edit.to_string()),
        )
        .await;
    assert_eq!(
        (status, c["version"].as_i64()),
        (StatusCode::OK, Some(3)),
        "{c}"
    );
    assert_eq!(quote(cart(json!(["vip"]))).await["discount"], 6000);
    let (_, full) = t
        .call("GET", "/api/v1/campaigns/double11", Some(&t.read), None)
        .await;
    let changes = full["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 3, "{full}");
    let edited = &changes[2]["change"];
    assert_eq!(
        (edited["action"].as_str(), edited["while"].as_str()),
        (Some("edited"), Some("running"))
    );
    assert_eq!(
        edited["fields"]["promotion"]["from"]["rule"]["tiers"][0]["off"],
        5000
    );
    // Pause, resume, end; ended is final.
    for (to, code) in [
        ("paused", StatusCode::OK),
        ("running", StatusCode::OK),
        ("ended", StatusCode::OK),
        ("running", StatusCode::CONFLICT),
    ] {
        let (status, body) = t
            .call(
                "POST",
                "/api/v1/campaigns/double11/transition",
                Some(&t.admin),
                Some(go(to)),
            )
            .await;
        assert_eq!(status, code, "{to}: {body}");
    }
    assert_eq!(
        quote(cart(json!(["vip"]))).await["discount"],
        0,
        "ended prices nothing"
    );
    let (status, problem) = t.call("POST", "/api/v1/campaigns", Some(&t.admin),
        Some(json!({"id": "bad", "name": "x", "promotion": {"rule": {"type": "nope"}, "stacking": "exclusive"}}).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["errors"][0]["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("promotion")),
        "{problem}"
    );
}

#[tokio::test]
async fn flash_sales_reserve_confirm_and_release_over_http() {
    let t = test_app().await;
    let now = chrono::Utc::now();
    let sale = json!({"id": "fs1", "sku": "phone", "price": 99900, "stock": 2, "per_user_limit": 1,
        "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(), "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "hold_seconds": 60});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/flash-sales",
            Some(&t.admin),
            Some(sale.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["available"].as_i64()),
        (StatusCode::CREATED, Some(2)),
        "{body}"
    );
    let reserve = |r: &str, u: &str| json!({"reservation_id": r, "user_id": u}).to_string();
    let path = "/api/v1/flash-sales/fs1/reservations";
    let bad = json!({"reservation_id": " ", "user_id": "", "quantity": 0}).to_string();
    let (status, body) = t.call("POST", path, Some(&t.ingest), Some(bad)).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        (status, fields),
        (
            StatusCode::BAD_REQUEST,
            vec!["reservation_id", "user_id", "quantity"]
        )
    );
    assert_eq!(
        t.call("POST", path, Some(&t.ingest), Some(reserve("r1", "u1")))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.call("POST", path, Some(&t.ingest), Some(reserve("r1", "u1")))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = t
        .call("POST", path, Some(&t.ingest), Some(reserve("r2", "u1")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "one per user: {body}");
    assert_eq!(
        t.call("POST", path, Some(&t.ingest), Some(reserve("r3", "u2")))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, body) = t
        .call("POST", path, Some(&t.ingest), Some(reserve("r4", "u3")))
        .await;
    assert_eq!(
        (
            status,
            body["detail"].as_str().map(|d| d.contains("sold out"))
        ),
        (StatusCode::CONFLICT, Some(true))
    );
    // Sold out, and the node's gate is closed: a retry of a hold made before still gets it.
    let (status, body) = t
        .call("POST", path, Some(&t.ingest), Some(reserve("r3", "u2")))
        .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (StatusCode::OK, Some("r3")),
        "{body}"
    );
    let (_, r) = t
        .call(
            "POST",
            "/api/v1/flash-reservations/r1/confirm",
            Some(&t.ingest),
            None,
        )
        .await;
    assert_eq!(r["state"], "confirmed");
    let (_, r) = t
        .call(
            "POST",
            "/api/v1/flash-reservations/r3/release",
            Some(&t.ingest),
            None,
        )
        .await;
    assert_eq!(r["released"], true);
    let (_, s) = t
        .call("GET", "/api/v1/flash-sales/fs1", Some(&t.read), None)
        .await;
    assert_eq!(
        (s["taken"].as_i64(), s["available"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        t.call("POST", path, Some(&t.ingest), Some(reserve("r4", "u3")))
            .await
            .0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_partial_refund_returns_exactly_the_refunded_units_share() {
    let t = test_app().await;
    // 1,000 off a line of 3 units and 200 off a line of 1: refund one unit of the first line,
    // then the rest; the two refunds add up to the whole discount.
    let first = json!({"lines": [
        {"quantity": 3, "discounts": [{"promotion": "满减", "amount": 1000}], "refunded": 1},
        {"quantity": 1, "discounts": [{"promotion": "券", "amount": 200}], "refunded": 0}]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/pricing/refund-share",
            Some(&t.read),
            Some(first.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 334, "{body}");
    let rest = json!({"lines": [
        {"quantity": 3, "discounts": [{"promotion": "满减", "amount": 1000}], "already_refunded": 1, "refunded": 2},
        {"quantity": 1, "discounts": [{"promotion": "券", "amount": 200}], "refunded": 1}]});
    let (_, body) = t
        .call(
            "POST",
            "/api/v1/pricing/refund-share",
            Some(&t.read),
            Some(rest.to_string()),
        )
        .await;
    assert_eq!(body["total"], 866, "{body}");
    let too_many =
        json!({"lines": [{"quantity": 1, "discounts": [], "already_refunded": 1, "refunded": 1}]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/pricing/refund-share",
            Some(&t.read),
            Some(too_many.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("lines[0].refunded"))
    );
    let negative = json!({"lines": [{"quantity": 1, "refunded": 1,
        "discounts": [{"promotion": "满减", "amount": 100}, {"promotion": "券", "amount": -5}]}]});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/pricing/refund-share",
            Some(&t.read),
            Some(negative.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("lines[0].discounts[1].amount")
        )
    );
}

#[tokio::test]
async fn coupons_are_issued_in_bulk_once_per_batch() {
    let t = test_app().await;
    let template = json!({"id": "wave", "name": "人群券", "quota": 2, "valid_days": 7,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let issue = json!({"users": ["a", "b", "c"], "batch": "w1"}).to_string();
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/wave/issue",
            Some(&t.admin),
            Some(issue.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["summary"]["issued"].as_u64(),
            body["summary"]["sold_out"].as_u64()
        ),
        (Some(2), Some(1)),
        "the quota is 2: {body}"
    );
    let (_, again) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/wave/issue",
            Some(&t.admin),
            Some(issue),
        )
        .await;
    assert_eq!(again["summary"]["duplicates"].as_u64(), Some(2), "{again}");
    assert_eq!(again["summary"]["issued"].as_u64(), Some(0), "{again}");
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/wave/issue",
            Some(&t.admin),
            Some(json!({"segment": "nobody", "batch": "w2"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, bad) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/wave/issue",
            Some(&t.admin),
            Some(json!({"segment": "x", "users": ["a"], "batch": ""}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["errors"][0]["field"], "batch", "{bad}");
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/wave/issue",
            Some(&t.ingest),
            Some(json!({"users": ["a"], "batch": "w3"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn coupons_are_held_for_an_order_and_limited_per_device_and_phone() {
    let t = test_app().await;
    let template = json!({"id": "new", "name": "新人券", "per_device_limit": 1, "per_phone_limit": 1,
        "rule": {"type": "threshold", "tiers": [{"threshold": 5000, "off": 500}]}});
    let (status, body) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (
            body["per_device_limit"].as_i64(),
            body["per_phone_limit"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let t = &t;
    let claim = |body: Value| async move {
        t.call(
            "POST",
            "/api/v1/coupon-templates/new/claims",
            Some(&t.ingest),
            Some(body.to_string()),
        )
        .await
    };
    // A claim that does not name the device or phone the template limits is a 400 naming both.
    let (status, problem) = claim(json!({"user_id": "u1", "claim_key": "a"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["device_id", "phone"]);
    let (status, problem) =
        claim(json!({"user_id": "u1", "claim_key": "a", "device_id": "d1", "phone": "12"})).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("phone"))
    );
    let (status, coupon) = claim(json!({"user_id": "u1", "claim_key": "a", "device_id": "d1",
        "phone": "138 0013 8000"}))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    // A second account on the same device, or with the same number written differently, is refused.
    let (status, problem) = claim(json!({"user_id": "u2", "claim_key": "b", "device_id": "d1",
        "phone": "13900139000"}))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("device")),
        "{problem}"
    );
    let (status, problem) = claim(json!({"user_id": "u3", "claim_key": "c", "device_id": "d3",
        "phone": "+86 138-0013-8000"}))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("this phone number") && !detail.contains("138"),
        "{detail}"
    );

    // Checkout holds the coupon for order o1; order o2 cannot take it until o1 lets go.
    let code = coupon["code"].as_str().unwrap_or_default().to_owned();
    let reserve = |order: &str, seconds: i64| {
        json!({"user_id": "u1", "order_id": order, "hold_seconds": seconds}).to_string()
    };
    let path = format!("/api/v1/coupons/{code}/reserve");
    let (status, held) = t
        .call("POST", &path, Some(&t.ingest), Some(reserve("o1", 600)))
        .await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert!(held["held_until"].is_string(), "{held}");
    let (_, view) = t
        .call(
            "GET",
            &format!("/api/v1/coupons/{code}"),
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(
        (view["state"].as_str(), view["order_id"].as_str()),
        (Some("reserved"), Some("o1"))
    );
    let (status, _) = t
        .call("POST", &path, Some(&t.ingest), Some(reserve("o2", 600)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, problem) = t
        .call("POST", &path, Some(&t.ingest), Some(reserve("o2", 0)))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hold_seconds"))
    );
    let (status, _) = t
        .call(
            "POST",
            &format!("/api/v1/coupons/{code}/redeem"),
            Some(&t.ingest),
            Some(json!({"user_id": "u1", "order_id": "o2"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "held for o1");
    let (_, released) = t
        .call(
            "POST",
            &format!("/api/v1/coupons/{code}/release"),
            Some(&t.ingest),
            Some(json!({"order_id": "o1"}).to_string()),
        )
        .await;
    assert_eq!(
        released["released"], true,
        "an abandoned checkout gives the coupon back"
    );
    let (status, _) = t
        .call("POST", &path, Some(&t.ingest), Some(reserve("o2", 1)))
        .await;
    assert_eq!(status, StatusCode::OK);
    // o2's one-second hold lapses: the coupon is free for another order at once.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, body) = t
        .call(
            "POST",
            &format!("/api/v1/coupons/{code}/redeem"),
            Some(&t.ingest),
            Some(json!({"user_id": "u1", "order_id": "o3"}).to_string()),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("redeemed"))
    );
}

/// A running campaign `id`, 满300减50 in the stacking category `shop`, with a budget of 10,000
/// (two orders of 40,000).
/// What campaign `id` has spent, as its API reports it.
async fn campaign_spent(t: &common::TestApp, id: &str) -> Option<i64> {
    let (_, c) = t
        .call(
            "GET",
            &format!("/api/v1/campaigns/{id}"),
            Some(&t.read),
            None,
        )
        .await;
    c["spent"].as_i64()
}

/// Spends `amount` of campaign `campaign`'s budget under `key` for `order`, as a checkout
/// attempt does (with its trail entry), without the rest of the checkout.
async fn spend_as_checkout(
    t: &common::TestApp,
    campaign: &str,
    order: &str,
    key: &str,
    amount: i64,
) {
    let lines = shopgrowth_api::routes::budgets::lines(
        &format!("campaign:{campaign}"),
        shopgrowth_api::routes::budgets::today(&t.state),
    );
    let trail = shopgrowth_store::records::SpendTrail {
        campaign_id: campaign.into(),
        user_id: Some("u1".into()),
        order_id: Some(order.into()),
        attempt: key.rsplit(':').next().map(str::to_owned),
    };
    let now = shopgrowth_core::time::Timestamp::now().0;
    let spent = t
        .state
        .store
        .spend_budget(key.into(), lines, amount, now, Some(trail))
        .await;
    assert!(spent.is_ok(), "{spent:?}");
}

async fn running_budgeted_campaign(t: &common::TestApp, id: &str) {
    let campaign = json!({"id": id, "name": "满300减50", "budget": 10000,
        "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]},
                      "stacking": {"category": {"name": "shop"}}}});
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/campaigns",
            Some(&t.admin),
            Some(campaign.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = t
        .call(
            "POST",
            &format!("/api/v1/campaigns/{id}/transition"),
            Some(&t.admin),
            Some(json!({"to": "running"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn checkout_spends_campaign_budgets_and_holds_the_customers_coupon() {
    let t = test_app().await;
    let t = &t;
    // 满300减50 with a budget for two orders, and the customer's 满100减10 coupon.
    running_budgeted_campaign(t, "d11").await;
    let template = json!({"id": "c10", "name": "满100减10", "per_user_limit": 5,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    t.call(
        "POST",
        "/api/v1/coupon-templates",
        Some(&t.admin),
        Some(template.to_string()),
    )
    .await;
    let mut codes = Vec::new();
    for k in ["a", "b"] {
        let (_, c) = t
            .call(
                "POST",
                "/api/v1/coupon-templates/c10/claims",
                Some(&t.ingest),
                Some(json!({"user_id": "u1", "claim_key": k}).to_string()),
            )
            .await;
        codes.push(c["code"].as_str().unwrap_or_default().to_owned());
    }
    let checkout = |order: &str, coupons: Vec<String>| {
        json!({"order_id": order, "user_id": "u1", "coupons": coupons,
            "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]}})
        .to_string()
    };
    let post = |body: String| async move {
        t.call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(body),
        )
        .await
    };
    // Both coupons are offered; one applies (one coupon per order), after the campaign.
    let (status, first) = post(checkout("o1", codes.clone())).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["quote"]["discount"], 6000, "{first}");
    assert_eq!(
        first["coupons_held"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let held = first["coupons_held"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, c) = t
        .call(
            "GET",
            &format!("/api/v1/coupons/{held}"),
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(
        (c["state"].as_str(), c["order_id"].as_str()),
        (Some("reserved"), Some("o1"))
    );
    // The same order again spends and holds nothing twice.
    let (status, again) = post(checkout("o1", codes.clone())).await;
    assert_eq!(
        (status, &again["budget_keys"]),
        (StatusCode::OK, &first["budget_keys"])
    );
    let spent = |c: Value| c["spent"].as_i64();
    let (_, c) = t
        .call("GET", "/api/v1/campaigns/d11", Some(&t.read), None)
        .await;
    assert_eq!(spent(c), Some(5000));
    // While the campaign is paused, a retry of o1 still gets the answer o1 got (nothing priced
    // again), and another request under o1 is refused.
    let transition = |to: &'static str| async move {
        t.call(
            "POST",
            "/api/v1/campaigns/d11/transition",
            Some(&t.admin),
            Some(json!({ "to": to }).to_string()),
        )
        .await
        .0
    };
    assert_eq!(transition("paused").await, StatusCode::OK);
    let (status, replay) = post(checkout("o1", codes.clone())).await;
    assert_eq!((status, &replay), (StatusCode::OK, &first));
    let (status, problem) = post(checkout("o1", vec![])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("order_id")),
        "{problem}"
    );
    assert_eq!(transition("running").await, StatusCode::OK);
    // Another order may not take the held coupon, but gets the other one.
    let (status, problem) = post(checkout("o2", vec![held.clone()])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (_, c) = t
        .call("GET", "/api/v1/campaigns/d11", Some(&t.read), None)
        .await;
    assert_eq!(
        spent(c),
        Some(5000),
        "a refused checkout leaves the budget as it was"
    );
    let other: Vec<String> = codes.iter().filter(|c| **c != held).cloned().collect();
    let (status, second) = post(checkout("o2", other)).await;
    assert_eq!(
        (status, second["quote"]["discount"].as_i64()),
        (StatusCode::OK, Some(6000))
    );
    // The budget is spent: the third order is priced without the campaign, and says so.
    let (status, third) = post(checkout("o3", vec![])).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["quote"]["discount"], 0, "{third}");
    let (_, c) = t
        .call("GET", "/api/v1/campaigns/d11", Some(&t.read), None)
        .await;
    assert_eq!(spent(c), Some(10000));
    let (status, problem) =
        post(json!({"order_id": "", "user_id": "u1", "cart": {"lines": []}}).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["cart.lines", "order_id"]);
    // A coupon scoped to another category gives nothing on this cart.
    let scoped = json!({"id": "baby", "name": "母婴满100减10", "per_user_limit": 1,
        "scope": {"categories": ["母婴"]},
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    let (status, view) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(scoped.to_string()),
        )
        .await;
    assert_eq!(
        (status, &view["scope"]["categories"]),
        (StatusCode::CREATED, &json!(["母婴"]))
    );
    let (_, c) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/baby/claims",
            Some(&t.ingest),
            Some(json!({"user_id": "u1", "claim_key": "baby"}).to_string()),
        )
        .await;
    let baby = c["code"].as_str().unwrap_or_default().to_owned();
    let (status, fourth) = post(checkout("o4", vec![baby])).await;
    assert_eq!(status, StatusCode::OK, "{fourth}");
    assert_eq!(
        (
            fourth["quote"]["discount"].as_i64(),
            fourth["coupons_held"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "{fourth}"
    );
    // The order is cancelled: its campaign spend goes back.
    for key in first["budget_keys"].as_array().cloned().unwrap_or_default() {
        t.call(
            "POST",
            "/api/v1/budgets/revert",
            Some(&t.ingest),
            Some(json!({"key": key}).to_string()),
        )
        .await;
    }
    let (_, c) = t
        .call("GET", "/api/v1/campaigns/d11", Some(&t.read), None)
        .await;
    assert_eq!(spent(c), Some(5000));
    // The campaign's trail (newest first): o1's attempt held the discount and o1 kept it; o2's
    // first attempt held it and gave it back when its coupon could not be held (expired, not a
    // rolled-back order); o2 again, kept; o1's kept discount given back when cancelled.
    let (status, page) = t
        .call(
            "GET",
            "/api/v1/promotion-events?promotion_type=campaign&promotion_id=d11",
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let seen: Vec<(String, String, i64)> = page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap_or_default().to_owned(),
                        e["order_id"].as_str().unwrap_or_default().to_owned(),
                        e["amount"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let entry = |kind: &str, order: &str| (kind.to_owned(), order.to_owned(), 5000);
    assert_eq!(
        seen,
        [
            entry("rolled_back", "o1"),
            entry("redeemed", "o2"),
            entry("reserved", "o2"),
            entry("expired", "o2"),
            entry("reserved", "o2"),
            entry("redeemed", "o1"),
            entry("reserved", "o1")
        ],
        "{page}"
    );
}

#[tokio::test]
async fn racing_checkouts_of_one_order_keep_one_answer_and_give_back_the_other_coupon() {
    let t = test_app().await;
    let t = &t;
    let template = json!({"id": "c20", "name": "满100减10", "per_user_limit": 100,
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let claim = |k: String| async move {
        let (_, c) = t
            .call(
                "POST",
                "/api/v1/coupon-templates/c20/claims",
                Some(&t.ingest),
                Some(json!({"user_id": "u1", "claim_key": k}).to_string()),
            )
            .await;
        c["code"].as_str().unwrap_or_default().to_owned()
    };
    let post = |order: String, code: String| async move {
        let body = json!({"order_id": order, "user_id": "u1", "coupons": [code],
            "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]}});
        t.call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(body.to_string()),
        )
        .await
    };
    let state_of = |code: String| async move {
        let (_, c) = t
            .call(
                "GET",
                &format!("/api/v1/coupons/{code}"),
                Some(&t.read),
                None,
            )
            .await;
        (
            c["state"].as_str().map(str::to_owned),
            c["order_id"].as_str().map(str::to_owned),
        )
    };
    for k in 0..10 {
        let (a, b) = (claim(format!("a{k}")).await, claim(format!("b{k}")).await);
        let order = format!("race{k}");
        // Two checkouts of one order with different coupons at once: one answer is kept, the
        // other request is refused as different, and the coupon only it held is free again.
        let ((sa, qa), (sb, qb)) = tokio::join!(
            post(order.clone(), a.clone()),
            post(order.clone(), b.clone())
        );
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{qa} {qb}"
        );
        let (kept, other) = if sa == StatusCode::OK { (a, b) } else { (b, a) };
        assert_eq!(
            state_of(kept).await,
            (Some("reserved".into()), Some(order.clone()))
        );
        let (state, _) = state_of(other).await;
        assert_ne!(state.as_deref(), Some("reserved"), "{order}");
    }
}

#[tokio::test]
async fn a_checkout_gives_back_what_an_attempt_that_died_spent() {
    let t = test_app().await;
    running_budgeted_campaign(&t, "d12").await;
    // An attempt at order o9 spent 3,000 (on another cart) and died before its answer was kept.
    let store = &t.state.store;
    let dead = "checkout:o9:d12:dead".to_owned();
    spend_as_checkout(&t, "d12", "o9", &dead, 3000).await;
    let spent = || campaign_spent(&t, "d12");
    assert_eq!(spent().await, Some(3000));
    // The retry prices the cart it sends and spends 5,000 under its own key; the dead spend goes
    // back once the answer is kept, so the campaign has spent what the kept answer gives.
    let body = json!({"order_id": "o9", "user_id": "u1",
        "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]}});
    let (status, answer) = t
        .call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["quote"]["discount"], 5000, "{answer}");
    let keys = answer["budget_keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(keys.len(), 1, "{answer}");
    assert_ne!(keys[0].as_str(), Some(dead.as_str()));
    assert_eq!(spent().await, Some(5000));
    assert_eq!(
        store.standing_checkout_spends("o9".into()).await.ok(),
        Some(vec![(
            keys[0].as_str().unwrap_or_default().to_owned(),
            true
        )])
    );
}

#[tokio::test]
async fn the_sweeper_settles_checkout_attempts_that_died_and_keeps_what_kept_answers_use() {
    let t = test_app().await;
    running_budgeted_campaign(&t, "d13").await;
    let store = &t.state.store;
    let spent = || campaign_spent(&t, "d13");
    let settle = |before: i64| async move {
        let now = shopgrowth_core::time::Timestamp::now().0;
        shopgrowth_api::routes::pricing::settle_dead_checkouts(store, before, now).await
    };
    // A checkout that lived: its answer is kept and its attempt settled, so nothing is left.
    let body = json!({"order_id": "o20", "user_id": "u1",
        "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000}]}});
    let (status, answer) = t
        .call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(spent().await, Some(5000));
    let far = shopgrowth_core::time::Timestamp::now().0 + 3_600_000;
    assert_eq!(
        store.stale_checkout_attempts(far, 10).await.ok(),
        Some(vec![])
    );
    // The kept attempt noted again, as a race's loser that died before forgetting itself would
    // be left: the sweeper keeps the spend the kept answer lists.
    let kept_key = answer["budget_keys"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kept_attempt = kept_key.rsplit(':').next().unwrap_or_default().to_owned();
    let noted = store
        .note_checkout_attempt("o20".into(), kept_attempt, 0)
        .await;
    assert!(noted.is_ok(), "{noted:?}");
    // An attempt at order o21 noted and spent 3,000, then died; the order is never retried.
    let noted = store
        .note_checkout_attempt("o21".into(), "0badcafe".into(), 0)
        .await;
    assert!(noted.is_ok(), "{noted:?}");
    spend_as_checkout(&t, "d13", "o21", "checkout:o21:d13:0badcafe", 3000).await;
    let now = shopgrowth_core::time::Timestamp::now().0;
    // An attempt noted just now may still be running: a sweep before it leaves it alone.
    let running = store
        .note_checkout_attempt("o22".into(), "00c0ffee".into(), now)
        .await;
    assert!(running.is_ok(), "{running:?}");
    assert_eq!(spent().await, Some(8000));
    assert_eq!(settle(now - 60_000).await.ok(), Some(2));
    assert_eq!(
        spent().await,
        Some(5000),
        "the dead spend is given back, the kept one stays"
    );
    assert_eq!(
        store.standing_checkout_spends("o20".into()).await.ok(),
        Some(vec![(kept_key, true)])
    );
    assert_eq!(
        store.standing_checkout_spends("o21".into()).await.ok(),
        Some(vec![])
    );
    assert_eq!(
        store.stale_checkout_attempts(far, 10).await.ok(),
        Some(vec![("o22".to_owned(), "00c0ffee".to_owned())])
    );
    // Settled once: a second sweep finds nothing more to do.
    assert_eq!(settle(now - 60_000).await.ok(), Some(0));
    assert_eq!(spent().await, Some(5000));
    // The report counts one discounted order that kept its discount: the dead attempt's spend
    // expired; no order rolled back.
    let (status, report) = t
        .call("GET", "/api/v1/promotions/report", Some(&t.read), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let d13 = report["promotions"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["promotion_id"] == "d13").cloned())
        .unwrap_or(Value::Null);
    let counts = ["reserved", "redeemed", "rolled_back", "expired"].map(|k| d13[k].as_u64());
    assert_eq!(counts, [Some(2), Some(1), Some(0), Some(1)], "{d13}");
    assert_eq!(d13["conversion"].as_f64(), Some(1.0), "{d13}");
}

#[tokio::test]
async fn a_refund_gives_back_the_share_of_the_discount_its_units_carried() {
    let t = test_app().await;
    let t = &t;
    // 满300减50 with a budget of 100: one order of ¥350 over two lines.
    running_budgeted_campaign(t, "d14").await;
    let cart = json!({"lines": [{"sku": "a", "quantity": 3, "unit_price": 10000},
        {"sku": "b", "quantity": 1, "unit_price": 5000}]});
    let (status, checkout) = t
        .call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(json!({"order_id": "o7", "user_id": "u1", "cart": cart}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    let allocation = &checkout["quote"]["applied"][0]["allocation"];
    assert_eq!(allocation, &json!([[0, 4286], [1, 714]]), "{checkout}");
    let order = json!({"id": "o7", "user_id": "u1", "channel": "web", "currency": "CNY",
        "placed_at": "2026-11-11T00:00:05+08:00",
        "lines": [{"sku_id": "a", "quantity": 3, "unit_price": 10000, "discount": 4286},
                  {"sku_id": "b", "quantity": 1, "unit_price": 5000, "discount": 714}]});
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&t.ingest),
            Some(order.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let spent = || async {
        let (_, c) = t
            .call("GET", "/api/v1/campaigns/d14", Some(&t.read), None)
            .await;
        c["spent"].as_i64()
    };
    assert_eq!(spent().await, Some(5000));
    let refund = |id: &str, lines: Value| {
        let body = json!({"id": id, "refunded_at": "2026-11-12T10:00:00+08:00", "lines": lines});
        async move {
            t.call(
                "POST",
                "/api/v1/orders/o7/refunds",
                Some(&t.ingest),
                Some(body.to_string()),
            )
            .await
        }
    };
    // One of line 0's three units: the first unit's share of its 4,286 (1,429, the extra cent
    // on the first units) goes back to the campaign's budget.
    let (status, first) =
        refund("r1", json!([{"line_no": 0, "quantity": 1, "amount": 8571}])).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["promotions_returned"],
        json!([{"promotion_type": "campaign", "promotion_id": "d14",
            "subject": checkout["budget_keys"][0], "amount": 1429}]),
        "{first}"
    );
    assert_eq!(spent().await, Some(3571));
    // Sent again, it gives nothing back twice.
    let (status, again) =
        refund("r1", json!([{"line_no": 0, "quantity": 1, "amount": 8571}])).await;
    assert_eq!(
        (
            status,
            again["status"].as_str(),
            &again["promotions_returned"]
        ),
        (StatusCode::OK, Some("duplicate"), &json!([]))
    );
    assert_eq!(spent().await, Some(3571));
    // The rest of the order: 1,429 + 1,428 of line 0 and line 1's 714, so the refunds together
    // gave back exactly the 5,000 spent.
    let (status, rest) = refund(
        "r2",
        json!([{"line_no": 0, "quantity": 2, "amount": 17143}, {"line_no": 1, "quantity": 1, "amount": 4286}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["promotions_returned"][0]["amount"], 3571, "{rest}");
    assert_eq!(spent().await, Some(0));
    // On the trail for the customer, and in the report as money returned; the order still kept
    // the discount it had.
    let (_, trail) = t
        .call(
            "GET",
            "/api/v1/promotion-events?promotion_type=campaign&user_id=u1",
            Some(&t.read),
            None,
        )
        .await;
    let kinds: Vec<(&str, i64)> = trail["items"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| Some((e["kind"].as_str()?, e["amount"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [
            ("refunded", 3571),
            ("refunded", 1429),
            ("redeemed", 5000),
            ("reserved", 5000)
        ],
        "{trail}"
    );
    let (_, report) = t
        .call("GET", "/api/v1/promotions/report", Some(&t.read), None)
        .await;
    let d14 = report["promotions"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["promotion_id"] == "d14").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(
        (
            d14["refunded"].as_u64(),
            d14["amount_returned"].as_i64(),
            d14["conversion"].as_f64()
        ),
        (Some(2), Some(5000), Some(1.0)),
        "{d14}"
    );
    // The server died between the refund's write and the give-back: the refund is stored but
    // nothing came back. Sent again, it is a duplicate, and the give-back happens then, once.
    let (status, _) = t
        .call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(json!({"order_id": "o10", "user_id": "u1", "cart": cart}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut order10 = order.clone();
    order10["id"] = json!("o10");
    t.call(
        "POST",
        "/api/v1/orders",
        Some(&t.ingest),
        Some(order10.to_string()),
    )
    .await;
    assert_eq!(spent().await, Some(5000));
    let crashed: shopgrowth_core::model::Refund = serde_json::from_value(
        json!({"id": "r10", "refunded_at": "2026-11-12T10:00:00+08:00",
            "lines": [{"line_no": 1, "quantity": 1, "amount": 4286}]}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    t.state
        .store
        .add_refund("o10".into(), crashed, 1_780_000_000_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spent().await, Some(5000));
    let resend = |id: &str| {
        let body = json!({"id": id, "refunded_at": "2026-11-12T10:00:00+08:00",
            "lines": [{"line_no": 1, "quantity": 1, "amount": 4286}]});
        async move {
            t.call(
                "POST",
                "/api/v1/orders/o10/refunds",
                Some(&t.ingest),
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, mended) = resend("r10").await;
    assert_eq!(
        (
            status,
            mended["status"].as_str(),
            mended["promotions_returned"][0]["amount"].as_i64()
        ),
        (StatusCode::OK, Some("duplicate"), Some(714)),
        "{mended}"
    );
    let (_, once) = resend("r10").await;
    assert_eq!(once["promotions_returned"], json!([]), "{once}");
    assert_eq!(spent().await, Some(4286));
    // An order not checked out here gives nothing back.
    let plain = json!({"id": "o8", "user_id": "u1", "channel": "web", "currency": "CNY",
        "placed_at": "2026-11-11T00:00:05+08:00",
        "lines": [{"sku_id": "a", "quantity": 1, "unit_price": 10000, "discount": 0}]});
    t.call(
        "POST",
        "/api/v1/orders",
        Some(&t.ingest),
        Some(plain.to_string()),
    )
    .await;
    let (status, none) = t
        .call(
            "POST",
            "/api/v1/orders/o8/refunds",
            Some(&t.ingest),
            Some(
                json!({"id": "r3", "refunded_at": "2026-11-12T10:00:00+08:00",
                    "lines": [{"line_no": 0, "quantity": 1, "amount": 10000}]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(
        (status, &none["promotions_returned"]),
        (StatusCode::CREATED, &json!([])),
        "{none}"
    );
}

#[tokio::test]
async fn a_refund_gives_back_the_coupons_share_to_its_budgets() {
    let t = test_app().await;
    let t = &t;
    // A 满100减30 coupon whose template has a budget, used on an order of two units.
    let template = json!({"id": "c30", "name": "满100减30",
        "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 3001}]}});
    t.call(
        "POST",
        "/api/v1/coupon-templates",
        Some(&t.admin),
        Some(template.to_string()),
    )
    .await;
    let (status, _) = t
        .call(
            "PUT",
            "/api/v1/budgets/coupon:c30/limits/total",
            Some(&t.admin),
            Some(json!({"amount": 100000}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, claimed) = t
        .call(
            "POST",
            "/api/v1/coupon-templates/c30/claims",
            Some(&t.ingest),
            Some(json!({"user_id": "u2", "claim_key": "k"}).to_string()),
        )
        .await;
    let code = claimed["code"].as_str().unwrap_or_default().to_owned();
    let (status, checkout) = t
        .call(
            "POST",
            "/api/v1/pricing/checkout",
            Some(&t.ingest),
            Some(
                json!({"order_id": "o9", "user_id": "u2", "coupons": [code],
                    "cart": {"lines": [{"sku": "a", "quantity": 2, "unit_price": 6000}]}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    assert_eq!(checkout["quote"]["discount"], 3001, "{checkout}");
    let (status, redeemed) = t
        .call(
            "POST",
            &format!("/api/v1/coupons/{code}/redeem"),
            Some(&t.ingest),
            Some(json!({"user_id": "u2", "order_id": "o9", "discount": 3001}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{redeemed}");
    let used = || async {
        let (_, b) = t
            .call("GET", "/api/v1/budgets/coupon:c30", Some(&t.read), None)
            .await;
        b["periods"][0]["used"].as_i64()
    };
    assert_eq!(used().await, Some(3001));
    let order = json!({"id": "o9", "user_id": "u2", "channel": "web", "currency": "CNY",
        "placed_at": "2026-11-11T00:00:05+08:00",
        "lines": [{"sku_id": "a", "quantity": 2, "unit_price": 6000, "discount": 3001}]});
    t.call(
        "POST",
        "/api/v1/orders",
        Some(&t.ingest),
        Some(order.to_string()),
    )
    .await;
    // One of the two units: its share, 1,501 (the first unit carries the extra cent).
    let (status, refund) = t
        .call(
            "POST",
            "/api/v1/orders/o9/refunds",
            Some(&t.ingest),
            Some(
                json!({"id": "r1", "refunded_at": "2026-11-12T10:00:00+08:00",
                    "lines": [{"line_no": 0, "quantity": 1, "amount": 4499}]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(
        refund["promotions_returned"],
        json!([{"promotion_type": "coupon", "promotion_id": "c30", "subject": code, "amount": 1501}]),
        "{refund}"
    );
    assert_eq!(used().await, Some(1500));
    // Released (the rest of the order cancelled): the rest of the spend comes back, no more.
    let (status, _) = t
        .call(
            "POST",
            &format!("/api/v1/coupons/{code}/release"),
            Some(&t.ingest),
            Some(json!({"order_id": "o9"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(used().await, Some(0));
}

#[tokio::test]
async fn coupons_issue_themselves_to_new_users_and_on_events_and_show_in_the_centre() {
    let t = test_app().await;
    let t = &t;
    let template = |id: &str, extra: Value| {
        let mut t = json!({"id": id, "name": id, "per_user_limit": 1,
            "rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}});
        if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
            t.extend(extra.clone());
        }
        t.to_string()
    };
    for (id, extra) in [
        ("welcome", json!({"issue_on": "new_user"})),
        ("cart", json!({"issue_on": "event:add_to_cart", "quota": 1})),
        ("centre", json!({"in_centre": true})),
        ("gone", json!({"in_centre": true, "quota": 0})),
    ] {
        let (status, body) = t
            .call(
                "POST",
                "/api/v1/coupon-templates",
                Some(&t.admin),
                Some(template(id, extra)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, problem) = t
        .call(
            "POST",
            "/api/v1/coupon-templates",
            Some(&t.admin),
            Some(template("bad", json!({"issue_on": "event:teleport"}))),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("issue_on"))
    );
    // Two new users get the welcome coupon, once each, also when the batch is sent again.
    let users = json!({"users": [{"id": "n1"}, {"id": "n2"}]}).to_string();
    for _ in 0..2 {
        let (status, _) = t
            .call(
                "POST",
                "/api/v1/users/batch",
                Some(&t.ingest),
                Some(users.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let issued = |id: &'static str| async move {
        t.call(
            "GET",
            &format!("/api/v1/coupon-templates/{id}"),
            Some(&t.read),
            None,
        )
        .await
        .1["issued"]
            .as_i64()
    };
    assert_eq!(issued("welcome").await, Some(2));
    // An add-to-cart with a user issues the cart coupon, within its quota of 1.
    for (id, user) in [("e1", "n1"), ("e2", "n2")] {
        let event = json!({"id": id, "type": "add_to_cart", "time": "2026-11-24T10:00:00+08:00",
            "channel": "app", "user_id": user, "sku_id": "a"});
        let (status, _) = t
            .call(
                "POST",
                "/api/v1/events",
                Some(&t.ingest),
                Some(event.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(issued("cart").await, Some(1));
    // The centre shows what n1 may claim.
    let (status, offers) = t
        .call(
            "GET",
            "/api/v1/coupon-centre?user_id=n1",
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{offers}");
    let view: Vec<(String, bool)> = offers
        .as_array()
        .map(|o| {
            o.iter()
                .map(|o| {
                    (
                        o["id"].as_str().unwrap_or_default().to_owned(),
                        o["can_claim"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        view,
        [("centre".to_owned(), true), ("gone".to_owned(), false)]
    );
    t.call(
        "POST",
        "/api/v1/coupon-templates/centre/claims",
        Some(&t.ingest),
        Some(json!({"user_id": "n1", "claim_key": "k"}).to_string()),
    )
    .await;
    let (_, offers) = t
        .call(
            "GET",
            "/api/v1/coupon-centre?user_id=n1",
            Some(&t.read),
            None,
        )
        .await;
    assert_eq!(
        (offers[0]["claimed"].as_i64(), offers[0]["reason"].as_str()),
        (Some(1), Some("claimed"))
    );
    let (status, _) = t
        .call("GET", "/api/v1/coupon-centre?user_id=", Some(&t.read), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_page_lists_each_coupon_usable_or_why_not() {
    let t = test_app().await;
    running_budgeted_campaign(&t, "d20").await;
    let (c, stop) = common::serve(&t).await;
    // Four templates, a coupon of each for u1: 满100减10, 满100减20 (held by another order),
    // 满1000减200 (out of reach), and 满100减30 on books only.
    for (id, name, threshold, off, scope) in [
        ("t10", "满100减10", 10_000, 1_000, None),
        ("t20", "满100减20", 10_000, 2_000, None),
        ("t200", "满1000减200", 100_000, 20_000, None),
        (
            "tbook",
            "图书满100减30",
            10_000,
            3_000,
            Some(json!({"categories": ["图书"]})),
        ),
    ] {
        let mut template = json!({"id": id, "name": name,
            "rule": {"type": "threshold", "tiers": [{"threshold": threshold, "off": off}]}});
        if let Some(scope) = scope {
            template["scope"] = scope;
        }
        let (status, body) = c.post("/api/v1/coupon-templates", &t.admin, template).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut code = std::collections::HashMap::new();
    for id in ["t10", "t20", "t200", "tbook"] {
        let (status, claimed) = c
            .post(
                &format!("/api/v1/coupon-templates/{id}/claims"),
                &t.ingest,
                json!({"user_id": "u1", "claim_key": id}),
            )
            .await;
        assert_eq!(status, 201, "{claimed}");
        code.insert(id, claimed["code"].as_str().unwrap_or_default().to_owned());
    }
    let cart =
        json!({"lines": [{"sku": "a", "quantity": 1, "unit_price": 40000, "category": ["母婴"]}]});
    // Another order holds the 满100减20 coupon.
    let (status, held) = c
        .post(
            "/api/v1/pricing/checkout",
            &t.ingest,
            json!({"order_id": "o9", "user_id": "u1", "cart": cart, "coupons": [code["t20"]]}),
        )
        .await;
    assert_eq!(status, 200, "{held}");

    let (status, listed) = c
        .post(
            "/api/v1/pricing/coupons",
            &t.read,
            json!({"user_id": "u1", "cart": cart}),
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    // ¥400 less the campaign's ¥50 is ¥350: 满100减10 saves ¥10 more.
    assert_eq!(listed["total_without_coupon"], 35_000, "{listed}");
    assert_eq!(listed["best"].as_str(), Some(code["t10"].as_str()));
    assert_eq!(
        (
            listed["usable"].as_array().map(Vec::len),
            listed["usable"][0]["saves"].as_i64(),
            listed["usable"][0]["total"].as_i64()
        ),
        (Some(1), Some(1_000), Some(34_000)),
        "{listed}"
    );
    let why = |id: &str| {
        listed["unusable"]
            .as_array()
            .and_then(|u| u.iter().find(|x| x["code"] == code[id]).cloned())
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
    };
    assert_eq!(
        (
            why("t200")["reason"].as_str(),
            why("t200")["shortfall"].as_i64()
        ),
        (Some("not_reached"), Some(65_000))
    );
    assert_eq!(why("t200")["message"], "满1000减200: 还差 ¥650.00");
    assert_eq!(why("tbook")["reason"], "no_lines");
    assert_eq!(why("t20")["reason"], "held");
    // The order that holds it may use it, and it is the better one there.
    let (_, for_o9) = c
        .post(
            "/api/v1/pricing/coupons",
            &t.read,
            json!({"user_id": "u1", "cart": cart, "order_id": "o9"}),
        )
        .await;
    assert_eq!(
        for_o9["best"].as_str(),
        Some(code["t20"].as_str()),
        "{for_o9}"
    );
    // Validating one code says the same, and more: whose it is, used or not.
    let validate = |id: &str, user: &str, order: Option<&str>| {
        let c = &c;
        let (path, key) = (
            format!("/api/v1/coupons/{}/validate", code[id]),
            t.read.clone(),
        );
        let body = json!({"user_id": user, "cart": cart, "order_id": order});
        async move { c.post(&path, &key, body).await }
    };
    let (status, v) = validate("t200", "u1", None).await;
    assert_eq!(
        (
            status,
            v["valid"].as_bool(),
            v["reason"].as_str(),
            v["shortfall"].as_i64()
        ),
        (200, Some(false), Some("not_reached"), Some(65_000)),
        "{v}"
    );
    let (_, v) = validate("t20", "u1", None).await;
    assert_eq!(v["reason"], "held", "{v}");
    let (_, v) = validate("t20", "u1", Some("o9")).await;
    assert_eq!(
        (
            v["valid"].as_bool(),
            v["saves"].as_i64(),
            v["total"].as_i64()
        ),
        (Some(true), Some(2_000), Some(33_000)),
        "the order that holds it: {v}"
    );
    // Checking out with the best coupon prices as the list said.
    let (status, paid) = c
        .post(
            "/api/v1/pricing/checkout",
            &t.ingest,
            // As the customer typed it: lower case.
            json!({"order_id": "o10", "user_id": "u1", "cart": cart,
                   "coupons": [code["t10"].to_lowercase()]}),
        )
        .await;
    assert_eq!(
        (status, paid["quote"]["total"].as_i64()),
        (200, Some(34_000))
    );
    // A code typed in lower case, with spaces round it, is the same code.
    let typed = format!(" {} ", code["tbook"].to_lowercase());
    let (status, v) = c
        .post(
            &format!("/api/v1/coupons/{}/validate", typed.replace(' ', "%20")),
            &t.read,
            json!({"user_id": "u1", "cart": cart}),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str(), v["reason"].as_str()),
        (200, Some(code["tbook"].as_str()), Some("no_lines")),
        "{v}"
    );
    let (_, v) = validate("tbook", "u2", None).await;
    assert_eq!(v["reason"], "not_yours", "{v}");
    let (status, redeemed) = c
        .post(
            &format!("/api/v1/coupons/{}/redeem", code["t10"]),
            &t.ingest,
            json!({"user_id": "u1", "order_id": "o10"}),
        )
        .await;
    assert_eq!(status, 200, "{redeemed}");
    let (_, v) = validate("t10", "u1", None).await;
    assert_eq!(
        (v["valid"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("used"))
    );
    let (status, _) = c
        .post(
            "/api/v1/coupons/NO-SUCH-CODE/validate",
            &t.read,
            json!({"user_id": "u1", "cart": cart}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, bad) = c
        .post(
            "/api/v1/pricing/coupons",
            &t.read,
            json!({"user_id": "", "cart": {"lines": []}}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templates_codes_start_with_its_prefix() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let template = json!({"id": "d11", "name": "双11满300减50", "code_prefix": "DOUBLE11-",
        "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]}});
    let (status, made) = c.post("/api/v1/coupon-templates", &t.admin, template).await;
    assert_eq!(
        (status, made["code_prefix"].as_str()),
        (201, Some("DOUBLE11-"))
    );
    let (status, claimed) = c
        .post(
            "/api/v1/coupon-templates/d11/claims",
            &t.ingest,
            json!({"user_id": "u1", "claim_key": "k1"}),
        )
        .await;
    let code = claimed["code"].as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 201, "{claimed}");
    assert!(
        code.starts_with("DOUBLE11-") && code.len() == 9 + 16,
        "{code}"
    );
    let (status, found) = c.get(&format!("/api/v1/coupons/{code}"), &t.read).await;
    assert_eq!((status, found["user_id"].as_str()), (200, Some("u1")));
    let bad = json!({"id": "d12", "name": "x", "code_prefix": "double 11",
        "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]}});
    let (status, refused) = c.post("/api/v1/coupon-templates", &t.admin, bad).await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (400, Some("code_prefix")),
        "{refused}"
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_campaign_applies_only_inside_its_days_and_hours() {
    use chrono::Datelike;
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let tz = t.state.audience.config().features.tz;
    let today = chrono::Utc::now()
        .with_timezone(&tz)
        .weekday()
        .number_from_monday();
    let tomorrow = today % 7 + 1;
    // 满100减10 on today's weekday, 满100减20 on tomorrow's: only the first applies now.
    for (id, weekday, off) in [("today", today, 1_000), ("tomorrow", tomorrow, 2_000)] {
        let campaign = json!({"id": id, "name": id, "recurrence": {"weekdays": [weekday]},
            "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": off}]},
                          "stacking": {"category": {"name": id}}}});
        let (status, made) = c.post("/api/v1/campaigns", &t.admin, campaign).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["recurrence"]["weekdays"][0], weekday);
        let (status, _) = c
            .post(
                &format!("/api/v1/campaigns/{id}/transition"),
                &t.admin,
                json!({"to": "running"}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let cart = json!({"cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 20000}]}});
    let (status, quote) = c.post("/api/v1/pricing/quote", &t.read, cart).await;
    let applied: Vec<&str> = quote["applied"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!((status, applied), (200, vec!["today"]), "{quote}");
    // Bad recurrences name their fields.
    let bad = json!({"id": "bad", "name": "bad", "recurrence": {"weekdays": [8], "from": "8pm"},
        "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]}}});
    let (status, refused) = c.post("/api/v1/campaigns", &t.admin, bad).await;
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        (status, fields),
        (
            400,
            vec![
                "promotion.stacking",
                "recurrence.weekdays",
                "recurrence.from"
            ]
        ),
        "{refused}"
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_limited_per_customer_is_given_that_often_also_at_once() {
    let t = test_app().await;
    let (c, stop) = common::serve(&t).await;
    let campaign = json!({"id": "once", "name": "新人立减", "per_customer_limit": 1,
        "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]},
                      "stacking": {"category": {"name": "shop"}}}});
    let (status, made) = c.post("/api/v1/campaigns", &t.admin, campaign).await;
    assert_eq!(
        (status, made["per_customer_limit"].as_i64()),
        (201, Some(1)),
        "{made}"
    );
    let (status, _) = c
        .post(
            "/api/v1/campaigns/once/transition",
            &t.admin,
            json!({"to": "running"}),
        )
        .await;
    assert_eq!(status, 200);
    let checkout = |order: &str, user: &str| {
        json!({"order_id": order, "user_id": user,
            "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 20000}]}})
    };
    let applied = |answer: &Value| -> Vec<String> {
        answer["quote"]["applied"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, first) = c
        .post("/api/v1/pricing/checkout", &t.ingest, checkout("o1", "u1"))
        .await;
    assert_eq!(
        (status, applied(&first)),
        (200, vec!["once".to_owned()]),
        "{first}"
    );
    // The second order of the same customer is priced without it, and says why.
    let (_, second) = c
        .post("/api/v1/pricing/checkout", &t.ingest, checkout("o2", "u1"))
        .await;
    assert!(applied(&second).is_empty(), "{second}");
    assert_eq!(second["customer_limit_reached"], json!(["once"]));
    let (_, quote) = c
        .post(
            "/api/v1/pricing/quote",
            &t.read,
            json!({"user_id": "u1", "cart": {"lines": [{"sku": "a", "quantity": 1, "unit_price": 20000}]}}),
        )
        .await;
    assert_eq!(quote["total"], 20000, "the dry run knows it too: {quote}");
    assert_eq!(
        (
            quote["not_applied"][0]["code"].as_str(),
            quote["not_applied"][0]["message"].as_str()
        ),
        (Some("used_up"), Some("新人立减: 每人限享次数已用完"))
    );
    // Cancelling the first order gives the use back.
    let key = first["budget_keys"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = c
        .post("/api/v1/budgets/revert", &t.ingest, json!({"key": key}))
        .await;
    assert_eq!(status, 200);
    let (_, third) = c
        .post("/api/v1/pricing/checkout", &t.ingest, checkout("o3", "u1"))
        .await;
    assert_eq!(applied(&third), vec!["once".to_owned()], "{third}");
    // Ten orders of another customer at once: exactly one gets it.
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (c, key, body) = (
            std::sync::Arc::clone(&c),
            t.ingest.clone(),
            checkout(&format!("r{i}"), "u2"),
        );
        tasks.push(tokio::spawn(async move {
            c.post("/api/v1/pricing/checkout", &key, body).await
        }));
    }
    let mut got = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{answer}");
        got += applied(&answer).len();
    }
    assert_eq!(got, 1, "one use for u2, however many orders at once");
    let bad = json!({"id": "bad", "name": "x", "per_customer_limit": 0,
        "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 10000, "off": 1000}]},
                      "stacking": {"category": {"name": "shop"}}}});
    let (status, refused) = c.post("/api/v1/campaigns", &t.admin, bad).await;
    assert_eq!(
        (status, refused["errors"][0]["field"].as_str()),
        (400, Some("per_customer_limit"))
    );
    let _ = stop.send(());
}
