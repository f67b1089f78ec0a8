//! `shopgrowth bench flash`: a flash-sale stampede against a running server, and the same
//! stampede against Redis running a Lua check-and-decrement, driven by the same client in the same
//! run. `--clients` connections each take the next attempt as soon as their last one is answered
//! (closed loop), every attempt by a different user, until `--attempts` are made. With
//! `--redis-durable` it also runs against a Redis that fsyncs every write before answering, the
//! promise the server makes for a hold.
//!
//! After the stampede the server's sale is checked: nothing oversold; half of the holds are
//! confirmed (orders) and the rest left to run out; once the sweeper has put those units back,
//! a second wave buys and confirms until the sale is sold out, and every unit must have ended in
//! a confirmed order.
//!
//! The same client also sends the same number of requests to the server's `GET /health`, which
//! does no work: the most any endpoint of this HTTP stack can answer on this machine with this
//! client, next to which the flash sale's figure and Redis's are read. It measures; it asserts
//! nothing about time.

use anyhow::{bail, ensure, Context};
use clap::Args;
use serde::Serialize;
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
    /// A second Redis, run with `appendonly yes` and `appendfsync always`, to run the same
    /// stampede against (host:port): it answers a decrement only once it is in a file that a
    /// `kill -9` leaves behind, as the server answers a hold. None to skip it.
    #[arg(long)]
    pub redis_durable: Option<String>,
    /// Other server nodes sharing the first one's store (PostgreSQL): the stampede's connections
    /// are spread over all of them.
    #[arg(long = "also")]
    pub also: Vec<String>,
    /// PostgreSQL to run the same stampede against as single-row conditional UPDATEs
    /// (postgres://…); none to skip that baseline.
    #[arg(long)]
    pub pg_baseline: Option<String>,
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
    /// Server nodes the stampede was spread over.
    pub nodes: usize,
    pub shopgrowth: Stampede,
    /// The same load on `GET /health` of the first node: the HTTP stack with no work behind it.
    pub http_floor: Stampede,
    pub redis: Option<Stampede>,
    /// shopgrowth's attempts/s over Redis's.
    pub attempts_ratio: Option<f64>,
    /// shopgrowth's orders/s over Redis's.
    pub orders_ratio: Option<f64>,
    /// The same against Redis that makes every write durable before it answers.
    pub redis_durable: Option<Stampede>,
    pub durable_attempts_ratio: Option<f64>,
    pub durable_orders_ratio: Option<f64>,
    pub pg_baseline: Option<Stampede>,
    /// shopgrowth's attempts/s and orders/s over the PostgreSQL baseline's.
    pub pg_attempts_ratio: Option<f64>,
    pub pg_orders_ratio: Option<f64>,
    /// Holds confirmed as orders after the stampede.
    pub confirmed: usize,
    /// Units back on sale once the unconfirmed holds ran out (should be the holds not confirmed).
    pub returned_after_expiry: i64,
    /// Units that never ended in a confirmed order after the second wave (should be 0).
    pub unsold: i64,
    /// How long the second wave took to buy the units that came back, one buyer at a time.
    pub second_wave_seconds: f64,
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
    eprintln!(
        "stampede: {:.0} attempts/s, {:.0} orders/s, oversold {}; measuring the HTTP floor, then \
         confirming and waiting {} s for the other holds to run out",
        shopgrowth.attempts_per_second,
        shopgrowth.orders_per_second,
        shopgrowth.oversold,
        args.hold_seconds + 2
    );
    let http_floor = api.http_floor(&args).await?;
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
    // The second wave: buy and confirm until nothing is left. One buyer at a time, so it takes
    // a while; it gives up only when nothing has sold for a while.
    let mut buyer = 0;
    let second_wave = Instant::now();
    let mut last_sale = Instant::now();
    while api.available(&sale).await? > 0 && last_sale.elapsed() < Duration::from_secs(10) {
        let id = format!("{sale}-late-{buyer}");
        let status = api.reserve(&sale, &id, &format!("late{buyer}")).await?;
        buyer += 1;
        match status.as_u16() {
            201 => {
                confirmed += usize::from(api.confirm(&id).await?);
                last_sale = Instant::now();
            }
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
    let redis_durable = match &args.redis_durable {
        Some(address) => Some(redis_stampede(address, &args).await?),
        None => None,
    };
    let pg_baseline = match &args.pg_baseline {
        Some(url) => Some(pg_stampede(url, &args).await?),
        None => None,
    };
    let ratio = |base: &Option<Stampede>, f: fn(&Stampede) -> f64| {
        base.as_ref().map(|r| f(&shopgrowth) / f(r))
    };
    Ok(FlashReport {
        stock: args.stock,
        clients: args.clients,
        nodes: 1 + args.also.len(),
        attempts_ratio: ratio(&redis, |s| s.attempts_per_second),
        orders_ratio: ratio(&redis, |s| s.orders_per_second),
        durable_attempts_ratio: ratio(&redis_durable, |s| s.attempts_per_second),
        durable_orders_ratio: ratio(&redis_durable, |s| s.orders_per_second),
        redis_durable,
        pg_attempts_ratio: ratio(&pg_baseline, |s| s.attempts_per_second),
        pg_orders_ratio: ratio(&pg_baseline, |s| s.orders_per_second),
        pg_baseline,
        shopgrowth,
        http_floor,
        redis,
        confirmed,
        returned_after_expiry,
        unsold,
        second_wave_seconds: second_wave.elapsed().as_secs_f64(),
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

/// One client connection of a stampede: makes attempt `i` and says what it came to.
trait Attempt {
    async fn attempt(&mut self, i: usize) -> Outcome;
}

/// Runs `attempts` attempts over `clients`, closed loop: each client makes the next attempt as
/// soon as its last one is answered. The clients run as local tasks of the bench's one thread.
async fn closed_loop<A: Attempt + 'static>(
    clients: Vec<A>,
    attempts: usize,
    stock: i64,
) -> anyhow::Result<(Stampede, Vec<A>)> {
    let next = std::rc::Rc::new(std::cell::Cell::new(0));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let started = Instant::now();
            let workers: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    let next = std::rc::Rc::clone(&next);
                    tokio::task::spawn_local(async move {
                        let mut tally = Tally::default();
                        loop {
                            let i = next.get();
                            if i >= attempts {
                                break;
                            }
                            next.set(i + 1);
                            let sent = Instant::now();
                            let outcome = client.attempt(i).await;
                            tally.add(outcome, sent.elapsed(), started.elapsed());
                        }
                        (tally, client)
                    })
                })
                .collect();
            let (mut tally, mut clients) = (Tally::default(), Vec::new());
            for w in workers {
                let (t, c) = w.await?;
                tally.merge(t);
                clients.push(c);
            }
            let seconds = started.elapsed().as_secs_f64();
            Ok((tally.finish(seconds, stock), clients))
        })
        .await
}

