//! `shopgrowth bench flash`: a flash-sale stampede against a running server, and the same
//! stampede against Redis running a Lua check-and-decrement, driven by the same client in the same
//! run. `--clients` connections each take the next attempt as soon as their last one is answered
//! (closed loop), every attempt by a different user, until `--attempts` are made.
//!
//! After the stampede the server's sale is checked: nothing oversold; half of the holds are
//! confirmed (orders) and the rest left to run out; once the sweeper has put those units back,
//! a second wave buys and confirms until the sale is sold out, and every unit must have ended in
//! a confirmed order. It measures; it asserts nothing about time.

use anyhow::{bail, ensure, Context};
use clap::Args;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Args)]
pub struct FlashBenchArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key with the admin scope (it creates the sale).
    #[arg(long, env = "SHOPGROWTH_API_KEY", hide_env_values = true)]
    pub key: String,
    #[arg(long, default_value_t = 10_000)]
    pub stock: i64,
    #[arg(long, default_value_t = 200_000)]
    pub attempts: usize,
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Seconds a hold lasts before its units go back on sale: longer than the stampede, so that
    /// every order it counts held its unit at the same time.
    #[arg(long, default_value_t = 30)]
    pub hold_seconds: i64,
    /// Redis to run the same stampede against (host:port); none to skip the baseline.
    #[arg(long)]
    pub redis: Option<String>,
}

/// One stampede.
#[derive(Debug, Serialize)]
pub struct Stampede {
    pub attempts: usize,
    /// Attempts that got units.
    pub orders: usize,
    /// Attempts refused (sold out).
    pub refused: usize,
    /// Attempts that failed otherwise (transport errors, unexpected answers).
    pub failed: usize,
    pub seconds: f64,
    pub attempts_per_second: f64,
    /// Orders over the time until the last unit went.
    pub orders_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub oversold: i64,
}

#[derive(Debug, Serialize)]
pub struct FlashReport {
    pub stock: i64,
    pub clients: usize,
    pub shopgrowth: Stampede,
    pub redis: Option<Stampede>,
    /// shopgrowth's attempts/s over Redis's.
    pub attempts_ratio: Option<f64>,
    /// shopgrowth's orders/s over Redis's.
    pub orders_ratio: Option<f64>,
    /// Holds confirmed as orders after the stampede.
    pub confirmed: usize,
    /// Units back on sale once the unconfirmed holds ran out (should be the holds not confirmed).
    pub returned_after_expiry: i64,
    /// Units that never ended in a confirmed order after the second wave (should be 0).
    pub unsold: i64,
}

/// Runs the client on one thread of its own: the load generator and what it measures share the
/// machine, and one thread takes the least away from either.
pub async fn run(args: FlashBenchArgs) -> anyhow::Result<FlashReport> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(bench(args))
    })
    .await?
}

async fn bench(args: FlashBenchArgs) -> anyhow::Result<FlashReport> {
    ensure!(
        args.stock > 0 && args.attempts > 0 && args.clients > 0,
        "--stock, --attempts and --clients must be positive"
    );
    let api = Api::new(&args)?;
    let sale = format!("bench-{:08x}", rand::random::<u32>());
    api.create_sale(&sale, &args).await?;
    let (shopgrowth, held) = api.stampede(&sale, &args).await?;
    // Half of the holds become orders, paid by many clients at once; the others are left to
    // run out.
    let to_pay: Vec<String> = held.into_iter().step_by(2).collect();
    let mut payers = Vec::new();
    for chunk in to_pay.chunks(to_pay.len().div_ceil(args.clients).max(1)) {
        let (api, chunk) = (api.clone_handle(), chunk.to_vec());
        payers.push(tokio::spawn(async move {
            let mut paid = 0;
            for id in chunk {
                paid += usize::from(api.confirm(&id).await?);
            }
            anyhow::Ok(paid)
        }));
    }
    let mut confirmed = 0;
    for p in payers {
        confirmed += p.await??;
    }
    tokio::time::sleep(Duration::from_secs(args.hold_seconds as u64 + 2)).await;
    let returned_after_expiry = api.available(&sale).await?;
    // The second wave: buy and confirm until nothing is left.
    let mut buyer = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.available(&sale).await? > 0 && Instant::now() < deadline {
        let id = format!("{sale}-late-{buyer}");
        let status = api.reserve(&sale, &id, &format!("late{buyer}")).await?;
        buyer += 1;
        match status.as_u16() {
            201 => confirmed += usize::from(api.confirm(&id).await?),
            // The node's sold-out gate may still be closed for a moment.
            409 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => bail!("unexpected {other} in the second wave"),
        }
    }
    let unsold = args.stock - confirmed as i64;
    let redis = match &args.redis {
        Some(address) => Some(redis_stampede(address, &args).await?),
        None => None,
    };
    let ratio = |f: fn(&Stampede) -> f64| redis.as_ref().map(|r| f(&shopgrowth) / f(r));
    Ok(FlashReport {
        stock: args.stock,
        clients: args.clients,
        attempts_ratio: ratio(|s| s.attempts_per_second),
        orders_ratio: ratio(|s| s.orders_per_second),
        shopgrowth,
        redis,
        confirmed,
        returned_after_expiry,
        unsold,
    })
}

