//! Embedded SQLite backend: one file in WAL mode, zero set-up.
//!
//! Every write goes through one writer thread (the single owner of the write connection). It
//! takes all requests waiting at that moment, runs each in its own savepoint and commits them in
//! one transaction with `synchronous = FULL`: one fsync acknowledges a whole group durably
//! (group commit). SQLite allows one writer at a time anyway, so this costs no parallelism and
//! makes every conditional write trivially atomic. Reads run on blocking threads over a small
//! pool of connections, which WAL lets proceed while the writer works.

use crate::at_work::AtWork;
use crate::error::{Error, Result};
use crate::queries::*;
use crate::records::*;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use sha2::{Digest, Sha256};
use shopgrowth_core::ids::{DeviceId, UserId};
use shopgrowth_core::model::{Event, Order, OrderLine, Product, Refund, Store as ShopStore};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write for the writer thread. An `isolated` job runs in its own savepoint, so its failure
/// undoes only itself; other jobs fail only on IO errors, and then the whole group is rolled back
/// (each caller is told, and may retry: every write is idempotent). Skipping the savepoint saves
/// copying each page it touches into the statement journal.
struct Job {
    run: RunJob,
    isolated: bool,
}

/// Runs a job on the writer: whether it succeeded, and what to tell its caller after the commit.
type RunJob = Box<dyn FnOnce(&mut Writer) -> (bool, Finish) + Send>;

/// What the writer thread owns: the write connection, and what it already wrote in this process
/// (users and device links), so repeated ids skip a statement. The sets are cleared whenever a
/// job or a commit fails, since they might then describe rows that were rolled back.
pub(crate) struct Writer {
    conn: Connection,
    known_users: std::collections::HashSet<String>,
    known_links: std::collections::HashSet<(String, String)>,
    /// Flash sales' terms as a hold read them: nothing changes a sale's row once it is created
    /// (its stock is taken in its buckets), so each hold of a stampede need not read it again.
    flash_sales: std::collections::HashMap<String, Arc<FlashSaleRecord>>,
}

impl std::ops::Deref for Writer {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// Past this many remembered ids the sets start over, bounding memory.
const MAX_KNOWN: usize = 1_000_000;

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Most requests committed together; bounds the latency a large group adds.
const MAX_GROUP: usize = 256;

/// How long the writer waits for more requests to join a group before committing it.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_millis(3);

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "audience",
        include_str!("../migrations/sqlite/0002_audience.sql"),
    ),
    (
        3,
        "coupons",
        include_str!("../migrations/sqlite/0003_coupons.sql"),
    ),
    (
        4,
        "campaigns",
        include_str!("../migrations/sqlite/0004_campaigns.sql"),
    ),
    (
        5,
        "flash_sales",
        include_str!("../migrations/sqlite/0005_flash_sales.sql"),
    ),
    (
        6,
        "budgets",
        include_str!("../migrations/sqlite/0006_budgets.sql"),
    ),
    (
        7,
        "red_packets",
        include_str!("../migrations/sqlite/0007_red_packets.sql"),
    ),
    (
        8,
        "group_buying",
        include_str!("../migrations/sqlite/0008_group_buying.sql"),
    ),
    (
        9,
        "coupon_limits",
        include_str!("../migrations/sqlite/0009_coupon_limits.sql"),
    ),
    (
        10,
        "coupon_issuance",
        include_str!("../migrations/sqlite/0010_coupon_issuance.sql"),
    ),
    (
        11,
        "coupon_scope",
        include_str!("../migrations/sqlite/0011_coupon_scope.sql"),
    ),
    (
        12,
        "promotion_trail",
        include_str!("../migrations/sqlite/0012_promotion_trail.sql"),
    ),
    (
        13,
        "flash_buckets",
        include_str!("../migrations/sqlite/0013_flash_buckets.sql"),
    ),
    // 14 is PostgreSQL's flash-hold function; SQLite has no counterpart.
    (
        15,
        "checkouts",
        include_str!("../migrations/sqlite/0015_checkouts.sql"),
    ),
    (
        16,
        "trail_by_order",
        include_str!("../migrations/sqlite/0016_trail_by_order.sql"),
    ),
    (
        17,
        "checkout_attempts",
        include_str!("../migrations/sqlite/0017_checkout_attempts.sql"),
    ),
    (
        18,
        "red_packet_unlock",
        include_str!("../migrations/sqlite/0018_red_packet_unlock.sql"),
    ),
    (
        19,
        "red_packet_rain",
        include_str!("../migrations/sqlite/0019_red_packet_rain.sql"),
    ),
    (
        20,
        "campaign_spent_column",
        include_str!("../migrations/sqlite/0020_campaign_spent_column.sql"),
    ),
    (
        21,
        "coupon_code_prefix",
        include_str!("../migrations/sqlite/0021_coupon_code_prefix.sql"),
    ),
    (
        22,
        "campaign_recurrence",
        include_str!("../migrations/sqlite/0022_campaign_recurrence.sql"),
    ),
    (
        23,
        "campaign_per_customer_limit",
        include_str!("../migrations/sqlite/0023_campaign_per_customer_limit.sql"),
    ),
    (
        24,
        "red_packet_helper_cap",
        include_str!("../migrations/sqlite/0024_red_packet_helper_cap.sql"),
    ),
    (
        25,
        "refund_returns",
        include_str!("../migrations/sqlite/0025_refund_returns.sql"),
    ),
];

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    at_work: Arc<AtWork>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// `$N` → `?N`: the shared SQL is written for PostgreSQL.
fn lite(sql: &str) -> String {
    sql.replace('$', "?")
}

