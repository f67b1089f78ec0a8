//! The shop's recommender: trained from plain shop data (products, behaviour, order baskets),
//! answering scene requests with reasons. No IO here; `crates/service` feeds it from the store,
//! keeps sessions and pages, and swaps retrained models in.
//!
//! Scenes and what they blend (weights in [`SceneConfig`]):
//! - **home** ("for you"): ALS folded in from the history, item kNN and EASE over the history,
//!   a little trending; a user with no history gets trending and popular items.
//! - **product page**: items similar to the product (item kNN and content), bought together with
//!   it, and items similar to what this session did.
//! - **cart**: complements of the cart (bought together, then item kNN).
//! - **after purchase**: complements of the last order.
//!
//! Real time: a request carries the session's events; they join the history with a boost, ALS
//! folds them into the user's vector, and neighbours react at once, without retraining.

use crate::data::{FeedbackWeights, Interactions};
use crate::models::{
    Als, AlsConfig, BoughtTogether, Content, Ease, ItemContent, ItemKnn, Popularity, TimedFeedback,
    Trending,
};
use crate::score::{normalise, Scorer};
use crate::Rating;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A product as the recommender sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Product {
    pub sku: String,
    pub title: String,
    pub category: Vec<String>,
    pub brand: Option<String>,
    pub price: i64,
    pub stock: Option<i64>,
    /// Attribute name and value as text, e.g. ("颜色", "红").
    pub attributes: Vec<(String, String)>,
}

/// One piece of behaviour by a (resolved) customer or an anonymous device.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub user: String,
    pub sku: String,
    /// The event type, e.g. "view", "add_to_cart", "purchase".
    pub kind: String,
    pub at: i64,
}

/// The SKUs of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Basket {
    pub user: Option<String>,
    pub skus: Vec<String>,
    pub at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ShopData {
    pub products: Vec<Product>,
    pub feedback: Vec<Feedback>,
    pub baskets: Vec<Basket>,
    /// Milliseconds; trending decays toward this time.
    pub now: i64,
}

/// How each scene blends its parts; a weight of 0 leaves a part out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SceneConfig {
    pub als: f32,
    pub item_knn: f32,
    pub ease: f32,
    /// Items similar by content to the anchor (product page) or the history.
    pub content: f32,
    pub bought_together: f32,
    pub trending: f32,
    pub popular: f32,
    /// Items similar to what the current session did (product page).
    pub session: f32,
    /// At most this many items of one top-level category (0: no cap).
    pub per_category: usize,
    /// Leave out items the user has bought.
    pub exclude_purchased: bool,
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig {
            als: 0.0,
            item_knn: 0.0,
            ease: 0.0,
            content: 0.0,
            bought_together: 0.0,
            trending: 0.0,
            popular: 0.0,
            session: 0.0,
            per_category: 0,
            exclude_purchased: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    Home,
    ProductPage,
    Cart,
    AfterPurchase,
}

