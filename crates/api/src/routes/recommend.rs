//! Personalised recommendations: one list per scene, with a reason per item and an id for click
//! attribution and paging (scope `read`); the model's state and retraining (scope `admin`).

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiQuery, Caller};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::FieldError;
use shopgrowth_recommend::engine::{Request, Scene, TrainStats};
use shopgrowth_service::recommend::RecommendError;
use utoipa::{IntoParams, ToSchema};

/// Every parameter arrives as text and is checked here, so a bad one is named in the problem.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct RecommendationQuery {
    /// `home` (default), `product_page`, `cart` or `after_purchase`.
    pub scene: Option<String>,
    /// The customer; or `device_id` for an anonymous visitor.
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// Items to return, 1–100 (default 10).
    pub n: Option<String>,
    /// The product on the page (product_page).
    pub item: Option<String>,
    /// Comma-separated SKUs in the cart (cart).
    pub cart: Option<String>,
    /// Price bounds in minor units.
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    /// `true`: only items in stock.
    pub in_stock: Option<String>,
    /// Comma-separated SKUs never to show.
    pub exclude: Option<String>,
    /// Comma-separated `SKU@position` (0-based) pinned slots.
    pub pin: Option<String>,
    /// The `recommendation_id` of the previous page: nothing shown there comes again.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedItem {
    pub sku: String,
    pub title: String,
    pub score: f32,
    /// `code` (e.g. `similar_to_viewed`, `bought_together`, `trending`), the item it follows from
    /// (`because_of`), and the text in Chinese (`zh`) and English (`en`).
    #[schema(value_type = Object)]
    pub reason: shopgrowth_recommend::engine::Reason,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    /// Log it with impressions and clicks; pass it as `cursor` for the next page.
    pub recommendation_id: String,
    pub scene: String,
    pub items: Vec<RecommendedItem>,
    /// When the model that answered was trained (ms since the epoch).
    pub model_trained_at: i64,
}

