//! The shop's recommender as a service: trained from the store, answering requests with the
//! current session's behaviour folded in, paging without repeats, and retrained on a schedule with
//! the new model swapped in while requests go on.
//!
//! Memory is bounded: at most [`SESSION_EVENTS`] events for each of [`SESSIONS`] sessions, and
//! [`PAGES`] remembered pages; the oldest go first.

use crate::{Identity, Result};
use shopgrowth_core::model::{Event, Order, OrderKind};
use shopgrowth_recommend::engine::{
    Basket, EngineConfig, Feedback, Model, Product, Recommended, Request, ShopData, TrainStats,
};
use shopgrowth_store::Store;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Events kept per session.
pub const SESSION_EVENTS: usize = 50;
/// Sessions kept (by user or anonymous id).
pub const SESSIONS: usize = 100_000;
/// Pages remembered for paging without repeats.
pub const PAGES: usize = 100_000;
/// Behaviour older than this is not trained on.
const HISTORY_DAYS: i64 = 365;

/// One answer: an id to attribute clicks and to ask for the next page with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    pub recommendation_id: String,
    pub items: Vec<Recommended>,
    /// When the model answering was trained (ms).
    pub model_trained_at: i64,
}

#[derive(Default)]
struct Sessions {
    by_key: HashMap<String, (u64, VecDeque<Feedback>)>,
    clock: u64,
}

impl Sessions {
    fn push(&mut self, key: String, feedback: Feedback) {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.by_key.entry(key).or_default();
        entry.0 = clock;
        entry.1.push_back(feedback);
        if entry.1.len() > SESSION_EVENTS {
            entry.1.pop_front();
        }
        if self.by_key.len() > SESSIONS {
            // Drop the least recently touched tenth, so eviction is amortised.
            let mut touched: Vec<u64> = self.by_key.values().map(|v| v.0).collect();
            let cut = SESSIONS / 10;
            touched.select_nth_unstable(cut);
            let limit = touched[cut];
            self.by_key.retain(|_, v| v.0 > limit);
        }
    }
}

#[derive(Default)]
struct Pages {
    shown: HashMap<String, Arc<HashSet<String>>>,
    order: VecDeque<String>,
}

pub struct RecommendService {
    store: Arc<Store>,
    config: EngineConfig,
    model: RwLock<Option<Arc<Model>>>,
    identity: RwLock<Identity>,
    sessions: Mutex<Sessions>,
    pages: Mutex<Pages>,
}

fn now_ms() -> i64 {
    shopgrowth_core::time::Timestamp::now().0
}

/// The store's data as the recommender reads it, with devices resolved to customers.
pub async fn shop_data(store: &Store, now: i64) -> Result<(ShopData, Identity)> {
    let source = store
        .audience_source(now - HISTORY_DAYS * 86_400_000)
        .await?;
    let identity = Identity::from_source(&source);
    let products = source
        .products
        .iter()
        .map(|p| Product {
            sku: p.sku.clone(),
            title: p.title.clone(),
            category: p
                .category_path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            brand: p.brand.clone(),
            price: p.price,
            stock: p.stock,
            attributes: attributes(&p.attributes),
        })
        .collect();
    let feedback = source
        .events
        .iter()
        .filter_map(|e| {
            let user = session_key(&identity, e.user_id.as_deref(), e.device_id.as_deref())?;
            Some(Feedback {
                user,
                sku: e.sku.clone()?,
                kind: e.kind.clone(),
                at: e.time,
            })
        })
        // Purchases come from the orders, which have every line.
        .filter(|f| f.kind != "purchase")
        .collect();
    let baskets = source
        .orders
        .iter()
        .filter(|o| o.sale)
        .map(|o| Basket {
            user: session_key(&identity, o.user_id.as_deref(), o.device_id.as_deref()),
            skus: o.skus.clone(),
            at: o.placed_at,
        })
        .collect();
    Ok((
        ShopData {
            products,
            feedback,
            baskets,
            now,
        },
        identity,
    ))
}