/// What one attempt came to.
enum Outcome {
    Order,
    Refused,
    Failed,
}

/// Collects attempts' outcomes and latencies into a [`Stampede`].
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    orders: usize,
    refused: usize,
    failed: usize,
    last_order: Duration,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, latency: Duration, since_start: Duration) {
        self.latencies.push(latency);
        match outcome {
            Outcome::Order => {
                self.orders += 1;
                self.last_order = self.last_order.max(since_start);
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.orders += other.orders;
        self.refused += other.refused;
        self.failed += other.failed;
        self.last_order = self.last_order.max(other.last_order);
    }

    fn finish(mut self, seconds: f64, stock: i64) -> Stampede {
        self.latencies.sort();
        let at = |p: f64| {
            let v = &self.latencies;
            let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
            v[i].as_secs_f64() * 1000.0
        };
        let attempts = self.latencies.len();
        Stampede {
            attempts,
            orders: self.orders,
            refused: self.refused,
            failed: self.failed,
            seconds,
            attempts_per_second: attempts as f64 / seconds,
            orders_per_second: self.orders as f64 / self.last_order.as_secs_f64().max(1e-9),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            oversold: (self.orders as i64 - stock).max(0),
        }
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    /// host:port of the server, for the stampede's own connections.
    address: String,
    key: String,
}

impl Api {
    fn new(args: &FlashBenchArgs) -> anyhow::Result<Self> {
        Ok(Api {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(args.clients)
                .build()?,
            base: format!("{}/api/v1", args.url.trim_end_matches('/')),
            address: args
                .url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            key: args.key.clone(),
        })
    }

    async fn create_sale(&self, sale: &str, args: &FlashBenchArgs) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let body = serde_json::json!({"id": sale, "sku": "bench-phone", "price": 99_900,
            "stock": args.stock, "per_user_limit": 1, "hold_seconds": args.hold_seconds,
            "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339()});
        let r = self
            .client
            .post(format!("{}/flash-sales", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .context("creating the sale")?;
        ensure!(
            r.status().is_success(),
            "creating the sale: {}",
            r.text().await?
        );
        Ok(())
    }

    async fn reserve(
        &self,
        sale: &str,
        id: &str,
        user: &str,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let r = self
            .client
            .post(format!("{}/flash-sales/{sale}/reservations", self.base))
            .bearer_auth(&self.key)
            .json(&serde_json::json!({"reservation_id": id, "user_id": user}))
            .send()
            .await?;
        let status = r.status();
        r.bytes().await?;
        Ok(status)
    }

    async fn confirm(&self, reservation: &str) -> anyhow::Result<bool> {
        let r = self
            .client
            .post(format!(
                "{}/flash-reservations/{reservation}/confirm",
                self.base
            ))
            .bearer_auth(&self.key)
            .send()
            .await?;
        Ok(r.status().is_success())
    }

    async fn available(&self, sale: &str) -> anyhow::Result<i64> {
        let v: serde_json::Value = self
            .client
            .get(format!("{}/flash-sales/{sale}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?
            .json()
            .await?;
        v["available"]
            .as_i64()
            .with_context(|| format!("no availability in {v}"))
    }

    /// The stampede: every attempt a new user; returns the ids of the holds that succeeded.
    async fn stampede(
        self: &Api,
        sale: &str,
        args: &FlashBenchArgs,
    ) -> anyhow::Result<(Stampede, Vec<String>)> {
        let next = Arc::new(AtomicUsize::new(0));
        let address = self.address.clone();
        let mut connections = Vec::with_capacity(args.clients);
        for _ in 0..args.clients {
            connections.push(Http::connect(&address).await?);
        }
        let started = Instant::now();
        let workers: Vec<_> = connections
            .into_iter()
            .map(|mut conn| {
                let (next, sale, key) = (Arc::clone(&next), sale.to_owned(), self.key.clone());
                let attempts = args.attempts;
                tokio::spawn(async move {
                    let path = format!("/api/v1/flash-sales/{sale}/reservations");
                    let (mut tally, mut held) = (Tally::default(), Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= attempts {
                            break;
                        }
                        let id = format!("{sale}-{i}");
                        let body = format!(r#"{{"reservation_id":"{id}","user_id":"b{i}"}}"#);
                        let sent = Instant::now();
                        let outcome = match conn.post(&path, &key, &body).await {
                            Ok(201) => {
                                held.push(id);
                                Outcome::Order
                            }
                            Ok(409) => Outcome::Refused,
                            _ => Outcome::Failed,
                        };
                        tally.add(outcome, sent.elapsed(), started.elapsed());
                    }
                    (tally, held)
                })
            })
            .collect();
        let (mut tally, mut held) = (Tally::default(), Vec::new());
        for w in workers {
            let (t, h) = w.await?;
            tally.merge(t);
            held.extend(h);
        }
        let seconds = started.elapsed().as_secs_f64();
        let taken = args.stock - self.available(sale).await?;
        let mut stampede = tally.finish(seconds, args.stock);
        // The store's own count, too: units taken beyond the stock would be oversold.
        stampede.oversold = stampede.oversold.max(taken - args.stock);
        Ok((stampede, held))
    }

    fn clone_handle(&self) -> Api {
        Api {
            client: self.client.clone(),
            base: self.base.clone(),
            address: self.address.clone(),
            key: self.key.clone(),
        }
    }
}

/// A minimal HTTP/1.1 keep-alive connection for the stampede: as lean on the client side as the
/// RESP one below, so the two runs measure the servers rather than the client libraries.
struct Http {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Http {
    async fn connect(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Posts a JSON body; the answer's status (its body is read and dropped).
    async fn post(&mut self, path: &str, key: &str, body: &str) -> anyhow::Result<u16> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = 0;
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await?;
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// Checks the stock and takes one unit if any is left: the usual Redis flash-sale script.
const CHECK_AND_DECREMENT: &str = "local s = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if s > 0 then redis.call('DECR', KEYS[1]) return 1 end return 0";

async fn redis_stampede(address: &str, args: &FlashBenchArgs) -> anyhow::Result<Stampede> {
    let key = format!("flash:{:08x}", rand::random::<u32>());
    let mut admin = Resp::connect(address).await?;
    admin.call(&["SET", &key, &args.stock.to_string()]).await?;
    let sha = match admin.call(&["SCRIPT", "LOAD", CHECK_AND_DECREMENT]).await? {
        Reply::Bulk(Some(sha)) => sha,
        other => bail!("SCRIPT LOAD answered {other:?}"),
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut connections = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        connections.push(Resp::connect(address).await?);
    }
    let started = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut conn| {
            let (next, key, sha, attempts) =
                (Arc::clone(&next), key.clone(), sha.clone(), args.attempts);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    if next.fetch_add(1, Ordering::Relaxed) >= attempts {
                        break;
                    }
                    let sent = Instant::now();
                    let outcome = match conn.call(&["EVALSHA", &sha, "1", &key]).await {
                        Ok(Reply::Integer(1)) => Outcome::Order,
                        Ok(Reply::Integer(0)) => Outcome::Refused,
                        _ => Outcome::Failed,
                    };
                    tally.add(outcome, sent.elapsed(), started.elapsed());
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let left = match admin.call(&["GET", &key]).await? {
        Reply::Bulk(Some(v)) => v.parse::<i64>()?,
        other => bail!("GET answered {other:?}"),
    };
    let mut stampede = tally.finish(seconds, args.stock);
    stampede.oversold = stampede.oversold.max(-left);
    admin.call(&["DEL", &key]).await?;
    Ok(stampede)
}

/// A Redis reply, as far as the benchmark needs.
#[derive(Debug)]
enum Reply {
    Integer(i64),
    Bulk(Option<String>),
}

/// A minimal RESP2 connection: commands as arrays of bulk strings, one reply at a time.
struct Resp {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Resp {
    async fn connect(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to Redis at {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Resp {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    async fn call(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        let mut command = format!("*{}\r\n", args.len());
        for a in args {
            command.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.get_mut().write_all(command.as_bytes()).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let line = self.line.trim_end();
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            // Simple strings ("OK") read like bulk ones.
            "+" => Ok(Reply::Bulk(Some(rest.to_owned()))),
            ":" => Ok(Reply::Integer(rest.parse()?)),
            "$" => {
                let len: i64 = rest.parse()?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut data = vec![0; len as usize + 2];
                self.stream.read_exact(&mut data).await?;
                data.truncate(len as usize);
                Ok(Reply::Bulk(Some(String::from_utf8(data)?)))
            }
            "-" => bail!("Redis error: {rest}"),
            _ => bail!("unexpected Redis reply {line:?}"),
        }
    }
}
