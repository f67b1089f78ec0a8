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
