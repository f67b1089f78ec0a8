//! The HTTP API of shopgrowth (axum), under `/api/v1`. Thin: it authenticates, parses and
//! validates, calls the store, and maps errors in one place.
//!
//! - [`routes`]: the handlers, one module per capability.
//! - [`extract`]: the JSON body and API-key extractors.
//! - [`auth`]: API keys and scopes.
//! - [`error`]: problem details, the one error-to-HTTP mapping.
//! - [`openapi`]: the OpenAPI document served at `/api/v1/openapi.json`.

pub mod auth;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use shopgrowth_core::pii::PiiCipher;
use shopgrowth_service::recommend::RecommendService;
use shopgrowth_service::AudienceService;
use shopgrowth_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted; a larger one gets 413.
    pub body_limit_bytes: usize,
    /// Most items in one batch request.
    pub max_batch_items: usize,
    /// Requests running longer are answered 408.
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit_bytes: 8 << 20,
            max_batch_items: 5_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub cipher: Arc<PiiCipher>,
    pub keys: Arc<auth::KeyCache>,
    pub config: Arc<ApiConfig>,
    /// Profiles, tags and segments, kept fresh from accepted writes.
    pub audience: Arc<AudienceService>,
    /// The recommender; accepted behaviour joins its sessions at once.
    pub recommend: Arc<RecommendService>,
    /// Flash sales this node knows to be sold out (admission control).
    pub sold_out: Arc<routes::flash::SoldOutGate>,
    /// The live campaigns' promotions, parsed and compiled once per change.
    pub live: Arc<shopgrowth_service::promotions::LivePromotions>,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        cipher: Arc<PiiCipher>,
        audience: Arc<AudienceService>,
        recommend: Arc<RecommendService>,
        config: ApiConfig,
    ) -> Self {
        AppState {
            store,
            cipher,
            keys: Arc::new(auth::KeyCache::default()),
            config: Arc::new(config),
            audience,
            recommend,
            sold_out: Arc::default(),
            live: Arc::default(),
        }
    }
}

/// The whole application: the routes, wrapped once in the middleware every request goes through
/// (request id, tracing, timeout, body limit, the count of requests at work). Wrapping the
/// router as one service, rather than each route (`Router::layer`), costs a request no clone of
/// the layered route per layer, and unmatched paths get the same treatment.
pub fn app(
    state: AppState,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let limit = state.config.body_limit_bytes;
    let timeout = state.config.request_timeout;
    // Each request is counted at work while it is served: the embedded store's writer lingers
    // for company only when another request may bring some.
    let at_work = state.store.at_work();
    let router = Router::new()
        .route("/health", axum::routing::get(routes::health))
        .nest("/api/v1", routes::api_v1())
        // An unknown route or method is a problem like any other, not an empty answer.
        .fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                error::ApiError::NotFound(format!("no route {method} {}", uri.path()))
            },
        )
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                error::ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
            },
        )
        .with_state(state);
    let count_at_work = axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let guard = at_work.as_ref().map(|a| a.enter());
            async move {
                let response = next.run(request).await;
                drop(guard);
                response
            }
        },
    );
    tower::ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| response.map(axum::body::Body::new))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
            }),
        )
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(DefaultBodyLimit::max(limit))
        .layer(count_at_work)
        .service(router)
}

/// Serves `app` on a bound listener until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a response written in two segments can wait for the client's delayed
    // ACK (tens of milliseconds) before its second part leaves.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, axum::ServiceExt::into_make_service(app(state)))
        .with_graceful_shutdown(shutdown)
        .await
}
