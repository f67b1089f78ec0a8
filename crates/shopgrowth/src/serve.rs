//! `shopgrowth serve`: the HTTP API on an existing store, until Ctrl-C or SIGTERM.

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::Context;
use clap::Args;
use shopgrowth_api::{ApiConfig, AppState};
use shopgrowth_service::recommend::RecommendService;
use shopgrowth_service::AudienceService;
use std::sync::Arc;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SHOPGROWTH_LISTEN")]
    pub listen: Option<String>,
    /// Personal-data key (32 bytes, base64).
    #[arg(long, env = "SHOPGROWTH_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<String>,
}

pub async fn run(store_args: &StoreArgs, file: &FileConfig, args: ServeArgs) -> anyhow::Result<()> {
    let cipher = config::pii_cipher(args.pii_key.as_deref(), file)?;
    let store = config::open_store(store_args, file).await?;
    let listen = args
        .listen
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    serve_store(store, cipher, file, &listen, None).await
}

/// Binds `listen` and serves `store`; `banner` is printed once the port is open.
pub async fn serve_store(
    store: shopgrowth_store::Store,
    cipher: shopgrowth_core::pii::PiiCipher,
    file: &FileConfig,
    listen: &str,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let mut api = ApiConfig::default();
    if let Some(n) = file.body_limit_bytes {
        api.body_limit_bytes = n;
    }
    if let Some(n) = file.max_batch_items {
        api.max_batch_items = n;
    }
    let backend = store.backend();
    let store = Arc::new(store);
    let tz = config::timezone(None, file)?;
    let started = std::time::Instant::now();
    let audience = AudienceService::load(Arc::clone(&store), config::audience_config(tz, file)?)
        .await
        .context("building profiles, tags and segments")?;
    audience.spawn();
    // A checkout attempt still unsettled after its request could have timed out has died.
    let checkout_grace = api.request_timeout + std::time::Duration::from_secs(60);
    shopgrowth_api::routes::flash::spawn_sweeper(Arc::clone(&store), checkout_grace);
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "audience ready");
    let recommend = RecommendService::load(Arc::clone(&store), file.recommend.clone())
        .await
        .context("training the recommender")?;
    recommend.spawn_retraining(std::time::Duration::from_secs(
        60 * file.recommend_retrain_minutes.unwrap_or(60).max(1),
    ));
    let state = AppState::new(store, Arc::new(cipher), audience, recommend, api);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend, "listening");
    println!("shopgrowth listening on http://{addr}  (API under /api/v1, health at /health)");
    if let Some(b) = banner {
        println!("{b}");
    }
    shopgrowth_api::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
