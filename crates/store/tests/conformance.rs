//! One storage test suite, run against both backends: the embedded SQLite file and a real
//! PostgreSQL server. The PostgreSQL half needs `SHOPGROWTH_TEST_DATABASE_URL` (the test command
//! starts a server and sets it); without it those tests fail rather than skip.

use shopgrowth_core::ids::{DeviceId, UserId};
use shopgrowth_core::model::{
    Channel, Event, EventType, Order, OrderKind, OrderLine, OrderStatus, Refund, RefundLine,
};
use shopgrowth_core::pii::{PiiCipher, Secret};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::Currency;
use shopgrowth_store::records::*;
use shopgrowth_store::{Error, Store};
use std::sync::atomic::{AtomicUsize, Ordering};

const NOW: i64 = 1_780_000_000_000;

struct Harness {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::Sqlite(
        shopgrowth_store::sqlite::SqliteStore::open(&dir.path().join("shop.db"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    Harness {
        store,
        _dir: Some(dir),
    }
}

async fn postgres() -> Harness {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("SHOPGROWTH_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("SHOPGROWTH_TEST_DATABASE_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
    });
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        rand_suffix()
    );
    let pg = shopgrowth_store::postgres::PgStore::connect(&url, Some(&schema))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::Postgres(pg);
    store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    Harness { store, _dir: None }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

fn cipher() -> PiiCipher {
    PiiCipher::from_master_key(&[42u8; 32]).unwrap_or_else(|e| panic!("{e}"))
}

fn event(id: &str, kind: EventType, user: Option<&str>, device: Option<&str>, time: i64) -> Event {
    Event {
        id: id.into(),
        kind,
        time: Timestamp(time),
        user_id: user.map(Into::into),
        device_id: device.map(Into::into),
        channel: Channel::App,
        sku_id: Some("sku-1".into()),
        store_id: None,
        order_id: None,
        query: None,
        text: None,
        rating: None,
        properties: Default::default(),
    }
}

fn order(id: &str, user: Option<&str>, lines: &[(i64, i64, i64)]) -> Order {
    Order {
        id: id.into(),
        kind: OrderKind::Sale,
        status: OrderStatus::Paid,
        user_id: user.map(Into::into),
        device_id: None,
        store_id: None,
        channel: Channel::Web,
        currency: Currency::CNY,
        placed_at: Timestamp(NOW - 1000),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, &(quantity, unit_price, discount))| OrderLine {
                sku_id: format!("sku-{i}").into(),
                quantity,
                unit_price,
                discount,
                title: None,
            })
            .collect(),
        shipping_fee: 0,
        coupon_codes: vec![],
        original_order_id: None,
        total: None,
    }
}

fn user_with_phone(id: &str, phone: &str) -> SealedUser {
    let user = shopgrowth_core::model::User {
        id: id.into(),
        phone: Some(Secret::new(phone.to_owned())),
        email: None,
        name: Some(Secret::new("张三".to_owned())),
        gender: None,
        birthday: None,
        city: Some("上海".into()),
        city_tier: None,
        registration_channel: None,
        registered_at: None,
        attributes: Default::default(),
    };
    SealedUser::seal(&user, &cipher())
}

async fn events_are_stored_once(h: Harness) {
    let s = &h.store;
    let batch = vec![
        event("e1", EventType::View, Some("u1"), None, NOW),
        event("e2", EventType::View, None, Some("d1"), NOW + 1),
        event("e1", EventType::View, Some("u1"), None, NOW),
    ];
    let out = s
        .insert_events(batch, NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        [Written::Inserted, Written::Inserted, Written::Duplicate]
    );
    let again = s
        .insert_events(
            vec![event("e2", EventType::View, None, Some("d1"), NOW)],
            NOW,
        )
        .await;
    assert_eq!(again.ok(), Some(vec![Written::Duplicate]));
    let counts = s.counts().await.unwrap_or_default();
    assert_eq!(
        (counts.events, counts.users),
        (2, 1),
        "events stored once; user u1 created"
    );
    let mut present = s
        .events_present(vec!["e1".into(), "e2".into(), "nope".into()])
        .await
        .unwrap_or_default();
    present.sort();
    assert_eq!(present, ["e1", "e2"]);
}

