//! `shopgrowth bench ingest`: a load generator for HTTP batch ingest. It runs in its own process
//! against a running server and reports events/s and latency percentiles of acknowledged
//! batches. It never asserts timings; it measures them.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum BenchVerb {
    /// Post batches of synthetic events and measure throughput and latency.
    Ingest(IngestArgs),
    /// Time segment expressions over a generated shop (default 1M users, a year of behaviour);
    /// optionally write it as CSV for the DuckDB comparison.
    Segments(crate::bench_segments::SegmentBenchArgs),
    /// Price carts against live promotions on one core and report carts per second.
    Pricing(crate::bench_pricing::PricingBenchArgs),
    /// Request recommendations from a running server at a fixed rate; latency percentiles.
    Recommend(crate::bench_serving::ServingArgs),
    /// Issue a coupon to many users in the store the global options name, then again.
    Issue(crate::bench_issue::IssueBenchArgs),
    /// A flash-sale stampede against a running server, next to Redis with a Lua
    /// check-and-decrement; then checks that nothing was oversold or left unsold.
    Flash(crate::bench_flash::FlashBenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key with the ingest scope.
    #[arg(long, env = "SHOPGROWTH_API_KEY", hide_env_values = true)]
    pub key: String,
    /// Total events to send.
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Users the synthetic events are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
}

#[derive(Debug, Serialize)]
pub struct IngestReport {
    pub events: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub failed_requests: usize,
}

pub async fn run(
    store: &crate::config::StoreArgs,
    file: &crate::config::FileConfig,
    verb: BenchVerb,
    json: bool,
) -> anyhow::Result<()> {
    match verb {
        BenchVerb::Issue(args) => {
            let r = crate::bench_issue::run(store, file, args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {} users issued in {:.1}s ({:.0} grants/s): {:?}; the same batch again: {:?} in {:.1}s",
                    r.backend, r.users, r.seconds, r.grants_per_second, r.issued, r.rerun, r.rerun_seconds
                );
            }
            Ok(())
        }
        BenchVerb::Flash(args) => {
            let r = crate::bench_flash::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let line = |name: &str, s: &crate::bench_flash::Stampede| {
                    println!(
                        "{name}: {} attempts in {:.2}s ({:.0}/s), {} orders ({:.0}/s until sold out), {} refused, {} failed; p50 {:.2} ms, p99 {:.2} ms; oversold {}",
                        s.attempts, s.seconds, s.attempts_per_second, s.orders, s.orders_per_second, s.refused, s.failed, s.p50_ms, s.p99_ms, s.oversold
                    )
                };
                line(&format!("shopgrowth ({} node(s))", r.nodes), &r.shopgrowth);
                println!(
                    "http floor (GET /health, no work): {:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms",
                    r.http_floor.attempts_per_second, r.http_floor.p50_ms, r.http_floor.p99_ms
                );
                if let Some(redis) = &r.redis {
                    line("redis", redis);
                    println!(
                        "ratio (shopgrowth / redis): attempts/s {:.2}, orders/s {:.2}; http floor / redis {:.2}",
                        r.attempts_ratio.unwrap_or(0.0),
                        r.orders_ratio.unwrap_or(0.0),
                        r.http_floor.attempts_per_second / redis.attempts_per_second
                    );
                }
                if let Some(durable) = &r.redis_durable {
                    line("redis, every write fsynced (appendfsync always)", durable);
                    println!(
                        "ratio (shopgrowth / durable redis): attempts/s {:.2}, orders/s {:.2}",
                        r.durable_attempts_ratio.unwrap_or(0.0),
                        r.durable_orders_ratio.unwrap_or(0.0)
                    );
                }
                if let Some(pg) = &r.pg_baseline {
                    line("postgres single-row UPDATE", pg);
                    println!(
                        "ratio (shopgrowth / postgres baseline): attempts/s {:.2}, orders/s {:.2}",
                        r.pg_attempts_ratio.unwrap_or(0.0),
                        r.pg_orders_ratio.unwrap_or(0.0)
                    );
                }
                println!(
                    "{} confirmed of {} stock; {} back on sale after the holds ran out; {} unsold \
                     (second wave {:.1}s)",
                    r.confirmed, r.stock, r.returned_after_expiry, r.unsold, r.second_wave_seconds
                );
            }
            Ok(())
        }
        BenchVerb::Recommend(args) => {
            let r = crate::bench_serving::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} scene: {} requests at {} /s (achieved {:.0} /s), {} failed; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; schedule lag p99 {:.2} ms",
                    r.scene, r.requests, r.target_rate, r.achieved_rate, r.failed, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.schedule_lag_p99_ms
                );
            }
            Ok(())
        }
        BenchVerb::Pricing(args) => {
            let report = crate::bench_pricing::run(args);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} carts of {} lines against {} promotions on one core: {:.2}s, {:.0} carts/s; {:.2} promotions applied and {:.1} combinations tried per cart; {} greedy",
                    report.carts, report.lines, report.promotions, report.seconds, report.carts_per_second,
                    report.mean_applied, report.mean_combinations, report.greedy_carts
                );
            }
            Ok(())
        }
        BenchVerb::Segments(args) => {
            let report =
                tokio::task::spawn_blocking(move || crate::bench_segments::run(args)).await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} users, {} events, {} orders, {} tags; built in {:.1}s",
                    report.users, report.events, report.orders, report.tags, report.build_seconds
                );
                for q in &report.questions {
                    println!(
                        "  {} matched; p50 {:.3} ms, p99 {:.3} ms: {}",
                        q.matched, q.p50_ms, q.p99_ms, q.expr
                    );
                    for (clause, n, p50) in &q.clauses {
                        println!("      {p50:.3} ms  {n:>8}  {clause}");
                    }
                }
            }
            Ok(())
        }
        BenchVerb::Ingest(args) => {
            let report = ingest(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} events in batches of {} with {} in flight: {:.2}s, {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed",
                    report.events, report.batch, report.concurrency, report.seconds, report.events_per_second,
                    report.p50_ms, report.p99_ms, report.max_ms, report.failed_requests
                );
            }
            Ok(())
        }
    }
}

