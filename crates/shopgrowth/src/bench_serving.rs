//! `shopgrowth bench recommend`: an open-loop load generator for `GET /api/v1/recommendations`.
//! Requests leave on a fixed schedule (`--rate` per second) whatever the server does: each is its
//! own task, so a slow answer never delays the next request (no coordinated omission). Latency is
//! measured from when a request leaves; how late requests left against the schedule is reported
//! apart (tokio's timer ticks in milliseconds, so the generator releases requests in 1 ms
//! groups). The generator runs on one thread. Users are drawn from `u000000…` as the demo shop names them.

use clap::Args;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key with the read scope.
    #[arg(long, env = "SHOPGROWTH_API_KEY", hide_env_values = true)]
    pub key: String,
    /// Requests per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    #[arg(long, default_value_t = 20)]
    pub seconds: u32,
    /// Users drawn from u000000 to this (exclusive), uniformly with a fixed seed.
    #[arg(long, default_value_t = 20_000)]
    pub users: u32,
    #[arg(long, default_value = "home")]
    pub scene: String,
    #[arg(long, default_value_t = 10)]
    pub n: u32,
}

#[derive(Debug, Serialize)]
pub struct ServingReport {
    pub scene: String,
    pub target_rate: u32,
    pub achieved_rate: f64,
    pub requests: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// How late requests left against their schedule, 99th percentile.
    pub schedule_lag_p99_ms: f64,
}

/// Runs the generator on a single-threaded runtime of its own: on a small machine shared with the
/// server, one thread of load generation takes the least CPU away from what is measured.
pub async fn run(args: ServingArgs) -> anyhow::Result<ServingReport> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(generate(args))
    })
    .await?
}

async fn generate(args: ServingArgs) -> anyhow::Result<ServingReport> {
    anyhow::ensure!(
        args.rate > 0 && args.seconds > 0,
        "--rate and --seconds must be positive"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let base = format!("{}/api/v1/recommendations", args.url.trim_end_matches('/'));
    let total = (args.rate * args.seconds) as usize;
    let urls: Arc<Vec<String>> = Arc::new(
        (0..total)
            .map(|i| {
                let user = (i as u64 * 2_654_435_761 % u64::from(args.users.max(1))) as u32;
                format!(
                    "{base}?scene={}&n={}&user_id=u{user:06}",
                    args.scene, args.n
                )
            })
            .collect(),
    );
    // A warm-up second, not measured.
    for url in urls.iter().take(200) {
        let _ = client.get(url).bearer_auth(&args.key).send().await;
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval * i as u32;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let (client, urls, key) = (client.clone(), Arc::clone(&urls), args.key.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let lag = sent.saturating_duration_since(due);
            // The whole answer, body included: that is the latency a caller sees, and an
            // unread body would keep its connection from going back to the pool.
            let ok = match client.get(&urls[i]).bearer_auth(&key).send().await {
                Ok(r) => r.status().is_success() & r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed(), lag, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut lags = Vec::with_capacity(total);
    let mut failed = 0;
    for t in tasks {
        let (latency, lag, ok) = t.await?;
        latencies.push(latency);
        lags.push(lag);
        failed += usize::from(!ok);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    lags.sort();
    let at = |v: &[Duration], p: f64| {
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    let pct = |p: f64| at(&latencies, p);
    Ok(ServingReport {
        scene: args.scene,
        target_rate: args.rate,
        achieved_rate: total as f64 / seconds,
        requests: total,
        failed,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        schedule_lag_p99_ms: at(&lags, 0.99),
    })
}
