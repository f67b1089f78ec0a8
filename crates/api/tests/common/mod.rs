//! Shared by the API test binaries: a test app over a fresh SQLite store with one key per role.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use shopgrowth_api::auth::{self, Scope};
use shopgrowth_api::{app, ApiConfig, AppState};
use shopgrowth_core::pii::PiiCipher;
use shopgrowth_store::Store;
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub ingest: String,
    pub read: String,
    pub admin: String,
    pub pii: String,
}

pub async fn test_app_with(config: ApiConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::Sqlite(
        shopgrowth_store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    let mut keys = Vec::new();
    for scopes in [
        vec![Scope::Ingest],
        vec![Scope::Read],
        vec![Scope::Admin],
        vec![Scope::Read, Scope::Pii, Scope::Admin],
    ] {
        let k = auth::generate("test", &scopes, 1);
        store
            .create_api_key(k.record)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        keys.push(k.plaintext);
    }
    let cipher = PiiCipher::from_master_key(&[9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let audience = shopgrowth_service::AudienceService::load(
        Arc::clone(&store),
        shopgrowth_profile::audience::AudienceConfig::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    audience.spawn();
    let recommend = shopgrowth_service::recommend::RecommendService::load(
        Arc::clone(&store),
        shopgrowth_recommend::engine::EngineConfig::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let state = AppState::new(store, Arc::new(cipher), audience, recommend, config);
    let [ingest, read, admin, pii]: [String; 4] =
        keys.try_into().unwrap_or_else(|_| panic!("four keys"));
    TestApp {
        state,
        dir,
        ingest,
        read,
        admin,
        pii,
    }
}

pub async fn test_app() -> TestApp {
    test_app_with(ApiConfig::default()).await
}

impl TestApp {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap_or_else(|e| panic!("{e}"));
        let resp = app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

pub fn view(id: &str, user: Option<&str>, device: Option<&str>) -> Value {
    let mut e = json!({"id": id, "type": "view", "time": "2026-06-18T12:00:00+08:00", "channel": "app", "sku_id": "sku-1"});
    if let Some(u) = user {
        e["user_id"] = json!(u);
    }
    if let Some(d) = device {
        e["device_id"] = json!(d);
    }
    e
}

/// A client of a server listening on a real socket.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, key, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, key, Some(body)).await
    }
}

/// A server on a free loopback port; it stops when the returned sender is dropped or fired.
pub async fn serve(t: &TestApp) -> (Client, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shopgrowth_api::serve(listener, t.state.clone(), async {
        let _ = stopped.await;
    }));
    (
        Client {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        },
        stop,
    )
}