async fn anonymous_history_follows_login(h: Harness) {
    let s = &h.store;
    let before = vec![
        event("a1", EventType::View, None, Some("dev-9"), NOW),
        event("a2", EventType::AddToCart, None, Some("dev-9"), NOW + 1),
    ];
    s.insert_events(before, NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Logging in: an event carrying both ids links the device to the user.
    s.insert_events(
        vec![event(
            "a3",
            EventType::SignIn,
            Some("u9"),
            Some("dev-9"),
            NOW + 2,
        )],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let c = s
        .customer(UserId("u9".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no u9"));
    assert_eq!(c.device_ids, [DeviceId("dev-9".into())]);
    let ids: Vec<String> = s
        .recent_events(&c, 10)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.event.id.0)
        .collect();
    assert_eq!(ids, ["a3", "a2", "a1"]);
    let links = s.links_of(&c).await.unwrap_or_default();
    assert_eq!(links.len(), 1);
    // Undo: the anonymous events no longer belong to u9, and the link is not silently remade.
    let undone = s
        .undo_link(links[0].id, NOW + 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(undone.undone_at, Some(NOW + 5));
    assert!(matches!(
        s.undo_link(links[0].id, NOW + 6).await,
        Err(Error::Conflict(_))
    ));
    s.insert_events(
        vec![event(
            "a4",
            EventType::View,
            Some("u9"),
            Some("dev-9"),
            NOW + 7,
        )],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let c = s
        .customer(UserId("u9".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no u9"));
    assert!(c.device_ids.is_empty());
    let ids: Vec<String> = s
        .recent_events(&c, 10)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.event.id.0)
        .collect();
    assert_eq!(ids, ["a4", "a3"]);
}

async fn same_phone_is_one_customer(h: Harness) {
    let s = &h.store;
    let card = user_with_phone("card:0042", "138 1234 1234");
    let online = user_with_phone("web:alice", "+86 13812341234");
    let out = s
        .upsert_users(vec![card], NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0].merged_into, None);
    let out = s
        .upsert_users(vec![online], NOW + 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0].written, Written::Inserted);
    assert_eq!(out[0].merged_into, Some(UserId("card:0042".into())));
    s.insert_orders(
        vec![order("o-store", Some("card:0042"), &[(1, 5000, 0)])],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.insert_orders(
        vec![order("o-web", Some("web:alice"), &[(2, 1000, 0)])],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for who in ["card:0042", "web:alice"] {
        let c = s
            .customer(UserId(who.into()))
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no {who}"));
        assert_eq!(c.canonical.sealed.id, "card:0042");
        let mut orders: Vec<String> = s
            .recent_orders(&c, 10)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.order.id.0)
            .collect();
        orders.sort();
        assert_eq!(orders, ["o-store", "o-web"]);
    }
    // Personal data is stored encrypted and decrypts with the key.
    let c = s
        .customer(UserId("card:0042".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no card"));
    let phone = c
        .canonical
        .sealed
        .phone_enc
        .as_deref()
        .map(|p| cipher().decrypt(p).map(|s| s.expose().clone()));
    assert_eq!(
        phone.and_then(Result::ok).as_deref(),
        Some("+8613812341234")
    );
    // Undo the merge: each is their own customer again, and re-saving does not re-merge.
    let link = s
        .links_of(&c)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|l| l.kind == LinkKind::User);
    let link = link.unwrap_or_else(|| panic!("no merge link"));
    s.undo_link(link.id, NOW + 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = s
        .upsert_users(vec![user_with_phone("web:alice", "13812341234")], NOW + 3)
        .await;
    assert_eq!(
        again.ok().map(|o| (o[0].written, o[0].merged_into.clone())),
        Some((Written::Updated, None))
    );
    let alice = s
        .customer(UserId("web:alice".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no alice"));
    assert_eq!(alice.canonical.sealed.id, "web:alice");
    // Erasure removes the personal data.
    assert!(s
        .erase_personal_data(UserId("web:alice".into()), NOW + 4)
        .await
        .unwrap_or(false));
    let alice = s
        .customer(UserId("web:alice".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no alice"));
    assert!(
        alice.canonical.sealed.phone_enc.is_none() && alice.canonical.sealed.name_enc.is_none()
    );
    assert_eq!(alice.canonical.erased_at, Some(NOW + 4));
}

async fn orders_are_idempotent_and_refunds_are_bounded(h: Harness) {
    let s = &h.store;
    let o = order("o1", Some("u1"), &[(2, 1000, 100), (1, 500, 0)]);
    let out = s
        .insert_orders(vec![o.clone(), o.clone()], NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, [Written::Inserted, Written::Duplicate]);
    let refund = |id: &str, line_no: i64, quantity: i64, amount: i64| Refund {
        id: id.into(),
        lines: vec![RefundLine {
            line_no,
            quantity,
            amount,
        }],
        reason: None,
        refunded_at: Timestamp(NOW),
    };
    assert_eq!(
        s.add_refund("o1".into(), refund("r1", 0, 1, 950), NOW)
            .await
            .ok(),
        Some(RefundWritten::Applied)
    );
    assert_eq!(
        s.add_refund("o1".into(), refund("r1", 0, 1, 950), NOW)
            .await
            .ok(),
        Some(RefundWritten::Duplicate)
    );
    // Line 0 paid 1900; 950 is left, so 951 more is refused and nothing changes.
    assert!(matches!(
        s.add_refund("o1".into(), refund("r2", 0, 1, 951), NOW)
            .await,
        Err(Error::RefundExceedsLine { line_no: 0 })
    ));
    assert!(matches!(
        s.add_refund("o1".into(), refund("r3", 7, 1, 1), NOW).await,
        Err(Error::NoSuchLine { .. })
    ));
    assert!(matches!(
        s.add_refund("nope".into(), refund("r4", 0, 1, 1), NOW)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.add_refund("o1".into(), refund("r5", 0, 1, 950), NOW)
            .await
            .ok(),
        Some(RefundWritten::Applied)
    );
    let c = s
        .customer(UserId("u1".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no u1"));
    let stored = s.recent_orders(&c, 5).await.unwrap_or_default();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].order.total, stored[0].refunded_amount),
        (Some(2400), 1900)
    );
    assert_eq!(stored[0].order.lines, o.lines);
}

async fn concurrent_refunds_never_exceed_a_line(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.insert_orders(vec![order("o-race", Some("u1"), &[(10, 1000, 0)])], NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let r = Refund {
                id: format!("race-{i}"),
                lines: vec![RefundLine {
                    line_no: 0,
                    quantity: 1,
                    amount: 1000,
                }],
                reason: None,
                refunded_at: Timestamp(NOW),
            };
            s.add_refund("o-race".into(), r, NOW).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if let Ok(Ok(RefundWritten::Applied)) = t.await {
            applied += 1;
        }
    }
    assert_eq!(applied, 10, "exactly the line's ten units can be refunded");
}

async fn imports_dedupe_lines_and_grow_orders(h: Harness) {
    let s = &h.store;
    let mut o = order("536365", Some("17850"), &[(6, 255, 0), (6, 339, 0)]);
    o.currency = Currency::GBP;
    let batch = |source_lines: Vec<i64>, line_nos: Vec<i64>, o: Order| ImportBatch {
        users: vec!["17850".into()],
        products: vec![],
        orders: vec![ImportedOrder {
            order: o,
            line_nos,
            source_lines,
        }],
        events: vec![],
    };
    let out = s
        .import_batch(batch(vec![2, 3], vec![111, 222], o.clone()), NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.lines, [Written::Inserted, Written::Inserted]);
    // The same invoice later in the file: one exact duplicate line, one new line.
    let mut later = o.clone();
    later.lines = vec![
        o.lines[0].clone(),
        OrderLine {
            sku_id: "x".into(),
            quantity: 1,
            unit_price: 100,
            discount: 0,
            title: None,
        },
    ];
    let out = s
        .import_batch(batch(vec![9, 10], vec![111, 333], later), NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.lines, [Written::Duplicate, Written::Inserted]);
    let c = s
        .customer(UserId("17850".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no customer"));
    let orders = s.recent_orders(&c, 5).await.unwrap_or_default();
    assert_eq!(orders[0].order.total, Some(6 * 255 + 6 * 339 + 100));
    assert_eq!(orders[0].order.lines.len(), 3);
}

async fn api_keys_round_trip(h: Harness) {
    let s = &h.store;
    let key = ApiKeyRecord {
        id: "k1".into(),
        name: "backend".into(),
        secret_hash: vec![1, 2, 3],
        scopes: vec!["ingest".into(), "read".into()],
        created_at: NOW,
        revoked_at: None,
    };
    s.create_api_key(key)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = s
        .api_key("k1".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no key"));
    assert_eq!(
        (got.secret_hash, got.scopes),
        (vec![1, 2, 3], vec!["ingest".to_owned(), "read".to_owned()])
    );
    assert!(s.revoke_api_key("k1".into(), NOW).await.unwrap_or(false));
    assert!(!s.revoke_api_key("k1".into(), NOW).await.unwrap_or(true));
    assert_eq!(
        s.api_keys().await.unwrap_or_default()[0].revoked_at,
        Some(NOW)
    );
    assert!(s.api_key("nope".into()).await.ok().flatten().is_none());
}

async fn manual_merges_refuse_cycles(h: Harness) {
    let s = &h.store;
    s.insert_events(
        vec![
            event("m1", EventType::View, Some("a"), None, NOW),
            event("m2", EventType::View, Some("b"), None, NOW),
        ],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.merge_users("a".into(), "b".into(), "manual".into(), NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        s.merge_users("b".into(), "a".into(), "manual".into(), NOW)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.merge_users("a".into(), "zz".into(), "manual".into(), NOW)
            .await,
        Err(Error::NotFound { .. })
    ));
    let c = s
        .customer(UserId("a".into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no a"));
    assert_eq!(c.canonical.sealed.id, "b");
    assert_eq!(s.recent_events(&c, 10).await.unwrap_or_default().len(), 2);
}

async fn audience_source_reads_users_orders_events_and_links(h: Harness) {
    let s = &h.store;
    let product = shopgrowth_core::model::Product {
        id: "sku-1".into(),
        title: "奶粉".into(),
        category: vec!["母婴".into(), "奶粉".into()],
        brand: None,
        spu_id: None,
        price: 1000,
        cost: None,
        currency: Currency::CNY,
        stock: None,
        attributes: Default::default(),
    };
    s.upsert_products(vec![product], NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.upsert_users(vec![user_with_phone("u1", "13900000001")], NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ret = order("c1", Some("u1"), &[(1, 500, 0)]);
    ret.kind = OrderKind::Return;
    ret.placed_at = Timestamp(NOW);
    s.insert_orders(
        vec![
            order("o1", Some("u1"), &[(2, 1000, 0)]),
            order("o2", Some("u1"), &[(1, 300, 0)]),
            ret,
        ],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut old = event("old", EventType::View, Some("u1"), None, NOW - 10_000);
    old.sku_id = None;
    s.insert_events(
        vec![
            event("v1", EventType::View, Some("u1"), None, NOW),
            event("anon", EventType::View, None, Some("d"), NOW),
            old,
        ],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.link_device("d".into(), "u1".into(), "identify".into(), NOW)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let source = s
        .audience_source(NOW - 5_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(source.users.len(), 1);
    assert_eq!(
        (source.users[0].id.as_str(), source.users[0].city.as_deref()),
        ("u1", Some("上海"))
    );
    assert_eq!(source.products.len(), 1);
    assert_eq!(source.products[0].category_path, "母婴/奶粉");
    let mut orders: Vec<(&str, bool, i64, usize)> = source
        .orders
        .iter()
        .map(|o| (o.id.as_str(), o.sale, o.total, o.skus.len()))
        .collect();
    orders.sort_unstable();
    assert_eq!(
        orders,
        [
            ("c1", false, 500, 1),
            ("o1", true, 2000, 1),
            ("o2", true, 300, 1)
        ]
    );
    assert_eq!(source.events.len(), 2, "the older event is left out");
    assert!(source
        .events
        .iter()
        .any(|e| e.user_id.is_none() && e.device_id.as_deref() == Some("d")));
    assert_eq!(source.links.len(), 1);
    assert_eq!(
        (
            source.links[0].kind.as_str(),
            source.links[0].target.as_str()
        ),
        ("device", "u1")
    );
}

async fn tags_segments_and_snapshots_round_trip(h: Harness) {
    let s = &h.store;
    let def = |version: i64, rule: &str| TagDefinitionRecord {
        name: "母婴达人".into(),
        version,
        rule: rule.into(),
        weight: 0.8,
        description: "bought baby goods twice".into(),
        created_at: NOW,
        retired_at: None,
    };
    assert!(s.define_tag(def(1, "orders > 1")).await.unwrap_or(false));
    assert!(
        !s.define_tag(def(1, "orders > 1")).await.unwrap_or(true),
        "the same version twice is stored once"
    );
    assert!(s.define_tag(def(2, "orders > 2")).await.unwrap_or(false));
    let defs = s.tag_definitions().await.unwrap_or_default();
    assert_eq!(defs.iter().map(|d| d.version).collect::<Vec<_>>(), [1, 2]);
    assert!(s
        .retire_tag("母婴达人".into(), NOW + 1)
        .await
        .unwrap_or(false));
    assert!(s
        .tag_definitions()
        .await
        .unwrap_or_default()
        .iter()
        .all(|d| d.retired_at == Some(NOW + 1)));

    let change = |user: &str, tag: &str, gained: bool, at: i64| TagChangeRecord {
        user_id: user.into(),
        tag: tag.into(),
        version: Some(1),
        gained,
        at,
    };
    s.record_tag_changes(vec![
        change("u1", "a", true, NOW),
        change("u1", "b", true, NOW),
        change("u2", "a", true, NOW),
    ])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.record_tag_changes(vec![change("u1", "a", false, NOW + 5)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut current = s.user_tags().await.unwrap_or_default();
    current.sort();
    assert_eq!(
        current,
        [
            ("u1".to_owned(), "b".to_owned()),
            ("u2".to_owned(), "a".to_owned())
        ]
    );
    let history = s.tag_history("u1".into(), 10).await.unwrap_or_default();
    assert_eq!(history.len(), 3);
    assert_eq!(
        (history[0].tag.as_str(), history[0].gained, history[0].at),
        ("a", false, NOW + 5),
        "newest first"
    );

    let seg = |expr: &str, at: i64| SegmentRecord {
        name: "vip".into(),
        expr: expr.into(),
        description: String::new(),
        created_at: at,
        updated_at: at,
    };
    s.save_segment(seg("orders > 1", NOW))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.save_segment(seg("orders > 2", NOW + 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let segs = s.segments().await.unwrap_or_default();
    assert_eq!(segs.len(), 1);
    assert_eq!(
        (
            segs[0].expr.as_str(),
            segs[0].created_at,
            segs[0].updated_at
        ),
        ("orders > 2", NOW, NOW + 1)
    );

    let snap = |day: &str, size: i64, members: &[u8]| SnapshotRecord {
        segment: "vip".into(),
        day: day.into(),
        taken_at: NOW,
        size,
        entered: size,
        left: 0,
        members: members.to_vec(),
    };
    s.save_snapshot(snap("2026-11-01", 1, b"x"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.save_snapshot(snap("2026-11-02", 2, b"xy"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.save_snapshot(snap("2026-11-02", 3, b"xyz"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let all = s.snapshots("vip".into()).await.unwrap_or_default();
    assert_eq!(
        all.iter().map(|x| x.size).collect::<Vec<_>>(),
        [1, 3],
        "same day replaces"
    );
    let prev = s
        .previous_snapshot("vip".into(), "2026-11-02".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no previous"));
    assert_eq!(
        (prev.day.as_str(), prev.members.as_slice()),
        ("2026-11-01", &b"x"[..])
    );
    assert!(s.delete_segment("vip".into()).await.unwrap_or(false));
    assert!(!s.delete_segment("vip".into()).await.unwrap_or(true));
}

fn template(id: &str, quota: Option<i64>, per_user_limit: i64) -> CouponTemplateRecord {
    CouponTemplateRecord {
        id: id.into(),
        name: "满100减10".into(),
        rule: r#"{"type":"fixed","amount":1000,"threshold":10000}"#.into(),
        quota,
        issued: 0,
        per_user_limit,
        valid_from: None,
        valid_until: None,
        valid_days: Some(7),
        created_at: NOW,
        per_device_limit: None,
        per_phone_limit: None,
        in_centre: false,
        issue_on: None,
        scope: None,
        code_prefix: None,
    }
}

async fn coupon_quota_holds_under_a_thousand_concurrent_claims(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    assert!(s
        .create_coupon_template(template("hot", Some(100), 1))
        .await
        .unwrap_or(false));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.claim_coupon(
                "hot".into(),
                format!("u{i}"),
                format!("k{i}"),
                format!("C{i:06}"),
                vec![],
                NOW,
            )
            .await
        }));
    }
    let (mut won, mut sold_out) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(Claimed::New(_))) => won += 1,
            Ok(Err(Error::SoldOut { .. })) => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, sold_out), (100, 900));
    let t = s.coupon_template("hot".into()).await.ok().flatten();
    assert_eq!(t.map(|t| t.issued), Some(100));
}

async fn a_template_prefix_starts_each_of_its_codes(h: Harness) {
    let s = &h.store;
    let t = CouponTemplateRecord {
        code_prefix: Some("D11-".into()),
        ..template("d11", None, 5)
    };
    s.create_coupon_template(t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = s
        .claim_coupon(
            "d11".into(),
            "amy".into(),
            "k1".into(),
            "ABC".into(),
            vec![],
            NOW,
        )
        .await;
    assert!(
        matches!(claimed, Ok(Claimed::New(ref c)) if c.code == "D11-ABC"),
        "{claimed:?}"
    );
    let grants = vec![CouponGrant {
        user_id: "bob".into(),
        claim_key: "b1".into(),
        code: "XYZ".into(),
    }];
    let summary = s.issue_coupons("d11".into(), grants, NOW).await;
    assert_eq!(summary.map(|s| s.issued).ok(), Some(1));
    let bobs = s
        .open_coupons_of("bob".into(), NOW)
        .await
        .unwrap_or_default();
    assert_eq!(bobs.first().map(|c| c.code.as_str()), Some("D11-XYZ"));
    assert!(s.coupon("D11-ABC".into()).await.is_ok_and(|c| c.is_some()));
}

async fn a_users_open_coupons_leave_out_used_expired_and_others(h: Harness) {
    let s = &h.store;
    s.create_coupon_template(template("t", None, 5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Valid for 7 days from the claim: claimed at NOW, NOW + 1 and (by another user) NOW + 2.
    for (k, user) in [(0, "amy"), (1, "amy"), (2, "bob"), (3, "amy")] {
        s.claim_coupon(
            "t".into(),
            user.into(),
            format!("k{k}"),
            format!("C{k}"),
            vec![],
            NOW + k,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    s.redeem_coupon("C3".into(), "amy".into(), "o1".into(), NOW + 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let codes = |now: i64| async move {
        s.open_coupons_of("amy".into(), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|c| c.code)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        codes(NOW + 20).await,
        ["C0", "C1"],
        "oldest first, used and others' left out"
    );
    let week = 7 * 86_400_000;
    assert_eq!(codes(NOW + week).await, ["C1"], "C0 ended at NOW + 7 days");
    assert!(codes(NOW + week + 1).await.is_empty());
}

async fn coupon_claims_are_idempotent_and_limited_per_user(h: Harness) {
    let s = &h.store;
    s.create_coupon_template(template("t", None, 2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = s
        .claim_coupon(
            "t".into(),
            "u1".into(),
            "a".into(),
            "CODE-A".into(),
            vec![],
            NOW,
        )
        .await;
    let Ok(Claimed::New(c)) = first else {
        panic!("{first:?}")
    };
    assert_eq!(c.expires_at, Some(NOW + 7 * 86_400_000));
    let again = s
        .claim_coupon(
            "t".into(),
            "u1".into(),
            "a".into(),
            "CODE-X".into(),
            vec![],
            NOW,
        )
        .await;
    assert!(
        matches!(again, Ok(Claimed::Duplicate(ref d)) if d.code == "CODE-A"),
        "{again:?}"
    );
    let stolen = s
        .claim_coupon(
            "t".into(),
            "u2".into(),
            "a".into(),
            "CODE-Y".into(),
            vec![],
            NOW,
        )
        .await;
    assert!(matches!(stolen, Err(Error::Conflict(_))), "{stolen:?}");
    assert!(matches!(
        s.claim_coupon(
            "t".into(),
            "u1".into(),
            "b".into(),
            "CODE-B".into(),
            vec![],
            NOW
        )
        .await,
        Ok(Claimed::New(_))
    ));
    let third = s
        .claim_coupon(
            "t".into(),
            "u1".into(),
            "c".into(),
            "CODE-C".into(),
            vec![],
            NOW,
        )
        .await;
    assert!(
        matches!(third, Err(Error::Conflict(ref m)) if m.contains("most coupons")),
        "{third:?}"
    );
    assert_eq!(
        s.coupon_template("t".into())
            .await
            .ok()
            .flatten()
            .map(|t| t.issued),
        Some(2),
        "a refused claim takes no quota"
    );
    assert!(matches!(
        s.claim_coupon(
            "none".into(),
            "u1".into(),
            "a".into(),
            "Z".into(),
            vec![],
            NOW
        )
        .await,
        Err(Error::NotFound { .. })
    ));
}

async fn a_coupon_is_held_by_one_order_until_its_hold_lapses(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.create_coupon_template(template("t", None, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.claim_coupon(
        "t".into(),
        "u1".into(),
        "k".into(),
        "HOLD".into(),
        vec![],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let until = NOW + 60_000;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let order = format!("order-{i}");
            let held = s
                .reserve_coupon("HOLD".into(), "u1".into(), order.clone(), until, NOW + 1)
                .await;
            (order, held)
        }));
    }
    let mut holders = Vec::new();
    for t in tasks {
        match t.await {
            Ok((order, Ok(()))) => holders.push(order),
            Ok((_, Err(Error::Conflict(m)))) => assert!(m.contains("held by another order"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(holders.len(), 1, "one order holds the coupon");
    let holder = holders.remove(0);
    // Another order can neither hold nor redeem it while the hold lives; the holder can extend
    // its hold and redeem.
    let other = s
        .redeem_coupon("HOLD".into(), "u1".into(), "other".into(), NOW + 2)
        .await;
    assert!(
        matches!(other, Err(Error::Conflict(ref m)) if m.contains("held")),
        "{other:?}"
    );
    s.reserve_coupon(
        "HOLD".into(),
        "u1".into(),
        holder.clone(),
        until + 1,
        NOW + 2,
    )
    .await
    .unwrap_or_else(|e| panic!("extending: {e}"));
    assert_eq!(
        s.sweep_coupon_holds(NOW + 3).await.ok(),
        Some(0),
        "the hold is live"
    );
    // Abandoned checkout: the holder releases, and another order may take it.
    assert!(s
        .release_coupon("HOLD".into(), holder.clone(), NOW + 4)
        .await
        .unwrap_or(false));
    s.reserve_coupon(
        "HOLD".into(),
        "u1".into(),
        "second".into(),
        NOW + 10,
        NOW + 5,
    )
    .await
    .unwrap_or_else(|e| panic!("after release: {e}"));
    // The second hold lapses: any order may take the coupon at once, and the sweeper records the
    // lapse once.
    assert_eq!(s.sweep_coupon_holds(NOW + 10).await.ok(), Some(1));
    assert_eq!(s.sweep_coupon_holds(NOW + 11).await.ok(), Some(0));
    let c = s.coupon("HOLD".into()).await.ok().flatten();
    assert_eq!(
        c.map(|c| (c.state, c.order_id)),
        Some(("claimed".into(), None))
    );
    s.reserve_coupon(
        "HOLD".into(),
        "u1".into(),
        "third".into(),
        NOW + 20,
        NOW + 12,
    )
    .await
    .unwrap_or_else(|e| panic!("third: {e}"));
    // Past its hold and not swept yet: still free for another order, which redeems it.
    assert_eq!(
        s.redeem_coupon("HOLD".into(), "u1".into(), "fourth".into(), NOW + 21)
            .await
            .ok(),
        Some(Redeemed::New)
    );
    let late = s
        .reserve_coupon(
            "HOLD".into(),
            "u1".into(),
            "third".into(),
            NOW + 40,
            NOW + 22,
        )
        .await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("another order")),
        "{late:?}"
    );
    assert!(
        s.reserve_coupon(
            "HOLD".into(),
            "u1".into(),
            "fourth".into(),
            NOW + 40,
            NOW + 22
        )
        .await
        .is_ok(),
        "holding for the order that redeemed it is a repeat"
    );
    let theirs = s
        .reserve_coupon("HOLD".into(), "u2".into(), "x".into(), NOW + 40, NOW + 22)
        .await;
    assert!(
        matches!(theirs, Err(Error::Conflict(ref m)) if m.contains("another user")),
        "{theirs:?}"
    );
}

async fn device_and_phone_limits_hold_under_concurrent_claims(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.create_coupon_template(template("new-user", None, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // 40 accounts on one device (and 20 on one phone) claim at once: the device gets 2, the phone 1.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut limits = vec![HolderLimit {
                holder: "device:D1".into(),
                limit: 2,
                label: "device \"D1\"".into(),
            }];
            if i % 2 == 0 {
                limits.push(HolderLimit {
                    holder: "phone:ab12".into(),
                    limit: 1,
                    label: "this phone number".into(),
                });
            }
            s.claim_coupon(
                "new-user".into(),
                format!("u{i}"),
                format!("k{i}"),
                format!("D{i:04}"),
                limits,
                NOW,
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(Claimed::New(_))) => won += 1,
            Ok(Err(Error::Conflict(m))) => assert!(m.contains("already holds"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 2, "the device's limit");
    let t = s.coupon_template("new-user".into()).await.ok().flatten();
    assert_eq!(t.map(|t| t.issued), Some(2), "refused claims take no quota");
}

async fn offered_templates_and_a_users_claims_are_listed(h: Harness) {
    let s = &h.store;
    let offered = [
        ("b-centre", true, None),
        ("a-new", false, Some("new_user".to_string())),
        ("plain", false, None),
    ];
    for (id, in_centre, issue_on) in offered {
        let t = CouponTemplateRecord {
            in_centre,
            issue_on,
            ..template(id, None, 2)
        };
        assert!(s.create_coupon_template(t).await.unwrap_or(false));
    }
    let listed: Vec<(String, bool, Option<String>)> = s
        .offered_coupon_templates()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.id, t.in_centre, t.issue_on))
        .collect();
    assert_eq!(
        listed,
        [
            ("a-new".into(), false, Some("new_user".into())),
            ("b-centre".into(), true, None)
        ]
    );
    for (k, code) in [("k1", "C1"), ("k2", "C2")] {
        s.claim_coupon(
            "b-centre".into(),
            "u1".into(),
            k.into(),
            code.into(),
            vec![],
            NOW,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        s.coupon_claims_of("u1".into()).await.ok(),
        Some(vec![("b-centre".into(), 2)])
    );
}

async fn a_coupon_is_redeemed_once_under_concurrent_attempts(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.create_coupon_template(template("t", None, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.claim_coupon(
        "t".into(),
        "u1".into(),
        "k".into(),
        "ONCE".into(),
        vec![],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.redeem_coupon("ONCE".into(), "u1".into(), format!("order-{i}"), NOW + 1)
                .await
        }));
    }
    let mut new = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(Redeemed::New)) => new += 1,
            Ok(Err(Error::Conflict(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new, 1, "one order gets the coupon");
    let c = s
        .coupon("ONCE".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no coupon"));
    let order = c.order_id.clone().unwrap_or_default();
    assert_eq!(
        s.redeem_coupon("ONCE".into(), "u1".into(), order.clone(), NOW + 2)
            .await
            .ok(),
        Some(Redeemed::Duplicate),
        "the same order again is a duplicate"
    );
    assert!(matches!(
        s.redeem_coupon("ONCE".into(), "u2".into(), "x".into(), NOW)
            .await,
        Err(Error::Conflict(_))
    ));
    // The order is cancelled: the coupon comes back once, and can be used again.
    assert!(s
        .release_coupon("ONCE".into(), order.clone(), NOW + 3)
        .await
        .unwrap_or(false));
    assert!(!s
        .release_coupon("ONCE".into(), order, NOW + 3)
        .await
        .unwrap_or(true));
    assert_eq!(
        s.redeem_coupon("ONCE".into(), "u1".into(), "later".into(), NOW + 4)
            .await
            .ok(),
        Some(Redeemed::New)
    );
    // Expired coupons are refused.
    s.claim_coupon(
        "t".into(),
        "u9".into(),
        "k9".into(),
        "OLD".into(),
        vec![],
        NOW,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let late = s
        .redeem_coupon("OLD".into(), "u9".into(), "o".into(), NOW + 8 * 86_400_000)
        .await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("expired")),
        "{late:?}"
    );
}

async fn campaigns_change_only_by_conditional_writes(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let c = CampaignRecord {
        id: "c1".into(),
        name: "满300减40".into(),
        state: "draft".into(),
        promotion: "{}".into(),
        starts_at: None,
        ends_at: None,
        segment: None,
        budget: Some(100_000),
        version: 1,
        created_at: NOW,
        updated_at: NOW,
        recurrence: Some(r#"{"weekdays":[3]}"#.into()),
        per_customer_limit: Some(2),
    };
    assert!(s
        .create_campaign(c.clone(), "{}".into())
        .await
        .unwrap_or(false));
    assert!(!s
        .create_campaign(c.clone(), "{}".into())
        .await
        .unwrap_or(true));
    // Ten editors holding version 1: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (s, mut c) = (std::sync::Arc::clone(&s), c.clone());
        c.name = format!("edit {i}");
        tasks.push(tokio::spawn(async move {
            s.edit_campaign(c, 1, "{}".into(), NOW + 1).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => won += 1,
            Ok(Err(Error::Conflict(m))) => assert!(m.contains("version"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
    let running = s
        .transition_campaign(
            "c1".into(),
            "running",
            &["draft", "scheduled", "paused"],
            "{}".into(),
            NOW + 2,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((running.state.as_str(), running.version), ("running", 3));
    assert_eq!(
        (running.recurrence.as_deref(), running.per_customer_limit),
        (Some(r#"{"weekdays":[3]}"#), Some(2)),
        "the recurrence and the per-customer limit are kept"
    );
    let again = s
        .transition_campaign(
            "c1".into(),
            "running",
            &["draft", "scheduled", "paused"],
            "{}".into(),
            NOW + 3,
        )
        .await;
    assert!(
        matches!(again, Err(Error::Conflict(ref m)) if m.contains("is running")),
        "{again:?}"
    );
    s.transition_campaign(
        "c1".into(),
        "ended",
        &["draft", "scheduled", "running", "paused"],
        "{}".into(),
        NOW + 4,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let late = s.edit_campaign(c.clone(), 4, "{}".into(), NOW + 5).await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("ended")),
        "{late:?}"
    );
    assert_eq!(
        s.campaign_changes("c1".into()).await.map(|v| v.len()).ok(),
        Some(4)
    );
    assert!(matches!(
        s.transition_campaign("none".into(), "ended", &["draft"], "{}".into(), NOW)
            .await,
        Err(Error::NotFound { .. })
    ));
    // Listed by id, each with what its budget scope used in the period asked for.
    let mut c2 = c.clone();
    c2.id = "c0".into();
    s.create_campaign(c2, "{}".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (key, scope, period, amount) in [
        ("k1", "campaign:c1", "total", 300),
        ("k2", "campaign:c1", "total", 200),
        ("k3", "campaign:c1", "day", 50),
        ("k4", "coupon:c0", "total", 70),
    ] {
        s.spend_budget(
            key.into(),
            vec![line(scope, period, "all")],
            amount,
            NOW,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let listed = |period: &str| {
        let s = std::sync::Arc::clone(&s);
        let period = period.to_owned();
        async move {
            s.campaigns_with_spent("campaign:".into(), period, "all".into())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|(c, spent)| (c.id, spent))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("total").await,
        [("c0".into(), 0), ("c1".into(), 500)]
    );
    assert_eq!(listed("day").await, [("c0".into(), 0), ("c1".into(), 50)]);
}

/// A sale of 100 phones, open for an hour from `NOW`, holds lasting a minute.
fn phone_sale(id: &str, per_user_limit: i64) -> FlashSaleRecord {
    FlashSaleRecord {
        id: id.into(),
        sku: "phone".into(),
        price: 99_900,
        stock: 100,
        taken: 0,
        per_user_limit,
        starts_at: NOW,
        ends_at: NOW + 3_600_000,
        hold_ms: 60_000,
        created_at: NOW,
    }
}

async fn operators_list_templates_sales_deals_and_packets_a_page_at_a_time(h: Harness) {
    let s = &h.store;
    for id in ["c", "a", "b"] {
        s.create_coupon_template(template(id, None, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.create_flash_sale(phone_sale(id, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let deal = GroupDealRecord {
            id: id.into(),
            sku: "durian".into(),
            group_size: 2,
            leader_price: 5_900,
            member_price: 6_900,
            window_ms: 3_600_000,
            starts_at: NOW,
            ends_at: NOW + 86_400_000,
            created_at: NOW,
        };
        s.create_group_deal(deal)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let packet = RedPacketRecord {
            id: id.into(),
            sender: "shop".into(),
            kind: "fixed".into(),
            total: 100,
            currency: "CNY".into(),
            shares: 1,
            claimed_count: 0,
            claimed_amount: 0,
            state: "open".into(),
            returned: 0,
            expires_at: NOW + 60_000,
            created_at: NOW,
            unlock_helpers: 0,
            helpers: 0,
            opens_at: 0,
            rain_id: None,
            helps_per_helper_per_day: None,
        };
        s.create_red_packet(packet, vec![100])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Two at a time, by id: a, b, then c after b.
    let ids = |v: Vec<String>| v.join(",");
    let templates = |after: &str| {
        let after = after.to_owned();
        async move {
            s.coupon_templates_after(after, 2)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(templates("").await), "a,b");
    assert_eq!(ids(templates("b").await), "c");
    let sales = s
        .flash_sales_after(String::new(), 2)
        .await
        .unwrap_or_default();
    assert_eq!(
        sales
            .iter()
            .map(|f| (f.id.as_str(), f.stock))
            .collect::<Vec<_>>(),
        [("a", 100), ("b", 100)]
    );
    let deals = s.group_deals_after("a".into(), 5).await.unwrap_or_default();
    assert_eq!(ids(deals.into_iter().map(|d| d.id).collect()), "b,c");
    let packets = s.red_packets_after("c".into(), 5).await.unwrap_or_default();
    assert!(packets.is_empty(), "nothing after the last");
    let packets = s
        .red_packets_after(String::new(), 5)
        .await
        .unwrap_or_default();
    assert_eq!(ids(packets.into_iter().map(|p| p.id).collect()), "a,b,c");
}

async fn flash_sales_never_oversell_and_expired_holds_return(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let sale = phone_sale("fs", 2);
    assert!(s.create_flash_sale(sale).await.unwrap_or(false));
    // 1,000 buyers at once for 100 units.
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.reserve_flash("fs".into(), format!("r{i}"), format!("u{i}"), 1, NOW + 1)
                .await
        }));
    }
    let (mut held, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok(Ok(Reserved::New(r))) => held.push(r.id),
            Ok(Err(Error::SoldOut { .. })) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // A read tells a retried id from a new one (the sold-out gate's look-up).
    let first = held[0].clone();
    let user = format!("u{}", &first[1..]);
    let repeat = s
        .repeated_flash_reservation(first.clone(), "fs", &user)
        .await;
    assert!(
        matches!(repeat, Ok(Some(Reserved::Duplicate(ref r))) if r.id == first),
        "{repeat:?}"
    );
    let stolen = s.repeated_flash_reservation(first, "fs", "someone").await;
    assert!(matches!(stolen, Err(Error::Conflict(_))), "{stolen:?}");
    assert!(matches!(
        s.repeated_flash_reservation("new".into(), "fs", "u1").await,
        Ok(None)
    ));
    assert_eq!((held.len(), refused), (100, 900), "never oversold");
    let mut made = s
        .flash_reservation_ids("fs".into())
        .await
        .unwrap_or_default();
    made.sort();
    held.sort();
    assert_eq!(made, held, "the gate's list of the sale's reservations");
    let taken = |s: std::sync::Arc<Store>| async move {
        s.flash_sale("fs".into())
            .await
            .ok()
            .flatten()
            .map(|f| f.taken)
    };
    assert_eq!(taken(s.clone()).await, Some(100));
    // Half pay in time; the other half's holds run out and their units go back on sale.
    for id in &held[..50] {
        let r = s
            .confirm_flash(id.clone(), NOW + 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.state, "confirmed");
    }
    assert!(
        s.confirm_flash(held[0].clone(), NOW + 3).await.is_ok(),
        "confirming twice is harmless"
    );
    let later = NOW + 1 + 60_000;
    assert_eq!(s.sweep_flash(later).await.ok(), Some(50));
    assert_eq!(
        s.sweep_flash(later).await.ok(),
        Some(0),
        "each hold returns once"
    );
    assert_eq!(taken(s.clone()).await, Some(50));
    let late = s.confirm_flash(held[99].clone(), later).await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("released")),
        "{late:?}"
    );
    // The units are on sale again; the per-user limit counts what a user holds. The buyer took no
    // part above: which of the 1,000 won depends on scheduling.
    assert!(matches!(
        s.reserve_flash("fs".into(), "again".into(), "late-buyer".into(), 2, later)
            .await,
        Ok(Reserved::New(_))
    ));
    let over = s
        .reserve_flash("fs".into(), "more".into(), "late-buyer".into(), 1, later)
        .await;
    assert!(
        matches!(over, Err(Error::Conflict(ref m)) if m.contains("at most 2")),
        "{over:?}"
    );
    // A first purchase above the limit is refused too, and a refused hold keeps no units.
    let greedy = s
        .reserve_flash("fs".into(), "greedy".into(), "new-buyer".into(), 3, later)
        .await;
    assert!(
        matches!(greedy, Err(Error::Conflict(ref m)) if m.contains("at most 2")),
        "{greedy:?}"
    );
    assert_eq!(taken(s.clone()).await, Some(52), "refusals take nothing");
    assert!(matches!(
        s.reserve_flash("fs".into(), "again".into(), "late-buyer".into(), 2, later)
            .await,
        Ok(Reserved::Duplicate(_))
    ));
    assert!(
        s.release_flash("again".into(), true, later)
            .await
            .unwrap_or(false),
        "given up"
    );
    assert!(!s
        .release_flash("again".into(), true, later)
        .await
        .unwrap_or(true));
    assert_eq!(taken(s.clone()).await, Some(50));
    let closed = s
        .reserve_flash("fs".into(), "x".into(), "u1".into(), 1, NOW + 3_600_000)
        .await;
    assert!(
        matches!(closed, Err(Error::Conflict(ref m)) if m.contains("ended")),
        "{closed:?}"
    );
}

/// Refusals for the user's limit come after the stock was taken: racing holds of the same users,
/// in the same commits as others' holds, must give their units back and spoil nothing else.
async fn flash_limit_refusals_racing_holds_give_their_units_back(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let sale = phone_sale("fl", 1);
    assert!(s.create_flash_sale(sale).await.unwrap_or(false));
    // 150 buyers, each trying twice at once (two reservation ids), for 100 units.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let user = format!("u{}", i % 150);
            (
                user.clone(),
                s.reserve_flash("fl".into(), format!("r{i}"), user, 1, NOW + 1)
                    .await,
            )
        }));
    }
    let (mut holders, mut sold_out, mut over_limit) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await {
            Ok((user, Ok(Reserved::New(_)))) => holders.push(user),
            Ok((_, Err(Error::SoldOut { .. }))) => sold_out += 1,
            Ok((_, Err(Error::Conflict(m)))) if m.contains("at most 1") => over_limit += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    holders.sort();
    holders.dedup();
    assert_eq!(
        holders.len(),
        100,
        "every unit held, each by a different user"
    );
    assert_eq!(sold_out + over_limit, 200);
    let taken = s
        .flash_sale("fl".into())
        .await
        .ok()
        .flatten()
        .map(|f| f.taken);
    assert_eq!(taken, Some(100), "a refused hold keeps no units");
}

fn line(scope: &str, period: &str, key: &str) -> BudgetLine {
    BudgetLine {
        scope: scope.into(),
        period: period.into(),
        period_key: key.into(),
    }
}

async fn budgets_are_never_exceeded_and_revert_once(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.set_budget_limit("campaign:c".into(), "total".into(), 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Fifty spends of 100 at once against a budget of 1,000: exactly ten.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.spend_budget(
                format!("o{i}"),
                vec![line("campaign:c", "total", "all")],
                100,
                NOW,
                None,
            )
            .await
        }));
    }
    let mut spent = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(Spent::New)) => spent += 1,
            Ok(Err(e @ Error::OverBudget { .. })) => {
                assert!(e.to_string().contains("would be exceeded"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spent, 10);
    let used = |l: BudgetLine| {
        let s = std::sync::Arc::clone(&s);
        async move { s.budget_used(l).await.unwrap_or(-1) }
    };
    assert_eq!(used(line("campaign:c", "total", "all")).await, 1_000);
    // Several budgets at once: all or none.
    s.set_budget_limit("campaign:x".into(), "total".into(), 500)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.set_budget_limit("customer:u".into(), "day".into(), 200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let both = || {
        vec![
            line("campaign:x", "total", "all"),
            line("customer:u", "day", "2026-11-24"),
        ]
    };
    assert_eq!(
        s.spend_budget("a".into(), both(), 150, NOW, None)
            .await
            .ok(),
        Some(Spent::New)
    );
    let over = s.spend_budget("b".into(), both(), 100, NOW, None).await;
    assert!(
        matches!(over, Err(Error::OverBudget { ref scope, .. }) if scope == "customer:u"),
        "{over:?}"
    );
    assert_eq!(
        used(line("campaign:x", "total", "all")).await,
        150,
        "the campaign line was rolled back"
    );
    assert_eq!(
        s.spend_budget("a".into(), both(), 150, NOW, None)
            .await
            .ok(),
        Some(Spent::Duplicate)
    );
    assert_eq!(used(line("customer:u", "day", "2026-11-24")).await, 150);
    // Another day is another period; a scope without a limit only counts.
    let next_day = vec![
        line("campaign:x", "total", "all"),
        line("customer:u", "day", "2026-11-25"),
    ];
    assert_eq!(
        s.spend_budget("c".into(), next_day, 200, NOW, None)
            .await
            .ok(),
        Some(Spent::New)
    );
    assert_eq!(
        s.spend_budget(
            "d".into(),
            vec![line("store:s1", "month", "2026-11")],
            1 << 40,
            NOW,
            None
        )
        .await
        .ok(),
        Some(Spent::New)
    );
    // A refund gives the spend back, once.
    assert!(s.revert_budget("a".into(), NOW).await.unwrap_or(false));
    assert!(!s.revert_budget("a".into(), NOW).await.unwrap_or(true));
    assert!(!s.revert_budget("never".into(), NOW).await.unwrap_or(true));
    assert_eq!(used(line("campaign:x", "total", "all")).await, 200);
    assert_eq!(used(line("customer:u", "day", "2026-11-24")).await, 0);
    // A key given back spends again when reused (a checkout retried after a refusal), once.
    for expected in [Spent::New, Spent::Duplicate] {
        assert_eq!(
            s.spend_budget("a".into(), both(), 120, NOW, None)
                .await
                .ok(),
            Some(expected)
        );
    }
    assert_eq!(used(line("campaign:x", "total", "all")).await, 320);
    assert!(s.revert_budget("a".into(), NOW).await.unwrap_or(false));
    assert_eq!(used(line("campaign:x", "total", "all")).await, 200);
    // Several spends in one batch: all or none; a refusal names the line and spends nothing.
    s.set_budget_limit("campaign:y".into(), "total".into(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spend = |key: &str, scope: &str, amount: i64| BudgetSpend {
        key: key.into(),
        lines: vec![line(scope, "total", "all")],
        amount,
        trail: None,
        counted: Vec::new(),
    };
    let refused = s
        .spend_budgets(
            vec![
                spend("e1", "campaign:x", 50),
                spend("e2", "campaign:y", 150),
            ],
            NOW,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::OverBudget { ref scope, .. }) if scope == "campaign:y"),
        "{refused:?}"
    );
    assert_eq!(used(line("campaign:x", "total", "all")).await, 200);
    assert_eq!(used(line("campaign:y", "total", "all")).await, 0);
    // A key that stands is a duplicate inside a batch too; the others spend.
    let batch = || {
        vec![
            spend("e1", "campaign:x", 50),
            spend("e2", "campaign:y", 100),
            spend("d", "campaign:y", 1),
        ]
    };
    assert_eq!(
        s.spend_budgets(batch(), NOW).await.ok(),
        Some(vec![Spent::New, Spent::New, Spent::Duplicate])
    );
    assert_eq!(used(line("campaign:x", "total", "all")).await, 250);
    assert_eq!(used(line("campaign:y", "total", "all")).await, 100);
    assert_eq!(
        s.spend_budgets(batch(), NOW).await.ok(),
        Some(vec![Spent::Duplicate; 3])
    );
    assert_eq!(used(line("campaign:y", "total", "all")).await, 100);
    // Racing batches over two budgets, listed in opposite orders: no deadlock, and exactly what
    // the budgets allow (300 ÷ 10 = 30 batches), each batch all or nothing.
    for scope in ["campaign:p", "campaign:q"] {
        s.set_budget_limit(scope.into(), "total".into(), 300)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = std::sync::Arc::clone(&s);
        let (first, second) = if i % 2 == 0 { ("p", "q") } else { ("q", "p") };
        let one = |scope: &str| BudgetSpend {
            key: format!("race-{i}-{scope}"),
            lines: vec![line(&format!("campaign:{scope}"), "total", "all")],
            amount: 10,
            trail: None,
            counted: Vec::new(),
        };
        let spends = vec![one(first), one(second)];
        tasks.push(tokio::spawn(
            async move { s.spend_budgets(spends, NOW).await },
        ));
    }
    let mut whole = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(spent)) => {
                assert_eq!(spent, [Spent::New, Spent::New]);
                whole += 1;
            }
            Ok(Err(Error::OverBudget { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(whole, 30);
    assert_eq!(used(line("campaign:p", "total", "all")).await, 300);
    assert_eq!(used(line("campaign:q", "total", "all")).await, 300);
}

async fn a_campaign_spend_is_on_the_trail_and_its_revert_too(h: Harness) {
    let s = &h.store;
    s.set_budget_limit("campaign:d11".into(), "total".into(), 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let note = || {
        Some(SpendTrail {
            campaign_id: "d11".into(),
            user_id: Some("u1".into()),
            order_id: Some("o1".into()),
            attempt: None,
        })
    };
    let lines = || vec![line("campaign:d11", "total", "all")];
    let key = "checkout:o1:d11".to_owned();
    let spend = |amount: i64| s.spend_budget(key.clone(), lines(), amount, NOW, note());
    assert_eq!(spend(600).await.ok(), Some(Spent::New));
    assert_eq!(spend(600).await.ok(), Some(Spent::Duplicate));
    // Refused (over the budget): nothing on the trail.
    let refused = s
        .spend_budget("checkout:o2:d11".into(), lines(), 600, NOW, note())
        .await;
    assert!(
        matches!(refused, Err(Error::OverBudget { .. })),
        "{refused:?}"
    );
    // Kept by its order once; given back, it was a kept discount rolled back.
    assert!(s
        .keep_campaign_spend(key.clone(), NOW + 1)
        .await
        .unwrap_or(false));
    assert!(!s
        .keep_campaign_spend(key.clone(), NOW + 2)
        .await
        .unwrap_or(true));
    assert!(s.revert_budget(key.clone(), NOW + 5).await.unwrap_or(false));
    assert!(!s.revert_budget(key.clone(), NOW + 6).await.unwrap_or(true));
    // A given-back spend is not kept any more.
    assert!(!s
        .keep_campaign_spend(key.clone(), NOW + 7)
        .await
        .unwrap_or(true));
    // Spent again under the same key and given back before any order kept it: it expired.
    assert_eq!(spend(400).await.ok(), Some(Spent::New));
    assert!(s.revert_budget(key.clone(), NOW + 8).await.unwrap_or(false));
    let trail = s
        .promotion_trail(TrailFilter {
            promotion_type: Some("campaign".into()),
            limit: 10,
            ..TrailFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(&str, i64, Option<i64>)> = trail
        .iter()
        .map(|e| (e.kind.as_str(), e.at, e.amount))
        .collect();
    assert_eq!(
        seen,
        [
            ("expired", NOW + 8, Some(400)),
            ("reserved", NOW, Some(400)),
            ("rolled_back", NOW + 5, Some(600)),
            ("redeemed", NOW + 1, Some(600)),
            ("reserved", NOW, Some(600)),
        ]
    );
    assert!(trail.iter().all(|e| e.subject == key
        && e.order_id.as_deref() == Some("o1")
        && e.user_id.as_deref() == Some("u1")
        && e.promotion_id == "d11"));
    // A spend without a note (a coupon's, or a generic one) is not on the trail.
    assert_eq!(
        s.spend_budget("plain".into(), lines(), 100, NOW, None)
            .await
            .ok(),
        Some(Spent::New)
    );
    assert!(s.revert_budget("plain".into(), NOW).await.unwrap_or(false));
    let count = s
        .promotion_trail(TrailFilter {
            limit: 10,
            ..TrailFilter::default()
        })
        .await
        .map(|t| t.len())
        .unwrap_or(0);
    assert_eq!(count, 5);
}

/// A refund's share: 901 off 9 units of line 0, unit by unit (the first unit carries the extra
/// cent), for the units after those returned before.
fn nine_unit_share(key: &str, units: i64) -> SharePlan {
    let key = key.to_owned();
    Box::new(move |before| {
        let per_unit = shopgrowth_core::money::allocate(901, &[1; 9]);
        let from = before.get(&0).copied().unwrap_or(0).clamp(0, 9) as usize;
        let to = (from + units as usize).min(9);
        vec![ShareReturn {
            spend_key: key.clone(),
            promotion_type: "campaign".into(),
            promotion_id: "r".into(),
            subject: key,
            amount: per_unit[from..to].iter().sum(),
        }]
    })
}

async fn refunds_give_back_each_share_once_and_never_more_than_was_spent(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    s.set_budget_limit("campaign:r".into(), "total".into(), 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let note = |order: &str| {
        Some(SpendTrail {
            campaign_id: "r".into(),
            user_id: Some("u1".into()),
            order_id: Some(order.into()),
            attempt: None,
        })
    };
    let lines = || vec![line("campaign:r", "total", "all")];
    let used = || {
        let s = std::sync::Arc::clone(&s);
        async move {
            s.budget_used(line("campaign:r", "total", "all"))
                .await
                .unwrap_or(-1)
        }
    };
    let key = "checkout:o9:r".to_owned();
    assert_eq!(
        s.spend_budget(key.clone(), lines(), 901, NOW, note("o9"))
            .await
            .ok(),
        Some(Spent::New)
    );
    s.save_checkout("o9".into(), "h".into(), "{}".into(), NOW, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Nine refunds of one unit each, at once: each works out its share from where the ones
    // before it ended, so together they give back exactly the 901 spent (two that both started
    // from the first unit would ask 101 twice, and the last would find too little left).
    let mut tasks = Vec::new();
    for i in 0..9 {
        let s = std::sync::Arc::clone(&s);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            s.return_refund_shares(
                "o9".into(),
                format!("rf{i}"),
                vec![(0, 1)],
                nine_unit_share(&key, 1),
                NOW + 1,
            )
            .await
        }));
    }
    let mut given = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(SharesReturned::Returned(shares))) => {
                given.extend(shares.iter().map(|r| r.amount));
            }
            other => panic!("{other:?}"),
        }
    }
    given.sort_unstable();
    assert_eq!(given, [100, 100, 100, 100, 100, 100, 100, 100, 101]);
    assert_eq!(used().await, 0);
    // The same refund again gives nothing back twice; a tenth unit has nothing left to give.
    let again = s
        .return_refund_shares(
            "o9".into(),
            "rf3".into(),
            vec![(0, 1)],
            nine_unit_share(&key, 1),
            NOW,
        )
        .await
        .ok();
    assert_eq!(again, Some(SharesReturned::Duplicate));
    let beyond = s
        .return_refund_shares(
            "o9".into(),
            "rf9".into(),
            vec![(0, 1)],
            nine_unit_share(&key, 1),
            NOW,
        )
        .await
        .ok();
    assert_eq!(beyond, Some(SharesReturned::Returned(Vec::new())));
    // Part of a spend given back by a refund, then the rest by a whole revert (the order
    // cancelled): the budget gets back exactly what was spent, and the trail says which part
    // came back how.
    let other = "checkout:o10:r".to_owned();
    assert_eq!(
        s.spend_budget(other.clone(), lines(), 600, NOW, note("o10"))
            .await
            .ok(),
        Some(Spent::New)
    );
    assert!(s
        .keep_campaign_spend(other.clone(), NOW + 1)
        .await
        .unwrap_or(false));
    let share = |amount: i64| -> SharePlan {
        let other = other.clone();
        Box::new(move |_| {
            vec![ShareReturn {
                spend_key: other.clone(),
                promotion_type: "campaign".into(),
                promotion_id: "r".into(),
                subject: other,
                amount,
            }]
        })
    };
    // More than the spend has is never given back.
    let too_much = s
        .return_refund_shares(
            "o10".into(),
            "big".into(),
            vec![(0, 1)],
            share(601),
            NOW + 2,
        )
        .await
        .ok();
    assert_eq!(too_much, Some(SharesReturned::Returned(Vec::new())));
    let part = s
        .return_refund_shares(
            "o10".into(),
            "part".into(),
            vec![(0, 1)],
            share(250),
            NOW + 3,
        )
        .await
        .ok();
    assert!(
        matches!(part, Some(SharesReturned::Returned(ref r)) if r.len() == 1 && r[0].amount == 250)
    );
    assert_eq!(used().await, 350);
    assert!(s
        .revert_budget(other.clone(), NOW + 4)
        .await
        .unwrap_or(false));
    assert_eq!(used().await, 0);
    // A spend reverted whole has nothing left for a later refund.
    let late = s
        .return_refund_shares(
            "o10".into(),
            "late".into(),
            vec![(0, 1)],
            share(10),
            NOW + 5,
        )
        .await
        .ok();
    assert_eq!(late, Some(SharesReturned::Returned(Vec::new())));
    let trail = s
        .promotion_trail(TrailFilter {
            subject: Some(other.clone()),
            limit: 10,
            ..TrailFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(&str, Option<i64>, Option<&str>)> = trail
        .iter()
        .map(|e| (e.kind.as_str(), e.amount, e.user_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("rolled_back", Some(350), Some("u1")),
            ("refunded", Some(250), Some("u1")),
            ("redeemed", Some(600), Some("u1")),
            ("reserved", Some(600), Some("u1")),
        ]
    );
}

async fn an_orders_standing_campaign_spends_are_found_by_order(h: Harness) {
    let s = &h.store;
    let note = |order: &str| {
        Some(SpendTrail {
            campaign_id: "d11".into(),
            user_id: Some("u1".into()),
            order_id: Some(order.into()),
            attempt: None,
        })
    };
    // Two lines per spend: the query gives each key once.
    let lines = || {
        vec![
            line("campaign:d11", "total", "all"),
            line("campaign:d11", "day", "2026-11-24"),
        ]
    };
    for (key, order) in [
        ("checkout:o1:d11:a", "o1"),
        ("checkout:o1:d11:b", "o1"),
        ("checkout:o1:d11:c", "o1"),
        // An order whose id starts like o1's is another order.
        ("checkout:o1:x:d11:a", "o1:x"),
    ] {
        let spent = s
            .spend_budget(key.into(), lines(), 100, NOW, note(order))
            .await;
        assert_eq!(spent.ok(), Some(Spent::New), "{key}");
    }
    // A spend without a note is not a checkout's.
    let plain = s
        .spend_budget("checkout:o1:plain".into(), lines(), 100, NOW, None)
        .await;
    assert_eq!(plain.ok(), Some(Spent::New));
    // Given back, then spent again under its key: it stands again, once.
    assert!(s
        .revert_budget("checkout:o1:d11:a".into(), NOW)
        .await
        .unwrap_or(false));
    assert!(s
        .revert_budget("checkout:o1:d11:b".into(), NOW)
        .await
        .unwrap_or(false));
    let again = s
        .spend_budget("checkout:o1:d11:a".into(), lines(), 100, NOW, note("o1"))
        .await;
    assert_eq!(again.ok(), Some(Spent::New));
    let standing = || async {
        s.standing_checkout_spends("o1".into())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // By their latest entries: a was spent again after c.
    let key = |k: &str, kept: bool| (k.to_owned(), kept);
    assert_eq!(
        standing().await,
        [
            key("checkout:o1:d11:c", false),
            key("checkout:o1:d11:a", false)
        ]
    );
    // Kept by the order: it says so, and stays in its place (its latest entry).
    assert!(s
        .keep_campaign_spend("checkout:o1:d11:c".into(), NOW + 1)
        .await
        .unwrap_or(false));
    assert_eq!(
        standing().await,
        [
            key("checkout:o1:d11:a", false),
            key("checkout:o1:d11:c", true)
        ]
    );
    let none = s
        .standing_checkout_spends("o2".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty());
}

async fn a_checkout_answer_is_kept_once_per_order(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let none = s
        .checkout("o1".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(none, None);
    let save = |order: &str, hash: &str, body: &str, at: i64| {
        let s = std::sync::Arc::clone(&s);
        let (order, hash, body) = (order.to_owned(), hash.to_owned(), body.to_owned());
        async move {
            s.save_checkout(order, hash, body, at, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let first = CheckoutRecord {
        request_hash: "h1".into(),
        response: r#"{"total":100}"#.into(),
    };
    assert_eq!(save("o1", "h1", r#"{"total":100}"#, NOW).await, first);
    // A later save, even of a different request, keeps the first answer.
    assert_eq!(save("o1", "h2", r#"{"total":90}"#, NOW + 1).await, first);
    assert_eq!(
        s.checkout("o1".into()).await.ok().flatten(),
        Some(first.clone())
    );
    // Racing saves of one order all get the one answer kept.
    let mut tasks = Vec::new();
    for i in 0..50 {
        tasks.push(tokio::spawn(save(
            "o2",
            "h",
            &format!("{{\"n\":{i}}}"),
            NOW,
        )));
    }
    let mut answers = std::collections::BTreeSet::new();
    for t in tasks {
        answers.insert(t.await.map(|r| r.response).unwrap_or_default());
    }
    assert_eq!(answers.len(), 1, "one answer for all: {answers:?}");
    let kept = s
        .checkout("o2".into())
        .await
        .ok()
        .flatten()
        .map(|r| r.response);
    assert_eq!(kept.as_ref(), answers.iter().next());
}

async fn checkout_attempts_are_found_once_stale_and_forgotten_when_settled(h: Harness) {
    let s = &h.store;
    let note = |order: &str, attempt: &str, at: i64| {
        s.note_checkout_attempt(order.to_owned(), attempt.to_owned(), at)
    };
    for (order, attempt, at) in [
        ("o1", "a1", NOW),
        ("o1", "a2", NOW + 10),
        ("o2", "b1", NOW + 5),
    ] {
        note(order, attempt, at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Noting again is a no-op: the attempt keeps its first time.
    note("o1", "a1", NOW + 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stale = |before: i64, limit: i64| async move {
        s.stale_checkout_attempts(before, limit)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let pair = |o: &str, a: &str| (o.to_owned(), a.to_owned());
    assert_eq!(stale(NOW, 10).await, vec![]);
    assert_eq!(
        stale(NOW + 6, 10).await,
        vec![pair("o1", "a1"), pair("o2", "b1")]
    );
    assert_eq!(stale(NOW + 11, 1).await, vec![pair("o1", "a1")]);
    s.forget_checkout_attempt("o1".into(), "a1".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Forgetting one never noted (or already forgotten) is a no-op.
    s.forget_checkout_attempt("o1".into(), "a1".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stale(NOW + 11, 10).await,
        vec![pair("o2", "b1"), pair("o1", "a2")]
    );
    // A spend naming its attempt notes it; saving that attempt's answer keeps its spends and
    // forgets it in the same write, and a later save of another attempt's answer does neither.
    s.set_budget_limit("campaign:d9".into(), "total".into(), 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trail = |attempt: &str| {
        Some(SpendTrail {
            campaign_id: "d9".into(),
            user_id: Some("u1".into()),
            order_id: Some("o3".into()),
            attempt: Some(attempt.into()),
        })
    };
    for attempt in ["c1", "c2"] {
        let key = format!("checkout:o3:d9:{attempt}");
        let lines = vec![line("campaign:d9", "total", "all")];
        let spent = s
            .spend_budget(key, lines, 100, NOW + 20, trail(attempt))
            .await;
        assert_eq!(spent.ok(), Some(Spent::New));
    }
    let noted_o3 = |attempts: &[&str]| attempts.iter().map(|a| pair("o3", a)).collect::<Vec<_>>();
    let o3 = || async {
        stale(NOW + 21, 10)
            .await
            .into_iter()
            .filter(|(o, _)| o == "o3")
            .collect::<Vec<_>>()
    };
    assert_eq!(o3().await, noted_o3(&["c1", "c2"]));
    let kept_by = |attempt: &str| {
        Some(CheckoutAttempt {
            attempt: attempt.into(),
            spend_keys: vec![format!("checkout:o3:d9:{attempt}")],
        })
    };
    let save = |attempt: &str, body: &str| {
        s.save_checkout(
            "o3".into(),
            "h".into(),
            body.into(),
            NOW + 22,
            kept_by(attempt),
        )
    };
    let kept = save("c2", "answer of c2").await.map(|r| r.response).ok();
    assert_eq!(kept.as_deref(), Some("answer of c2"));
    let later = save("c1", "answer of c1").await.map(|r| r.response).ok();
    assert_eq!(later.as_deref(), Some("answer of c2"));
    assert_eq!(o3().await, noted_o3(&["c1"]));
    let standing = s
        .standing_checkout_spends("o3".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        standing,
        [
            ("checkout:o3:d9:c1".to_owned(), false),
            ("checkout:o3:d9:c2".to_owned(), true)
        ]
    );
}

async fn migrations_are_repeatable(h: Harness) {
    h.store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("second migrate failed: {e}"));
}

async fn red_packets_hand_out_each_share_once_and_return_the_rest(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let amounts: Vec<i64> = (1..=100).collect(); // 5,050 in all
    let packet = RedPacketRecord {
        id: "rp".into(),
        sender: "boss".into(),
        kind: "lucky".into(),
        total: 5_050,
        currency: "CNY".into(),
        shares: 100,
        claimed_count: 0,
        claimed_amount: 0,
        state: "open".into(),
        returned: 0,
        expires_at: NOW + 60_000,
        created_at: NOW,
        unlock_helpers: 0,
        helpers: 0,
        opens_at: 0,
        rain_id: None,
        helps_per_helper_per_day: None,
    };
    assert!(s
        .create_red_packet(packet.clone(), amounts.clone())
        .await
        .unwrap_or(false));
    assert!(
        !s.create_red_packet(packet.clone(), amounts.clone())
            .await
            .unwrap_or(true),
        "same id: nothing new"
    );
    // 300 claimants at once, each trying twice, for 100 shares.
    let mut tasks = Vec::new();
    for i in 0..600 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.claim_red_packet("rp".into(), format!("u{}", i % 300), NOW + 1)
                .await
        }));
    }
    let (mut new, mut repeated, mut refused) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(PacketClaim::New(share))) => new.push(share),
            Ok(Ok(PacketClaim::Duplicate(_))) => repeated += 1,
            Ok(Err(Error::Conflict(m))) if m.contains("no shares left") => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new.len(), 100, "every share handed out once");
    assert_eq!(new.len() + repeated + refused, 600);
    let claimants: std::collections::HashSet<_> =
        new.iter().map(|c| c.claimed_by.clone()).collect();
    assert_eq!(claimants.len(), 100, "one share per claimant");
    let mut positions: Vec<i64> = new.iter().map(|c| c.position).collect();
    positions.sort_unstable();
    assert_eq!(positions, (0..100).collect::<Vec<i64>>());
    assert_eq!(
        new.iter().map(|c| c.amount).sum::<i64>(),
        5_050,
        "the shares sum to the total"
    );
    let (stored, shares) = s
        .red_packet("rp".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (
            stored.claimed_count,
            stored.claimed_amount,
            stored.state.as_str()
        ),
        (100, 5_050, "finished")
    );
    assert!(shares.iter().all(|x| x.claimed_by.is_some()));
    assert!(
        s.expire_red_packets(NOW + 120_000)
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing to return"
    );

    // A second packet: three claims, then expiry returns the rest exactly once, and no claim
    // succeeds after the deadline even before the sweep.
    let second = RedPacketRecord {
        id: "rp2".into(),
        total: 1_000,
        shares: 10,
        ..packet
    };
    assert!(s
        .create_red_packet(second, vec![100; 10])
        .await
        .unwrap_or(false));
    for u in ["a", "b", "c"] {
        assert!(matches!(
            s.claim_red_packet("rp2".into(), u.into(), NOW + 5).await,
            Ok(PacketClaim::New(_))
        ));
    }
    assert!(matches!(
        s.claim_red_packet("rp2".into(), "a".into(), NOW + 6).await,
        Ok(PacketClaim::Duplicate(ref c)) if c.position == 0
    ));
    let late = s
        .claim_red_packet("rp2".into(), "d".into(), NOW + 60_000)
        .await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("expired")),
        "{late:?}"
    );
    assert_eq!(
        s.expire_red_packets(NOW + 60_000).await.ok(),
        Some(vec![("rp2".to_string(), 700)])
    );
    assert_eq!(
        s.expire_red_packets(NOW + 70_000).await.ok(),
        Some(vec![]),
        "returned once"
    );
    let missing = s.claim_red_packet("nope".into(), "a".into(), NOW).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

/// A helper's line for a day, as the server builds it for a capped share packet.
fn helper_day(helper: String, day: &str) -> BudgetLine {
    BudgetLine {
        scope: format!("helper:{helper}"),
        period: "day".into(),
        period_key: day.into(),
    }
}

async fn share_to_unlock_packets_open_with_exactly_their_helpers(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let packet = RedPacketRecord {
        id: "share".into(),
        sender: "alice".into(),
        kind: "fixed".into(),
        total: 900,
        currency: "CNY".into(),
        shares: 3,
        claimed_count: 0,
        claimed_amount: 0,
        state: "locked".into(),
        returned: 0,
        expires_at: NOW + 60_000,
        created_at: NOW,
        unlock_helpers: 5,
        helpers: 0,
        opens_at: 0,
        rain_id: None,
        helps_per_helper_per_day: None,
    };
    assert!(s
        .create_red_packet(packet.clone(), vec![300; 3])
        .await
        .unwrap_or(false));
    let (stored, _) = s
        .red_packet("share".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (stored.state.as_str(), stored.unlock_helpers),
        ("locked", 5)
    );
    let locked = s
        .claim_red_packet("share".into(), "bob".into(), NOW + 1)
        .await;
    assert!(
        matches!(locked, Err(Error::Conflict(ref m)) if m.contains("locked until 5 more")),
        "{locked:?}"
    );
    let own = s
        .help_red_packet(
            "share".into(),
            "alice".into(),
            NOW + 1,
            helper_day("alice".into(), "2026-11-25"),
        )
        .await;
    assert!(
        matches!(own, Err(Error::Conflict(ref m)) if m.contains("its own sender")),
        "{own:?}"
    );
    // 40 friends help at once, each twice: exactly five are counted, and the fifth opens it.
    let mut tasks = Vec::new();
    for i in 0..80 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let friend = format!("f{}", i % 40);
            s.help_red_packet(
                "share".into(),
                friend.clone(),
                NOW + 2,
                helper_day(friend, "2026-11-25"),
            )
            .await
        }));
    }
    let (mut counted, mut repeated, mut refused) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(PacketHelp::New(p))) => counted.push(p.helpers),
            Ok(Ok(PacketHelp::Duplicate(_))) => repeated += 1,
            Ok(Err(Error::Conflict(m))) if m.contains("unlocked already") => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, vec![1, 2, 3, 4, 5], "each count taken once");
    assert_eq!(counted.len() + repeated + refused, 80);
    let (stored, _) = s
        .red_packet("share".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!((stored.state.as_str(), stored.helpers), ("open", 5));
    assert!(matches!(
        s.claim_red_packet("share".into(), "bob".into(), NOW + 3).await,
        Ok(PacketClaim::New(ref c)) if c.amount == 300
    ));
    // A packet made without helpers needs none.
    let plain = RedPacketRecord {
        id: "plain".into(),
        unlock_helpers: 0,
        state: "open".into(),
        ..packet.clone()
    };
    assert!(s
        .create_red_packet(plain, vec![300; 3])
        .await
        .unwrap_or(false));
    let needless = s
        .help_red_packet(
            "plain".into(),
            "f1".into(),
            NOW + 3,
            helper_day("f1".into(), "2026-11-25"),
        )
        .await;
    assert!(
        matches!(needless, Err(Error::Conflict(ref m)) if m.contains("needs no helpers")),
        "{needless:?}"
    );
    // A packet still locked at its deadline returns everything, once; no help counts late.
    let lonely = RedPacketRecord {
        id: "lonely".into(),
        ..packet.clone()
    };
    assert!(s
        .create_red_packet(lonely, vec![300; 3])
        .await
        .unwrap_or(false));
    assert!(matches!(
        s.help_red_packet("lonely".into(), "f1".into(), NOW + 4, helper_day("f1".into(), "2026-11-25")).await,
        Ok(PacketHelp::New(ref p)) if p.helpers == 1 && p.state == "locked"
    ));
    assert!(matches!(
        s.help_red_packet("lonely".into(), "f1".into(), NOW + 5, helper_day("f1".into(), "2026-11-25")).await,
        Ok(PacketHelp::Duplicate(ref p)) if p.helpers == 1
    ));
    let late = s
        .help_red_packet(
            "lonely".into(),
            "f2".into(),
            NOW + 60_000,
            helper_day("f2".into(), "2026-11-25"),
        )
        .await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("expired")),
        "{late:?}"
    );
    // Every packet here ends at the same time: the locked one returns all of it.
    let mut returned = s.expire_red_packets(NOW + 60_000).await.unwrap_or_default();
    returned.sort();
    assert_eq!(
        returned,
        vec![
            ("lonely".to_string(), 900),
            ("plain".to_string(), 900),
            ("share".to_string(), 600)
        ]
    );
    // A cap of two helps a day per helper: a third packet's help by the same friend is refused
    // and leaves nothing, the next day it counts.
    for id in ["cap1", "cap2", "cap3"] {
        let capped = RedPacketRecord {
            id: id.into(),
            helps_per_helper_per_day: Some(2),
            ..packet.clone()
        };
        assert!(s
            .create_red_packet(capped, vec![300; 3])
            .await
            .unwrap_or(false));
    }
    for id in ["cap1", "cap2"] {
        assert!(matches!(
            s.help_red_packet(
                id.into(),
                "busy".into(),
                NOW + 6,
                helper_day("busy".into(), "2026-11-25")
            )
            .await,
            Ok(PacketHelp::New(_))
        ));
    }
    let third = s
        .help_red_packet(
            "cap3".into(),
            "busy".into(),
            NOW + 7,
            helper_day("busy".into(), "2026-11-25"),
        )
        .await;
    assert!(
        matches!(third, Err(Error::Conflict(ref m)) if m.contains("helped 2 share packets today")),
        "{third:?}"
    );
    let next_day = s
        .help_red_packet(
            "cap3".into(),
            "busy".into(),
            NOW + 8,
            helper_day("busy".into(), "2026-11-26"),
        )
        .await;
    assert!(
        matches!(next_day, Ok(PacketHelp::New(ref p)) if p.helpers == 1),
        "the refused help left no row behind: {next_day:?}"
    );
    let missing = s
        .help_red_packet(
            "nope".into(),
            "f1".into(),
            NOW,
            helper_day("f1".into(), "2026-11-25"),
        )
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

async fn rain_rounds_open_at_their_start_and_are_read_in_order(h: Harness) {
    let s = h.store;
    let round = |k: i64, opens_at: i64| RedPacketRecord {
        id: format!("rain:{k}"),
        sender: "shop".into(),
        kind: "lucky".into(),
        total: 1_000,
        currency: "CNY".into(),
        shares: 2,
        claimed_count: 0,
        claimed_amount: 0,
        state: "open".into(),
        returned: 0,
        expires_at: opens_at + 60_000,
        created_at: NOW,
        unlock_helpers: 0,
        helpers: 0,
        opens_at,
        rain_id: Some("rain".into()),
        helps_per_helper_per_day: None,
    };
    // Made out of order: read back in time order.
    for (k, at) in [(2, NOW + 3_600_000), (1, NOW + 1_000)] {
        assert!(s
            .create_red_packet(round(k, at), vec![600, 400])
            .await
            .unwrap_or(false));
    }
    let rounds = s.rain_rounds("rain".into()).await.unwrap_or_default();
    assert_eq!(
        rounds.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["rain:1", "rain:2"]
    );
    assert_eq!(rounds[1].opens_at, NOW + 3_600_000);
    let early = s.claim_red_packet("rain:1".into(), "u1".into(), NOW).await;
    assert!(
        matches!(early, Err(Error::Conflict(ref m)) if m.contains("opens at")),
        "{early:?}"
    );
    assert!(matches!(
        s.claim_red_packet("rain:1".into(), "u1".into(), NOW + 1_000).await,
        Ok(PacketClaim::New(ref c)) if c.amount == 600
    ));
    // The round ends: what nobody claimed goes back; the later round is untouched.
    assert_eq!(
        s.expire_red_packets(NOW + 61_000).await.ok(),
        Some(vec![("rain:1".to_string(), 400)])
    );
    assert!(s
        .rain_rounds("none".into())
        .await
        .is_ok_and(|r| r.is_empty()));
}

async fn counted_uses_stop_at_their_limit_and_come_back_with_a_revert(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let uses = || BudgetLine {
        scope: "campaign:c:customer:amy".into(),
        period: "total".into(),
        period_key: "all".into(),
    };
    let spend = |key: &str| BudgetSpend {
        key: key.into(),
        lines: vec![BudgetLine {
            scope: "campaign:c".into(),
            period: "total".into(),
            period_key: "all".into(),
        }],
        amount: 500,
        trail: None,
        counted: vec![CountedLine {
            line: uses(),
            limit: 2,
        }],
    };
    // Eight orders at once for a limit of 2: exactly two count, and only their money is spent.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = std::sync::Arc::clone(&s);
        let spend = spend(&format!("k{i}"));
        tasks.push(tokio::spawn(async move {
            s.spend_budgets(vec![spend], NOW).await
        }));
    }
    let mut spent = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(_)) => spent.push(format!("k{i}")),
            Ok(Err(Error::OverBudget { scope, .. })) => {
                assert_eq!(scope, "campaign:c:customer:amy")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(spent.len(), 2, "{spent:?}");
    assert_eq!(s.budget_used(uses()).await.ok(), Some(2));
    let money = BudgetLine {
        scope: "campaign:c".into(),
        period: "total".into(),
        period_key: "all".into(),
    };
    assert_eq!(s.budget_used(money.clone()).await.ok(), Some(1_000));
    // A repeated key counts nothing more; a revert gives the use back with the money.
    assert!(matches!(
        s.spend_budgets(vec![spend(&spent[0])], NOW)
            .await
            .as_deref(),
        Ok([Spent::Duplicate])
    ));
    assert_eq!(
        s.revert_budget(spent[0].clone(), NOW).await.ok(),
        Some(true)
    );
    assert_eq!(s.budget_used(uses()).await.ok(), Some(1));
    assert_eq!(s.budget_used(money).await.ok(), Some(500));
    assert!(s.spend_budgets(vec![spend("again")], NOW).await.is_ok());
    assert_eq!(s.budget_used(uses()).await.ok(), Some(2));
}

async fn groups_fill_exactly_and_fail_with_refunds_at_the_deadline(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let deal = GroupDealRecord {
        id: "deal".into(),
        sku: "durian".into(),
        group_size: 5,
        leader_price: 5_900,
        member_price: 6_900,
        window_ms: 3_600_000,
        starts_at: NOW,
        ends_at: NOW + 86_400_000,
        created_at: NOW,
    };
    assert!(s.create_group_deal(deal.clone()).await.unwrap_or(false));
    let opened = s
        .open_group(
            "deal".into(),
            "g1".into(),
            "leader".into(),
            "o-leader".into(),
            NOW + 1,
        )
        .await;
    assert!(
        matches!(opened, Ok(Joined::New(ref m)) if m.leader && m.price == 5_900),
        "{opened:?}"
    );
    assert!(matches!(
        s.open_group(
            "deal".into(),
            "g1".into(),
            "leader".into(),
            "o-leader".into(),
            NOW + 2
        )
        .await,
        Ok(Joined::Duplicate(_))
    ));
    // 40 joiners at once for the 4 seats left.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.join_group("g1".into(), format!("u{i}"), format!("o{i}"), NOW + 10)
                .await
        }));
    }
    let (mut joined, mut full) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(Joined::New(m))) => {
                assert_eq!(m.price, 6_900);
                joined += 1;
            }
            Ok(Err(Error::Conflict(m))) if m.contains("full") => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (joined, full),
        (4, 36),
        "never more members than the group size"
    );
    let (g, members) = s
        .group("g1".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (g.joined, g.state.as_str(), members.len()),
        (5, "complete", 5)
    );

    // A group that does not fill: at the deadline it fails and both members are refunded, once.
    assert!(matches!(
        s.open_group(
            "deal".into(),
            "g2".into(),
            "a".into(),
            "o-a".into(),
            NOW + 100
        )
        .await,
        Ok(Joined::New(_))
    ));
    assert!(matches!(
        s.join_group("g2".into(), "b".into(), "o-b".into(), NOW + 200)
            .await,
        Ok(Joined::New(_))
    ));
    let again = s
        .join_group("g2".into(), "b".into(), "o-b2".into(), NOW + 300)
        .await;
    assert!(
        matches!(again, Err(Error::Conflict(ref m)) if m.contains("already")),
        "{again:?}"
    );
    let deadline = NOW + 100 + 3_600_000;
    let late = s
        .join_group("g2".into(), "c".into(), "o-c".into(), deadline)
        .await;
    assert!(
        matches!(late, Err(Error::Conflict(ref m)) if m.contains("deadline")),
        "{late:?}"
    );
    let expired = s.expire_groups(deadline).await.unwrap_or_default();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0, "g2");
    assert!(
        expired[0].1.iter().all(|m| m.state == "refunded") && expired[0].1.len() == 2,
        "{expired:?}"
    );
    assert!(
        s.expire_groups(deadline + 1)
            .await
            .unwrap_or_default()
            .is_empty(),
        "refunded once"
    );
    let (g2, _) = s
        .group("g2".into())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(g2.state, "failed");
    let closed = s
        .open_group(
            "deal".into(),
            "g3".into(),
            "z".into(),
            "o-z".into(),
            NOW + 86_400_000,
        )
        .await;
    assert!(
        matches!(closed, Err(Error::Conflict(ref m)) if m.contains("not running")),
        "{closed:?}"
    );
}

async fn bulk_issuance_keeps_quota_limits_and_keys_under_racing_claims(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    assert!(s
        .create_coupon_template(template("bulk", Some(300), 1))
        .await
        .unwrap_or(false));
    let grants = |users: std::ops::Range<u32>, batch: &str| -> Vec<CouponGrant> {
        users
            .map(|u| CouponGrant {
                user_id: format!("u{u}"),
                claim_key: format!("{batch}:u{u}"),
                code: format!("{batch}-{u}"),
            })
            .collect()
    };
    let first = s
        .issue_coupons("bulk".into(), grants(0..100, "b1"), NOW)
        .await;
    assert_eq!(first.ok().map(|x| x.issued), Some(100));
    let again = s
        .issue_coupons("bulk".into(), grants(0..100, "b1"), NOW)
        .await;
    assert_eq!(
        again.ok().map(|x| (x.issued, x.duplicates)),
        Some((0, 100)),
        "the same keys issue nothing"
    );
    let limited = s
        .issue_coupons("bulk".into(), grants(90..110, "b2"), NOW)
        .await;
    assert_eq!(
        limited.ok().map(|x| (x.issued, x.over_user_limit)),
        Some((10, 10)),
        "u90–u99 already hold one"
    );
    // A bulk issuance racing 100 single claims for the 190 coupons left: never more than the quota.
    let bulk = {
        let s = std::sync::Arc::clone(&s);
        tokio::spawn(async move {
            s.issue_coupons("bulk".into(), grants(1000..1300, "b3"), NOW + 1)
                .await
        })
    };
    let mut singles = Vec::new();
    for i in 0..100 {
        let s = std::sync::Arc::clone(&s);
        singles.push(tokio::spawn(async move {
            s.claim_coupon(
                "bulk".into(),
                format!("s{i}"),
                format!("k{i}"),
                format!("single-{i}"),
                vec![],
                NOW + 1,
            )
            .await
        }));
    }
    let mut single_won = 0;
    for t in singles {
        if matches!(t.await, Ok(Ok(Claimed::New(_)))) {
            single_won += 1;
        }
    }
    let summary = bulk.await.ok().and_then(|r| r.ok()).unwrap_or_default();
    assert_eq!(summary.issued + summary.sold_out, 300, "{summary:?}");
    assert_eq!(
        summary.issued + single_won,
        190,
        "exactly the quota: {summary:?}, {single_won} single"
    );
    let t = s
        .coupon_template("bulk".into())
        .await
        .ok()
        .flatten()
        .map(|t| t.issued);
    assert_eq!(t, Some(300));
    // One user listed three times under different keys, with a limit of 2: two are issued.
    assert!(s
        .create_coupon_template(template("twice", None, 2))
        .await
        .unwrap_or(false));
    let thrice: Vec<CouponGrant> = ["a", "b", "c"]
        .iter()
        .map(|k| CouponGrant {
            user_id: "u1".into(),
            claim_key: (*k).into(),
            code: format!("twice-{k}"),
        })
        .collect();
    let summary = s.issue_coupons("twice".into(), thrice, NOW).await;
    assert_eq!(
        summary.ok().map(|x| (x.issued, x.over_user_limit)),
        Some((2, 1))
    );
}

async fn the_promotion_trail_records_each_change_and_the_feed_gives_each_once(h: Harness) {
    let s = std::sync::Arc::new(h.store);
    let ok = |what: &str, r: Result<bool, Error>| assert!(r.unwrap_or(false), "{what}");
    // A coupon: claimed, held, redeemed, then given back.
    ok(
        "template",
        s.create_coupon_template(template("t", None, 5)).await,
    );
    let claimed = s
        .claim_coupon(
            "t".into(),
            "u1".into(),
            "k1".into(),
            "C1".into(),
            vec![],
            NOW,
        )
        .await;
    assert!(matches!(claimed, Ok(Claimed::New(_))), "{claimed:?}");
    let held = s
        .reserve_coupon("C1".into(), "u1".into(), "o1".into(), NOW + 60_000, NOW + 1)
        .await;
    assert!(held.is_ok(), "{held:?}");
    let redeemed = s
        .redeem_coupon("C1".into(), "u1".into(), "o1".into(), NOW + 2)
        .await;
    assert!(matches!(redeemed, Ok(Redeemed::New)), "{redeemed:?}");
    ok(
        "release",
        s.release_coupon("C1".into(), "o1".into(), NOW + 3).await,
    );
    // A flash sale: bought, given up, and lapsed.
    let sale = FlashSaleRecord {
        id: "fs".into(),
        sku: "phone".into(),
        price: 1_000,
        stock: 10,
        taken: 0,
        per_user_limit: 2,
        starts_at: NOW,
        ends_at: NOW + 3_600_000,
        hold_ms: 60_000,
        created_at: NOW,
    };
    ok("sale", s.create_flash_sale(sale).await);
    for (r, u) in [("r1", "u1"), ("r2", "u2"), ("r3", "u3")] {
        let held = s
            .reserve_flash("fs".into(), r.into(), u.into(), 2, NOW + 1)
            .await;
        assert!(matches!(held, Ok(Reserved::New(_))), "{held:?}");
    }
    assert!(s.confirm_flash("r1".into(), NOW + 2).await.is_ok());
    assert!(s.confirm_flash("r1".into(), NOW + 3).await.is_ok(), "twice");
    ok("give up", s.release_flash("r2".into(), true, NOW + 2).await);
    assert_eq!(s.sweep_flash(NOW + 60_002).await.ok(), Some(1));
    // A red packet: sent, one share claimed, the rest returned.
    let packet = RedPacketRecord {
        id: "rp".into(),
        sender: "boss".into(),
        kind: "fixed".into(),
        total: 300,
        currency: "CNY".into(),
        shares: 3,
        claimed_count: 0,
        claimed_amount: 0,
        state: "open".into(),
        returned: 0,
        expires_at: NOW + 60_000,
        created_at: NOW,
        unlock_helpers: 0,
        helpers: 0,
        opens_at: 0,
        rain_id: None,
        helps_per_helper_per_day: None,
    };
    ok(
        "packet",
        s.create_red_packet(packet, vec![100, 100, 100]).await,
    );
    assert!(matches!(
        s.claim_red_packet("rp".into(), "u1".into(), NOW + 1).await,
        Ok(PacketClaim::New(_))
    ));
    assert!(matches!(
        s.claim_red_packet("rp".into(), "u1".into(), NOW + 2).await,
        Ok(PacketClaim::Duplicate(_))
    ));
    assert_eq!(
        s.expire_red_packets(NOW + 60_000).await.ok(),
        Some(vec![("rp".to_string(), 200)])
    );
    // Group buying: one group fills, one fails at its deadline.
    let deal = GroupDealRecord {
        id: "deal".into(),
        sku: "durian".into(),
        group_size: 2,
        leader_price: 500,
        member_price: 600,
        window_ms: 60_000,
        starts_at: NOW,
        ends_at: NOW + 86_400_000,
        created_at: NOW,
    };
    ok("deal", s.create_group_deal(deal).await);
    for (group, leader, order) in [("g1", "u1", "og1"), ("g2", "u4", "og2")] {
        let opened = s
            .open_group(
                "deal".into(),
                group.into(),
                leader.into(),
                order.into(),
                NOW,
            )
            .await;
        assert!(matches!(opened, Ok(Joined::New(_))), "{opened:?}");
    }
    let joined = s
        .join_group("g1".into(), "u2".into(), "og3".into(), NOW + 1)
        .await;
    assert!(matches!(joined, Ok(Joined::New(_))), "{joined:?}");
    assert_eq!(
        s.expire_groups(NOW + 60_000).await.map(|g| g.len()).ok(),
        Some(1)
    );

    // Everything user u1 did, newest first.
    let trail = s
        .promotion_trail(TrailFilter {
            user_id: Some("u1".into()),
            limit: 100,
            ..TrailFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(&str, &str, Option<i64>)> = trail
        .iter()
        .rev()
        .map(|e| (e.promotion_type.as_str(), e.kind.as_str(), e.amount))
        .collect();
    assert_eq!(
        seen,
        [
            ("coupon", "claimed", None),
            ("coupon", "reserved", None),
            ("coupon", "redeemed", None),
            ("coupon", "rolled_back", None),
            ("flash_sale", "reserved", Some(2_000)),
            ("flash_sale", "redeemed", Some(2_000)),
            ("red_packet", "claimed", Some(100)),
            ("group_buy", "reserved", Some(500)),
            ("group_buy", "redeemed", Some(500)),
        ]
    );
    let kinds_of = |trail: &[PromotionEventRecord], user: &str| -> Vec<String> {
        trail
            .iter()
            .filter(|e| e.user_id.as_deref() == Some(user))
            .map(|e| format!("{}:{}", e.promotion_type, e.kind))
            .collect()
    };
    let all = s
        .promotion_trail(TrailFilter {
            limit: 1000,
            ..TrailFilter::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(
        kinds_of(&all, "u2"),
        [
            "group_buy:redeemed",
            "group_buy:reserved",
            "flash_sale:rolled_back",
            "flash_sale:reserved"
        ]
    );
    assert_eq!(
        kinds_of(&all, "u3"),
        ["flash_sale:expired", "flash_sale:reserved"]
    );
    assert_eq!(
        kinds_of(&all, "u4"),
        ["group_buy:rolled_back", "group_buy:reserved"]
    );
    assert_eq!(
        kinds_of(&all, "boss"),
        ["red_packet:expired", "red_packet:issued"]
    );
    let returned = all
        .iter()
        .find(|e| e.kind == "expired" && e.promotion_type == "red_packet");
    assert_eq!(returned.and_then(|e| e.amount), Some(200));
    // Paging by id gives the same entries.
    let page = s
        .promotion_trail(TrailFilter {
            before_id: all.get(4).map(|e| e.id),
            limit: 3,
            ..TrailFilter::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(page, all[5..8].to_vec());

    // Counts per promotion and kind.
    let counts = s
        .trail_counts(NOW, NOW + 86_400_000)
        .await
        .unwrap_or_default();
    let flash_reserved = counts
        .iter()
        .find(|c| c.promotion_type == "flash_sale" && c.kind == "reserved");
    assert_eq!(
        flash_reserved.map(|c| (c.events, c.users, c.amount)),
        Some((3, 3, 6_000))
    );
    assert_eq!(
        counts.iter().map(|c| c.events).sum::<i64>(),
        all.len() as i64
    );

    // The feed, in pages, gives every entry once; a follower racing 200 concurrent claims of
    // another packet misses none and repeats none.
    let big = RedPacketRecord {
        id: "big".into(),
        sender: "boss".into(),
        kind: "fixed".into(),
        total: 20_000,
        currency: "CNY".into(),
        shares: 200,
        claimed_count: 0,
        claimed_amount: 0,
        state: "open".into(),
        returned: 0,
        expires_at: NOW + 60_000,
        created_at: NOW,
        unlock_helpers: 0,
        helpers: 0,
        opens_at: 0,
        rain_id: None,
        helps_per_helper_per_day: None,
    };
    ok("big packet", s.create_red_packet(big, vec![100; 200]).await);
    let mut claims = Vec::new();
    for i in 0..200 {
        let s = std::sync::Arc::clone(&s);
        claims.push(tokio::spawn(async move {
            s.claim_red_packet("big".into(), format!("c{i}"), NOW + 1)
                .await
        }));
    }
    let mut cursor = TrailCursor::default();
    let mut followed: Vec<i64> = Vec::new();
    let mut done = false;
    loop {
        let (rows, next) = s
            .promotion_feed(cursor, 7)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(next >= cursor);
        cursor = next;
        if rows.is_empty() {
            if done {
                break;
            }
            done = claims.iter().all(|c| c.is_finished());
            tokio::task::yield_now().await;
        }
        followed.extend(rows.iter().map(|r| r.id));
    }
    for c in claims {
        assert!(matches!(c.await, Ok(Ok(PacketClaim::New(_)))));
    }
    let (rest, _) = s.promotion_feed(cursor, 1000).await.unwrap_or_default();
    followed.extend(rest.iter().map(|r| r.id));
    let distinct: std::collections::BTreeSet<i64> = followed.iter().copied().collect();
    assert_eq!(distinct.len(), followed.len(), "an entry was given twice");
    assert_eq!(followed.len(), all.len() + 201, "every entry, once");
}

macro_rules! suite {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::$backend().await).await;
                }
            )*
        }
    };
}

suite!(sqlite: events_are_stored_once, anonymous_history_follows_login, same_phone_is_one_customer,
    orders_are_idempotent_and_refunds_are_bounded, concurrent_refunds_never_exceed_a_line,
    imports_dedupe_lines_and_grow_orders, api_keys_round_trip, manual_merges_refuse_cycles, migrations_are_repeatable,
    audience_source_reads_users_orders_events_and_links, tags_segments_and_snapshots_round_trip,
    coupon_quota_holds_under_a_thousand_concurrent_claims, coupon_claims_are_idempotent_and_limited_per_user,
    a_users_open_coupons_leave_out_used_expired_and_others,
    a_template_prefix_starts_each_of_its_codes,
    operators_list_templates_sales_deals_and_packets_a_page_at_a_time,
    a_coupon_is_redeemed_once_under_concurrent_attempts, campaigns_change_only_by_conditional_writes,
    a_coupon_is_held_by_one_order_until_its_hold_lapses, device_and_phone_limits_hold_under_concurrent_claims,
    offered_templates_and_a_users_claims_are_listed,
    flash_sales_never_oversell_and_expired_holds_return, budgets_are_never_exceeded_and_revert_once,
    flash_limit_refusals_racing_holds_give_their_units_back,
    red_packets_hand_out_each_share_once_and_return_the_rest,
    share_to_unlock_packets_open_with_exactly_their_helpers,
    rain_rounds_open_at_their_start_and_are_read_in_order,
    counted_uses_stop_at_their_limit_and_come_back_with_a_revert,
    groups_fill_exactly_and_fail_with_refunds_at_the_deadline,
    bulk_issuance_keeps_quota_limits_and_keys_under_racing_claims,
    the_promotion_trail_records_each_change_and_the_feed_gives_each_once,
    a_checkout_answer_is_kept_once_per_order,
    a_campaign_spend_is_on_the_trail_and_its_revert_too,
    refunds_give_back_each_share_once_and_never_more_than_was_spent,
    an_orders_standing_campaign_spends_are_found_by_order,
    checkout_attempts_are_found_once_stale_and_forgotten_when_settled);
suite!(postgres: events_are_stored_once, anonymous_history_follows_login, same_phone_is_one_customer,
    orders_are_idempotent_and_refunds_are_bounded, concurrent_refunds_never_exceed_a_line,
    imports_dedupe_lines_and_grow_orders, api_keys_round_trip, manual_merges_refuse_cycles, migrations_are_repeatable,
    audience_source_reads_users_orders_events_and_links, tags_segments_and_snapshots_round_trip,
    coupon_quota_holds_under_a_thousand_concurrent_claims, coupon_claims_are_idempotent_and_limited_per_user,
    a_users_open_coupons_leave_out_used_expired_and_others,
    a_template_prefix_starts_each_of_its_codes,
    operators_list_templates_sales_deals_and_packets_a_page_at_a_time,
    a_coupon_is_redeemed_once_under_concurrent_attempts, campaigns_change_only_by_conditional_writes,
    a_coupon_is_held_by_one_order_until_its_hold_lapses, device_and_phone_limits_hold_under_concurrent_claims,
    offered_templates_and_a_users_claims_are_listed,
    flash_sales_never_oversell_and_expired_holds_return, budgets_are_never_exceeded_and_revert_once,
    flash_limit_refusals_racing_holds_give_their_units_back,
    red_packets_hand_out_each_share_once_and_return_the_rest,
    share_to_unlock_packets_open_with_exactly_their_helpers,
    rain_rounds_open_at_their_start_and_are_read_in_order,
    counted_uses_stop_at_their_limit_and_come_back_with_a_revert,
    groups_fill_exactly_and_fail_with_refunds_at_the_deadline,
    bulk_issuance_keeps_quota_limits_and_keys_under_racing_claims,
    the_promotion_trail_records_each_change_and_the_feed_gives_each_once,
    a_checkout_answer_is_kept_once_per_order,
    a_campaign_spend_is_on_the_trail_and_its_revert_too,
    refunds_give_back_each_share_once_and_never_more_than_was_spent,
    an_orders_standing_campaign_spends_are_found_by_order,
    checkout_attempts_are_found_once_stale_and_forgotten_when_settled);