fn list(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_request(q: &RecommendationQuery) -> Result<(Request, Scene), Vec<FieldError>> {
    let mut errors = Vec::new();
    let scene = match q.scene.as_deref() {
        None | Some("") => Scene::Home,
        Some(s) => s.parse().unwrap_or_else(|e| {
            errors.push(FieldError::new("scene", e));
            Scene::Home
        }),
    };
    let mut number = |field: &str, v: &Option<String>| -> Option<i64> {
        let text = v.as_deref().filter(|s| !s.is_empty())?;
        match text.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                errors.push(FieldError::new(
                    field,
                    format!("{text:?} is not a whole number ≥ 0"),
                ));
                None
            }
        }
    };
    let n = number("n", &q.n).unwrap_or(10);
    let min_price = number("min_price", &q.min_price);
    let max_price = number("max_price", &q.max_price);
    if !(1..=100).contains(&n) {
        errors.push(FieldError::new("n", format!("{n} is outside 1–100")));
    }
    let in_stock = match q.in_stock.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            errors.push(FieldError::new(
                "in_stock",
                format!("{other:?} is not true or false"),
            ));
            false
        }
    };
    let mut pinned = Vec::new();
    for p in list(&q.pin) {
        match p
            .rsplit_once('@')
            .map(|(sku, at)| (sku, at.parse::<usize>()))
        {
            Some((sku, Ok(at))) if !sku.is_empty() => pinned.push((at, sku.to_string())),
            _ => errors.push(FieldError::new("pin", format!("{p:?} is not SKU@position"))),
        }
    }
    if scene == Scene::ProductPage && q.item.as_deref().is_none_or(str::is_empty) {
        errors.push(FieldError::new(
            "item",
            "the product_page scene needs the product's SKU",
        ));
    }
    if scene == Scene::Cart && list(&q.cart).is_empty() {
        errors.push(FieldError::new(
            "cart",
            "the cart scene needs the cart's SKUs",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((
        Request {
            user: q.user_id.clone().filter(|s| !s.is_empty()),
            scene: Some(scene),
            n: n as usize,
            item: q.item.clone().filter(|s| !s.is_empty()),
            cart: list(&q.cart),
            min_price,
            max_price,
            in_stock,
            exclude: list(&q.exclude),
            pinned,
        },
        scene,
    ))
}

fn scene_name(scene: Scene) -> String {
    serde_json::to_value(scene)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Recommendations for a scene, reacting to the visitor's behaviour in this session.
#[utoipa::path(get, path = "/api/v1/recommendations", tag = "recommendations",
    params(RecommendationQuery), security(("api_key" = [])),
    responses((status = 200, body = Recommendations), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn recommendations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RecommendationQuery>,
) -> ApiResult<Json<Recommendations>> {
    caller.require(Scope::Read)?;
    let (request, scene) =
        parse_request(&q).map_err(|e| ApiError::invalid("invalid recommendation request", e))?;
    let device = q.device_id.as_deref().filter(|s| !s.is_empty());
    let answer = state
        .recommend
        .recommend(
            request,
            device,
            q.cursor.as_deref().filter(|s| !s.is_empty()),
        )
        .map_err(|e| match e {
            RecommendError::UnknownCursor(_) => ApiError::invalid(
                e.to_string(),
                vec![FieldError::new("cursor", e.to_string())],
            ),
            RecommendError::NotTrained => ApiError::Unavailable(e.to_string()),
        })?;
    Ok(Json(Recommendations {
        recommendation_id: answer.recommendation_id,
        scene: scene_name(scene),
        items: answer
            .items
            .into_iter()
            .map(|r| RecommendedItem {
                sku: r.sku,
                title: r.title,
                score: r.score,
                reason: r.reason,
            })
            .collect(),
        model_trained_at: answer.model_trained_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelState {
    pub users: usize,
    pub items: usize,
    pub pairs: usize,
    pub baskets: usize,
    /// Whether EASE is part of the home blend (catalogues up to its item limit).
    pub ease: bool,
    pub training_seconds: f64,
    pub trained_at: i64,
}

fn model_state(s: TrainStats) -> ModelState {
    ModelState {
        users: s.users,
        items: s.items,
        pairs: s.pairs,
        baskets: s.baskets,
        ease: s.ease,
        training_seconds: s.seconds,
        trained_at: s.trained_at,
    }
}

/// The model now answering.
#[utoipa::path(get, path = "/api/v1/recommendations/model", tag = "recommendations",
    security(("api_key" = [])),
    responses((status = 200, body = ModelState), (status = 503, body = Problem)))]
pub async fn model(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ModelState>> {
    caller.require(Scope::Read)?;
    let stats = state
        .recommend
        .stats()
        .ok_or_else(|| ApiError::Unavailable("the recommender has not been trained yet".into()))?;
    Ok(Json(model_state(stats)))
}

/// Retrain from the store now and swap the new model in; requests are answered meanwhile.
#[utoipa::path(post, path = "/api/v1/recommendations/retrain", tag = "recommendations",
    security(("api_key" = [])),
    responses((status = 200, body = ModelState), (status = 403, body = Problem)))]
pub async fn retrain(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ModelState>> {
    caller.require(Scope::Admin)?;
    Ok(Json(model_state(state.recommend.retrain().await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_named() {
        let q = RecommendationQuery {
            scene: Some("checkout".into()),
            n: Some("-3".into()),
            pin: Some("A@x".into()),
            in_stock: Some("yes".into()),
            ..RecommendationQuery::default()
        };
        let errors = parse_request(&q).err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["scene", "n", "in_stock", "pin"], "{errors:?}");
    }

    #[test]
    fn a_product_page_needs_its_item() {
        let q = RecommendationQuery {
            scene: Some("product_page".into()),
            ..RecommendationQuery::default()
        };
        assert_eq!(parse_request(&q).err().unwrap_or_default()[0].field, "item");
        let q = RecommendationQuery {
            scene: Some("product_page".into()),
            item: Some("S1".into()),
            pin: Some("S9@0".into()),
            ..RecommendationQuery::default()
        };
        let (r, _) = parse_request(&q).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.pinned, vec![(0, "S9".to_string())]);
        assert_eq!(r.n, 10);
    }
}
