//! `shopgrowth coupon|budget|pricing|red-packet|group …` on a store prepared through the store's own API.

use serde_json::{json, Value};
use shopgrowth_store::records::{
    CouponTemplateRecord, GroupDealRecord, Joined, PacketClaim, RedPacketRecord,
};
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
            code_prefix: None,
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
    // A template made from a file: the API's checks, the id the idempotency key.
    let vip = data.join("vip.json");
    std::fs::write(
        &vip,
        json!({"id": "vip20", "name": "会员8折券", "quota": 500, "valid_days": 30,
            "per_device_limit": 1, "scope": {"categories": ["母婴"]},
            "rule": {"type": "percent_off", "percent_bp": 2000, "cap": 5000}})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let vip = vip.to_string_lossy().into_owned();
    let created = shopgrowth(data, &["coupon", "create-template", &vip]);
    assert_eq!(
        (
            created["created"].as_bool(),
            created["template"]["quota"].as_i64(),
            created["template"]["per_device_limit"].as_i64(),
            created["template"]["valid_days"].as_i64()
        ),
        (Some(true), Some(500), Some(1), Some(30)),
        "{created}"
    );
    assert_eq!(created["template"]["scope"]["categories"], json!(["母婴"]));
    assert_eq!(
        shopgrowth(data, &["coupon", "create-template", &vip])["created"],
        false
    );
    let listed = shopgrowth(data, &["coupon", "templates", "--limit", "10"]);
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == created["template"]["id"])),
        "{listed}"
    );
    let bad = data.join("bad-template.json");
    std::fs::write(
        &bad,
        json!({"id": "bad", "name": "x", "quota": -1, "issue_on": "sometimes",
            "rule": {"type": "price_cut", "off_per_unit": 100}})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["coupon", "create-template", &bad.to_string_lossy()]);
    assert!(
        err.contains("bad-template.json") && err.contains("quota") && err.contains("issue_on"),
        "{err}"
    );
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
    // A category's per-order limit, as the wire names it: both of the shop's promotions apply.
    let stacked = data.join("stacked.json");
    std::fs::write(
        &stacked,
        json!([
            {"id": "d11", "name": "满300减50",
             "rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]},
             "stacking": {"category": {"name": "shop", "limit": 2}}},
            {"id": "d12", "name": "满200减30",
             "rule": {"type": "threshold", "tiers": [{"threshold": 20000, "off": 3000}]},
             "stacking": {"category": {"name": "shop", "limit": 2}}}])
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stacked = stacked.to_string_lossy();
    let quote = shopgrowth(data, &["pricing", "quote", &cart, "--promotions", &stacked]);
    assert_eq!(quote["discount"].as_i64(), Some(8000), "{quote}");
    // No campaigns live in this store: nothing off.
    let live = shopgrowth(data, &["pricing", "quote", &cart]);
    assert_eq!(live["discount"], 0);
    // A cart that cannot be priced is refused, naming the file and each field.
    let bad = data.join("bad-cart.json");
    std::fs::write(
        &bad,
        json!({"lines": [{"sku": " ", "quantity": 0, "unit_price": 100}]}).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = shopgrowth_fails(data, &["pricing", "quote", &bad.to_string_lossy()]);
    assert!(refused.contains("bad-cart.json"), "{refused}");
    assert!(refused.contains("lines[0].sku"), "{refused}");
    assert!(refused.contains("lines[0].quantity"), "{refused}");

    // A partial refund's share of each discount: 1,000 off 3 units, one refunded takes 334,
    // the other two 666.
    let refund = |name: &str, already: i64, now: i64| {
        let file = data.join(name);
        std::fs::write(
            &file,
            json!({"lines": [{"quantity": 3, "discounts": [{"promotion": "d11", "amount": 1000}],
                "already_refunded": already, "refunded": now}]})
            .to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        file.to_string_lossy().into_owned()
    };
    let first = shopgrowth(data, &["pricing", "refund-share", &refund("r1.json", 0, 1)]);
    let rest = shopgrowth(data, &["pricing", "refund-share", &refund("r2.json", 1, 2)]);
    assert_eq!(
        (first["total"].as_i64(), rest["total"].as_i64()),
        (Some(334), Some(666))
    );
    assert_eq!(first["shares"][0]["promotion"], "d11");
    let refused = shopgrowth_fails(data, &["pricing", "refund-share", &refund("r3.json", 2, 2)]);
    assert!(
        refused.contains("r3.json") && refused.contains("lines[0]"),
        "{refused}"
    );
}

#[tokio::test]
async fn red_packets_and_groups_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path();
    let now = shopgrowth_core::time::Timestamp::now().0;
    {
        let store = Store::open(&Location::Sqlite(data.join("shopgrowth.db")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let packet = RedPacketRecord {
            id: "rp".into(),
            sender: "boss".into(),
            kind: "lucky".into(),
            total: 1_000,
            currency: "CNY".into(),
            shares: 3,
            claimed_count: 0,
            claimed_amount: 0,
            state: "open".into(),
            returned: 0,
            expires_at: now + 60_000,
            created_at: now,
            unlock_helpers: 0,
            helpers: 0,
            opens_at: 0,
            rain_id: None,
            helps_per_helper_per_day: None,
        };
        assert!(store
            .create_red_packet(packet, vec![500, 300, 200])
            .await
            .unwrap_or(false));
        let claim = store
            .claim_red_packet("rp".into(), "amy".into(), now + 1)
            .await;
        assert!(matches!(claim, Ok(PacketClaim::New(_))), "{claim:?}");
        let deal = GroupDealRecord {
            id: "deal".into(),
            sku: "durian".into(),
            group_size: 3,
            leader_price: 5_900,
            member_price: 6_900,
            window_ms: 3_600_000,
            starts_at: now,
            ends_at: now + 86_400_000,
            created_at: now,
        };
        assert!(store.create_group_deal(deal).await.unwrap_or(false));
        let opened = store
            .open_group(
                "deal".into(),
                "g1".into(),
                "lee".into(),
                "o1".into(),
                now + 1,
            )
            .await;
        assert!(matches!(opened, Ok(Joined::New(_))), "{opened:?}");
        let joined = store
            .join_group("g1".into(), "bo".into(), "o2".into(), now + 2)
            .await;
        assert!(matches!(joined, Ok(Joined::New(_))), "{joined:?}");
    }
    let packet = shopgrowth(data, &["red-packet", "show", "rp"]);
    assert_eq!(
        (packet["claimed_count"].as_i64(), packet["state"].as_str()),
        (Some(1), Some("open"))
    );
    let claims = packet["claims"].as_array().cloned().unwrap_or_default();
    assert_eq!(claims.len(), 1, "unclaimed shares stay secret: {packet}");
    assert_eq!(claims[0]["claimed_by"], "amy");
    assert_eq!(packet["claimed_amount"], claims[0]["amount"]);

    // A packet sent from a file: the API's checks, the id the idempotency key.
    let send = data.join("packet.json");
    std::fs::write(
        &send,
        json!({"id": "rp2", "sender": "shop", "kind": "lucky", "total": 8888, "currency": "CNY",
            "shares": 10, "min_share": 100})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let send = send.to_string_lossy();
    let sent = shopgrowth(data, &["red-packet", "send", &send]);
    assert_eq!(
        (
            sent["created"].as_bool(),
            sent["packet"]["total"].as_i64(),
            sent["packet"]["shares"].as_i64(),
            sent["packet"]["kind"].as_str()
        ),
        (Some(true), Some(8888), Some(10), Some("lucky")),
        "{sent}"
    );
    assert_eq!(
        shopgrowth(data, &["red-packet", "send", &send])["created"],
        false
    );
    let bad = data.join("bad-packet.json");
    std::fs::write(
        &bad,
        json!({"id": "rp3", "sender": "shop", "kind": "lucky", "total": 500, "currency": "CNY",
            "shares": 10, "min_share": 100})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["red-packet", "send", &bad.to_string_lossy()]);
    assert!(
        err.contains("bad-packet.json") && err.contains("total"),
        "{err}"
    );
    // A share-to-unlock packet starts locked, waiting for its helpers.
    let share = data.join("share-packet.json");
    std::fs::write(
        &share,
        json!({"id": "rp4", "sender": "amy", "kind": "fixed", "total": 600, "currency": "CNY",
            "shares": 2, "unlock_helpers": 3})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sent = shopgrowth(data, &["red-packet", "send", &share.to_string_lossy()]);
    assert_eq!(
        (
            sent["packet"]["state"].as_str(),
            sent["packet"]["unlock_helpers"].as_i64(),
            sent["packet"]["helpers"].as_i64()
        ),
        (Some("locked"), Some(3), Some(0)),
        "{sent}"
    );
    // A red-packet rain of two rounds, scheduled from a file; the id is the idempotency key.
    let rain = data.join("rain.json");
    let at = |ms: i64| shopgrowth_core::time::Timestamp(ms).to_rfc3339();
    std::fs::write(
        &rain,
        json!({"id": "night", "sender": "shop", "currency": "CNY", "rounds": [
            {"starts_at": at(now + 3_600_000), "seconds": 60, "total": 5000, "shares": 10},
            {"starts_at": at(now + 7_200_000), "seconds": 60, "total": 3000, "shares": 6}]})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rain = rain.to_string_lossy();
    let made = shopgrowth(data, &["red-packet", "rain", &rain]);
    assert_eq!(
        (
            made["created"].as_bool(),
            made["rain"]["total"].as_i64(),
            made["rain"]["rounds"][1]["packet_id"].as_str()
        ),
        (Some(true), Some(8000), Some("night:2")),
        "{made}"
    );
    assert_eq!(
        shopgrowth(data, &["red-packet", "rain", &rain])["created"],
        false
    );
    let shown = shopgrowth(data, &["red-packet", "rain-show", "night"]);
    assert_eq!(shown["rounds"].as_array().map(Vec::len), Some(2), "{shown}");
    let bad = data.join("bad-rain.json");
    std::fs::write(
        &bad,
        json!({"id": "r2", "sender": "shop", "currency": "CNY", "rounds": [
            {"starts_at": at(now), "seconds": 60, "total": 5000, "shares": 20000}]})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["red-packet", "rain", &bad.to_string_lossy()]);
    assert!(
        err.contains("bad-rain.json") && err.contains("rounds[0].shares"),
        "{err}"
    );

    let group = shopgrowth(data, &["group", "show", "g1"]);
    assert_eq!(
        (
            group["joined"].as_i64(),
            group["missing"].as_i64(),
            group["state"].as_str()
        ),
        (Some(2), Some(1), Some("open"))
    );
    let members = group["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .any(|m| m["user_id"] == "lee" && m["leader"] == true && m["price"] == 5_900));

    // A deal from a file, as the API takes it; the id is the idempotency key.
    let deal = data.join("deal.json");
    std::fs::write(
        &deal,
        json!({"id": "mango", "sku": "mango", "group_size": 3, "leader_price": 2_900,
            "member_price": 3_900, "starts_at": "2026-11-11T00:00:00Z",
            "ends_at": "2026-11-12T00:00:00Z"})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deal = deal.to_string_lossy();
    let created = shopgrowth(data, &["group", "create-deal", &deal]);
    assert_eq!(
        (
            created["created"].as_bool(),
            created["deal"]["window_seconds"].as_i64()
        ),
        (Some(true), Some(86_400))
    );
    assert_eq!(
        shopgrowth(data, &["group", "create-deal", &deal])["created"],
        false
    );
    let deals = shopgrowth(data, &["group", "deals"]);
    assert_eq!(deals.as_array().map(Vec::len), Some(2), "{deals}");
    assert_eq!(
        (deals[0]["id"].as_str(), deals[1]["id"].as_str()),
        (Some("deal"), Some("mango"))
    );
    // Every packet so far by id (rain rounds included), two at a time.
    let page = shopgrowth(data, &["red-packet", "list", "--limit", "2"]);
    let ids: Vec<&str> = page
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["night:1", "night:2"], "{page}");
    let rest = shopgrowth(data, &["red-packet", "list", "--after", "night:2"]);
    assert_eq!(
        rest.as_array().map(Vec::len),
        Some(3),
        "rp, rp2, rp4: {rest}"
    );
    let bad = data.join("bad-deal.json");
    std::fs::write(
        &bad,
        json!({"id": "x", "sku": "x", "group_size": 1, "leader_price": 1, "member_price": 1,
            "starts_at": "2026-11-11T00:00:00Z", "ends_at": "2026-11-12T00:00:00Z"})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["group", "create-deal", &bad.to_string_lossy()]);
    assert!(
        err.contains("bad-deal.json") && err.contains("group_size"),
        "{err}"
    );

    // An unknown id is an error that names it.
    let err = shopgrowth_fails(data, &["group", "show", "nope"]);
    assert!(err.contains("no group \"nope\""), "{err}");
}

/// Runs the binary expecting it to fail; its error output.
fn shopgrowth_fails(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shopgrowth"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("SHOPGROWTH_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn campaigns_are_created_and_moved_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path();
    let file = data.join("campaign.json");
    std::fs::write(
        &file,
        json!({"id": "d11", "name": "双11 满300减50", "budget": 100000,
            "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 5000}]},
                "stacking": {"category": {"name": "shop"}}}})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file = file.to_string_lossy();
    let created = shopgrowth(data, &["campaign", "create", &file]);
    assert_eq!(created["created"], true);
    assert_eq!(created["campaign"]["state"], "draft");
    // The id is the idempotency key.
    let again = shopgrowth(data, &["campaign", "create", &file]);
    assert_eq!(again["created"], false);
    // Its budget is its budget scope's total limit.
    let budget = shopgrowth(data, &["budget", "show", "campaign:d11"]);
    assert!(budget.to_string().contains("100000"), "{budget}");

    let running = shopgrowth(data, &["campaign", "transition", "d11", "--to", "running"]);
    assert_eq!(running["state"], "running");
    let paused = shopgrowth(data, &["campaign", "transition", "d11", "--to", "paused"]);
    assert_eq!(paused["state"], "paused");
    // The same rules as the API: no start time in the future, no schedule; unknown states named.
    let err = shopgrowth_fails(
        data,
        &["campaign", "transition", "d11", "--to", "scheduled"],
    );
    assert!(err.contains("start time in the future"), "{err}");
    let err = shopgrowth_fails(data, &["campaign", "transition", "d11", "--to", "sideways"]);
    assert!(
        err.contains("one of scheduled, running, paused, ended"),
        "{err}"
    );
    let shown = shopgrowth(data, &["campaign", "show", "d11"]);
    let changes = shown["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 3, "created, running, paused: {shown}");

    // An edit needs the version it was made from; it is recorded with each field that changed.
    let version = shown["campaign"]["version"].as_i64().unwrap_or_default();
    let edit = data.join("edit.json");
    let edited_body = |version: i64| {
        json!({"version": version, "name": "双11 满300减60", "budget": 120000,
            "promotion": {"rule": {"type": "threshold", "tiers": [{"threshold": 30000, "off": 6000}]},
                "stacking": {"category": {"name": "shop"}}}})
        .to_string()
    };
    std::fs::write(&edit, edited_body(version)).unwrap_or_else(|e| panic!("{e}"));
    let edit = edit.to_string_lossy();
    let edited = shopgrowth(data, &["campaign", "edit", "d11", &edit]);
    assert_eq!(
        (edited["name"].as_str(), edited["version"].as_i64()),
        (Some("双11 满300减60"), Some(version + 1)),
        "{edited}"
    );
    let budget = shopgrowth(data, &["budget", "show", "campaign:d11"]);
    assert!(budget.to_string().contains("120000"), "{budget}");
    let shown = shopgrowth(data, &["campaign", "show", "d11"]);
    let last = &shown["changes"][3]["change"];
    assert_eq!(
        (
            last["action"].as_str(),
            last["by"].as_str(),
            last["while"].as_str()
        ),
        (Some("edited"), Some("cli"), Some("paused")),
        "{shown}"
    );
    assert_eq!(
        last["fields"]["budget"],
        json!({"from": 100000, "to": 120000})
    );
    // The same file again is based on a version that is no longer current: refused, unchanged.
    let err = shopgrowth_fails(data, &["campaign", "edit", "d11", &edit]);
    assert!(err.contains("version"), "{err}");
    let err = shopgrowth_fails(data, &["campaign", "edit", "nope", &edit]);
    assert!(err.contains("nope"), "{err}");

    // A bad file names the file, the field and the reason.
    let bad = data.join("bad.json");
    std::fs::write(
        &bad,
        json!({"id": "x", "name": "x", "promotion": {"rule": {"type": "threshold", "tiers": "many"}}})
            .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["campaign", "create", &bad.to_string_lossy()]);
    assert!(
        err.contains("bad.json") && err.contains("promotion.rule"),
        "{err}"
    );
}

#[tokio::test]
async fn flash_sales_are_created_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path();
    let file = data.join("sale.json");
    std::fs::write(
        &file,
        json!({"id": "s11", "sku": "phone", "price": 99900, "stock": 100, "per_user_limit": 2,
            "starts_at": "2026-11-11T00:00:00Z", "ends_at": "2026-11-12T00:00:00Z"})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file = file.to_string_lossy();
    let created = shopgrowth(data, &["flash", "create", &file]);
    assert_eq!(created["created"], true);
    assert_eq!(
        (
            created["sale"]["available"].as_i64(),
            created["sale"]["per_user_limit"].as_i64()
        ),
        (Some(100), Some(2))
    );
    assert_eq!(
        shopgrowth(data, &["flash", "create", &file])["created"],
        false,
        "the id is the idempotency key"
    );
    assert_eq!(shopgrowth(data, &["flash", "show", "s11"])["stock"], 100);
    let sales = shopgrowth(data, &["flash", "list"]);
    assert_eq!(sales[0]["id"], "s11", "{sales}");
    // The API's checks, each naming its field.
    let bad = data.join("bad.json");
    std::fs::write(
        &bad,
        json!({"id": "s12", "sku": "phone", "price": -1, "stock": 10, "per_user_limit": 0,
            "starts_at": "2026-11-11T00:00:00Z", "ends_at": "2026-11-11T00:00:00Z"})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = shopgrowth_fails(data, &["flash", "create", &bad.to_string_lossy()]);
    for field in ["price", "per_user_limit", "ends_at"] {
        assert!(err.contains(field), "{field}: {err}");
    }
}