// The statements run once per event, rewritten once.
static INSERT_EVENT_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(INSERT_EVENT));
static INSERT_BARE_USER_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(INSERT_BARE_USER));
static LINK_IF_NEW_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(LINK_IF_NEW));
// The statements of a flash-sale hold: the hottest write in a stampede.
static RESERVATION_OF_LITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = ?1")
});
static FLASH_SALE_OF_LITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {FLASH_SALE_COLUMNS} FROM flash_sales WHERE id = ?1")
});
static TAKE_FLASH_STOCK_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(TAKE_FLASH_STOCK));
static TAKE_FLASH_USER_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(TAKE_FLASH_USER));
static UNDO_FLASH_TAKE_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(UNDO_FLASH_TAKE));
static INSERT_RESERVATION_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(INSERT_RESERVATION));
static TRAIL_FLASH_HELD_LITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lite(TRAIL_FLASH_HELD));

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; \
         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store file and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = open_connection(path)?;
        // A background thread backfills the WAL continuously (PASSIVE, never blocking the writer).
        // It cannot finish while writes keep coming, so the writer itself checkpoints once the WAL
        // passes 8192 pages: by then almost everything is backfilled, the rest is quick, and the
        // WAL starts over instead of growing without bound.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 8192; PRAGMA cache_size = -262144;")?;
        let writer = Writer {
            conn,
            known_users: Default::default(),
            known_links: Default::default(),
            flash_sales: Default::default(),
        };
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let at_work = Arc::new(AtWork::default());
        let company = Arc::clone(&at_work);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(writer, rx, &company))?;
        let checkpointer = open_connection(path)?;
        let alive = tx.downgrade();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run_checkpointer(checkpointer, alive))?;
        Ok(SqliteStore {
            jobs: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_owned(),
            at_work,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The callers at work the writer reads before lingering ([`AtWork`]).
    pub fn at_work(&self) -> Arc<AtWork> {
        Arc::clone(&self.at_work)
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(true, move |w| f(w)).await
    }

    /// A write without a savepoint that may still refuse: `f` answers `Ok(Err(refusal))` only
    /// when it has left nothing changed (undoing by hand what it changed before refusing), so
    /// the group goes on; an `Err` from `f` itself (IO) rolls the whole group back.
    async fn write_or_refuse<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.run_job(false, f).await
    }

    /// A write that fails only on IO errors and may use the writer's memory of known ids.
    async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(false, f).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        isolated: bool,
        f: impl FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_job(isolated, move |w| f(w).map(Ok)).await
    }

    /// Queues `f` for the writer and waits for its answer, given when its group ends: a value
    /// only if the group's commit stands; a refusal (`Ok(Err(_))`: nothing changed) whatever
    /// the commit; a failure (`Err`: its savepoint, or the whole group, rolled back) as it is.
    async fn run_job<T: Send + 'static>(
        &self,
        isolated: bool,
        f: impl FnOnce(&mut Writer) -> Result<Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let run = Box::new(move |writer: &mut Writer| -> (bool, Finish) {
            match f(writer) {
                Ok(Ok(value)) => (
                    true,
                    Box::new(move |commit: Result<(), String>| {
                        let _ = tx.send(commit.map(|()| value).map_err(Error::CommitFailed));
                    }),
                ),
                // Nothing changed: the refusal stands whatever becomes of the group's commit.
                Ok(Err(refusal)) => (true, Box::new(move |_| drop(tx.send(Err(refusal))))),
                Err(e) => (false, Box::new(move |_| drop(tx.send(Err(e))))),
            }
        });
        self.jobs
            .send(Job { run, isolated })
            .await
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&path)?,
            };
            let result = f(&conn);
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| Error::Corrupt(format!("reader task failed: {e}")))?
    }

    pub async fn migrate(&self) -> Result<()> {
        self.write(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS _shopgrowth_migrations (version INTEGER PRIMARY KEY, \
                 name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )?;
            for (version, name, sql) in MIGRATIONS {
                let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
                let applied: Option<String> = conn
                    .query_row("SELECT checksum FROM _shopgrowth_migrations WHERE version = ?1", [version], |r| {
                        r.get(0)
                    })
                    .optional()?;
                match applied {
                    Some(c) if c == checksum => {}
                    Some(_) => return Err(Error::MigrationChanged(format!("{version:04}_{name}"))),
                    None => {
                        conn.execute_batch(sql)?;
                        conn.execute(
                            "INSERT INTO _shopgrowth_migrations (version, name, checksum, applied_at) \
                             VALUES (?1, ?2, ?3, ?4)",
                            params![version, name, checksum, chrono::Utc::now().timestamp_millis()],
                        )?;
                        tracing::info!(version, name, "applied sqlite migration");
                    }
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn insert_events(
        &self,
        events: Vec<Event>,
        received_at: i64,
    ) -> Result<Vec<Written>> {
        self.write_with(move |w| insert_events(w, &events, received_at))
            .await
    }

    pub async fn upsert_users(&self, users: Vec<SealedUser>, now: i64) -> Result<Vec<UserWritten>> {
        self.write(move |conn| {
            let mut exists = conn.prepare_cached(&lite(USER_EXISTS))?;
            let mut upsert = conn.prepare_cached(&lite(UPSERT_USER))?;
            let mut same_phone = conn.prepare_cached(&lite(SAME_PHONE_CUSTOMER))?;
            let mut active = conn.prepare_cached(&lite(ACTIVE_LINK_OF))?;
            let mut link = conn.prepare_cached(&lite(LINK_IF_NEW))?;
            let mut out = Vec::with_capacity(users.len());
            for u in &users {
                let existed = exists.exists([&u.id])?;
                upsert.execute(params![
                    u.id,
                    u.phone_enc,
                    u.phone_hash,
                    u.email_enc,
                    u.email_hash,
                    u.name_enc,
                    u.gender.map(|g| g.as_str()),
                    u.birthday.map(|b| b.to_string()),
                    u.city,
                    u.city_tier.map(|t| t.as_str()),
                    u.registration_channel.map(|c| c.as_str()),
                    u.registered_at,
                    json_text(&u.attributes),
                    now
                ])?;
                let mut merged_into = None;
                if let Some(hash) = &u.phone_hash {
                    let already: bool = active.exists(params!["user", u.id])?;
                    let other: Option<String> = if already {
                        None
                    } else {
                        same_phone
                            .query_row(params![hash, u.id], |r| r.get(0))
                            .optional()?
                    };
                    if let Some(target) = other {
                        if link.execute(params!["user", u.id, target, "same_phone", now])? == 1 {
                            merged_into = Some(UserId(target));
                        }
                    }
                }
                out.push(UserWritten {
                    written: if existed {
                        Written::Updated
                    } else {
                        Written::Inserted
                    },
                    merged_into,
                });
            }
            Ok(out)
        })
        .await
    }

    pub async fn upsert_products(&self, products: Vec<Product>, now: i64) -> Result<Vec<Written>> {
        self.write(move |conn| {
            let mut exists = conn.prepare_cached(&lite(PRODUCT_EXISTS))?;
            let mut upsert = conn.prepare_cached(&lite(UPSERT_PRODUCT))?;
            let mut out = Vec::with_capacity(products.len());
            for p in &products {
                let existed = exists.exists([p.id.as_str()])?;
                upsert.execute(params_from_iter(product_params(p, now)))?;
                out.push(if existed {
                    Written::Updated
                } else {
                    Written::Inserted
                });
            }
            Ok(out)
        })
        .await
    }

    pub async fn upsert_stores(&self, stores: Vec<ShopStore>, now: i64) -> Result<Vec<Written>> {
        self.write(move |conn| {
            let mut exists = conn.prepare_cached(&lite(STORE_EXISTS))?;
            let mut upsert = conn.prepare_cached(&lite(UPSERT_STORE))?;
            let mut out = Vec::with_capacity(stores.len());
            for s in &stores {
                let existed = exists.exists([s.id.as_str()])?;
                upsert.execute(params![
                    s.id.as_str(),
                    s.name,
                    s.city,
                    s.city_tier.map(|t| t.as_str()),
                    s.address,
                    now
                ])?;
                out.push(if existed {
                    Written::Updated
                } else {
                    Written::Inserted
                });
            }
            Ok(out)
        })
        .await
    }

    pub async fn insert_orders(&self, orders: Vec<Order>, now: i64) -> Result<Vec<Written>> {
        self.write_with(move |w| {
            let mut out = Vec::with_capacity(orders.len());
            for order in &orders {
                let total = order.computed_total().unwrap_or(0);
                let inserted = insert_order_header(
                    w,
                    order,
                    total,
                    order.lines.len() as i64,
                    "api",
                    now,
                    false,
                )?;
                if !inserted {
                    out.push(Written::Duplicate);
                    continue;
                }
                let mut line = w.conn.prepare_cached(&lite(INSERT_ORDER_LINE))?;
                for (i, l) in order.lines.iter().enumerate() {
                    line.execute(params![
                        order.id.as_str(),
                        i as i64,
                        l.sku_id.as_str(),
                        l.title,
                        l.quantity,
                        l.unit_price,
                        l.discount,
                        l.amount().unwrap_or(0),
                        Option::<i64>::None
                    ])?;
                }
                drop(line);
                attach_customer(w, order.user_id.as_ref(), order.device_id.as_ref(), now)?;
                out.push(Written::Inserted);
            }
            Ok(out)
        })
        .await
    }

    pub async fn add_refund(
        &self,
        order_id: String,
        refund: Refund,
        now: i64,
    ) -> Result<RefundWritten> {
        self.write(move |conn| {
            let seen: Option<String> = conn
                .query_row(&lite(REFUND_ORDER_OF), [&refund.id], |r| r.get(0))
                .optional()?;
            match seen {
                Some(o) if o == order_id => return Ok(RefundWritten::Duplicate),
                Some(o) => {
                    return Err(Error::RefundIdReused {
                        refund_id: refund.id.clone(),
                        order_id: o,
                    })
                }
                None => {}
            }
            if !conn
                .prepare_cached(&lite(ORDER_EXISTS))?
                .exists([&order_id])?
            {
                return Err(Error::NotFound {
                    entity: "order",
                    id: order_id,
                });
            }
            let mut update = conn.prepare_cached(&lite(REFUND_LINE))?;
            for line in &refund.lines {
                if update.execute(params![order_id, line.line_no, line.quantity, line.amount])? == 0
                {
                    let exists = conn
                        .prepare_cached(&lite(LINE_EXISTS))?
                        .exists(params![order_id, line.line_no])?;
                    return Err(if exists {
                        Error::RefundExceedsLine {
                            line_no: line.line_no,
                        }
                    } else {
                        Error::NoSuchLine {
                            order_id: order_id.clone(),
                            line_no: line.line_no,
                        }
                    });
                }
            }
            let lines_json = serde_json::to_string(&refund.lines).unwrap_or_default();
            conn.execute(
                &lite(INSERT_REFUND),
                params![
                    refund.id,
                    order_id,
                    refund.amount(),
                    lines_json,
                    refund.reason,
                    refund.refunded_at.0,
                    now
                ],
            )?;
            conn.execute(
                &lite(ADD_ORDER_REFUNDED),
                params![order_id, refund.amount()],
            )?;
            Ok(RefundWritten::Applied)
        })
        .await
    }

    pub async fn import_batch(&self, batch: ImportBatch, now: i64) -> Result<ImportWritten> {
        self.write_with(move |w| {
            let conn: &Connection = &w.conn;
            let mut bare_user = conn.prepare_cached(&lite(INSERT_BARE_USER))?;
            for u in &batch.users {
                bare_user.execute(params![u, now])?;
            }
            let mut product = conn.prepare_cached(&lite(INSERT_PRODUCT_IF_ABSENT))?;
            for p in &batch.products {
                product.execute(params_from_iter(product_params(p, now)))?;
            }
            let mut lines_out = Vec::new();
            let mut line = conn.prepare_cached(&lite(INSERT_ORDER_LINE))?;
            for imported in &batch.orders {
                let order = &imported.order;
                let (mut total, mut count) = (0i64, 0i64);
                for ((l, line_no), source_line) in order
                    .lines
                    .iter()
                    .zip(&imported.line_nos)
                    .zip(&imported.source_lines)
                {
                    let amount = l.amount().unwrap_or(0);
                    let n = line.execute(params![
                        order.id.as_str(),
                        line_no,
                        l.sku_id.as_str(),
                        l.title,
                        l.quantity,
                        l.unit_price,
                        l.discount,
                        amount,
                        source_line
                    ])?;
                    if n == 1 {
                        total += amount;
                        count += 1;
                        lines_out.push(Written::Inserted);
                    } else {
                        lines_out.push(Written::Duplicate);
                    }
                }
                if count > 0 {
                    insert_order_header(conn, order, total, count, "import", now, true)?;
                }
            }
            drop((bare_user, product, line));
            let events_out = insert_events(w, &batch.events, now)?;
            Ok(ImportWritten {
                lines: lines_out,
                events: events_out,
            })
        })
        .await
    }

    pub async fn link_device(
        &self,
        device: DeviceId,
        user: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        self.write(move |conn| {
            conn.execute(&lite(INSERT_BARE_USER), params![user.as_str(), now])?;
            conn.execute(
                &lite(LINK_IF_NEW),
                params!["device", device.as_str(), user.as_str(), reason, now],
            )?;
            active_link(conn, LinkKind::Device, device.as_str())?.ok_or_else(|| {
                Error::Conflict(format!("device {device} was unlinked from {user} by hand"))
            })
        })
        .await
    }

    pub async fn merge_users(
        &self,
        source: UserId,
        target: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        self.write(move |conn| {
            for id in [&source, &target] {
                if !conn
                    .prepare_cached(&lite(USER_EXISTS))?
                    .exists([id.as_str()])?
                {
                    return Err(Error::NotFound {
                        entity: "user",
                        id: id.0.clone(),
                    });
                }
            }
            if canonical_of(conn, target.as_str())? == source.as_str() {
                return Err(Error::Conflict(format!(
                    "{target} is already merged into {source}"
                )));
            }
            if let Some(existing) = active_link(conn, LinkKind::User, source.as_str())? {
                return Err(Error::Conflict(format!(
                    "{source} is already merged into {} (undo link {} first)",
                    existing.target_user_id, existing.id
                )));
            }
            conn.execute(
                "INSERT INTO identity_links (kind, source_id, target_user_id, reason, created_at) \
                 VALUES ('user', ?1, ?2, ?3, ?4)",
                params![source.as_str(), target.as_str(), reason, now],
            )?;
            active_link(conn, LinkKind::User, source.as_str())?
                .ok_or_else(|| Error::Corrupt("merge link vanished".into()))
        })
        .await
    }

    pub async fn undo_link(&self, link_id: i64, now: i64) -> Result<IdentityLink> {
        self.write(move |conn| {
            let changed = conn.execute(&lite(UNDO_LINK), params![link_id, now])?;
            let link = link_by_id(conn, link_id)?.ok_or_else(|| Error::NotFound {
                entity: "identity link",
                id: link_id.to_string(),
            })?;
            if changed == 0 {
                return Err(Error::Conflict(format!(
                    "identity link {link_id} was already undone"
                )));
            }
            Ok(link)
        })
        .await
    }

    pub async fn customer(&self, user_id: UserId) -> Result<Option<Customer>> {
        self.read(move |conn| {
            let canonical_id = canonical_of(conn, user_id.as_str())?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
            let Some(canonical) = conn.query_row(&sql, [&canonical_id], user_row).optional()? else {
                return Ok(None);
            };
            let mut member_ids = vec![canonical_id.clone()];
            let mut i = 0;
            let mut sources =
                conn.prepare_cached(&lite("SELECT source_id FROM identity_links WHERE kind = $1 AND target_user_id = $2 AND undone_at IS NULL ORDER BY id"))?;
            while i < member_ids.len() && member_ids.len() < 10_000 {
                let found: Vec<String> = sources
                    .query_map(params!["user", member_ids[i]], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                member_ids.extend(found);
                i += 1;
            }
            let mut device_ids = Vec::new();
            for m in &member_ids {
                let found: Vec<String> =
                    sources.query_map(params!["device", m], |r| r.get(0))?.collect::<Result<_, _>>()?;
                device_ids.extend(found.into_iter().map(DeviceId));
            }
            Ok(Some(Customer {
                canonical: canonical.into_record()?,
                requested_id: user_id,
                member_ids: member_ids.into_iter().map(UserId).collect(),
                device_ids,
            }))
        })
        .await
    }

    pub async fn recent_events(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredEvent>> {
        let (users, devices) = ids_of(customer);
        self.read(move |conn| {
            let (filter, binds) = of_customer(users, devices);
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {filter} ORDER BY time DESC, id LIMIT {limit}");
            let mut stmt = conn.prepare(&lite(&sql))?;
            let rows = stmt.query_map(params_from_iter(binds.iter()), event_row)?;
            rows.map(|r| {
                let (event, received_at) = r?.into_event()?;
                Ok(StoredEvent { event, received_at })
            })
            .collect()
        })
        .await
    }

    pub async fn recent_orders(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredOrder>> {
        let (users, devices) = ids_of(customer);
        self.read(move |conn| {
            let (filter, binds) = of_customer(users, devices);
            let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE {filter} ORDER BY placed_at DESC, id LIMIT {limit}");
            let mut stmt = conn.prepare(&lite(&sql))?;
            let headers: Vec<OrderRow> =
                stmt.query_map(params_from_iter(binds.iter()), order_row)?.collect::<Result<_, _>>()?;
            let mut lines_of = conn.prepare_cached(&lite(LINES_OF_ORDER))?;
            headers
                .into_iter()
                .map(|h| {
                    let lines = lines_of.query_map([&h.id], line_row)?.collect::<Result<Vec<_>, _>>()?;
                    h.into_order(lines)
                })
                .collect()
        })
        .await
    }

    pub async fn links_of(&self, customer: &Customer) -> Result<Vec<IdentityLink>> {
        let (users, _) = ids_of(customer);
        self.read(move |conn| {
            let list = placeholders(1, users.len());
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM identity_links WHERE target_user_id IN ({list}) \
                 OR (kind = 'user' AND source_id IN ({list})) ORDER BY id"
            );
            let mut stmt = conn.prepare(&lite(&sql))?;
            let rows = stmt.query_map(params_from_iter(users.iter()), link_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    pub async fn erase_personal_data(&self, user_id: UserId, now: i64) -> Result<bool> {
        self.write(move |conn| {
            Ok(conn.execute(&lite(ERASE_USER), params![user_id.as_str(), now])? == 1)
        })
        .await
    }

    pub async fn create_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &lite(INSERT_API_KEY),
                params![
                    key.id,
                    key.name,
                    key.secret_hash,
                    key.scopes.join(","),
                    key.created_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn api_key(&self, id: String) -> Result<Option<ApiKeyRecord>> {
        self.read(move |conn| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1");
            Ok(conn.query_row(&sql, [&id], api_key_row).optional()?)
        })
        .await
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(move |conn| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([], api_key_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn revoke_api_key(&self, id: String, now: i64) -> Result<bool> {
        self.write(move |conn| Ok(conn.execute(&lite(REVOKE_API_KEY), params![id, now])? == 1))
            .await
    }

    pub async fn counts(&self) -> Result<Counts> {
        self.read(|conn| {
            Ok(conn.query_row(COUNTS, [], |r| {
                Ok(Counts {
                    users: r.get(0)?,
                    products: r.get(1)?,
                    stores: r.get(2)?,
                    orders: r.get(3)?,
                    order_lines: r.get(4)?,
                    events: r.get(5)?,
                })
            })?)
        })
        .await
    }

    /// What the audience engine reads; behaviour since `since` (epoch ms).
    pub async fn audience_source(&self, since: i64) -> Result<AudienceSource> {
        self.read(move |conn| {
            let mut source = AudienceSource::default();
            let mut stmt = conn.prepare(AUDIENCE_USERS)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                source.users.push(UserAttributes {
                    id: r.get(0)?,
                    gender: r.get(1)?,
                    city: r.get(2)?,
                    city_tier: r.get(3)?,
                    registration_channel: r.get(4)?,
                });
            }
            let mut stmt = conn.prepare(AUDIENCE_PRODUCTS)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                source.products.push(ProductFacts {
                    sku: r.get(0)?,
                    category_path: r.get(1)?,
                    brand: r.get(2)?,
                    title: r.get(3)?,
                    price: r.get(4)?,
                    stock: r.get(5)?,
                    attributes: r.get(6)?,
                });
            }
            let mut index = std::collections::HashMap::new();
            let mut stmt = conn.prepare(AUDIENCE_ORDERS)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                index.insert(id.clone(), source.orders.len());
                source.orders.push(OrderFacts {
                    id,
                    user_id: r.get(1)?,
                    device_id: r.get(2)?,
                    sale: r.get(3)?,
                    placed_at: r.get(4)?,
                    total: r.get(5)?,
                    discount: r.get(6)?,
                    coupon: r.get(7)?,
                    channel: r.get(8)?,
                    store_id: r.get(9)?,
                    skus: Vec::new(),
                });
            }
            let mut stmt = conn.prepare(AUDIENCE_LINES)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let order: String = r.get(0)?;
                if let Some(&i) = index.get(&order) {
                    source.orders[i].skus.push(r.get(1)?);
                }
            }
            let mut stmt = conn.prepare(AUDIENCE_REFUNDS)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                source.refunds.push(RefundFacts {
                    user_id: r.get(0)?,
                    device_id: r.get(1)?,
                    refunded_at: r.get(2)?,
                    amount: r.get(3)?,
                });
            }
            let mut stmt = conn.prepare(&lite(AUDIENCE_EVENTS))?;
            let mut rows = stmt.query([since])?;
            while let Some(r) = rows.next()? {
                source.events.push(EventFacts {
                    user_id: r.get(0)?,
                    device_id: r.get(1)?,
                    kind: r.get(2)?,
                    time: r.get(3)?,
                    channel: r.get(4)?,
                    sku: r.get(5)?,
                    store_id: r.get(6)?,
                    has_order: r.get(7)?,
                });
            }
            let mut stmt = conn.prepare(AUDIENCE_LINKS)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                source.links.push(ActiveLink {
                    kind: r.get(0)?,
                    source: r.get(1)?,
                    target: r.get(2)?,
                });
            }
            Ok(source)
        })
        .await
    }

    /// Stores a tag version; true if it was new (the same name and version again is a no-op).
    pub async fn define_tag(&self, tag: TagDefinitionRecord) -> Result<bool> {
        self.write(move |conn| {
            Ok(conn.execute(
                &lite(INSERT_TAG_DEFINITION),
                params![
                    tag.name,
                    tag.version,
                    tag.rule,
                    tag.weight,
                    tag.description,
                    tag.created_at
                ],
            )? == 1)
        })
        .await
    }

    pub async fn retire_tag(&self, name: String, now: i64) -> Result<bool> {
        self.write(move |conn| Ok(conn.execute(&lite(RETIRE_TAG), params![name, now])? > 0))
            .await
    }

    /// Every version of every custom tag, by name and version.
    pub async fn tag_definitions(&self) -> Result<Vec<TagDefinitionRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(TAG_DEFINITIONS)?;
            let rows = stmt.query_map([], |r| {
                Ok(TagDefinitionRecord {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    rule: r.get(2)?,
                    weight: r.get(3)?,
                    description: r.get(4)?,
                    created_at: r.get(5)?,
                    retired_at: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Appends tag changes to the history and applies them to users' current tags, atomically.
    pub async fn record_tag_changes(&self, changes: Vec<TagChangeRecord>) -> Result<()> {
        self.write(move |conn| {
            let mut history = conn.prepare_cached(
                "INSERT INTO tag_history (user_id, tag, version, change, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut gain = conn.prepare_cached(
                "INSERT INTO user_tags (user_id, tag, since) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id, tag) DO NOTHING",
            )?;
            let mut lose = conn.prepare_cached("DELETE FROM user_tags WHERE user_id = ?1 AND tag = ?2")?;
            for c in &changes {
                let change = if c.gained { "gained" } else { "lost" };
                history.execute(params![c.user_id, c.tag, c.version, change, c.at])?;
                if c.gained {
                    gain.execute(params![c.user_id, c.tag, c.at])?;
                } else {
                    lose.execute(params![c.user_id, c.tag])?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Every user's current tags as last recorded: (user id, tag).
    pub async fn user_tags(&self) -> Result<Vec<(String, String)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(USER_TAGS)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// One user's tag history, newest first.
    pub async fn tag_history(&self, user_id: String, limit: i64) -> Result<Vec<TagChangeRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(&lite(TAG_HISTORY))?;
            let rows = stmt.query_map(params![user_id, limit], |r| {
                Ok(TagChangeRecord {
                    user_id: r.get(0)?,
                    tag: r.get(1)?,
                    version: r.get(2)?,
                    gained: r.get::<_, String>(3)? == "gained",
                    at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub async fn save_segment(&self, segment: SegmentRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &lite(UPSERT_SEGMENT),
                params![
                    segment.name,
                    segment.expr,
                    segment.description,
                    segment.updated_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn segments(&self) -> Result<Vec<SegmentRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(SEGMENTS)?;
            let rows = stmt.query_map([], |r| {
                Ok(SegmentRecord {
                    name: r.get(0)?,
                    expr: r.get(1)?,
                    description: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub async fn delete_segment(&self, name: String) -> Result<bool> {
        self.write(move |conn| Ok(conn.execute(&lite(DELETE_SEGMENT), params![name])? == 1))
            .await
    }

    /// Stores the day's snapshot of a segment (a second one the same day replaces it).
    pub async fn save_snapshot(&self, snapshot: SnapshotRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &lite(UPSERT_SNAPSHOT),
                params![
                    snapshot.segment,
                    snapshot.day,
                    snapshot.taken_at,
                    snapshot.size,
                    snapshot.entered,
                    snapshot.left,
                    snapshot.members
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A segment's snapshots by day, without their member lists.
    pub async fn snapshots(&self, segment: String) -> Result<Vec<SnapshotRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(&lite(SNAPSHOTS))?;
            let rows = stmt.query_map(params![segment], |r| snapshot_row(r, false))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// The latest snapshot of a segment before `day`, with its member list.
    pub async fn previous_snapshot(
        &self,
        segment: String,
        day: String,
    ) -> Result<Option<SnapshotRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(&lite(PREVIOUS_SNAPSHOT), params![segment, day], |r| {
                    snapshot_row(r, true)
                })
                .optional()?)
        })
        .await
    }

    /// Stores a coupon template; false if the id exists.
    pub async fn create_coupon_template(&self, t: CouponTemplateRecord) -> Result<bool> {
        self.write(move |conn| {
            Ok(conn.execute(
                &lite(INSERT_COUPON_TEMPLATE),
                params![
                    t.id,
                    t.name,
                    t.rule,
                    t.quota,
                    t.per_user_limit,
                    t.valid_from,
                    t.valid_until,
                    t.valid_days,
                    t.created_at,
                    t.per_device_limit,
                    t.per_phone_limit,
                    i64::from(t.in_centre),
                    t.issue_on,
                    t.scope,
                    t.code_prefix
                ],
            )? == 1)
        })
        .await
    }

    pub async fn offered_coupon_templates(&self) -> Result<Vec<CouponTemplateRecord>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(OFFERED_TEMPLATES))?
                .query_map([], template_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Listings for operators, one page by id after `after` (`""` for the first).
    pub async fn coupon_templates_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<CouponTemplateRecord>> {
        self.read(move |conn| {
            page_by_id(
                conn,
                COUPON_TEMPLATE_COLUMNS,
                "coupon_templates",
                &after,
                limit,
                template_row,
            )
        })
        .await
    }

    pub async fn flash_sales_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<FlashSaleRecord>> {
        self.read(move |conn| {
            page_by_id(
                conn,
                FLASH_SALE_COLUMNS,
                "flash_sales",
                &after,
                limit,
                flash_row,
            )
        })
        .await
    }

    pub async fn group_deals_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<GroupDealRecord>> {
        self.read(move |conn| {
            page_by_id(
                conn,
                GROUP_DEAL_COLUMNS,
                "group_deals",
                &after,
                limit,
                group_deal_row,
            )
        })
        .await
    }

    pub async fn red_packets_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<RedPacketRecord>> {
        self.read(move |conn| {
            page_by_id(
                conn,
                RED_PACKET_COLUMNS,
                "red_packets",
                &after,
                limit,
                red_packet_row,
            )
        })
        .await
    }

    pub async fn coupon_claims_of(&self, user_id: String) -> Result<Vec<(String, i64)>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(CLAIMS_OF_USER))?
                .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub async fn coupon_template(&self, id: String) -> Result<Option<CouponTemplateRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(&lite(COUPON_TEMPLATE), [id], template_row)
                .optional()?)
        })
        .await
    }

    /// Claims a coupon: one unit of the quota and of the user's limit, by conditional writes in one
    /// savepoint (a refusal undoes both). The same claim key again returns the same coupon.
    pub async fn claim_coupon(
        &self,
        template_id: String,
        user_id: String,
        claim_key: String,
        code: String,
        holder_limits: Vec<HolderLimit>,
        now: i64,
    ) -> Result<Claimed> {
        self.write(move |conn| {
            let existing = conn
                .query_row(
                    &format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE template_id = ?1 AND claim_key = ?2"),
                    params![template_id, claim_key],
                    coupon_row,
                )
                .optional()?;
            if let Some(c) = existing {
                return repeated_claim(c, &user_id);
            }
            let t = conn
                .query_row(&lite(COUPON_TEMPLATE), [&template_id], template_row)
                .optional()?
                .ok_or_else(|| Error::NotFound {
                    entity: "coupon template",
                    id: template_id.clone(),
                })?;
            let expires_at = claim_window(&t, now)?;
            let code = t.code(&code);
            if conn.execute(&lite(TAKE_COUPON_QUOTA), [&template_id])? == 0 {
                return Err(Error::SoldOut {
                    entity: "coupon",
                    id: template_id,
                });
            }
            if conn.execute(
                &lite(TAKE_USER_CLAIM),
                params![template_id, user_id, t.per_user_limit],
            )? == 0
            {
                return Err(Error::Conflict(format!(
                    "user {user_id:?} already holds the most coupons {template_id:?} allows ({})",
                    t.per_user_limit
                )));
            }
            for h in &holder_limits {
                if conn.execute(&lite(TAKE_USER_CLAIM), params![template_id, h.holder, h.limit])?
                    == 0
                {
                    return Err(h.refusal(&template_id));
                }
            }
            conn.execute(
                &lite(INSERT_COUPON),
                params![code, template_id, user_id, claim_key, now, expires_at],
            )?;
            conn.execute(
                &lite(INSERT_COUPON_EVENT),
                params![code, "claimed", None::<String>, now],
            )?;
            Ok(Claimed::New(CouponRecord::claimed(
                code,
                template_id,
                user_id,
                claim_key,
                now,
                expires_at,
            )))
        })
        .await
    }

    /// Issues coupons of one template to many users in one transaction, each grant by the same
    /// conditional writes as a claim (quota, then the user's limit) inside its own savepoint, so a
    /// refused grant leaves nothing behind. Claim keys make a rerun issue nothing twice.
    pub async fn issue_coupons(
        &self,
        template_id: String,
        grants: Vec<CouponGrant>,
        now: i64,
    ) -> Result<IssueSummary> {
        self.write(move |conn| {
            let t = conn
                .query_row(&lite(COUPON_TEMPLATE), [&template_id], template_row)
                .optional()?
                .ok_or_else(|| Error::NotFound {
                    entity: "coupon template",
                    id: template_id.clone(),
                })?;
            let expires_at = claim_window(&t, now)?;
            let mut summary = IssueSummary::default();
            let mut existing = conn.prepare(&lite(COUPON_BY_CLAIM_KEY))?;
            let mut quota = conn.prepare(&lite(TAKE_COUPON_QUOTA))?;
            let mut per_user = conn.prepare(&lite(TAKE_USER_CLAIM))?;
            let mut insert = conn.prepare(&lite(INSERT_COUPON))?;
            let mut event = conn.prepare(&lite(INSERT_COUPON_EVENT))?;
            for (i, g) in grants.iter().enumerate() {
                if existing
                    .query_row(params![template_id, g.claim_key], |r| r.get::<_, String>(0))
                    .optional()?
                    .is_some()
                {
                    summary.duplicates += 1;
                    continue;
                }
                conn.execute_batch("SAVEPOINT grant")?;
                if quota.execute([&template_id])? == 0 {
                    conn.execute_batch("ROLLBACK TO grant; RELEASE grant")?;
                    summary.sold_out += (grants.len() - i) as u64;
                    break;
                }
                if per_user.execute(params![template_id, g.user_id, t.per_user_limit])? == 0 {
                    conn.execute_batch("ROLLBACK TO grant; RELEASE grant")?;
                    summary.over_user_limit += 1;
                    continue;
                }
                let code = t.code(&g.code);
                insert.execute(params![
                    code,
                    template_id,
                    g.user_id,
                    g.claim_key,
                    now,
                    expires_at
                ])?;
                event.execute(params![code, "issued", None::<String>, now])?;
                conn.execute_batch("RELEASE grant")?;
                summary.issued += 1;
            }
            Ok(summary)
        })
        .await
    }

    /// Redeems a coupon for an order, once: by one conditional write. The same order again is a
    /// duplicate; another order, an expired or someone else's coupon is refused.
    pub async fn redeem_coupon(
        &self,
        code: String,
        user_id: String,
        order_id: String,
        now: i64,
    ) -> Result<Redeemed> {
        let taken = self
            .take_coupon(
                REDEEM_COUPON,
                "redeemed",
                code,
                user_id,
                order_id,
                now,
                None,
            )
            .await?;
        Ok(if taken {
            Redeemed::New
        } else {
            Redeemed::Duplicate
        })
    }

    /// Holds a coupon for an order until `until`: by one conditional write. The same order again
    /// extends its hold; another order's live hold, a redeemed, expired or someone else's coupon
    /// is refused.
    pub async fn reserve_coupon(
        &self,
        code: String,
        user_id: String,
        order_id: String,
        until: i64,
        now: i64,
    ) -> Result<()> {
        self.take_coupon(
            RESERVE_COUPON,
            "reserved",
            code,
            user_id,
            order_id,
            now,
            Some(until),
        )
        .await
        .map(drop)
    }

    /// Holds or redeems a coupon for an order by the one conditional write `sql`, recording
    /// `event`: true if taken now, false if this order had already redeemed it, else the reason.
    #[allow(clippy::too_many_arguments)]
    async fn take_coupon(
        &self,
        sql: &'static str,
        event: &'static str,
        code: String,
        user_id: String,
        order_id: String,
        now: i64,
        until: Option<i64>,
    ) -> Result<bool> {
        self.write(move |conn| {
            if conn.execute(&lite(sql), params![code, user_id, order_id, now, until])? == 1 {
                conn.execute(
                    &lite(INSERT_COUPON_EVENT),
                    params![code, event, order_id, now],
                )?;
                return Ok(true);
            }
            let c = conn
                .query_row(
                    &format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE code = ?1"),
                    [&code],
                    coupon_row,
                )
                .optional()?;
            coupon_refusal(c, &code, &user_id, &order_id, now).map(|()| false)
        })
        .await
    }

    /// Ends every lapsed hold (the coupon is the customer's again), recording each; how many.
    pub async fn sweep_coupon_holds(&self, now: i64) -> Result<usize> {
        self.write(move |conn| {
            let holds: Vec<(String, String)> = conn
                .prepare(&lite(LAPSED_COUPON_HOLDS))?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut ended = 0;
            for (code, order_id) in holds {
                if conn.execute(&lite(END_COUPON_HOLD), params![code, order_id, now])? == 1 {
                    conn.execute(
                        &lite(INSERT_COUPON_EVENT),
                        params![code, "expired", order_id, now],
                    )?;
                    ended += 1;
                }
            }
            Ok(ended)
        })
        .await
    }

    /// Gives a coupon back from an order: redeemed (the order was cancelled or wholly refunded)
    /// or held (checkout abandoned); false if that order neither redeemed nor holds it.
    pub async fn release_coupon(&self, code: String, order_id: String, now: i64) -> Result<bool> {
        self.write(move |conn| {
            let released = conn.execute(&lite(RELEASE_COUPON), params![code, order_id])? == 1;
            if released {
                conn.execute(
                    &lite(INSERT_COUPON_EVENT),
                    params![code, "rolled_back", order_id, now],
                )?;
            }
            Ok(released)
        })
        .await
    }

    pub async fn coupon(&self, code: String) -> Result<Option<CouponRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE code = ?1"),
                    [code],
                    coupon_row,
                )
                .optional()?)
        })
        .await
    }

    pub async fn open_coupons_of(&self, user_id: String, now: i64) -> Result<Vec<CouponRecord>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(&format!(
                    "SELECT {COUPON_COLUMNS} FROM coupons {OPEN_COUPONS_OF}"
                )))?
                .query_map(params![user_id, now], coupon_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Stores a new campaign as a draft (recording its creation); false if the id exists.
    pub async fn create_campaign(&self, c: CampaignRecord, change: String) -> Result<bool> {
        self.write(move |conn| {
            let created = conn.execute(
                &lite(INSERT_CAMPAIGN),
                params![
                    c.id,
                    c.name,
                    c.promotion,
                    c.starts_at,
                    c.ends_at,
                    c.segment,
                    c.budget,
                    c.created_at,
                    c.recurrence,
                    c.per_customer_limit
                ],
            )? == 1;
            if created {
                conn.execute(
                    &lite(INSERT_CAMPAIGN_CHANGE),
                    params![c.id, change, c.created_at],
                )?;
            }
            Ok(created)
        })
        .await
    }

    pub async fn campaign(&self, id: String) -> Result<Option<CampaignRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"),
                    [id],
                    campaign_row,
                )
                .optional()?)
        })
        .await
    }

    pub async fn campaigns_with_spent(
        &self,
        scope_prefix: String,
        period: String,
        period_key: String,
    ) -> Result<Vec<(CampaignRecord, i64)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&lite(CAMPAIGNS_WITH_SPENT))?;
            let rows = stmt.query_map(params![scope_prefix, period, period_key], |r| {
                Ok((campaign_row(r)?, r.get(13)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Edits a campaign if it is still at `version` and not ended, recording the change.
    pub async fn edit_campaign(
        &self,
        c: CampaignRecord,
        version: i64,
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        self.write(move |conn| {
            let done = conn.execute(
                &lite(EDIT_CAMPAIGN),
                params![
                    c.id,
                    version,
                    c.name,
                    c.promotion,
                    c.starts_at,
                    c.ends_at,
                    c.segment,
                    c.budget,
                    now,
                    c.recurrence,
                    c.per_customer_limit
                ],
            )? == 1;
            if done {
                conn.execute(&lite(INSERT_CAMPAIGN_CHANGE), params![c.id, change, now])?;
            }
            let stored = conn
                .query_row(
                    &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"),
                    [&c.id],
                    campaign_row,
                )
                .optional()?;
            edit_outcome(done, stored, &c.id, version)
        })
        .await
    }

    /// Moves a campaign to `to` if it is in one of `from`, recording the change.
    pub async fn transition_campaign(
        &self,
        id: String,
        to: &'static str,
        from: &'static [&'static str],
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        self.write(move |conn| {
            let done = conn.execute(&lite(&transition_sql(from)), params![id, to, now])? == 1;
            if done {
                conn.execute(&lite(INSERT_CAMPAIGN_CHANGE), params![id, change, now])?;
            }
            let stored = conn
                .query_row(
                    &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"),
                    [&id],
                    campaign_row,
                )
                .optional()?;
            transition_outcome(done, stored, &id, to)
        })
        .await
    }

    pub async fn campaign_changes(&self, id: String) -> Result<Vec<CampaignChange>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(&lite(CAMPAIGN_CHANGES))?;
            let rows = stmt.query_map([id], |r| {
                Ok(CampaignChange {
                    version: r.get(0)?,
                    change: r.get(1)?,
                    at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Stores a sale with its stock in one bucket (one writer: nothing waits on a row here).
    pub async fn create_flash_sale(&self, f: FlashSaleRecord) -> Result<bool> {
        self.write(move |conn| {
            let created = conn.execute(
                &lite(INSERT_FLASH_SALE),
                params![
                    f.id,
                    f.sku,
                    f.price,
                    f.stock,
                    f.per_user_limit,
                    f.starts_at,
                    f.ends_at,
                    f.hold_ms,
                    f.created_at
                ],
            )? == 1;
            if created {
                conn.execute(&lite(INSERT_FLASH_BUCKET), params![f.id, 0, f.stock])?;
            }
            Ok(created)
        })
        .await
    }

    pub async fn flash_sale(&self, id: String) -> Result<Option<FlashSaleRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {FLASH_SALE_COLUMNS} FROM flash_sales WHERE id = ?1"),
                    [id],
                    flash_row,
                )
                .optional()?)
        })
        .await
    }

    /// Reserves units of a flash sale for a user: stock and the user's limit are taken by
    /// conditional writes. The hold runs without a savepoint of its own (copying the pages it
    /// touches into the statement journal was a tenth of a hold's cost): a refusal changes
    /// nothing, and the one refusal that comes after a write (the user's limit, after the stock)
    /// gives the units back first, in the same transaction. The reservation id is the caller's
    /// idempotency key.
    pub async fn reserve_flash(
        &self,
        sale_id: String,
        reservation_id: String,
        user_id: String,
        quantity: i64,
        now: i64,
    ) -> Result<Reserved> {
        self.write_or_refuse(move |w| {
            let existing = w
                .prepare_cached(&RESERVATION_OF_LITE)?
                .query_row([&reservation_id], reservation_row)
                .optional()?;
            if let Some(r) = existing {
                return Ok(repeated_reservation(r, &sale_id, &user_id));
            }
            let Some(sale) = w.flash_sale(&sale_id)? else {
                return Ok(Err(Error::NotFound {
                    entity: "flash sale",
                    id: sale_id,
                }));
            };
            let conn: &Connection = w;
            // One writer: a sale's stock stays in its one bucket, 0.
            let bucket = 0;
            if conn
                .prepare_cached(&TAKE_FLASH_STOCK_LITE)?
                .execute(params![sale_id, bucket, quantity, now])?
                == 0
            {
                return Ok(Err(flash_refusal(&sale, now)));
            }
            if conn
                .prepare_cached(&TAKE_FLASH_USER_LITE)?
                .execute(params![sale_id, user_id, quantity, sale.per_user_limit])?
                == 0
            {
                conn.prepare_cached(&UNDO_FLASH_TAKE_LITE)?
                    .execute(params![sale_id, bucket, quantity])?;
                return Ok(Err(over_user_limit(&user_id, &sale)));
            }
            let r = ReservationRecord::held(reservation_id, &sale, user_id, quantity, now);
            conn.prepare_cached(&INSERT_RESERVATION_LITE)?
                .execute(params![
                    r.id,
                    r.sale_id,
                    r.user_id,
                    r.quantity,
                    r.expires_at,
                    r.created_at,
                    bucket
                ])?;
            conn.prepare_cached(&TRAIL_FLASH_HELD_LITE)?
                .execute(params![
                    now,
                    r.sale_id,
                    r.id,
                    r.user_id,
                    sale.price.saturating_mul(quantity)
                ])?;
            Ok(Ok(Reserved::New(r)))
        })
        .await
    }

    /// Confirms a held reservation (the order is paid); confirming twice is harmless, an expired
    /// or released one is refused.
    pub async fn confirm_flash(
        &self,
        reservation_id: String,
        now: i64,
    ) -> Result<ReservationRecord> {
        self.write(move |conn| {
            if conn
                .prepare_cached(&lite(CONFIRM_RESERVATION))?
                .execute(params![reservation_id, now])?
                == 1
            {
                conn.prepare_cached(&lite(TRAIL_FLASH_RESERVATION))?
                    .execute(params![reservation_id, now, "redeemed"])?;
            }
            let r = conn
                .prepare_cached(&format!(
                    "SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = ?1"
                ))?
                .query_row([&reservation_id], reservation_row)
                .optional()?;
            confirmed_or_refused(r, &reservation_id)
        })
        .await
    }

    /// Releases a held reservation (given up, or expired unless `give_up` is false), returning its
    /// units to the stock and to the user's limit; false if it was not held.
    pub async fn release_flash(
        &self,
        reservation_id: String,
        give_up: bool,
        now: i64,
    ) -> Result<bool> {
        self.write(move |conn| release_flash_on(conn, &reservation_id, give_up, now))
            .await
    }

    pub async fn flash_reservation(&self, id: String) -> Result<Option<ReservationRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = ?1"),
                    [id],
                    reservation_row,
                )
                .optional()?)
        })
        .await
    }

    pub async fn flash_reservation_ids(&self, sale_id: String) -> Result<Vec<String>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&lite(FLASH_RESERVATION_IDS))?
                .query_map([sale_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Releases every expired reservation; how many.
    pub async fn sweep_flash(&self, now: i64) -> Result<usize> {
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare(&lite(EXPIRED_RESERVATIONS))?
                .query_map([now], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut released = 0;
            for id in ids {
                released += usize::from(release_flash_on(conn, &id, false, now)?);
            }
            Ok(released)
        })
        .await
    }

    /// Stores a packet with its pre-drawn shares; false if the id exists (nothing changes).
    pub async fn create_red_packet(&self, p: RedPacketRecord, amounts: Vec<i64>) -> Result<bool> {
        self.write(move |conn| {
            let created = conn.execute(
                &lite(INSERT_RED_PACKET),
                params![
                    p.id,
                    p.sender,
                    p.kind,
                    p.total,
                    p.currency,
                    p.shares,
                    p.expires_at,
                    p.created_at,
                    p.unlock_helpers,
                    p.opens_at,
                    p.rain_id,
                    p.helps_per_helper_per_day
                ],
            )? == 1;
            if created {
                let mut insert = conn.prepare(&lite(INSERT_RED_PACKET_SHARE))?;
                for (position, amount) in amounts.iter().enumerate() {
                    insert.execute(params![p.id, position as i64, amount])?;
                }
                conn.execute(
                    &lite(INSERT_PROMOTION_EVENT),
                    params![
                        p.created_at,
                        "issued",
                        "red_packet",
                        p.id,
                        p.id,
                        p.sender,
                        None::<String>,
                        p.total
                    ],
                )?;
            }
            Ok(created)
        })
        .await
    }

    pub async fn red_packet(
        &self,
        id: String,
    ) -> Result<Option<(RedPacketRecord, Vec<RedPacketShare>)>> {
        self.read(move |conn| {
            let Some(p) = conn
                .query_row(
                    &format!("SELECT {RED_PACKET_COLUMNS} FROM red_packets WHERE id = ?1"),
                    [&id],
                    red_packet_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let shares = conn
                .prepare(&lite(RED_PACKET_SHARES))?
                .query_map([&id], share_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((p, shares)))
        })
        .await
    }

    /// Takes the next share for `user`: the packet's counter by a conditional increment, then
    /// that share; a claimant who already has a share gets it again.
    pub async fn claim_red_packet(
        &self,
        id: String,
        user: String,
        now: i64,
    ) -> Result<PacketClaim> {
        self.write(move |conn| {
            if let Some(share) = conn
                .query_row(&lite(RED_PACKET_SHARE_OF), params![id, user], share_row)
                .optional()?
            {
                return Ok(PacketClaim::Duplicate(share));
            }
            let position: Option<i64> = conn
                .query_row(&lite(TAKE_RED_PACKET_SHARE), params![id, now], |r| r.get(0))
                .optional()?;
            let Some(count) = position else {
                return Err(packet_refusal(&red_packet_on(conn, &id)?, now));
            };
            let amount: i64 = conn.query_row(
                &lite(CLAIM_RED_PACKET_SHARE),
                params![id, count - 1, user, now],
                |r| r.get(0),
            )?;
            conn.execute(&lite(ADD_RED_PACKET_CLAIMED), params![id, amount])?;
            conn.execute(
                &lite(INSERT_PROMOTION_EVENT),
                params![
                    now,
                    "claimed",
                    "red_packet",
                    id,
                    (count - 1).to_string(),
                    user,
                    None::<String>,
                    amount
                ],
            )?;
            Ok(PacketClaim::New(RedPacketShare {
                position: count - 1,
                amount,
                claimed_by: Some(user),
                claimed_at: Some(now),
            }))
        })
        .await
    }

    /// A rain's rounds (its packets), in time order.
    pub async fn rain_rounds(&self, rain_id: String) -> Result<Vec<RedPacketRecord>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(&format!(
                    "SELECT {RED_PACKET_COLUMNS} FROM red_packets {RAIN_ROUNDS}"
                )))?
                .query_map([&rain_id], red_packet_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Counts `helper`'s help with a share-to-unlock packet: one row per helper by an
    /// insert-if-absent, then the packet's conditional increment, which opens it with the last
    /// help it needs. A help the packet cannot take (expired, unlocked already, the sender's own)
    /// is refused and leaves nothing.
    pub async fn help_red_packet(
        &self,
        id: String,
        helper: String,
        now: i64,
        helper_day: BudgetLine,
    ) -> Result<PacketHelp> {
        self.write(move |conn| {
            if conn.execute(&lite(INSERT_RED_PACKET_HELP), params![id, helper, now])? == 0 {
                return Ok(PacketHelp::Duplicate(red_packet_on(conn, &id)?));
            }
            let counted = conn
                .query_row(
                    &lite(COUNT_RED_PACKET_HELP),
                    params![id, now, helper],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?;
            let packet = red_packet_on(conn, &id)?;
            // The write's savepoint is rolled back with a refusal: the help row goes too.
            if counted.is_none() {
                return Err(help_refusal(&packet, &helper, now));
            }
            if let Some(spend) = helper_day_spend(&packet, &helper, helper_day) {
                spend_in(conn, spend, now).map_err(|e| helper_cap_refusal(e, &packet, &helper))?;
            }
            Ok(PacketHelp::New(packet))
        })
        .await
    }

    /// Expires every open packet past its time and returns (id, amount returned), each once.
    pub async fn expire_red_packets(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.write(move |conn| {
            let expired = conn
                .prepare(&lite(EXPIRE_RED_PACKETS))?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
            for (id, _) in &expired {
                conn.execute(&lite(TRAIL_RED_PACKET_EXPIRED), params![id, now])?;
            }
            Ok(expired)
        })
        .await
    }

    pub async fn create_group_deal(&self, d: GroupDealRecord) -> Result<bool> {
        self.write(move |conn| {
            Ok(conn.execute(
                &lite(INSERT_GROUP_DEAL),
                params![
                    d.id,
                    d.sku,
                    d.group_size,
                    d.leader_price,
                    d.member_price,
                    d.window_ms,
                    d.starts_at,
                    d.ends_at,
                    d.created_at
                ],
            )? == 1)
        })
        .await
    }

    pub async fn group_deal(&self, id: String) -> Result<Option<GroupDealRecord>> {
        self.read(move |conn| Ok(group_deal_on(conn, &id)?)).await
    }

    /// Opens a group with its leader as the first member; the order id is the idempotency key.
    pub async fn open_group(
        &self,
        deal_id: String,
        group_id: String,
        leader: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        self.write(move |conn| {
            if let Some(m) = member_by_order(conn, &order_id)? {
                return repeated_join(m, &group_id, &leader);
            }
            let deal = group_deal_on(conn, &deal_id)?.ok_or_else(|| Error::NotFound {
                entity: "group deal",
                id: deal_id.clone(),
            })?;
            if now < deal.starts_at || now >= deal.ends_at {
                return Err(Error::Conflict(format!(
                    "group deal {deal_id:?} is not running"
                )));
            }
            let deadline = now.saturating_add(deal.window_ms).min(deal.ends_at);
            let inserted = conn.execute(
                &lite(INSERT_GROUP),
                params![group_id, deal_id, leader, deal.group_size, deadline, now],
            );
            if let Err(rusqlite::Error::SqliteFailure(e, _)) = &inserted {
                if e.code == rusqlite::ErrorCode::ConstraintViolation {
                    return Err(Error::Conflict(format!(
                        "group id {group_id:?} is already used"
                    )));
                }
            }
            inserted?;
            let m = GroupMemberRecord {
                group_id,
                user_id: leader,
                order_id,
                price: deal.leader_price,
                leader: true,
                state: "joined".into(),
                joined_at: now,
            };
            insert_member(conn, &m)?;
            trail_group_join(conn, &deal.id, &m, now)?;
            Ok(Joined::New(m))
        })
        .await
    }

    /// Takes a seat in an open group by a conditional increment; the last seat completes it.
    pub async fn join_group(
        &self,
        group_id: String,
        user_id: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        self.write(move |conn| {
            if let Some(m) = member_by_order(conn, &order_id)? {
                return repeated_join(m, &group_id, &user_id);
            }
            let group = group_on(conn, &group_id)?.ok_or_else(|| Error::NotFound {
                entity: "group",
                id: group_id.clone(),
            })?;
            if group_members_on(conn, &group_id)?
                .iter()
                .any(|m| m.user_id == user_id)
            {
                return Err(Error::Conflict(format!(
                    "{user_id:?} is already in group {group_id:?}"
                )));
            }
            if conn.execute(&lite(TAKE_GROUP_SEAT), params![group_id, now])? == 0 {
                return Err(group_refusal(&group, now));
            }
            let deal = group_deal_on(conn, &group.deal_id)?.ok_or_else(|| Error::NotFound {
                entity: "group deal",
                id: group.deal_id.clone(),
            })?;
            let m = GroupMemberRecord {
                group_id,
                user_id,
                order_id,
                price: deal.member_price,
                leader: false,
                state: "joined".into(),
                joined_at: now,
            };
            insert_member(conn, &m)?;
            trail_group_join(conn, &deal.id, &m, now)?;
            Ok(Joined::New(m))
        })
        .await
    }

    pub async fn group(&self, id: String) -> Result<Option<(GroupRecord, Vec<GroupMemberRecord>)>> {
        self.read(move |conn| {
            let Some(g) = group_on(conn, &id)? else {
                return Ok(None);
            };
            Ok(Some((g, group_members_on(conn, &id)?)))
        })
        .await
    }

    /// Fails every open group past its deadline and marks its members refunded, once; returns
    /// the refunded members by group.
    pub async fn expire_groups(&self, now: i64) -> Result<Vec<(String, Vec<GroupMemberRecord>)>> {
        self.write(move |conn| {
            let failed: Vec<String> = conn
                .prepare(&lite(FAIL_EXPIRED_GROUPS))?
                .query_map([now], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::new();
            for id in failed {
                conn.execute(
                    &lite(TRAIL_GROUP_MEMBERS),
                    params![id, now, "rolled_back", "failed"],
                )?;
                conn.execute(&lite(REFUND_GROUP_MEMBERS), [&id])?;
                let members = group_members_on(conn, &id)?;
                out.push((id, members));
            }
            Ok(out)
        })
        .await
    }

    /// Sets the limit of a scope for a period kind (`total`, `day`, `week`, `month`).
    pub async fn set_budget_limit(&self, scope: String, period: String, amount: i64) -> Result<()> {
        self.write(move |conn| {
            conn.execute(&lite(UPSERT_BUDGET_LIMIT), params![scope, period, amount])?;
            Ok(())
        })
        .await
    }

    /// Spends `amount` from every budget line at once or from none (a savepoint undoes the lines
    /// already taken when one would go over); the key makes it idempotent.
    pub async fn spend_budget(
        &self,
        key: String,
        lines: Vec<BudgetLine>,
        amount: i64,
        now: i64,
        trail: Option<SpendTrail>,
    ) -> Result<Spent> {
        let spend = BudgetSpend {
            key,
            lines,
            amount,
            trail,
            counted: Vec::new(),
        };
        self.write(move |conn| spend_in(conn, spend, now)).await
    }

    pub async fn spend_budgets(&self, spends: Vec<BudgetSpend>, now: i64) -> Result<Vec<Spent>> {
        // One isolated write: a refusal rolls back the spends before it.
        self.write(move |conn| {
            let mut done = vec![Spent::Duplicate; spends.len()];
            for i in spend_order(&spends) {
                done[i] = spend_in(conn, spends[i].clone(), now)?;
            }
            Ok(done)
        })
        .await
    }

    pub async fn keep_campaign_spend(&self, key: String, now: i64) -> Result<bool> {
        self.write(move |conn| Ok(conn.execute(&lite(TRAIL_SPEND_KEPT), params![key, now])? > 0))
            .await
    }

    /// Gives back what a spend took, once; false if there was none or it was already given back.
    pub async fn revert_budget(&self, key: String, now: i64) -> Result<bool> {
        self.write(move |conn| {
            let rows: Vec<(String, String, String, i64)> = conn
                .prepare(&lite(BUDGET_LEDGER_OF))?
                .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            if rows.is_empty() || conn.execute(&lite(MARK_REVERTED), [&key])? == 0 {
                return Ok(false);
            }
            for (scope, period, period_key, amount) in rows {
                conn.execute(
                    &lite(RETURN_BUDGET),
                    params![scope, period, period_key, amount],
                )?;
            }
            conn.execute(&lite(TRAIL_SPEND_REVERTED), params![key, now])?;
            Ok(true)
        })
        .await
    }

    pub async fn return_refund_shares(
        &self,
        order_id: String,
        refund_id: String,
        units: Vec<(i64, i64)>,
        plan: SharePlan,
        now: i64,
    ) -> Result<SharesReturned> {
        self.write(move |conn| {
            let mut before = std::collections::BTreeMap::new();
            {
                let mut stmt = conn.prepare_cached(&lite(REFUND_RETURNS_OF))?;
                let mut rows = stmt.query([&order_id])?;
                while let Some(r) = rows.next()? {
                    if r.get::<_, String>(0)? == refund_id {
                        return Ok(SharesReturned::Duplicate);
                    }
                    add_units(&r.get::<_, String>(1)?, &mut before);
                }
            }
            let mut returned = Vec::new();
            for share in plan(&before) {
                if share.amount <= 0
                    || conn.execute(&lite(RETURN_SHARE), params![share.spend_key, share.amount])?
                        == 0
                {
                    continue;
                }
                let lines: Vec<(String, String, String)> = conn
                    .prepare_cached(&lite(BUDGET_LINES_OF))?
                    .query_map([&share.spend_key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (scope, period, period_key) in lines {
                    conn.execute(
                        &lite(RETURN_BUDGET),
                        params![scope, period, period_key, share.amount],
                    )?;
                }
                conn.execute(
                    &lite(TRAIL_SHARE_RETURNED),
                    params![
                        now,
                        share.promotion_type,
                        share.promotion_id,
                        share.subject,
                        order_id,
                        share.amount
                    ],
                )?;
                returned.push(share);
            }
            conn.execute(
                &lite(INSERT_REFUND_RETURN),
                params![order_id, refund_id, units_text(&units), now],
            )?;
            Ok(SharesReturned::Returned(returned))
        })
        .await
    }

    pub async fn standing_checkout_spends(&self, order_id: String) -> Result<Vec<(String, bool)>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(STANDING_CHECKOUT_SPENDS))?
                .query_map([&order_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub async fn note_checkout_attempt(
        &self,
        order_id: String,
        attempt: String,
        now: i64,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &lite(NOTE_CHECKOUT_ATTEMPT),
                params![order_id, attempt, now],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn forget_checkout_attempt(&self, order_id: String, attempt: String) -> Result<()> {
        self.write(move |conn| {
            conn.execute(&lite(FORGET_CHECKOUT_ATTEMPT), params![order_id, attempt])?;
            Ok(())
        })
        .await
    }

    pub async fn stale_checkout_attempts(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(STALE_CHECKOUT_ATTEMPTS))?
                .query_map(params![before, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// The answer kept for the checkout of `order_id`, if any.
    pub async fn checkout(&self, order_id: String) -> Result<Option<CheckoutRecord>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(&lite(CHECKOUT_OF), [&order_id], checkout_row)
                .optional()?)
        })
        .await
    }

    /// Keeps a checkout's answer unless one is kept already; returns the one kept.
    pub async fn save_checkout(
        &self,
        order_id: String,
        request_hash: String,
        response: String,
        now: i64,
        attempt: Option<CheckoutAttempt>,
    ) -> Result<CheckoutRecord> {
        self.write(move |conn| {
            let saved = conn.execute(
                &lite(INSERT_CHECKOUT),
                params![order_id, request_hash, response, now],
            )?;
            if let (1, Some(a)) = (saved, attempt) {
                for key in &a.spend_keys {
                    conn.execute(&lite(TRAIL_SPEND_KEPT), params![key, now])?;
                }
                conn.execute(&lite(FORGET_CHECKOUT_ATTEMPT), params![order_id, a.attempt])?;
            }
            Ok(conn.query_row(&lite(CHECKOUT_OF), [&order_id], checkout_row)?)
        })
        .await
    }

    /// The newest promotion-trail entries matching `filter`.
    pub async fn promotion_trail(&self, filter: TrailFilter) -> Result<Vec<PromotionEventRecord>> {
        self.read(move |conn| {
            let (sql, texts) = trail_query(&filter);
            let mut values: Vec<rusqlite::types::Value> = texts
                .into_iter()
                .map(rusqlite::types::Value::from)
                .collect();
            values.extend(filter.before_id.map(rusqlite::types::Value::from));
            values.push(filter.limit.into());
            Ok(conn
                .prepare(&lite(&sql))?
                .query_map(params_from_iter(values), promotion_event_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// The trail entries after `cursor`, oldest first, at most `limit`, and the cursor after them.
    /// One writer commits in id order, so the id alone is the position.
    pub async fn promotion_feed(
        &self,
        cursor: TrailCursor,
        limit: i64,
    ) -> Result<(Vec<PromotionEventRecord>, TrailCursor)> {
        self.read(move |conn| {
            let rows: Vec<PromotionEventRecord> = conn
                .prepare_cached(&format!(
                    "SELECT {PROMOTION_EVENT_COLUMNS} FROM promotion_events WHERE id > ?1 \
                     ORDER BY id LIMIT ?2"
                ))?
                .query_map(params![cursor.id, limit], promotion_event_row)?
                .collect::<rusqlite::Result<_>>()?;
            let next = rows
                .last()
                .map_or(cursor, |r| TrailCursor { tx: 0, id: r.id });
            Ok((rows, next))
        })
        .await
    }

    /// Trail entries per promotion and kind with `from <= at < to`.
    pub async fn trail_counts(&self, from: i64, to: i64) -> Result<Vec<TrailCount>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(TRAIL_COUNTS))?
                .query_map([from, to], |r| {
                    Ok(TrailCount {
                        promotion_type: r.get(0)?,
                        promotion_id: r.get(1)?,
                        kind: r.get(2)?,
                        events: r.get(3)?,
                        users: r.get(4)?,
                        amount: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub async fn budget_limits(&self, scope: String) -> Result<Vec<(String, i64)>> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&lite(BUDGET_LIMITS_OF))?
                .query_map([scope], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub async fn budget_used(&self, line: BudgetLine) -> Result<i64> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &lite(BUDGET_USED),
                    params![line.scope, line.period, line.period_key],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    /// Which of `ids` are stored events.
    pub async fn events_present(&self, ids: Vec<String>) -> Result<Vec<String>> {
        self.read(move |conn| {
            let mut present = Vec::new();
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT id FROM events WHERE id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut stmt = conn.prepare(&lite(&sql))?;
                let rows =
                    stmt.query_map(params_from_iter(chunk.iter()), |r| r.get::<_, String>(0))?;
                for r in rows {
                    present.push(r?);
                }
            }
            Ok(present)
        })
        .await
    }
}

fn run_writer(mut writer: Writer, mut jobs: mpsc::Receiver<Job>, at_work: &AtWork) {
    while let Some(first) = jobs.blocking_recv() {
        // Gather what else is waiting, lingering a moment for more while other callers are at
        // work: fewer, larger commits write each hot page once per group instead of once per
        // request. A lone caller's write has no company to wait for. Nor does a writer that
        // found writes already waiting: it is the bottleneck, and what arrives while this group
        // commits makes the next group, so lingering would only leave it idle.
        let mut group = vec![first];
        let opened = std::time::Instant::now();
        // Whether writes were already waiting, known when the queue first runs dry.
        let mut backlog = None;
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(mpsc::error::TryRecvError::Empty)
                    if !*backlog.get_or_insert(group.len() > 1)
                        && opened.elapsed() < GROUP_LINGER
                        && at_work.company_likely() =>
                {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                Err(_) => break,
            }
        }
        let mut pending = group.into_iter();
        // One transaction per pass; a failed job without a savepoint ends the pass early and
        // the remaining jobs go into the next one.
        loop {
            if let Err(e) = writer.conn.execute_batch("BEGIN IMMEDIATE") {
                tracing::error!(error = %e, "sqlite writer could not begin a transaction");
                break; // dropping the jobs answers their callers with WriterGone
            }
            let mut finishes: Vec<Finish> = Vec::new();
            let mut poisoned = None;
            for job in pending.by_ref() {
                if job.isolated {
                    let _ = savepoint(&writer.conn, "SAVEPOINT job");
                }
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (job.run)(&mut writer)
                }));
                match (run, job.isolated) {
                    (Ok((true, finish)), _) => finishes.push(finish),
                    (Ok((false, finish)), true) => {
                        let _ = writer.conn.execute_batch("ROLLBACK TO job");
                        writer.forget();
                        finishes.push(finish);
                    }
                    (Ok((false, finish)), false) => {
                        poisoned = Some(finish);
                        break;
                    }
                    (Err(_), isolated) => {
                        tracing::error!("a store write panicked; its changes were rolled back");
                        if isolated {
                            let _ = writer.conn.execute_batch("ROLLBACK TO job");
                            writer.forget();
                        } else {
                            poisoned = Some(Box::new(|_| ()));
                            break;
                        }
                    }
                }
                if job.isolated {
                    let _ = savepoint(&writer.conn, "RELEASE job");
                }
            }
            if let Some(failed) = poisoned {
                let _ = writer.conn.execute_batch("ROLLBACK");
                writer.forget();
                failed(Err("rolled back".into()));
                for finish in finishes {
                    finish(Err(
                        "rolled back: another write in the same commit failed; retry".into(),
                    ));
                }
                continue;
            }
            let commit = writer
                .conn
                .execute_batch("COMMIT")
                .map_err(|e| e.to_string());

            if commit.is_err() {
                let _ = writer.conn.execute_batch("ROLLBACK");
                writer.forget();
            }
            for finish in finishes {
                finish(commit.clone());
            }
            break;
        }
    }
}

/// Runs a savepoint statement, prepared once: one runs around every write that can fail alone.
fn savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

impl Writer {
    fn forget(&mut self) {
        self.known_users.clear();
        self.known_links.clear();
        self.flash_sales.clear();
    }

    /// A flash sale's row, read once per process (see [`Writer::flash_sales`]); `None` if there
    /// is no such sale (not remembered: it may be created later).
    fn flash_sale(&mut self, id: &str) -> Result<Option<Arc<FlashSaleRecord>>> {
        if let Some(sale) = self.flash_sales.get(id) {
            return Ok(Some(Arc::clone(sale)));
        }
        let sale = self
            .conn
            .prepare_cached(&FLASH_SALE_OF_LITE)?
            .query_row([id], flash_row)
            .optional()?
            .map(Arc::new);
        if let Some(sale) = &sale {
            self.flash_sales.insert(id.to_owned(), Arc::clone(sale));
        }
        Ok(sale)
    }
}

/// Copies the WAL back into the database file while the store is open. PASSIVE never blocks
/// the writer; the thread ends when the store is dropped.
fn run_checkpointer(conn: Connection, alive: mpsc::WeakSender<Job>) {
    while alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "wal checkpoint failed");
        }
    }
}

fn insert_events(w: &mut Writer, events: &[Event], received_at: i64) -> Result<Vec<Written>> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let n = w.conn.prepare_cached(&INSERT_EVENT_LITE)?.execute(params![
            e.id.as_str(),
            e.kind.as_str(),
            e.time.0,
            e.user_id.as_ref().map(|u| u.as_str()),
            e.device_id.as_ref().map(|d| d.as_str()),
            e.channel.as_str(),
            e.sku_id.as_ref().map(|s| s.as_str()),
            e.store_id.as_ref().map(|s| s.as_str()),
            e.order_id.as_ref().map(|o| o.as_str()),
            e.query,
            e.text,
            e.rating,
            properties_text(e),
            received_at
        ])?;
        if n == 1 {
            attach_customer(w, e.user_id.as_ref(), e.device_id.as_ref(), received_at)?;
            out.push(Written::Inserted);
        } else {
            out.push(Written::Duplicate);
        }
    }
    Ok(out)
}

/// Makes sure a user seen in an order or event exists, and links the device it came from.
fn attach_customer(
    w: &mut Writer,
    user: Option<&UserId>,
    device: Option<&DeviceId>,
    now: i64,
) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    if w.known_users.len() > MAX_KNOWN || w.known_links.len() > MAX_KNOWN {
        w.forget();
    }
    if !w.known_users.contains(user.as_str()) {
        w.conn
            .prepare_cached(&INSERT_BARE_USER_LITE)?
            .execute(params![user.as_str(), now])?;
        w.known_users.insert(user.0.clone());
    }
    if let Some(device) = device {
        let pair = (device.0.clone(), user.0.clone());
        if !w.known_links.contains(&pair) {
            w.conn.prepare_cached(&LINK_IF_NEW_LITE)?.execute(params![
                "device",
                device.as_str(),
                user.as_str(),
                "login",
                now
            ])?;
            w.known_links.insert(pair);
        }
    }
    Ok(())
}

fn insert_order_header(
    conn: &Connection,
    order: &Order,
    total: i64,
    line_count: i64,
    source: &str,
    now: i64,
    accumulate: bool,
) -> Result<bool> {
    let sql = if accumulate {
        UPSERT_IMPORTED_ORDER
    } else {
        INSERT_ORDER
    };
    let n = conn.prepare_cached(&lite(sql))?.execute(params![
        order.id.as_str(),
        order.kind.as_str(),
        order.status.as_str(),
        order.user_id.as_ref().map(|u| u.as_str()),
        order.device_id.as_ref().map(|d| d.as_str()),
        order.store_id.as_ref().map(|s| s.as_str()),
        order.channel.as_str(),
        order.currency.as_str(),
        order.placed_at.0,
        order.shipping_fee,
        order.discount_total(),
        total,
        line_count,
        serde_json::to_string(&order.coupon_codes).unwrap_or_else(|_| "[]".into()),
        order.original_order_id.as_ref().map(|o| o.as_str()),
        source,
        now
    ])?;
    Ok(n == 1)
}

fn product_params(p: &Product, now: i64) -> Vec<Box<dyn rusqlite::ToSql + '_>> {
    vec![
        Box::new(p.id.as_str()),
        Box::new(p.title.as_str()),
        Box::new(p.category.join("/")),
        Box::new(p.brand.as_deref()),
        Box::new(p.spu_id.as_deref()),
        Box::new(p.price),
        Box::new(p.cost),
        Box::new(p.currency.as_str()),
        Box::new(p.stock),
        Box::new(json_text(&p.attributes)),
        Box::new(now),
    ]
}

/// The rows of a customer: those of its users, and the anonymous ones of its devices.
fn of_customer(users: Vec<String>, devices: Vec<String>) -> (String, Vec<String>) {
    let filter = format!(
        "user_id IN ({}) OR (user_id IS NULL AND device_id IN ({}))",
        placeholders(1, users.len()),
        placeholders(users.len() + 1, devices.len().max(1))
    );
    let mut binds = users;
    binds.extend(if devices.is_empty() {
        vec![String::new()]
    } else {
        devices
    });
    (filter, binds)
}

fn ids_of(customer: &Customer) -> (Vec<String>, Vec<String>) {
    (
        customer.member_ids.iter().map(|u| u.0.clone()).collect(),
        customer.device_ids.iter().map(|d| d.0.clone()).collect(),
    )
}

/// Follows active user links to the customer a user id belongs to.
fn canonical_of(conn: &Connection, user_id: &str) -> Result<String> {
    let mut current = user_id.to_owned();
    let mut stmt = conn.prepare_cached(&lite(ACTIVE_LINK_OF))?;
    for _ in 0..32 {
        match stmt
            .query_row(params!["user", current], |r| r.get::<_, String>(0))
            .optional()?
        {
            Some(next) if next != current => current = next,
            _ => break,
        }
    }
    Ok(current)
}

fn active_link(conn: &Connection, kind: LinkKind, source: &str) -> Result<Option<IdentityLink>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM identity_links WHERE kind = ?1 AND source_id = ?2 AND undone_at IS NULL");
    conn.query_row(&sql, params![kind.as_str(), source], link_row)
        .optional()?
        .transpose()
}

fn link_by_id(conn: &Connection, id: i64) -> Result<Option<IdentityLink>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM identity_links WHERE id = ?1");
    conn.query_row(&sql, [id], link_row).optional()?.transpose()
}

fn link_row(r: &Row<'_>) -> rusqlite::Result<Result<IdentityLink>> {
    let kind: String = r.get(1)?;
    Ok(link_from(
        r.get(0)?,
        &kind,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        phone_enc: r.get(1)?,
        phone_hash: r.get(2)?,
        email_enc: r.get(3)?,
        email_hash: r.get(4)?,
        name_enc: r.get(5)?,
        gender: r.get(6)?,
        birthday: r.get(7)?,
        city: r.get(8)?,
        city_tier: r.get(9)?,
        registration_channel: r.get(10)?,
        registered_at: r.get(11)?,
        attributes: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        erased_at: r.get(15)?,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        time: r.get(2)?,
        user_id: r.get(3)?,
        device_id: r.get(4)?,
        channel: r.get(5)?,
        sku_id: r.get(6)?,
        store_id: r.get(7)?,
        order_id: r.get(8)?,
        query: r.get(9)?,
        text: r.get(10)?,
        rating: r.get(11)?,
        properties: r.get(12)?,
        received_at: r.get(13)?,
    })
}

fn order_row(r: &Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        status: r.get(2)?,
        user_id: r.get(3)?,
        device_id: r.get(4)?,
        store_id: r.get(5)?,
        channel: r.get(6)?,
        currency: r.get(7)?,
        placed_at: r.get(8)?,
        shipping_fee: r.get(9)?,
        total: r.get(10)?,
        coupon_codes: r.get(11)?,
        original_order_id: r.get(12)?,
        refunded_amount: r.get(13)?,
        source: r.get(14)?,
    })
}

fn line_row(r: &Row<'_>) -> rusqlite::Result<OrderLine> {
    Ok(OrderLine {
        sku_id: r.get::<_, String>(0)?.into(),
        quantity: r.get(1)?,
        unit_price: r.get(2)?,
        discount: r.get(3)?,
        title: r.get(4)?,
    })
}

/// Records a seat taken in a group, and every member's purchase when that seat completed it.
fn trail_group_join(
    conn: &Connection,
    deal_id: &str,
    m: &GroupMemberRecord,
    now: i64,
) -> Result<()> {
    conn.execute(
        &lite(INSERT_PROMOTION_EVENT),
        params![
            now,
            "reserved",
            "group_buy",
            deal_id,
            m.group_id,
            m.user_id,
            m.order_id,
            m.price
        ],
    )?;
    conn.execute(
        &lite(TRAIL_GROUP_MEMBERS),
        params![m.group_id, now, "redeemed", "complete"],
    )?;
    Ok(())
}

fn release_flash_on(conn: &Connection, id: &str, give_up: bool, now: i64) -> Result<bool> {
    let r = conn
        .query_row(
            &format!("SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = ?1"),
            [id],
            reservation_row,
        )
        .optional()?;
    let Some(r) = r else { return Ok(false) };
    if conn.execute(&lite(RELEASE_RESERVATION), params![id, now, give_up])? == 0 {
        return Ok(false);
    }
    conn.execute(
        &lite(RETURN_FLASH_STOCK),
        params![r.sale_id, r.quantity, r.id],
    )?;
    conn.execute(
        &lite(RETURN_FLASH_USER),
        params![r.sale_id, r.user_id, r.quantity],
    )?;
    let kind = if r.expires_at <= now {
        "expired"
    } else {
        "rolled_back"
    };
    conn.prepare_cached(&lite(TRAIL_FLASH_RESERVATION))?
        .execute(params![id, now, kind])?;
    Ok(true)
}

fn flash_row(r: &Row<'_>) -> rusqlite::Result<FlashSaleRecord> {
    Ok(FlashSaleRecord {
        id: r.get(0)?,
        sku: r.get(1)?,
        price: r.get(2)?,
        stock: r.get(3)?,
        taken: r.get(4)?,
        per_user_limit: r.get(5)?,
        starts_at: r.get(6)?,
        ends_at: r.get(7)?,
        hold_ms: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn reservation_row(r: &Row<'_>) -> rusqlite::Result<ReservationRecord> {
    Ok(ReservationRecord {
        id: r.get(0)?,
        sale_id: r.get(1)?,
        user_id: r.get(2)?,
        quantity: r.get(3)?,
        state: r.get(4)?,
        expires_at: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn campaign_row(r: &Row<'_>) -> rusqlite::Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        promotion: r.get(3)?,
        starts_at: r.get(4)?,
        ends_at: r.get(5)?,
        segment: r.get(6)?,
        budget: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        recurrence: r.get(11)?,
        per_customer_limit: r.get(12)?,
    })
}

fn template_row(r: &Row<'_>) -> rusqlite::Result<CouponTemplateRecord> {
    Ok(CouponTemplateRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        rule: r.get(2)?,
        quota: r.get(3)?,
        issued: r.get(4)?,
        per_user_limit: r.get(5)?,
        valid_from: r.get(6)?,
        valid_until: r.get(7)?,
        valid_days: r.get(8)?,
        created_at: r.get(9)?,
        per_device_limit: r.get(10)?,
        per_phone_limit: r.get(11)?,
        in_centre: r.get::<_, i64>(12)? != 0,
        issue_on: r.get(13)?,
        scope: r.get(14)?,
        code_prefix: r.get(15)?,
    })
}

fn coupon_row(r: &Row<'_>) -> rusqlite::Result<CouponRecord> {
    Ok(CouponRecord {
        code: r.get(0)?,
        template_id: r.get(1)?,
        user_id: r.get(2)?,
        claim_key: r.get(3)?,
        claimed_at: r.get(4)?,
        expires_at: r.get(5)?,
        state: r.get(6)?,
        order_id: r.get(7)?,
        redeemed_at: r.get(8)?,
        reserved_until: r.get(9)?,
    })
}

fn snapshot_row(r: &Row<'_>, with_members: bool) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        segment: r.get(0)?,
        day: r.get(1)?,
        taken_at: r.get(2)?,
        size: r.get(3)?,
        entered: r.get(4)?,
        left: r.get(5)?,
        members: if with_members { r.get(6)? } else { Vec::new() },
    })
}

fn api_key_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        scopes: scopes_from(&r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

fn red_packet_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RedPacketRecord> {
    Ok(RedPacketRecord {
        id: r.get(0)?,
        sender: r.get(1)?,
        kind: r.get(2)?,
        total: r.get(3)?,
        currency: r.get(4)?,
        shares: r.get(5)?,
        claimed_count: r.get(6)?,
        claimed_amount: r.get(7)?,
        state: r.get(8)?,
        returned: r.get(9)?,
        expires_at: r.get(10)?,
        created_at: r.get(11)?,
        unlock_helpers: r.get(12)?,
        helpers: r.get(13)?,
        opens_at: r.get(14)?,
        rain_id: r.get(15)?,
        helps_per_helper_per_day: r.get(16)?,
    })
}

fn promotion_event_row(r: &Row<'_>) -> rusqlite::Result<PromotionEventRecord> {
    Ok(PromotionEventRecord {
        id: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        promotion_type: r.get(3)?,
        promotion_id: r.get(4)?,
        subject: r.get(5)?,
        user_id: r.get(6)?,
        order_id: r.get(7)?,
        amount: r.get(8)?,
    })
}

/// A packet's row; not found is an error naming it.
fn red_packet_on(conn: &Connection, id: &str) -> Result<RedPacketRecord> {
    conn.query_row(
        &format!("SELECT {RED_PACKET_COLUMNS} FROM red_packets WHERE id = ?1"),
        [id],
        red_packet_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound {
        entity: "red packet",
        id: id.to_owned(),
    })
}

fn share_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RedPacketShare> {
    Ok(RedPacketShare {
        position: r.get(0)?,
        amount: r.get(1)?,
        claimed_by: r.get(2)?,
        claimed_at: r.get(3)?,
    })
}

fn group_deal_on(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupDealRecord>> {
    conn.query_row(
        &format!("SELECT {GROUP_DEAL_COLUMNS} FROM group_deals WHERE id = ?1"),
        [id],
        group_deal_row,
    )
    .optional()
}

fn group_deal_row(r: &Row<'_>) -> rusqlite::Result<GroupDealRecord> {
    Ok(GroupDealRecord {
        id: r.get(0)?,
        sku: r.get(1)?,
        group_size: r.get(2)?,
        leader_price: r.get(3)?,
        member_price: r.get(4)?,
        window_ms: r.get(5)?,
        starts_at: r.get(6)?,
        ends_at: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// One page of `table` by id (see [`PAGE_BY_ID`]).
fn page_by_id<T>(
    conn: &Connection,
    columns: &str,
    table: &str,
    after: &str,
    limit: i64,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    Ok(conn
        .prepare(&lite(&format!(
            "SELECT {columns} FROM {table} {PAGE_BY_ID}"
        )))?
        .query_map(params![after, limit], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn group_on(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupRecord>> {
    conn.query_row(
        &format!("SELECT {GROUP_COLUMNS} FROM group_buys WHERE id = ?1"),
        [id],
        |r| {
            Ok(GroupRecord {
                id: r.get(0)?,
                deal_id: r.get(1)?,
                leader: r.get(2)?,
                size: r.get(3)?,
                joined: r.get(4)?,
                state: r.get(5)?,
                deadline: r.get(6)?,
                created_at: r.get(7)?,
            })
        },
    )
    .optional()
}

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupMemberRecord> {
    Ok(GroupMemberRecord {
        group_id: r.get(0)?,
        user_id: r.get(1)?,
        order_id: r.get(2)?,
        price: r.get(3)?,
        leader: r.get::<_, i64>(4)? != 0,
        state: r.get(5)?,
        joined_at: r.get(6)?,
    })
}

fn member_by_order(
    conn: &Connection,
    order_id: &str,
) -> rusqlite::Result<Option<GroupMemberRecord>> {
    conn.query_row(&lite(GROUP_MEMBER_BY_ORDER), [order_id], member_row)
        .optional()
}

fn group_members_on(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<GroupMemberRecord>> {
    conn.prepare(&lite(GROUP_MEMBERS))?
        .query_map([group_id], member_row)?
        .collect()
}

fn insert_member(conn: &Connection, m: &GroupMemberRecord) -> rusqlite::Result<usize> {
    conn.execute(
        &lite(INSERT_GROUP_MEMBER),
        params![
            m.group_id,
            m.user_id,
            m.order_id,
            m.price,
            i64::from(m.leader),
            m.joined_at
        ],
    )
}

/// One budget spend on the writer's connection ([`SqliteStore::spend_budget`]).
fn spend_in(conn: &Connection, spend: BudgetSpend, now: i64) -> Result<Spent> {
    let BudgetSpend {
        key,
        lines,
        amount,
        trail,
        counted,
    } = spend;
    if conn.query_row(&lite(BUDGET_SPEND_STANDS), [&key], |r| r.get(0))? {
        return Ok(Spent::Duplicate);
    }
    conn.execute(&lite(FORGET_REVERTED_SPEND), [&key])?;
    for (l, amount, limit) in takes(lines, amount, counted) {
        conn.execute(
            &lite(OPEN_BUDGET_PERIOD),
            params![l.scope, l.period, l.period_key],
        )?;
        let taken = match limit {
            None => conn.execute(
                &lite(SPEND_BUDGET),
                params![l.scope, l.period, l.period_key, amount],
            )?,
            Some(limit) => conn.execute(
                &lite(SPEND_UNDER),
                params![l.scope, l.period, l.period_key, amount, limit],
            )?,
        };
        if taken == 0 {
            return Err(over_budget(&l));
        }
        conn.execute(
            &lite(INSERT_BUDGET_LEDGER),
            params![key, l.scope, l.period, l.period_key, amount, now],
        )?;
    }
    if let Some(t) = trail {
        if let (Some(order), Some(attempt)) = (&t.order_id, &t.attempt) {
            conn.execute(&lite(NOTE_CHECKOUT_ATTEMPT), params![order, attempt, now])?;
        }
        conn.execute(
            &lite(INSERT_PROMOTION_EVENT),
            params![
                now,
                "reserved",
                "campaign",
                t.campaign_id,
                key,
                t.user_id,
                t.order_id,
                amount
            ],
        )?;
    }
    Ok(Spent::New)
}

fn checkout_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckoutRecord> {
    Ok(CheckoutRecord {
        request_hash: r.get(0)?,
        response: r.get(1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failing write without a savepoint rolls back its whole group: it leaves nothing behind,
    /// and every other write of the group either committed (and said so) or reported failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_group_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = std::sync::Arc::new(
            SqliteStore::open(&dir.path().join("t.db")).unwrap_or_else(|e| panic!("{e}")),
        );
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let id = format!("s{i}");
                let result = if i % 7 == 3 {
                    // Writes a row, then fails: like an IO error in the middle of a batch.
                    s.write_with(move |w| -> Result<()> {
                        w.conn.execute(
                            "INSERT INTO stores (id, name, updated_at) VALUES (?1, 'x', 0)",
                            [&id],
                        )?;
                        Err(Error::Corrupt("injected failure".into()))
                    })
                    .await
                } else if i % 2 == 0 {
                    s.write(move |c| {
                        c.execute(
                            "INSERT INTO stores (id, name, updated_at) VALUES (?1, 'x', 0)",
                            [&id],
                        )?;
                        Ok(())
                    })
                    .await
                } else {
                    s.write_with(move |w| {
                        w.conn.execute(
                            "INSERT INTO stores (id, name, updated_at) VALUES (?1, 'x', 0)",
                            [&id],
                        )?;
                        Ok(())
                    })
                    .await
                };
                (i, result.is_ok())
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap_or((usize::MAX, false)));
        }
        let present: std::collections::HashSet<String> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT id FROM stores")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap_or_default();
        for (i, ok) in outcomes {
            let stored = present.contains(&format!("s{i}"));
            if i % 7 == 3 {
                assert!(!ok && !stored, "the failing write {i} must leave nothing");
            } else {
                assert_eq!(ok, stored, "write {i} said ok={ok} but stored={stored}");
            }
        }
    }
}