impl std::str::FromStr for Scene {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "home" => Scene::Home,
            "product_page" => Scene::ProductPage,
            "cart" => Scene::Cart,
            "after_purchase" => Scene::AfterPurchase,
            other => {
                return Err(format!(
                    "unknown scene {other:?}; expected home, product_page, cart or after_purchase"
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub weights: FeedbackWeights,
    pub als: AlsConfig,
    pub item_neighbours: usize,
    pub content_neighbours: usize,
    pub trending_half_life_days: f64,
    /// EASE joins the home blend only up to this many items (its model is items² floats).
    pub ease_max_items: usize,
    pub ease_lambda: f64,
    /// Session events count this many times their weight (recency boost).
    pub session_boost: f32,
    pub home: SceneConfig,
    pub product_page: SceneConfig,
    pub cart: SceneConfig,
    pub after_purchase: SceneConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            weights: FeedbackWeights::default(),
            als: AlsConfig {
                iterations: 10,
                ..AlsConfig::default()
            },
            item_neighbours: 50,
            content_neighbours: 50,
            trending_half_life_days: 7.0,
            ease_max_items: 5_000,
            ease_lambda: 500.0,
            session_boost: 2.0,
            home: SceneConfig {
                als: 1.0,
                item_knn: 0.5,
                ease: 0.5,
                // Lets items nobody has bought yet reach customers whose history they resemble.
                content: 0.2,
                trending: 0.1,
                per_category: 4,
                ..SceneConfig::default()
            },
            product_page: SceneConfig {
                item_knn: 1.0,
                content: 0.5,
                bought_together: 0.3,
                session: 0.6,
                exclude_purchased: false,
                ..SceneConfig::default()
            },
            cart: SceneConfig {
                bought_together: 1.0,
                item_knn: 0.3,
                per_category: 3,
                ..SceneConfig::default()
            },
            after_purchase: SceneConfig {
                bought_together: 1.0,
                item_knn: 0.5,
                content: 0.2,
                per_category: 3,
                ..SceneConfig::default()
            },
        }
    }
}

impl EngineConfig {
    pub fn scene(&self, scene: Scene) -> &SceneConfig {
        match scene {
            Scene::Home => &self.home,
            Scene::ProductPage => &self.product_page,
            Scene::Cart => &self.cart,
            Scene::AfterPurchase => &self.after_purchase,
        }
    }
}

/// A request for one list.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub user: Option<String>,
    pub scene: Option<Scene>,
    pub n: usize,
    /// The product on the page (product page).
    pub item: Option<String>,
    /// The cart's SKUs (cart scene; also excluded from the list).
    pub cart: Vec<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Only items with stock left (items without stock tracking count as in stock).
    pub in_stock: bool,
    pub exclude: Vec<String>,
    /// SKUs at fixed 0-based positions.
    pub pinned: Vec<(usize, String)>,
}

/// Why an item is in the list: a code, the item it follows from, and the text in both languages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_of: Option<String>,
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommended {
    pub sku: String,
    pub title: String,
    pub score: f32,
    pub reason: Reason,
}

/// What training did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainStats {
    pub users: usize,
    pub items: usize,
    pub pairs: usize,
    pub baskets: usize,
    pub ease: bool,
    pub seconds: f64,
    pub trained_at: i64,
}

/// A trained recommender for the shop.
pub struct Model {
    products: Vec<Product>,
    index: HashMap<String, u32>,
    /// Top-level category per item (an index into a private table), for diversity.
    category: Vec<Option<u32>>,
    users: HashMap<String, u32>,
    data: Interactions,
    purchased: Vec<Vec<u32>>,
    last_basket: Vec<Vec<u32>>,
    popularity: Popularity,
    trending: Trending,
    item_knn: ItemKnn,
    content: Content,
    bought_together: BoughtTogether,
    als: Als,
    ease: Option<Ease>,
    /// Per user: the home blend's best items without a session (see [`HOME_LIST`]), worked out
    /// at training so that a home request without session feedback ranks from it instead of
    /// scoring every item (Gorse's worker cache, kept exact).
    home_lists: Vec<Vec<(u32, f32, Option<Part>)>>,
    config: EngineConfig,
    pub stats: TrainStats,
}

/// Items kept per user for the home scene. A request whose filters leave fewer than it needs of
/// a full list is scored from scratch, so the cache never changes an answer.
const HOME_LIST: usize = 160;

/// Which part gave an item most of its score.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Als,
    ItemKnn,
    Ease,
    Content,
    BoughtTogether,
    Trending,
    Popular,
    Session,
}