/// A reservation attempt over HTTP, each by a new user; remembers the holds it got.
struct HttpAttempt {
    conn: Http,
    path: String,
    key: String,
    sale: String,
    held: Vec<String>,
}

impl Attempt for HttpAttempt {
    async fn attempt(&mut self, i: usize) -> Outcome {
        let id = format!("{}-{i}", self.sale);
        let body = format!(r#"{{"reservation_id":"{id}","user_id":"b{i}"}}"#);
        match self
            .conn
            .send("POST", &self.path, Some(&self.key), &body)
            .await
        {
            Ok(201) => {
                self.held.push(id);
                Outcome::Order
            }
            Ok(409) => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// A request for the HTTP floor: `GET /health`, answered without any work.
struct HealthAttempt {
    conn: Http,
}

impl Attempt for HealthAttempt {
    async fn attempt(&mut self, _: usize) -> Outcome {
        match self.conn.send("GET", "/health", None, "").await {
            Ok(200) => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// The Redis baseline's attempt: the check-and-decrement script.
struct RedisAttempt {
    conn: Resp,
    sha: String,
    key: String,
}

impl Attempt for RedisAttempt {
    async fn attempt(&mut self, _: usize) -> Outcome {
        match self
            .conn
            .call(&["EVALSHA", &self.sha, "1", &self.key])
            .await
        {
            Ok(Reply::Integer(1)) => Outcome::Order,
            Ok(Reply::Integer(0)) => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// The PostgreSQL baseline's attempt: one conditional UPDATE of the stock row.
struct PgAttempt {
    pool: sqlx::PgPool,
    take: std::rc::Rc<String>,
}

impl Attempt for PgAttempt {
    async fn attempt(&mut self, _: usize) -> Outcome {
        match sqlx::query(&self.take).execute(&self.pool).await {
            Ok(r) if r.rows_affected() == 1 => Outcome::Order,
            Ok(_) => Outcome::Refused,
            Err(_) => Outcome::Failed,
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
            address: host_port(&args.url),
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
        let mut nodes = vec![self.address.clone()];
        nodes.extend(args.also.iter().map(|u| host_port(u)));
        let mut clients = Vec::with_capacity(args.clients);
        for c in 0..args.clients {
            clients.push(HttpAttempt {
                conn: Http::connect(&nodes[c % nodes.len()]).await?,
                path: format!("/api/v1/flash-sales/{sale}/reservations"),
                key: self.key.clone(),
                sale: sale.to_owned(),
                held: Vec::new(),
            });
        }
        let (mut stampede, clients) = closed_loop(clients, args.attempts, args.stock).await?;
        let held = clients.into_iter().flat_map(|c| c.held).collect();
        let taken = args.stock - self.available(sale).await?;
        // The store's own count, too: units taken beyond the stock would be oversold.
        stampede.oversold = stampede.oversold.max(taken - args.stock);
        Ok((stampede, held))
    }

    /// The stampede's load (connections, requests, closed loop) on `GET /health` of the first
    /// node. Every answer counts as refused: nothing is sold.
    async fn http_floor(&self, args: &FlashBenchArgs) -> anyhow::Result<Stampede> {
        let mut clients = Vec::with_capacity(args.clients);
        for _ in 0..args.clients {
            clients.push(HealthAttempt {
                conn: Http::connect(&self.address).await?,
            });
        }
        Ok(closed_loop(clients, args.attempts, 0).await?.0)
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

/// `host:port` of an `http://host:port` URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// The PostgreSQL baseline: the stock in one row, each attempt one conditional UPDATE on it from
/// a pool of `--clients` connections.
async fn pg_stampede(url: &str, args: &FlashBenchArgs) -> anyhow::Result<Stampede> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.clients as u32)
        .connect(url)
        .await
        .context("connecting to the PostgreSQL baseline")?;
    let table = format!("flash_baseline_{:08x}", rand::random::<u32>());
    sqlx::query(&format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, stock BIGINT NOT NULL)"
    ))
    .execute(&pool)
    .await?;
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, $1)"))
        .bind(args.stock)
        .execute(&pool)
        .await?;
    let take = std::rc::Rc::new(format!(
        "UPDATE {table} SET stock = stock - 1 WHERE id = 1 AND stock > 0"
    ));
    // Every connection open before the clock starts, as the other runs have theirs.
    drop(open_connections(&pool, args.clients).await?);
    let clients = (0..args.clients)
        .map(|_| PgAttempt {
            pool: pool.clone(),
            take: std::rc::Rc::clone(&take),
        })
        .collect();
    let (mut stampede, _) = closed_loop(clients, args.attempts, args.stock).await?;
    let left: i64 = sqlx::query_scalar(&format!("SELECT stock FROM {table}"))
        .fetch_one(&pool)
        .await?;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await?;
    stampede.oversold = stampede.oversold.max(-left);
    Ok(stampede)
}

/// Opens `n` pooled connections at once and hands them back.
async fn open_connections(
    pool: &sqlx::PgPool,
    n: usize,
) -> anyhow::Result<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.acquire().await?);
    }
    Ok(held)
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

    /// Sends a request (a JSON body unless empty, with the API key if any); the answer's status
    /// (its body is read and dropped).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> anyhow::Result<u16> {
        use std::fmt::Write as _;
        // One buffer, written in place: the client shares the machine with what it measures.
        let mut request = String::with_capacity(256 + body.len());
        let _ = write!(request, "{method} {path} HTTP/1.1\r\nhost: bench\r\n");
        if let Some(key) = key {
            let _ = write!(request, "authorization: Bearer {key}\r\n");
        }
        if !body.is_empty() {
            let _ = write!(
                request,
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
        }
        request.push_str("\r\n");
        request.push_str(body);
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
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(RedisAttempt {
            conn: Resp::connect(address).await?,
            sha: sha.clone(),
            key: key.clone(),
        });
    }
    let (mut stampede, _) = closed_loop(clients, args.attempts, args.stock).await?;
    let left = match admin.call(&["GET", &key]).await? {
        Reply::Bulk(Some(v)) => v.parse::<i64>()?,
        other => bail!("GET answered {other:?}"),
    };
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