/// A batch body of synthetic but valid events, ids unique to this run.
fn batch_body(run: &str, first: usize, n: usize, users: usize) -> String {
    const KINDS: [&str; 4] = ["view", "view", "add_to_cart", "favorite"];
    let now = chrono::Utc::now().timestamp_millis();
    let mut body = String::with_capacity(n * 200);
    body.push_str("{\"events\":[");
    for i in first..first + n {
        if i > first {
            body.push(',');
        }
        let user = (i * 7919) % users.max(1);
        body.push_str(&format!(
            "{{\"id\":\"{run}-{i}\",\"type\":\"{}\",\"time\":{},\"user_id\":\"u{user}\",\"channel\":\"app\",\"sku_id\":\"sku-{}\"}}",
            KINDS[i % KINDS.len()],
            now - (i % 86_400_000) as i64,
            (i * 31) % 2000
        ));
    }
    body.push_str("]}");
    body
}

pub async fn ingest(args: IngestArgs) -> anyhow::Result<IngestReport> {
    anyhow::ensure!(
        args.batch > 0 && args.concurrency > 0,
        "--batch and --concurrency must be positive"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let url = format!("{}/api/v1/events/batch", args.url.trim_end_matches('/'));
    let run = format!("bench-{:08x}", rand::random::<u32>());
    let batches = args.events.div_ceil(args.batch);
    // Bodies are built before the clock starts, so the generator's own work is not measured.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..batches)
            .map(|b| {
                let first = b * args.batch;
                batch_body(&run, first, args.batch.min(args.events - first), args.users)
            })
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, key, bodies, next) = (
            client.clone(),
            url.clone(),
            args.key.clone(),
            Arc::clone(&bodies),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(b) else { break };
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                latencies.push(t.elapsed());
                failed += usize::from(!ok);
            }
            (latencies, failed)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await.context("a load worker failed")?;
        latencies.extend(l);
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    Ok(IngestReport {
        events: args.events,
        batch: args.batch,
        concurrency: args.concurrency,
        seconds,
        events_per_second: args.events as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        failed_requests: failed,
    })
}