/// Attributes as (name, value) text; numbers and booleans as written, nested values skipped.
fn attributes(json: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = map
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            serde_json::Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Whose behaviour this is: the customer a user or device resolves to, or the device itself
/// (anonymous, "device:…").
fn session_key(identity: &Identity, user: Option<&str>, device: Option<&str>) -> Option<String> {
    identity
        .resolve(user, device)
        .or_else(|| device.map(|d| format!("device:{d}")))
}

impl RecommendService {
    /// Trains a first model from the store.
    pub async fn load(store: Arc<Store>, config: EngineConfig) -> Result<Arc<Self>> {
        let service = Arc::new(RecommendService {
            store,
            config,
            model: RwLock::new(None),
            identity: RwLock::new(Identity::none()),
            sessions: Mutex::new(Sessions::default()),
            pages: Mutex::new(Pages::default()),
        });
        service.retrain().await?;
        Ok(service)
    }

    /// Trains a new model from the store on a blocking thread and swaps it in; requests keep
    /// being answered by the old one meanwhile.
    pub async fn retrain(&self) -> Result<TrainStats> {
        let started = now_ms();
        let (data, identity) = shop_data(&self.store, started).await?;
        let config = self.config.clone();
        let model = tokio::task::spawn_blocking(move || Model::train(&data, &config))
            .await
            .map_err(|e| crate::Error::Corrupt(format!("training stopped: {e}")))?;
        let mut stats = model.stats.clone();
        // Session events that arrived before this training are in it now.
        stats.trained_at = started;
        let mut model = model;
        model.stats.trained_at = started;
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(model));
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = identity;
        tracing::info!(
            users = stats.users,
            items = stats.items,
            pairs = stats.pairs,
            seconds = stats.seconds,
            "recommender trained"
        );
        Ok(stats)
    }

    /// Retrains every `every` until the service is dropped.
    pub fn spawn_retraining(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else { break };
                if let Err(e) = service.retrain().await {
                    tracing::error!(error = %e, "retraining the recommender failed; the old model stays");
                }
            }
        });
    }

    pub fn stats(&self) -> Option<TrainStats> {
        self.current().map(|m| m.stats.clone())
    }

    fn current(&self) -> Option<Arc<Model>> {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn key(&self, user: Option<&str>, device: Option<&str>) -> Option<String> {
        let identity = self.identity.read().unwrap_or_else(|p| p.into_inner());
        session_key(&identity, user, device)
    }

    /// Accepted behaviour joins its session at once.
    pub fn observe_events(&self, events: &[Event]) {
        let arrived = now_ms();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let (Some(sku), Some(key)) = (
                &e.sku_id,
                self.key(
                    e.user_id.as_ref().map(|u| u.0.as_str()),
                    e.device_id.as_ref().map(|d| d.0.as_str()),
                ),
            ) else {
                continue;
            };
            sessions.push(
                key,
                Feedback {
                    user: String::new(),
                    sku: sku.0.clone(),
                    kind: e.kind.as_str().to_string(),
                    at: arrived,
                },
            );
        }
    }

    /// Accepted orders join their buyer's session as purchases.
    pub fn observe_orders(&self, orders: &[Order]) {
        let arrived = now_ms();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for o in orders.iter().filter(|o| o.kind == OrderKind::Sale) {
            let Some(key) = self.key(
                o.user_id.as_ref().map(|u| u.0.as_str()),
                o.device_id.as_ref().map(|d| d.0.as_str()),
            ) else {
                continue;
            };
            for line in &o.lines {
                sessions.push(
                    key.clone(),
                    Feedback {
                        user: String::new(),
                        sku: line.sku_id.0.clone(),
                        kind: "purchase".into(),
                        at: arrived,
                    },
                );
            }
        }
    }

    /// Answers a request for `user` (a customer id) or `device` (an anonymous visitor); with
    /// `cursor` (an earlier answer's id) nothing shown on the earlier pages comes again.
    pub fn recommend(
        &self,
        mut request: Request,
        device: Option<&str>,
        cursor: Option<&str>,
    ) -> std::result::Result<Answer, RecommendError> {
        let model = self.current().ok_or(RecommendError::NotTrained)?;
        let key = self.key(request.user.as_deref(), device);
        request.user = key.clone();
        let shown: Arc<HashSet<String>> = match cursor {
            Some(c) => self
                .pages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .shown
                .get(c)
                .cloned()
                .ok_or_else(|| RecommendError::UnknownCursor(c.to_string()))?,
            None => Arc::default(),
        };
        let session: Vec<Feedback> = key
            .and_then(|k| {
                let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                sessions.by_key.get(&k).map(|(_, events)| {
                    events
                        .iter()
                        .filter(|f| f.at >= model.stats.trained_at)
                        .cloned()
                        .collect()
                })
            })
            .unwrap_or_default();
        let items = model.recommend(&request, &session, &shown);
        let id = uuid::Uuid::new_v4().to_string();
        let mut all: HashSet<String> = (*shown).clone();
        all.extend(items.iter().map(|i| i.sku.clone()));
        {
            let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
            pages.shown.insert(id.clone(), Arc::new(all));
            pages.order.push_back(id.clone());
            while pages.order.len() > PAGES {
                if let Some(old) = pages.order.pop_front() {
                    pages.shown.remove(&old);
                }
            }
        }
        Ok(Answer {
            recommendation_id: id,
            items,
            model_trained_at: model.stats.trained_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecommendError {
    #[error("the recommender has not been trained yet")]
    NotTrained,
    #[error("cursor {0:?} is unknown or expired; ask for the first page again")]
    UnknownCursor(String),
}
