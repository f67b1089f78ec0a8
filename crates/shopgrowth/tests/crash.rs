//! Durability: the server is killed with SIGKILL in the middle of a batch-ingest loop, and in the
//! middle of a flash sale. After a restart every acknowledged event and confirmation is present,
//! no event is stored twice, and the flash sale sells exactly its stock.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PII_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn shopgrowth(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopgrowth"));
    c.arg("--data-dir")
        .arg(data)
        .env("SHOPGROWTH_PII_KEY", PII_KEY)
        .env("SHOPGROWTH_LOG", "warn");
    c
}

/// Starts `serve` on a free port and returns the child and its base URL.
fn start(data: &Path) -> (Child, String) {
    let mut child = shopgrowth(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    (child, url.to_owned())
}

fn batch(b: usize) -> Value {
    let events: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("k{b}-{i}"), "type": "view", "time": 1_780_000_000_000i64 + i as i64,
                         "user_id": format!("u{}", i % 50), "device_id": format!("d{}", i % 60), "channel": "app", "sku_id": "s"}))
        .collect();
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = shopgrowth(dir.path())
        .args([
            "keys",
            "create",
            "--name",
            "crash",
            "--scopes",
            "ingest,read",
            "--json",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let key: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let key = key["key"].as_str().unwrap_or_default().to_owned();
    let (mut server, url) = start(dir.path());

    // Four clients post batches until the server dies under them.
    let client = reqwest::Client::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, url, key, next) = (
            client.clone(),
            url.clone(),
            key.clone(),
            std::sync::Arc::clone(&next),
        );
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let sent = client
                    .post(format!("{url}/api/v1/events/batch"))
                    .bearer_auth(&key)
                    .json(&batch(b))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acked.push(b),
                    _ => return acked,
                }
            }
        }));
    }
    // Kill once a good number of batches were acknowledged, with requests still in flight.
    while next.load(std::sync::atomic::Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL
    let _ = server.wait();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap_or_default());
    }
    let attempted = next.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        acked.len() >= 40,
        "only {} batches were acknowledged",
        acked.len()
    );

    // Restart and resend every batch that was attempted: acknowledged ones are all duplicates.
    let (mut server, url) = start(dir.path());
    let mut duplicates_of_acked = 0;
    for b in 0..attempted {
        let r: Value = client
            .post(format!("{url}/api/v1/events/batch"))
            .bearer_auth(&key)
            .json(&batch(b))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or(Value::Null);
        if acked.contains(&b) {
            assert_eq!(
                r["inserted"], 0,
                "batch {b} was acknowledged before the kill but is not fully stored: {r}"
            );
            duplicates_of_acked += r["duplicates"].as_array().map_or(0, Vec::len);
        }
    }
    assert_eq!(duplicates_of_acked, acked.len() * 200);
    let stats: Value = client
        .get(format!("{url}/api/v1/stats"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    // Every attempted event is now stored exactly once.
    assert_eq!(stats["events"].as_u64(), Some(attempted as u64 * 200));
    let _ = server.kill();
    let _ = server.wait();

    // And directly in the file: every acknowledged id is there.
    let store = shopgrowth_store::Store::Sqlite(
        shopgrowth_store::sqlite::SqliteStore::open(&dir.path().join("shopgrowth.db"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let ids: Vec<String> = acked
        .iter()
        .flat_map(|b| (0..200).map(move |i| format!("k{b}-{i}")))
        .collect();
    let present: HashSet<String> = store
        .events_present(ids.clone())
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert_eq!(present.len(), ids.len());
}

/// A flash sale under load: 16 buyers reserve and confirm until the server is SIGKILLed. After a
/// restart every acknowledged confirmation is still confirmed, and the units held or sold never
/// exceed the stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_flash_sale_loses_no_confirmation_and_never_oversells() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = shopgrowth(dir.path())
        .args([
            "keys", "create", "--name", "flash", "--scopes", "admin", "--json",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let key: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let key = key["key"].as_str().unwrap_or_default().to_owned();
    let (mut server, url) = start(dir.path());
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    const STOCK: i64 = 300;
    let sale = json!({"id": "fs", "sku": "phone", "price": 99900, "stock": STOCK, "per_user_limit": 1,
        "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(), "hold_seconds": 600});
    let created = client
        .post(format!("{url}/api/v1/flash-sales"))
        .bearer_auth(&key)
        .json(&sale)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status(), 201);

    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut buyers = Vec::new();
    for _ in 0..16 {
        let (client, url, key, next) = (
            client.clone(),
            url.clone(),
            key.clone(),
            std::sync::Arc::clone(&next),
        );
        buyers.push(tokio::spawn(async move {
            let mut confirmed = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let reserved = client
                    .post(format!("{url}/api/v1/flash-sales/fs/reservations"))
                    .bearer_auth(&key)
                    .json(&json!({"reservation_id": format!("r{i}"), "user_id": format!("u{i}")}))
                    .send()
                    .await;
                match reserved {
                    Ok(r) if r.status() == 201 => {}
                    Ok(r) if r.status() == 409 => continue, // sold out: keep trying until killed
                    _ => return confirmed,
                }
                let ok = client
                    .post(format!("{url}/api/v1/flash-reservations/r{i}/confirm"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                match ok {
                    Ok(r) if r.status().is_success() => confirmed.push(i),
                    _ => return confirmed,
                }
            }
        }));
    }
    while next.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL
    let _ = server.wait();
    let mut confirmed = Vec::new();
    for b in buyers {
        confirmed.extend(b.await.unwrap_or_default());
    }
    assert!(
        confirmed.len() >= 50,
        "only {} confirmations before the kill",
        confirmed.len()
    );

    let (mut server, url) = start(dir.path());
    for i in &confirmed {
        let r: Value = client
            .post(format!("{url}/api/v1/flash-reservations/r{i}/confirm"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or(Value::Null);
        assert_eq!(
            r["state"], "confirmed",
            "r{i} was confirmed before the kill: {r}"
        );
    }
    let s: Value = client
        .get(format!("{url}/api/v1/flash-sales/fs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    let taken = s["taken"].as_i64().unwrap_or(i64::MAX);
    assert!(taken <= STOCK, "oversold: {s}");
    assert!(taken >= confirmed.len() as i64, "{s}");
    // Buy on after the restart until it is sold out: exactly the stock, never more.
    let mut sold_after = 0;
    for i in 100_000.. {
        let r = client
            .post(format!("{url}/api/v1/flash-sales/fs/reservations"))
            .bearer_auth(&key)
            .json(&json!({"reservation_id": format!("r{i}"), "user_id": format!("u{i}")}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if r.status() == 409 {
            break;
        }
        assert_eq!(r.status(), 201);
        sold_after += 1;
    }
    let s: Value = client
        .get(format!("{url}/api/v1/flash-sales/fs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(s["taken"].as_i64(), Some(STOCK), "{s}");
    assert_eq!(
        taken + sold_after,
        STOCK,
        "the units taken before the kill plus after are the stock"
    );
    let _ = server.kill();
    let _ = server.wait();
}