impl Model {
    pub fn train(shop: &ShopData, config: &EngineConfig) -> Model {
        let started = std::time::Instant::now();
        let products = shop.products.clone();
        let index: HashMap<String, u32> = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sku.clone(), i as u32))
            .collect();
        let mut categories: HashMap<&str, u32> = HashMap::new();
        let category = products
            .iter()
            .map(|p| {
                p.category.first().map(|c| {
                    let next = categories.len() as u32;
                    *categories.entry(c.as_str()).or_insert(next)
                })
            })
            .collect();
        let mut users: HashMap<String, u32> = HashMap::new();
        let mut user_of = |u: &str| -> u32 {
            let next = users.len() as u32;
            *users.entry(u.to_string()).or_insert(next)
        };
        let mut ratings = Vec::new();
        let mut timed = Vec::new();
        for f in &shop.feedback {
            let (Some(&item), Some(w)) = (index.get(&f.sku), config.weights.of(&f.kind)) else {
                continue;
            };
            let user = user_of(&f.user);
            ratings.push(Rating {
                user,
                item,
                rating: w,
            });
            timed.push(TimedFeedback {
                item,
                at: f.at,
                weight: w,
            });
        }
        let mut baskets = Vec::new();
        let mut purchases = Vec::new();
        let mut last: HashMap<u32, (i64, Vec<u32>)> = HashMap::new();
        for b in &shop.baskets {
            let items: Vec<u32> = b
                .skus
                .iter()
                .filter_map(|s| index.get(s).copied())
                .collect();
            if let Some(u) = &b.user {
                let user = user_of(u);
                for &item in &items {
                    purchases.push((user, item));
                    ratings.push(Rating {
                        user,
                        item,
                        rating: config.weights.purchase,
                    });
                    timed.push(TimedFeedback {
                        item,
                        at: b.at,
                        weight: config.weights.purchase,
                    });
                }
                let entry = last.entry(user).or_insert((i64::MIN, Vec::new()));
                if b.at >= entry.0 {
                    *entry = (b.at, items.clone());
                }
            }
            baskets.push(items);
        }
        let data = Interactions::from_feedback(&ratings, users.len(), products.len());
        let mut purchased = vec![Vec::new(); users.len()];
        for (u, i) in purchases {
            purchased[u as usize].push(i);
        }
        for p in &mut purchased {
            p.sort_unstable();
            p.dedup();
        }
        let mut last_basket = vec![Vec::new(); users.len()];
        for (u, (_, items)) in last {
            last_basket[u as usize] = items;
        }
        let content_items: Vec<ItemContent> = products
            .iter()
            .map(|p| ItemContent {
                title: p.title.clone(),
                category: p.category.clone(),
                brand: p.brand.clone(),
                attributes: p.attributes.clone(),
            })
            .collect();
        let half_life = (config.trending_half_life_days * 86_400_000.0) as i64;
        let ease = (products.len() <= config.ease_max_items && config.home.ease > 0.0)
            .then(|| Ease::fit(&data, config.ease_lambda).ok())
            .flatten();
        let stats = TrainStats {
            users: users.len(),
            items: products.len(),
            pairs: data.pairs(),
            baskets: baskets.len(),
            ease: ease.is_some(),
            seconds: 0.0,
            trained_at: shop.now,
        };
        let mut model = Model {
            popularity: Popularity::fit(&data),
            trending: Trending::fit(products.len(), &timed, shop.now, half_life),
            item_knn: ItemKnn::fit(&data, config.item_neighbours),
            content: Content::fit(&content_items, config.content_neighbours),
            bought_together: BoughtTogether::fit(products.len(), &baskets, 2, 50),
            als: Als::fit(&data, &config.als),
            ease,
            home_lists: Vec::new(),
            products,
            index,
            category,
            users,
            data,
            purchased,
            last_basket,
            config: config.clone(),
            stats,
        };
        model.home_lists = model.home_lists();
        model.stats.seconds = started.elapsed().as_secs_f64();
        model
    }

    pub fn item_index(&self, sku: &str) -> Option<u32> {
        self.index.get(sku).copied()
    }

    /// The list for `request`, given the session's recent feedback (oldest first) and items
    /// already shown on earlier pages.
    pub fn recommend(
        &self,
        request: &Request,
        session: &[Feedback],
        shown: &HashSet<String>,
    ) -> Vec<Recommended> {
        let scene = request.scene.unwrap_or(Scene::Home);
        let cfg = self.config.scene(scene);
        let n_items = self.products.len();
        let user = request
            .user
            .as_ref()
            .and_then(|u| self.users.get(u))
            .copied();
        // History: what training saw, plus this session's feedback with a boost.
        let mut history: HashMap<u32, f32> = user
            .map(|u| self.data.history(u).into_iter().collect())
            .unwrap_or_default();
        let mut session_items: HashMap<u32, f32> = HashMap::new();
        for f in session {
            if let (Some(i), Some(w)) = (self.item_index(&f.sku), self.config.weights.of(&f.kind)) {
                *history.entry(i).or_default() += w * self.config.session_boost;
                *session_items.entry(i).or_default() += w;
            }
        }
        let mut history: Vec<(u32, f32)> = history.into_iter().filter(|(_, w)| *w > 0.0).collect();
        history.sort_unstable_by_key(|h| h.0);
        let mut session_history: Vec<(u32, f32)> = session_items
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .collect();
        session_history.sort_unstable_by_key(|h| h.0);
        let anchor = request.item.as_deref().and_then(|s| self.item_index(s));
        let basket: Vec<(u32, f32)> = match scene {
            Scene::Cart => unit_history(request.cart.iter().filter_map(|s| self.item_index(s))),
            Scene::AfterPurchase => unit_history(
                user.map_or(&[][..], |u| self.last_basket[u as usize].as_slice())
                    .iter()
                    .copied(),
            ),
            _ => unit_history(anchor.into_iter()),
        };
        let cold = history.is_empty() && basket.is_empty();
        let real_time = !session.is_empty();
        // A mask, not a set: every scored item is checked, and hashing 2,000 ids costs more than
        // the scoring.
        let mut excluded = vec![false; n_items];
        let named = request
            .exclude
            .iter()
            .chain(shown.iter())
            .chain(request.cart.iter())
            .chain(request.item.iter())
            .filter_map(|s| self.item_index(s));
        let purchased = user
            .filter(|_| cfg.exclude_purchased)
            .map_or(&[][..], |u| self.purchased[u as usize].as_slice());
        let negatives = user.map_or(&[][..], |u| self.data.negatives[u as usize].as_slice());
        for i in named
            .chain(purchased.iter().copied())
            .chain(negatives.iter().copied())
        {
            excluded[i as usize] = true;
        }
        let allowed = |i: u32| -> bool {
            let p = &self.products[i as usize];
            !excluded[i as usize]
                && request.min_price.is_none_or(|m| p.price >= m)
                && request.max_price.is_none_or(|m| p.price <= m)
                && (!request.in_stock || p.stock.is_none_or(|s| s > 0))
        };
        let want = request.n.saturating_mul(4).max(50);
        // Home without session feedback ranks from the user's list when the filters leave
        // enough of it (or it holds every item that scored): the same answer, without scoring.
        let listed = user
            .filter(|_| scene == Scene::Home && !real_time && basket.is_empty())
            .and_then(|u| self.home_lists.get(u as usize))
            .and_then(|list| {
                let kept: Vec<(u32, f32, Option<Part>)> = list
                    .iter()
                    .filter(|e| allowed(e.0))
                    .take(want)
                    .copied()
                    .collect();
                (kept.len() >= want || list.len() < HOME_LIST).then_some(kept)
            });
        let ranked_parts: Vec<(u32, f32, Option<Part>)> = match listed {
            Some(kept) => kept,
            None => {
                let (total, best) = self.blend(
                    scene,
                    user,
                    &history,
                    &session_history,
                    &basket,
                    real_time,
                    cold,
                );
                crate::score::top_k(
                    total.iter().enumerate().map(|(i, &s)| (i as u32, s)),
                    |i| !allowed(i),
                    want,
                )
                .into_iter()
                .map(|(i, s)| (i, s, best[i as usize].1))
                .collect()
            }
        };
        let ranked: Vec<(u32, f32)> = ranked_parts.iter().map(|&(i, s, _)| (i, s)).collect();
        let part_of = |i: u32| ranked_parts.iter().find(|e| e.0 == i).and_then(|e| e.2);
        let pinned: Vec<(usize, u32)> = request
            .pinned
            .iter()
            .filter_map(|(slot, sku)| self.item_index(sku).map(|i| (*slot, i)))
            .filter(|(_, i)| !shown.contains(&self.products[*i as usize].sku))
            .collect();
        let not_allowed = |i: u32| !allowed(i);
        let shape = crate::hybrid::rerank::Shape {
            exclude: &not_allowed,
            per_category: (cfg.per_category > 0).then_some(cfg.per_category),
            mmr_lambda: None,
            pinned: &pinned,
        };
        let pinned_set: HashSet<u32> = pinned.iter().map(|p| p.1).collect();
        crate::hybrid::rerank::shape(&ranked, request.n, &shape, |i| self.category[i as usize])
            .into_iter()
            .map(|(i, score)| {
                let reason = if pinned_set.contains(&i) {
                    reason("pinned", None, "为你精选", "featured")
                } else {
                    self.reason(
                        i,
                        part_of(i),
                        user,
                        session,
                        &history,
                        &session_history,
                        &basket,
                        anchor,
                    )
                };
                Recommended {
                    sku: self.products[i as usize].sku.clone(),
                    title: self.products[i as usize].title.clone(),
                    score: if score.is_finite() { score } else { 0.0 },
                    reason,
                }
            })
            .collect()
    }

    /// Every item's blended score for `scene`, and the part that gave each most of it.
    #[allow(clippy::too_many_arguments)]
    fn blend(
        &self,
        scene: Scene,
        user: Option<u32>,
        history: &[(u32, f32)],
        session_history: &[(u32, f32)],
        basket: &[(u32, f32)],
        real_time: bool,
        cold: bool,
    ) -> (Vec<f32>, Vec<(f32, Option<Part>)>) {
        let cfg = self.config.scene(scene);
        let n_items = self.products.len();
        let mut total = vec![0f32; n_items];
        let mut best: Vec<(f32, Option<Part>)> = vec![(0.0, None); n_items];
        let mut part = vec![0f32; n_items];
        let mut add = |part_scores: &mut [f32], weight: f32, which: Part| {
            if weight <= 0.0 {
                return;
            }
            normalise(part_scores);
            for (i, s) in part_scores.iter().enumerate() {
                let v = weight * s;
                if v > 0.0 {
                    total[i] += v;
                    if v > best[i].0 {
                        best[i] = (v, Some(which));
                    }
                }
            }
            part_scores.iter_mut().for_each(|s| *s = 0.0);
        };
        match scene {
            Scene::Home if cold => {
                self.trending.score(None, &[], &mut part);
                add(&mut part, 1.0, Part::Trending);
                self.popularity.score(None, &[], &mut part);
                add(&mut part, 0.3, Part::Popular);
            }
            Scene::Home => {
                if cfg.als > 0.0 {
                    // Trained vector unless this session added something: then fold in.
                    let known = if real_time { None } else { user };
                    self.als.score(known, history, &mut part);
                    add(&mut part, cfg.als, Part::Als);
                }
                self.item_knn.score(None, history, &mut part);
                add(&mut part, cfg.item_knn, Part::ItemKnn);
                if let (Some(ease), true) = (&self.ease, cfg.ease > 0.0) {
                    ease.score(None, history, &mut part);
                    add(&mut part, cfg.ease, Part::Ease);
                }
                self.content.score(None, history, &mut part);
                add(&mut part, cfg.content, Part::Content);
                self.trending.score(None, &[], &mut part);
                add(&mut part, cfg.trending, Part::Trending);
            }
            _ => {
                self.item_knn.score(None, basket, &mut part);
                add(&mut part, cfg.item_knn, Part::ItemKnn);
                self.content.score(None, basket, &mut part);
                add(&mut part, cfg.content, Part::Content);
                self.bought_together.score(None, basket, &mut part);
                add(&mut part, cfg.bought_together, Part::BoughtTogether);
                if cfg.session > 0.0 && !session_history.is_empty() {
                    self.item_knn.score(None, session_history, &mut part);
                    add(&mut part, cfg.session, Part::Session);
                }
                if cfg.als > 0.0 && !history.is_empty() {
                    self.als.score(None, history, &mut part);
                    add(&mut part, cfg.als, Part::Als);
                }
                self.trending.score(None, &[], &mut part);
                add(&mut part, cfg.trending.max(0.01), Part::Trending);
            }
        }

        (total, best)
    }

    /// Each user's home list: the blend without a session, best first, without what the user
    /// may never be offered (purchases when so configured, negatives).
    fn home_lists(&self) -> Vec<Vec<(u32, f32, Option<Part>)>> {
        use rayon::prelude::*;
        let cfg = self.config.scene(Scene::Home);
        (0..self.users.len() as u32)
            .into_par_iter()
            .map(|u| {
                let mut history: Vec<(u32, f32)> = self
                    .data
                    .history(u)
                    .into_iter()
                    .filter(|(_, w)| *w > 0.0)
                    .collect();
                history.sort_unstable_by_key(|h| h.0);
                let cold = history.is_empty();
                let (total, best) =
                    self.blend(Scene::Home, Some(u), &history, &[], &[], false, cold);
                let mut never = vec![false; total.len()];
                let purchased = if cfg.exclude_purchased {
                    self.purchased[u as usize].as_slice()
                } else {
                    &[]
                };
                for &i in purchased.iter().chain(&self.data.negatives[u as usize]) {
                    never[i as usize] = true;
                }
                crate::score::top_k(
                    total.iter().enumerate().map(|(i, &s)| (i as u32, s)),
                    |i| never[i as usize],
                    HOME_LIST,
                )
                .into_iter()
                .map(|(i, s)| (i, s, best[i as usize].1))
                .collect()
            })
            .collect()
    }

    /// How the user met item `j`: bought it (any time), else the strongest kind in this session,
    /// else viewed (training keeps sums of weights, not kinds).
    fn verb(
        &self,
        user: Option<u32>,
        j: u32,
        session: &[Feedback],
    ) -> (&'static str, &'static str, &'static str) {
        let w = &self.config.weights;
        let bought = user.is_some_and(|u| self.purchased[u as usize].binary_search(&j).is_ok());
        let strongest = session
            .iter()
            .filter(|f| self.item_index(&f.sku) == Some(j))
            .filter_map(|f| w.of(&f.kind))
            .fold(0f32, f32::max);
        if bought || strongest >= w.purchase {
            ("similar_to_bought", "购买", "bought")
        } else if strongest >= w.add_to_cart {
            ("similar_to_carted", "加购", "added")
        } else if strongest >= w.favorite {
            ("similar_to_favorited", "收藏", "saved")
        } else {
            ("similar_to_viewed", "浏览", "viewed")
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reason(
        &self,
        item: u32,
        part: Option<Part>,
        user: Option<u32>,
        events: &[Feedback],
        history: &[(u32, f32)],
        session: &[(u32, f32)],
        basket: &[(u32, f32)],
        anchor: Option<u32>,
    ) -> Reason {
        let title = |i: u32| self.products[i as usize].title.clone();
        let sku = |i: u32| Some(self.products[i as usize].sku.clone());
        let from_history = |list: &[(u32, f32)]| {
            self.item_knn.because_of(item, list).map(|j| {
                let (code, zh, en) = self.verb(user, j, events);
                reason(
                    code,
                    sku(j),
                    &format!("因为你{zh}了「{}」", title(j)),
                    &format!("because you {en} {}", title(j)),
                )
            })
        };
        match part {
            Some(Part::ItemKnn) | Some(Part::Content) if anchor.is_some() => {
                let a = anchor.unwrap_or(item);
                reason(
                    "similar_to_item",
                    sku(a),
                    &format!("与「{}」相似", title(a)),
                    &format!("similar to {}", title(a)),
                )
            }
            Some(Part::BoughtTogether) => {
                let with = basket
                    .iter()
                    .map(|&(b, _)| b)
                    .find(|&b| {
                        self.bought_together
                            .with(b, usize::MAX)
                            .iter()
                            .any(|x| x.0 == item)
                    })
                    .or(anchor);
                match with {
                    Some(b) => reason(
                        "bought_together",
                        sku(b),
                        &format!("常与「{}」一起购买", title(b)),
                        &format!("often bought with {}", title(b)),
                    ),
                    None => reason(
                        "bought_together",
                        None,
                        "常被一起购买",
                        "often bought together",
                    ),
                }
            }
            Some(Part::Session) => from_history(session).unwrap_or_else(|| {
                reason(
                    "session",
                    None,
                    "根据你刚才的浏览",
                    "based on what you just did",
                )
            }),
            // A model over the whole history still says which item of it leads here, when one
            // does.
            Some(Part::ItemKnn | Part::Ease | Part::Content | Part::Als) => from_history(history)
                .unwrap_or_else(|| reason("for_you", None, "猜你喜欢", "picked for you")),
            Some(Part::Trending) => reason("trending", None, "近期热门", "trending now"),
            Some(Part::Popular) | None => {
                reason("popular", None, "大家都在买", "popular with shoppers")
            }
        }
    }
}

/// Items as a history of weight 1 each, sorted and without repeats.
fn unit_history(items: impl Iterator<Item = u32>) -> Vec<(u32, f32)> {
    let mut h: Vec<(u32, f32)> = items.map(|i| (i, 1.0)).collect();
    h.sort_unstable_by_key(|x| x.0);
    h.dedup_by_key(|x| x.0);
    h
}

fn reason(code: &'static str, because_of: Option<String>, zh: &str, en: &str) -> Reason {
    Reason {
        code,
        because_of,
        zh: zh.to_string(),
        en: en.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twenty customers like baby items 0–3, twenty like digital items 4–7; item 8 is a new
    /// baby item nobody has touched yet.
    fn shop() -> ShopData {
        let product = |i: usize| Product {
            sku: format!("s{i}"),
            title: if i < 4 || i == 8 {
                format!("婴儿奶粉 {i}")
            } else {
                format!("蓝牙耳机 {i}")
            },
            category: vec![if i < 4 || i == 8 { "母婴" } else { "数码" }.to_string()],
            brand: Some(if i < 4 || i == 8 { "飞鹤" } else { "小米" }.to_string()),
            price: 1000 * (i as i64 + 1),
            stock: Some(if i == 3 { 0 } else { 10 }),
            attributes: Vec::new(),
        };
        let mut feedback = Vec::new();
        let mut baskets = Vec::new();
        for u in 0..40 {
            let base = if u < 20 { 0 } else { 4 };
            for k in 0..3 {
                feedback.push(Feedback {
                    user: format!("c{u}"),
                    sku: format!("s{}", base + (u + k) % 4),
                    kind: "view".into(),
                    at: 1_000,
                });
            }
            baskets.push(Basket {
                user: Some(format!("c{u}")),
                skus: vec![format!("s{base}"), format!("s{}", base + 1)],
                at: 2_000,
            });
        }
        // c0 returned item 2: an explicit negative.
        feedback.push(Feedback {
            user: "c0".into(),
            sku: "s2".into(),
            kind: "refund".into(),
            at: 3_000,
        });
        ShopData {
            products: (0..9).map(product).collect(),
            feedback,
            baskets,
            now: 10_000,
        }
    }

    fn config() -> EngineConfig {
        EngineConfig {
            als: AlsConfig {
                factors: 4,
                iterations: 5,
                ..AlsConfig::default()
            },
            ..EngineConfig::default()
        }
    }

    fn skus(list: &[Recommended]) -> Vec<&str> {
        list.iter().map(|r| r.sku.as_str()).collect()
    }

    #[test]
    fn home_follows_taste_and_never_offers_negatives_or_purchases() {
        let model = Model::train(&shop(), &config());
        let request = Request {
            user: Some("c0".into()),
            n: 4,
            ..Request::default()
        };
        let got = model.recommend(&request, &[], &HashSet::new());
        let list = skus(&got);
        assert!(!list.is_empty());
        assert!(list[0] == "s3" || list[0] == "s8", "baby first: {got:?}");
        assert!(!list.contains(&"s2"), "c0 returned s2: {got:?}");
        assert!(
            !list.contains(&"s0") && !list.contains(&"s1"),
            "bought: {got:?}"
        );
        assert!(got
            .iter()
            .all(|r| !r.reason.zh.is_empty() && !r.reason.en.is_empty()));
    }

    #[test]
    fn strangers_get_trending_and_filters_hold() {
        let model = Model::train(&shop(), &config());
        let request = Request {
            user: Some("stranger".into()),
            n: 9,
            in_stock: true,
            max_price: Some(6_000),
            ..Request::default()
        };
        let got = model.recommend(&request, &[], &HashSet::new());
        assert!(
            matches!(got[0].reason.code, "trending" | "popular"),
            "{got:?}"
        );
        for r in &got {
            let p = &model.products[model.item_index(&r.sku).unwrap_or(0) as usize];
            assert!(p.price <= 6_000 && p.stock != Some(0), "{r:?}");
        }
    }

    #[test]
    fn a_new_item_is_found_by_content_on_a_product_page() {
        let model = Model::train(&shop(), &config());
        let request = Request {
            scene: Some(Scene::ProductPage),
            item: Some("s0".into()),
            n: 8,
            ..Request::default()
        };
        let got = model.recommend(&request, &[], &HashSet::new());
        assert!(
            skus(&got).contains(&"s8"),
            "the untouched baby item: {got:?}"
        );
        assert!(!skus(&got).contains(&"s0"), "not the product itself");
    }

    #[test]
    fn the_session_moves_the_product_page_and_shown_items_stay_away() {
        let model = Model::train(&shop(), &config());
        let request = Request {
            user: Some("c1".into()),
            scene: Some(Scene::ProductPage),
            item: Some("s1".into()),
            n: 6,
            ..Request::default()
        };
        let before = model.recommend(&request, &[], &HashSet::new());
        let session = [Feedback {
            user: String::new(),
            sku: "s6".into(),
            kind: "add_to_cart".into(),
            at: 20_000,
        }];
        let after = model.recommend(&request, &session, &HashSet::new());
        assert_ne!(skus(&before), skus(&after));
        assert!(
            after.iter().any(|r| r.reason.code == "similar_to_carted"
                && r.reason.because_of.as_deref() == Some("s6")),
            "{after:?}"
        );
        let shown: HashSet<String> = before.iter().map(|r| r.sku.clone()).collect();
        let next = model.recommend(&request, &[], &shown);
        assert!(next.iter().all(|r| !shown.contains(&r.sku)), "{next:?}");
    }

    /// The home lists worked out at training give exactly the answer scoring from scratch gives,
    /// also when filters, shown items and paging eat into a full list (then it scores again).
    #[test]
    fn home_lists_answer_exactly_as_scoring_from_scratch() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let items = 2 * HOME_LIST + 40;
        let products: Vec<Product> = (0..items)
            .map(|i| Product {
                sku: format!("s{i}"),
                title: format!("商品 {i}"),
                category: vec![format!("c{}", i % 7)],
                brand: None,
                price: 100 * (i as i64 % 50 + 1),
                stock: Some(i as i64 % 5),
                attributes: Vec::new(),
            })
            .collect();
        let mut feedback = Vec::new();
        for u in 0..60 {
            for _ in 0..rng.random_range(0..40) {
                feedback.push(Feedback {
                    user: format!("u{u}"),
                    sku: format!("s{}", rng.random_range(0..items)),
                    kind: ["view", "add_to_cart", "refund"][rng.random_range(0..3)].into(),
                    at: rng.random_range(0..10_000),
                });
            }
        }
        let shop = ShopData {
            products,
            feedback,
            baskets: Vec::new(),
            now: 10_000,
        };
        let listed = Model::train(&shop, &config());
        let mut scored = Model::train(&shop, &config());
        scored.home_lists = Vec::new();
        assert!(listed.home_lists.iter().any(|l| l.len() == HOME_LIST));
        for u in 0..62 {
            for n in [10, 45] {
                for filtered in [false, true] {
                    let request = Request {
                        user: Some(format!("u{u}")),
                        scene: Some(Scene::Home),
                        n,
                        in_stock: filtered,
                        min_price: filtered.then_some(2_000),
                        exclude: if filtered {
                            (0..60).map(|i| format!("s{i}")).collect()
                        } else {
                            Vec::new()
                        },
                        ..Request::default()
                    };
                    let mut shown = HashSet::new();
                    for _page in 0..4 {
                        let a = listed.recommend(&request, &[], &shown);
                        let b = scored.recommend(&request, &[], &shown);
                        assert_eq!(a, b, "user u{u}, n {n}, filtered {filtered}");
                        shown.extend(a.into_iter().map(|r| r.sku));
                    }
                }
            }
        }
    }
}
