//! PostgreSQL backend, for shops that run several server nodes on one database.
//!
//! Same SQL and semantics as SQLite; concurrency comes from the database instead of a single
//! writer: every write runs in one transaction, limits are conditional `UPDATE`s, and merges of
//! customers by phone take a transaction-scoped advisory lock on the phone's hash so two nodes
//! cannot each miss the other's new user.

use crate::error::{Error, Result};
use crate::queries::*;
use crate::records::*;
use shopgrowth_core::ids::{DeviceId, UserId};
use shopgrowth_core::model::{Event, Order, OrderLine, Product, Refund, Store as ShopStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Most bucket rows a sale's stock is split into.
const MAX_FLASH_BUCKETS: i64 = 16;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Flash sales read once per process to word a refused hold: a sale's window and per-user
    /// limit never change (only those are read from these copies, never `taken`).
    sale_terms: Arc<Mutex<std::collections::HashMap<String, Arc<FlashSaleRecord>>>>,
}

type Tx = Transaction<'static, Postgres>;

impl PgStore {
    /// Connects to `url`; `schema`, when given, is created and used as the search path (tests
    /// use one schema each).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&admin)
                .await?;
            admin.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            pool,
            sale_terms: Default::default(),
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_events(
        &self,
        events: Vec<Event>,
        received_at: i64,
    ) -> Result<Vec<Written>> {
        let mut tx = self.pool.begin().await?;
        let out = insert_events(&mut tx, &events, received_at).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn upsert_users(&self, users: Vec<SealedUser>, now: i64) -> Result<Vec<UserWritten>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(users.len());
        for u in &users {
            if let Some(hash) = &u.phone_hash {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 0))")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            let existed = sqlx::query(USER_EXISTS)
                .bind(&u.id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            sqlx::query(UPSERT_USER)
                .bind(&u.id)
                .bind(&u.phone_enc)
                .bind(&u.phone_hash)
                .bind(&u.email_enc)
                .bind(&u.email_hash)
                .bind(&u.name_enc)
                .bind(u.gender.map(|g| g.as_str()))
                .bind(u.birthday.map(|b| b.to_string()))
                .bind(&u.city)
                .bind(u.city_tier.map(|t| t.as_str()))
                .bind(u.registration_channel.map(|c| c.as_str()))
                .bind(u.registered_at)
                .bind(json_text(&u.attributes))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let mut merged_into = None;
            if let Some(hash) = &u.phone_hash {
                let already = sqlx::query(ACTIVE_LINK_OF)
                    .bind("user")
                    .bind(&u.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if !already {
                    let other: Option<String> = sqlx::query_scalar(SAME_PHONE_CUSTOMER)
                        .bind(hash)
                        .bind(&u.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(target) = other {
                        let n =
                            link_if_new(&mut tx, "user", &u.id, &target, "same_phone", now).await?;
                        if n == 1 {
                            merged_into = Some(UserId(target));
                        }
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
        tx.commit().await?;
        Ok(out)
    }

    pub async fn upsert_products(&self, products: Vec<Product>, now: i64) -> Result<Vec<Written>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(products.len());
        for p in &products {
            let existed = sqlx::query(PRODUCT_EXISTS)
                .bind(p.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            bind_product(sqlx::query(UPSERT_PRODUCT), p, now)
                .execute(&mut *tx)
                .await?;
            out.push(if existed {
                Written::Updated
            } else {
                Written::Inserted
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn upsert_stores(&self, stores: Vec<ShopStore>, now: i64) -> Result<Vec<Written>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(stores.len());
        for s in &stores {
            let existed = sqlx::query(STORE_EXISTS)
                .bind(s.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            sqlx::query(UPSERT_STORE)
                .bind(s.id.as_str())
                .bind(&s.name)
                .bind(&s.city)
                .bind(s.city_tier.map(|t| t.as_str()))
                .bind(&s.address)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            out.push(if existed {
                Written::Updated
            } else {
                Written::Inserted
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn insert_orders(&self, orders: Vec<Order>, now: i64) -> Result<Vec<Written>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(orders.len());
        for order in &orders {
            let total = order.computed_total().unwrap_or(0);
            let inserted = insert_order_header(
                &mut tx,
                order,
                total,
                order.lines.len() as i64,
                "api",
                now,
                false,
            )
            .await?;
            if !inserted {
                out.push(Written::Duplicate);
                continue;
            }
            for (i, l) in order.lines.iter().enumerate() {
                insert_line(&mut tx, order, l, i as i64, None).await?;
            }
            attach_customer(
                &mut tx,
                order.user_id.as_ref(),
                order.device_id.as_ref(),
                now,
            )
            .await?;
            out.push(Written::Inserted);
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn add_refund(
        &self,
        order_id: String,
        refund: Refund,
        now: i64,
    ) -> Result<RefundWritten> {
        let mut tx = self.pool.begin().await?;
        // Refunds of one order serialise on the order row, so a reused refund id is seen.
        let locked = sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
            .bind(&order_id)
            .fetch_optional(&mut *tx)
            .await?;
        let seen: Option<String> = sqlx::query_scalar(REFUND_ORDER_OF)
            .bind(&refund.id)
            .fetch_optional(&mut *tx)
            .await?;
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
        if locked.is_none() {
            return Err(Error::NotFound {
                entity: "order",
                id: order_id,
            });
        }
        for line in &refund.lines {
            let n = sqlx::query(REFUND_LINE)
                .bind(&order_id)
                .bind(line.line_no)
                .bind(line.quantity)
                .bind(line.amount)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                let exists = sqlx::query(LINE_EXISTS)
                    .bind(&order_id)
                    .bind(line.line_no)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
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
        let n = sqlx::query(INSERT_REFUND)
            .bind(&refund.id)
            .bind(&order_id)
            .bind(refund.amount())
            .bind(serde_json::to_string(&refund.lines).unwrap_or_default())
            .bind(&refund.reason)
            .bind(refund.refunded_at.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::Conflict(format!(
                "refund {:?} was written concurrently",
                refund.id
            )));
        }
        sqlx::query(ADD_ORDER_REFUNDED)
            .bind(&order_id)
            .bind(refund.amount())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefundWritten::Applied)
    }

    pub async fn import_batch(&self, batch: ImportBatch, now: i64) -> Result<ImportWritten> {
        let mut tx = self.pool.begin().await?;
        for u in &batch.users {
            sqlx::query(INSERT_BARE_USER)
                .bind(u)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for p in &batch.products {
            bind_product(sqlx::query(INSERT_PRODUCT_IF_ABSENT), p, now)
                .execute(&mut *tx)
                .await?;
        }
        let mut lines_out = Vec::new();
        for imported in &batch.orders {
            let order = &imported.order;
            let (mut total, mut count) = (0i64, 0i64);
            for ((l, line_no), source_line) in order
                .lines
                .iter()
                .zip(&imported.line_nos)
                .zip(&imported.source_lines)
            {
                if insert_line(&mut tx, order, l, *line_no, Some(*source_line)).await? {
                    total += l.amount().unwrap_or(0);
                    count += 1;
                    lines_out.push(Written::Inserted);
                } else {
                    lines_out.push(Written::Duplicate);
                }
            }
            if count > 0 {
                insert_order_header(&mut tx, order, total, count, "import", now, true).await?;
            }
        }
        let events_out = insert_events(&mut tx, &batch.events, now).await?;
        tx.commit().await?;
        Ok(ImportWritten {
            lines: lines_out,
            events: events_out,
        })
    }

    pub async fn link_device(
        &self,
        device: DeviceId,
        user: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(INSERT_BARE_USER)
            .bind(user.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        link_if_new(
            &mut tx,
            "device",
            device.as_str(),
            user.as_str(),
            &reason,
            now,
        )
        .await?;
        let link = active_link(&mut tx, LinkKind::Device, device.as_str()).await?;
        tx.commit().await?;
        link.ok_or_else(|| {
            Error::Conflict(format!("device {device} was unlinked from {user} by hand"))
        })
    }

    pub async fn merge_users(
        &self,
        source: UserId,
        target: UserId,
        reason: String,
        now: i64,
    ) -> Result<IdentityLink> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE identity_links IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        for id in [&source, &target] {
            if sqlx::query(USER_EXISTS)
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_none()
            {
                return Err(Error::NotFound {
                    entity: "user",
                    id: id.0.clone(),
                });
            }
        }
        if canonical_of(&mut tx, target.as_str()).await? == source.as_str() {
            return Err(Error::Conflict(format!(
                "{target} is already merged into {source}"
            )));
        }
        if let Some(existing) = active_link(&mut tx, LinkKind::User, source.as_str()).await? {
            return Err(Error::Conflict(format!(
                "{source} is already merged into {} (undo link {} first)",
                existing.target_user_id, existing.id
            )));
        }
        sqlx::query(
            "INSERT INTO identity_links (kind, source_id, target_user_id, reason, created_at) VALUES ('user', $1, $2, $3, $4)",
        )
        .bind(source.as_str())
        .bind(target.as_str())
        .bind(&reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let link = active_link(&mut tx, LinkKind::User, source.as_str()).await?;
        tx.commit().await?;
        link.ok_or_else(|| Error::Corrupt("merge link vanished".into()))
    }

    pub async fn undo_link(&self, link_id: i64, now: i64) -> Result<IdentityLink> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(UNDO_LINK)
            .bind(link_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM identity_links WHERE id = $1"
        ))
        .bind(link_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let link = row
            .map(|r| link_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound {
                entity: "identity link",
                id: link_id.to_string(),
            })?;
        if changed == 0 {
            return Err(Error::Conflict(format!(
                "identity link {link_id} was already undone"
            )));
        }
        Ok(link)
    }

    pub async fn customer(&self, user_id: UserId) -> Result<Option<Customer>> {
        let mut tx = self.pool.begin().await?;
        let canonical_id = canonical_of(&mut tx, user_id.as_str()).await?;
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(&canonical_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let canonical = user_row(&row)?.into_record()?;
        let sources =
            "SELECT source_id FROM identity_links WHERE kind = $1 AND target_user_id = $2 \
                       AND undone_at IS NULL ORDER BY id";
        let mut member_ids = vec![canonical_id];
        let mut i = 0;
        while i < member_ids.len() && member_ids.len() < 10_000 {
            let found: Vec<String> = sqlx::query_scalar(sources)
                .bind("user")
                .bind(&member_ids[i])
                .fetch_all(&mut *tx)
                .await?;
            member_ids.extend(found);
            i += 1;
        }
        let mut device_ids = Vec::new();
        for m in &member_ids {
            let found: Vec<String> = sqlx::query_scalar(sources)
                .bind("device")
                .bind(m)
                .fetch_all(&mut *tx)
                .await?;
            device_ids.extend(found.into_iter().map(DeviceId));
        }
        tx.commit().await?;
        Ok(Some(Customer {
            canonical,
            requested_id: user_id,
            member_ids: member_ids.into_iter().map(UserId).collect(),
            device_ids,
        }))
    }

    pub async fn recent_events(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredEvent>> {
        let (users, devices) = ids_of(customer);
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = ANY($1) OR (user_id IS NULL AND device_id = ANY($2)) \
             ORDER BY time DESC, id LIMIT $3"
        ))
        .bind(&users)
        .bind(&devices)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (event, received_at) = event_row(r)?.into_event()?;
                Ok(StoredEvent { event, received_at })
            })
            .collect()
    }

    pub async fn recent_orders(&self, customer: &Customer, limit: i64) -> Result<Vec<StoredOrder>> {
        let (users, devices) = ids_of(customer);
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ANY($1) OR (user_id IS NULL AND device_id = ANY($2)) \
             ORDER BY placed_at DESC, id LIMIT $3"
        ))
        .bind(&users)
        .bind(&devices)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let header = order_row(r)?;
            let lines = sqlx::query(LINES_OF_ORDER)
                .bind(&header.id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(line_row)
                .collect::<Result<Vec<_>>>()?;
            out.push(header.into_order(lines)?);
        }
        Ok(out)
    }

    pub async fn links_of(&self, customer: &Customer) -> Result<Vec<IdentityLink>> {
        let (users, _) = ids_of(customer);
        let rows = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM identity_links WHERE target_user_id = ANY($1) \
             OR (kind = 'user' AND source_id = ANY($1)) ORDER BY id"
        ))
        .bind(&users)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link_row).collect()
    }

    pub async fn erase_personal_data(&self, user_id: UserId, now: i64) -> Result<bool> {
        let n = sqlx::query(ERASE_USER)
            .bind(user_id.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn create_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        sqlx::query(INSERT_API_KEY)
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.secret_hash)
            .bind(key.scopes.join(","))
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn api_key(&self, id: String) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| api_key_row(&r)).transpose()
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_key_row).collect()
    }

    pub async fn revoke_api_key(&self, id: String, now: i64) -> Result<bool> {
        Ok(sqlx::query(REVOKE_API_KEY)
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn counts(&self) -> Result<Counts> {
        let r = sqlx::query(COUNTS).fetch_one(&self.pool).await?;
        Ok(Counts {
            users: r.try_get(0)?,
            products: r.try_get(1)?,
            stores: r.try_get(2)?,
            orders: r.try_get(3)?,
            order_lines: r.try_get(4)?,
            events: r.try_get(5)?,
        })
    }

    /// Users with order totals, and their behaviour since `since` (epoch ms).
    pub async fn audience_source(&self, since: i64) -> Result<AudienceSource> {
        use futures_util::TryStreamExt as _;
        let mut source = AudienceSource::default();
        for r in sqlx::query(AUDIENCE_USERS).fetch_all(&self.pool).await? {
            source.users.push(UserAttributes {
                id: r.try_get(0)?,
                gender: r.try_get(1)?,
                city: r.try_get(2)?,
                city_tier: r.try_get(3)?,
                registration_channel: r.try_get(4)?,
            });
        }
        for r in sqlx::query(AUDIENCE_PRODUCTS).fetch_all(&self.pool).await? {
            source.products.push(ProductFacts {
                sku: r.try_get(0)?,
                category_path: r.try_get(1)?,
                brand: r.try_get(2)?,
                title: r.try_get(3)?,
                price: r.try_get(4)?,
                stock: r.try_get(5)?,
                attributes: r.try_get(6)?,
            });
        }
        let mut index = std::collections::HashMap::new();
        let mut rows = sqlx::query(AUDIENCE_ORDERS).fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(0)?;
            index.insert(id.clone(), source.orders.len());
            source.orders.push(OrderFacts {
                id,
                user_id: r.try_get(1)?,
                device_id: r.try_get(2)?,
                sale: r.try_get(3)?,
                placed_at: r.try_get(4)?,
                total: r.try_get(5)?,
                discount: r.try_get(6)?,
                coupon: r.try_get(7)?,
                channel: r.try_get(8)?,
                store_id: r.try_get(9)?,
                skus: Vec::new(),
            });
        }
        drop(rows);
        let mut rows = sqlx::query(AUDIENCE_LINES).fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let order: String = r.try_get(0)?;
            if let Some(&i) = index.get(&order) {
                source.orders[i].skus.push(r.try_get(1)?);
            }
        }
        drop(rows);
        for r in sqlx::query(AUDIENCE_REFUNDS).fetch_all(&self.pool).await? {
            source.refunds.push(RefundFacts {
                user_id: r.try_get(0)?,
                device_id: r.try_get(1)?,
                refunded_at: r.try_get(2)?,
                amount: r.try_get(3)?,
            });
        }
        let mut rows = sqlx::query(AUDIENCE_EVENTS).bind(since).fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            source.events.push(EventFacts {
                user_id: r.try_get(0)?,
                device_id: r.try_get(1)?,
                kind: r.try_get(2)?,
                time: r.try_get(3)?,
                channel: r.try_get(4)?,
                sku: r.try_get(5)?,
                store_id: r.try_get(6)?,
                has_order: r.try_get(7)?,
            });
        }
        drop(rows);
        for r in sqlx::query(AUDIENCE_LINKS).fetch_all(&self.pool).await? {
            source.links.push(ActiveLink {
                kind: r.try_get(0)?,
                source: r.try_get(1)?,
                target: r.try_get(2)?,
            });
        }
        Ok(source)
    }

    pub async fn define_tag(&self, tag: TagDefinitionRecord) -> Result<bool> {
        Ok(sqlx::query(INSERT_TAG_DEFINITION)
            .bind(&tag.name)
            .bind(tag.version)
            .bind(&tag.rule)
            .bind(tag.weight)
            .bind(&tag.description)
            .bind(tag.created_at)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn retire_tag(&self, name: String, now: i64) -> Result<bool> {
        Ok(sqlx::query(RETIRE_TAG)
            .bind(&name)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn tag_definitions(&self) -> Result<Vec<TagDefinitionRecord>> {
        let rows = sqlx::query(TAG_DEFINITIONS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(TagDefinitionRecord {
                    name: r.try_get(0)?,
                    version: r.try_get(1)?,
                    rule: r.try_get(2)?,
                    weight: r.try_get(3)?,
                    description: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    retired_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    pub async fn record_tag_changes(&self, changes: Vec<TagChangeRecord>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let col =
            |f: &dyn Fn(&TagChangeRecord) -> String| changes.iter().map(f).collect::<Vec<_>>();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tag_history (user_id, tag, version, change, at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])",
        )
        .bind(col(&|c| c.user_id.clone()))
        .bind(col(&|c| c.tag.clone()))
        .bind(changes.iter().map(|c| c.version).collect::<Vec<_>>())
        .bind(col(&|c| {
            if c.gained {
                "gained".into()
            } else {
                "lost".into()
            }
        }))
        .bind(changes.iter().map(|c| c.at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        // The last change of each (user, tag) decides whether it is carried now.
        let mut last: std::collections::HashMap<(&str, &str), &TagChangeRecord> =
            Default::default();
        for c in &changes {
            last.insert((c.user_id.as_str(), c.tag.as_str()), c);
        }
        let (gained, lost): (Vec<&TagChangeRecord>, Vec<&TagChangeRecord>) =
            last.into_values().partition(|c| c.gained);
        sqlx::query(
            "INSERT INTO user_tags (user_id, tag, since) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind(gained.iter().map(|c| c.user_id.clone()).collect::<Vec<_>>())
        .bind(gained.iter().map(|c| c.tag.clone()).collect::<Vec<_>>())
        .bind(gained.iter().map(|c| c.at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM user_tags WHERE (user_id, tag) IN \
             (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(lost.iter().map(|c| c.user_id.clone()).collect::<Vec<_>>())
        .bind(lost.iter().map(|c| c.tag.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user_tags(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(USER_TAGS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn tag_history(&self, user_id: String, limit: i64) -> Result<Vec<TagChangeRecord>> {
        let rows = sqlx::query(TAG_HISTORY)
            .bind(&user_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TagChangeRecord {
                    user_id: r.try_get(0)?,
                    tag: r.try_get(1)?,
                    version: r.try_get(2)?,
                    gained: r.try_get::<String, _>(3)? == "gained",
                    at: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn save_segment(&self, segment: SegmentRecord) -> Result<()> {
        sqlx::query(UPSERT_SEGMENT)
            .bind(&segment.name)
            .bind(&segment.expr)
            .bind(&segment.description)
            .bind(segment.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn segments(&self) -> Result<Vec<SegmentRecord>> {
        let rows = sqlx::query(SEGMENTS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentRecord {
                    name: r.try_get(0)?,
                    expr: r.try_get(1)?,
                    description: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn delete_segment(&self, name: String) -> Result<bool> {
        Ok(sqlx::query(DELETE_SEGMENT)
            .bind(&name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn save_snapshot(&self, snapshot: SnapshotRecord) -> Result<()> {
        sqlx::query(UPSERT_SNAPSHOT)
            .bind(&snapshot.segment)
            .bind(&snapshot.day)
            .bind(snapshot.taken_at)
            .bind(snapshot.size)
            .bind(snapshot.entered)
            .bind(snapshot.left)
            .bind(&snapshot.members)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn snapshots(&self, segment: String) -> Result<Vec<SnapshotRecord>> {
        let rows = sqlx::query(SNAPSHOTS)
            .bind(&segment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| snapshot_row(r, false)).collect()
    }

    pub async fn previous_snapshot(
        &self,
        segment: String,
        day: String,
    ) -> Result<Option<SnapshotRecord>> {
        let row = sqlx::query(PREVIOUS_SNAPSHOT)
            .bind(&segment)
            .bind(&day)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| snapshot_row(r, true)).transpose()
    }

    pub async fn create_coupon_template(&self, t: CouponTemplateRecord) -> Result<bool> {
        Ok(sqlx::query(INSERT_COUPON_TEMPLATE)
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.rule)
            .bind(t.quota)
            .bind(t.per_user_limit)
            .bind(t.valid_from)
            .bind(t.valid_until)
            .bind(t.valid_days)
            .bind(t.created_at)
            .bind(t.per_device_limit)
            .bind(t.per_phone_limit)
            .bind(i64::from(t.in_centre))
            .bind(&t.issue_on)
            .bind(&t.scope)
            .bind(&t.code_prefix)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn offered_coupon_templates(&self) -> Result<Vec<CouponTemplateRecord>> {
        sqlx::query(OFFERED_TEMPLATES)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(pg_template_row)
            .collect()
    }

    /// One page of `table` by id (see [`PAGE_BY_ID`]).
    async fn page_by_id<T>(
        &self,
        columns: &str,
        table: &str,
        after: &str,
        limit: i64,
        row: impl Fn(&sqlx::postgres::PgRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        sqlx::query(&format!("SELECT {columns} FROM {table} {PAGE_BY_ID}"))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row)
            .collect()
    }

    pub async fn coupon_templates_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<CouponTemplateRecord>> {
        self.page_by_id(
            COUPON_TEMPLATE_COLUMNS,
            "coupon_templates",
            &after,
            limit,
            pg_template_row,
        )
        .await
    }

    pub async fn flash_sales_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<FlashSaleRecord>> {
        self.page_by_id(
            FLASH_SALE_COLUMNS,
            "flash_sales",
            &after,
            limit,
            pg_flash_row,
        )
        .await
    }

    pub async fn group_deals_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<GroupDealRecord>> {
        self.page_by_id(
            GROUP_DEAL_COLUMNS,
            "group_deals",
            &after,
            limit,
            pg_group_deal_row,
        )
        .await
    }

    pub async fn red_packets_after(
        &self,
        after: String,
        limit: i64,
    ) -> Result<Vec<RedPacketRecord>> {
        self.page_by_id(
            RED_PACKET_COLUMNS,
            "red_packets",
            &after,
            limit,
            pg_red_packet_row,
        )
        .await
    }

    pub async fn coupon_claims_of(&self, user_id: String) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(CLAIMS_OF_USER)
            .bind(&user_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn coupon_template(&self, id: String) -> Result<Option<CouponTemplateRecord>> {
        let row = sqlx::query(COUPON_TEMPLATE)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pg_template_row).transpose()
    }

    async fn coupon_by_claim(
        &self,
        template_id: &str,
        claim_key: &str,
    ) -> Result<Option<CouponRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE template_id = $1 AND claim_key = $2"
        ))
        .bind(template_id)
        .bind(claim_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_coupon_row).transpose()
    }

    /// Claims a coupon in one transaction: the quota and the user's limit by conditional writes
    /// (row locks serialise concurrent claims; a refusal rolls both back). A claim key seen before,
    /// even by a claim racing this one, returns that coupon.
    /// Issues coupons of one template to many users in one transaction, each grant in its own
    /// savepoint by the claim's conditional writes. The template's row stays locked until the
    /// transaction ends, so callers issue in chunks to let single claims through in between.
    pub async fn issue_coupons(
        &self,
        template_id: String,
        grants: Vec<CouponGrant>,
        now: i64,
    ) -> Result<IssueSummary> {
        let mut tx = self.pool.begin().await?;
        // Locks the template first, as a single claim's quota write does, so the two never wait
        // on each other's user rows in opposite orders.
        let row = sqlx::query(&format!("{COUPON_TEMPLATE} FOR UPDATE"))
            .bind(&template_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "coupon template",
                id: template_id.clone(),
            })?;
        let t = pg_template_row(&row)?;
        let expires_at = claim_window(&t, now)?;
        let keys: Vec<String> = grants.iter().map(|g| g.claim_key.clone()).collect();
        let seen: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT claim_key FROM coupons WHERE template_id = $1 AND claim_key = ANY($2)",
        )
        .bind(&template_id)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut summary = IssueSummary::default();
        // Set-based, a few statements per round whatever the number of grants: one round trip
        // per grant would cap issuance at about 1,500 a second. A round holds each user once (an
        // upsert may touch a row only once), so a user listed twice is granted in a later round.
        let mut fresh: Vec<&CouponGrant> = Vec::new();
        let mut keys_seen = std::collections::HashSet::new();
        for g in &grants {
            if seen.contains(&g.claim_key) || !keys_seen.insert(g.claim_key.as_str()) {
                summary.duplicates += 1;
            } else {
                fresh.push(g);
            }
        }
        while !fresh.is_empty() {
            let mut users = std::collections::HashSet::new();
            let (round, later): (Vec<&CouponGrant>, Vec<&CouponGrant>) = fresh
                .into_iter()
                .partition(|g| users.insert(g.user_id.as_str()));
            fresh = later;
            let round_users: Vec<&str> = round.iter().map(|g| g.user_id.as_str()).collect();
            // The users' limits: each counted by the same conditional upsert as a claim.
            let passed: std::collections::HashSet<String> = sqlx::query_scalar(
                "INSERT INTO coupon_claims_per_user (template_id, user_id, claimed) \
                 SELECT $1, u, 1 FROM UNNEST($2::TEXT[]) AS u \
                 ON CONFLICT (template_id, user_id) DO UPDATE \
                 SET claimed = coupon_claims_per_user.claimed + 1 \
                 WHERE coupon_claims_per_user.claimed < $3 RETURNING user_id",
            )
            .bind(&template_id)
            .bind(&round_users)
            .bind(t.per_user_limit)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            summary.over_user_limit += (round.len() - passed.len()) as u64;
            let passed: Vec<&CouponGrant> = round
                .into_iter()
                .filter(|g| passed.contains(&g.user_id))
                .collect();
            // The quota: as many units as are left, up to what is asked, in one conditional
            // write under the template's row lock.
            let taken: i64 = sqlx::query_scalar(
                "WITH t AS (SELECT quota, issued FROM coupon_templates WHERE id = $1) \
                 UPDATE coupon_templates c \
                 SET issued = c.issued + GREATEST(0, LEAST($2, COALESCE(t.quota - t.issued, $2))) \
                 FROM t WHERE c.id = $1 \
                 RETURNING GREATEST(0, LEAST($2, COALESCE(t.quota - t.issued, $2)))",
            )
            .bind(&template_id)
            .bind(passed.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
            let (granted, unserved) = passed.split_at(taken as usize);
            if !unserved.is_empty() {
                // Sold out: their limit units go back, in the same transaction.
                let users: Vec<&str> = unserved.iter().map(|g| g.user_id.as_str()).collect();
                sqlx::query(
                    "UPDATE coupon_claims_per_user SET claimed = claimed - 1 \
                     WHERE template_id = $1 AND user_id = ANY($2)",
                )
                .bind(&template_id)
                .bind(&users)
                .execute(&mut *tx)
                .await?;
                summary.sold_out += unserved.len() as u64;
            }
            let column = |f: fn(&CouponGrant) -> &str| -> Vec<&str> {
                granted.iter().map(|g| f(g)).collect()
            };
            let codes: Vec<String> = granted.iter().map(|g| t.code(&g.code)).collect();
            let (users, keys) = (column(|g| &g.user_id), column(|g| &g.claim_key));
            sqlx::query(
                "INSERT INTO coupons (code, template_id, user_id, claim_key, claimed_at, \
                 expires_at, state) SELECT g.c, $1, g.u, g.k, $5, $6, 'claimed' \
                 FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[]) AS g(c, u, k)",
            )
            .bind(&template_id)
            .bind(&codes)
            .bind(&users)
            .bind(&keys)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO promotion_events (at, kind, promotion_type, promotion_id, subject, \
                 user_id) SELECT $4, 'issued', 'coupon', $1, g.c, g.u \
                 FROM UNNEST($2::TEXT[], $3::TEXT[]) AS g(c, u)",
            )
            .bind(&template_id)
            .bind(&codes)
            .bind(&users)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            summary.issued += granted.len() as u64;
        }
        tx.commit().await?;
        Ok(summary)
    }

    pub async fn claim_coupon(
        &self,
        template_id: String,
        user_id: String,
        claim_key: String,
        code: String,
        holder_limits: Vec<HolderLimit>,
        now: i64,
    ) -> Result<Claimed> {
        if let Some(c) = self.coupon_by_claim(&template_id, &claim_key).await? {
            return repeated_claim(c, &user_id);
        }
        let mut tx = self.pool.begin().await?;
        if sqlx::query(TAKE_COUPON_QUOTA)
            .bind(&template_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 0
        {
            // Asked on this transaction's connection: taking a second one while holding this
            // could starve the pool when many claims wait on the same template.
            let exists = sqlx::query(COUPON_TEMPLATE)
                .bind(&template_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return if exists {
                Err(Error::SoldOut {
                    entity: "coupon",
                    id: template_id,
                })
            } else {
                Err(Error::NotFound {
                    entity: "coupon template",
                    id: template_id,
                })
            };
        }
        let row = sqlx::query(COUPON_TEMPLATE)
            .bind(&template_id)
            .fetch_one(&mut *tx)
            .await?;
        let t = pg_template_row(&row)?;
        let expires_at = claim_window(&t, now)?;
        let code = t.code(&code);
        if sqlx::query(TAKE_USER_CLAIM)
            .bind(&template_id)
            .bind(&user_id)
            .bind(t.per_user_limit)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 0
        {
            return Err(Error::Conflict(format!(
                "user {user_id:?} already holds the most coupons {template_id:?} allows ({})",
                t.per_user_limit
            )));
        }
        for h in &holder_limits {
            if sqlx::query(TAKE_USER_CLAIM)
                .bind(&template_id)
                .bind(&h.holder)
                .bind(h.limit)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 0
            {
                return Err(h.refusal(&template_id));
            }
        }
        let inserted = sqlx::query(INSERT_COUPON)
            .bind(&code)
            .bind(&template_id)
            .bind(&user_id)
            .bind(&claim_key)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &inserted {
            if e.is_unique_violation() {
                // A claim with the same key won the race: this one rolls back and returns it.
                tx.rollback().await?;
                return match self.coupon_by_claim(&template_id, &claim_key).await? {
                    Some(c) => repeated_claim(c, &user_id),
                    None => Err(Error::Conflict(format!(
                        "coupon code {code:?} is taken; retry"
                    ))),
                };
            }
        }
        inserted?;
        sqlx::query(INSERT_COUPON_EVENT)
            .bind(&code)
            .bind("claimed")
            .bind(None::<String>)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Claimed::New(CouponRecord::claimed(
            code,
            template_id,
            user_id,
            claim_key,
            now,
            expires_at,
        )))
    }

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
        sql: &str,
        event: &str,
        code: String,
        user_id: String,
        order_id: String,
        now: i64,
        until: Option<i64>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql)
            .bind(&code)
            .bind(&user_id)
            .bind(&order_id)
            .bind(now)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query(INSERT_COUPON_EVENT)
                .bind(&code)
                .bind(event)
                .bind(&order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        drop(tx);
        let c = self.coupon(code.clone()).await?;
        coupon_refusal(c, &code, &user_id, &order_id, now).map(|()| false)
    }

    pub async fn sweep_coupon_holds(&self, now: i64) -> Result<usize> {
        let holds: Vec<(String, String)> = sqlx::query_as(LAPSED_COUPON_HOLDS)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut ended = 0;
        for (code, order_id) in holds {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(END_COUPON_HOLD)
                .bind(&code)
                .bind(&order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if done {
                sqlx::query(INSERT_COUPON_EVENT)
                    .bind(&code)
                    .bind("expired")
                    .bind(&order_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                ended += 1;
            }
            tx.commit().await?;
        }
        Ok(ended)
    }

    pub async fn release_coupon(&self, code: String, order_id: String, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(RELEASE_COUPON)
            .bind(&code)
            .bind(&order_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if released {
            sqlx::query(INSERT_COUPON_EVENT)
                .bind(&code)
                .bind("rolled_back")
                .bind(&order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    pub async fn coupon(&self, code: String) -> Result<Option<CouponRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE code = $1"
        ))
        .bind(&code)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_coupon_row).transpose()
    }

    pub async fn open_coupons_of(&self, user_id: String, now: i64) -> Result<Vec<CouponRecord>> {
        sqlx::query(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons {OPEN_COUPONS_OF}"
        ))
        .bind(&user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pg_coupon_row)
        .collect()
    }

    pub async fn create_campaign(&self, c: CampaignRecord, change: String) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(INSERT_CAMPAIGN)
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.promotion)
            .bind(c.starts_at)
            .bind(c.ends_at)
            .bind(&c.segment)
            .bind(c.budget)
            .bind(c.created_at)
            .bind(&c.recurrence)
            .bind(c.per_customer_limit)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if created {
            sqlx::query(INSERT_CAMPAIGN_CHANGE)
                .bind(&c.id)
                .bind(&change)
                .bind(c.created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn campaign_in(tx: &mut Tx, id: &str) -> Result<Option<CampaignRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(pg_campaign_row).transpose()
    }

    pub async fn campaign(&self, id: String) -> Result<Option<CampaignRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_campaign_row).transpose()
    }

    pub async fn campaigns_with_spent(
        &self,
        scope_prefix: String,
        period: String,
        period_key: String,
    ) -> Result<Vec<(CampaignRecord, i64)>> {
        let rows = sqlx::query(CAMPAIGNS_WITH_SPENT)
            .bind(&scope_prefix)
            .bind(&period)
            .bind(&period_key)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((pg_campaign_row(r)?, r.try_get(13)?)))
            .collect()
    }

    pub async fn edit_campaign(
        &self,
        c: CampaignRecord,
        version: i64,
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(EDIT_CAMPAIGN)
            .bind(&c.id)
            .bind(version)
            .bind(&c.name)
            .bind(&c.promotion)
            .bind(c.starts_at)
            .bind(c.ends_at)
            .bind(&c.segment)
            .bind(c.budget)
            .bind(now)
            .bind(&c.recurrence)
            .bind(c.per_customer_limit)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query(INSERT_CAMPAIGN_CHANGE)
                .bind(&c.id)
                .bind(&change)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let stored = Self::campaign_in(&mut tx, &c.id).await?;
        tx.commit().await?;
        edit_outcome(done, stored, &c.id, version)
    }

    pub async fn transition_campaign(
        &self,
        id: String,
        to: &'static str,
        from: &'static [&'static str],
        change: String,
        now: i64,
    ) -> Result<CampaignRecord> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&transition_sql(from))
            .bind(&id)
            .bind(to)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query(INSERT_CAMPAIGN_CHANGE)
                .bind(&id)
                .bind(&change)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let stored = Self::campaign_in(&mut tx, &id).await?;
        tx.commit().await?;
        transition_outcome(done, stored, &id, to)
    }

    pub async fn campaign_changes(&self, id: String) -> Result<Vec<CampaignChange>> {
        let rows = sqlx::query(CAMPAIGN_CHANGES)
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CampaignChange {
                    version: r.try_get(0)?,
                    change: r.try_get(1)?,
                    at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Stores a sale with its stock split over up to `MAX_FLASH_BUCKETS` bucket rows, in one
    /// transaction.
    pub async fn create_flash_sale(&self, f: FlashSaleRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(INSERT_FLASH_SALE)
            .bind(&f.id)
            .bind(&f.sku)
            .bind(f.price)
            .bind(f.stock)
            .bind(f.per_user_limit)
            .bind(f.starts_at)
            .bind(f.ends_at)
            .bind(f.hold_ms)
            .bind(f.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if created {
            let n = flash_buckets(f.stock, MAX_FLASH_BUCKETS);
            for b in 0..n {
                sqlx::query(INSERT_FLASH_BUCKET)
                    .bind(&f.id)
                    .bind(b as i32)
                    .bind(flash_bucket_stock(f.stock, n, b))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn flash_sale(&self, id: String) -> Result<Option<FlashSaleRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {FLASH_SALE_COLUMNS} FROM flash_sales WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_flash_row).transpose()
    }

    pub async fn flash_reservation(&self, id: String) -> Result<Option<ReservationRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_reservation_row).transpose()
    }

    async fn reservation_in(tx: &mut Tx, id: &str) -> Result<Option<ReservationRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM flash_reservations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(pg_reservation_row).transpose()
    }

    /// Reserves units in one call of `shopgrowth_reserve_flash` (migration 0014): one round trip
    /// and one implicit transaction, so a bucket row is locked only while the call runs and
    /// commits. The call takes a unit from a free bucket, the user's limit, and writes the
    /// reservation with its trail entry, each by a conditional write; see the migration. The
    /// reservation id is the idempotency key: a retry is answered with its reservation, also when
    /// it raced the first attempt (the insert collides and the call is undone).
    pub async fn reserve_flash(
        &self,
        sale_id: String,
        reservation_id: String,
        user_id: String,
        quantity: i64,
        now: i64,
    ) -> Result<Reserved> {
        // Buyers start at a bucket chosen by their reservation id, so they spread over them.
        let start = shopgrowth_core::ids::stable_hash(&reservation_id) % MAX_FLASH_BUCKETS as u64;
        let called = sqlx::query(
            "SELECT outcome, bucket, expires_at FROM shopgrowth_reserve_flash($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&sale_id)
        .bind(&reservation_id)
        .bind(&user_id)
        .bind(quantity)
        .bind(now)
        .bind(start as i64)
        .bind(MAX_FLASH_BUCKETS)
        .fetch_one(&self.pool)
        .await;
        let row = match called {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // The same reservation id won a race with this attempt: answer with it.
                return match self.flash_reservation(reservation_id.clone()).await? {
                    Some(r) => repeated_reservation(r, &sale_id, &user_id),
                    None => Err(Error::Conflict(format!(
                        "reservation {reservation_id:?} collided; retry"
                    ))),
                };
            }
            other => other?,
        };
        let outcome: String = row.try_get(0)?;
        match outcome.as_str() {
            "reserved" => Ok(Reserved::New(ReservationRecord {
                id: reservation_id,
                sale_id,
                user_id,
                quantity,
                state: "reserved".into(),
                expires_at: row.try_get(2)?,
                created_at: now,
            })),
            "exists" => match self.flash_reservation(reservation_id.clone()).await? {
                Some(r) => repeated_reservation(r, &sale_id, &user_id),
                None => Err(Error::Conflict(format!(
                    "reservation {reservation_id:?} vanished; retry"
                ))),
            },
            "not_found" => Err(Error::NotFound {
                entity: "flash sale",
                id: sale_id,
            }),
            refused => {
                let sale = self.sale_terms(&sale_id).await?;
                Err(if refused == "over_limit" {
                    over_user_limit(&user_id, &sale)
                } else {
                    flash_refusal(&sale, now)
                })
            }
        }
    }

    /// A flash sale's window and per-user limit, read from the store once per process.
    async fn sale_terms(&self, sale_id: &str) -> Result<Arc<FlashSaleRecord>> {
        let known = self
            .sale_terms
            .lock()
            .ok()
            .and_then(|terms| terms.get(sale_id).cloned());
        if let Some(sale) = known {
            return Ok(sale);
        }
        let sale = Arc::new(self.flash_sale(sale_id.to_owned()).await?.ok_or_else(|| {
            Error::NotFound {
                entity: "flash sale",
                id: sale_id.to_owned(),
            }
        })?);
        if let Ok(mut terms) = self.sale_terms.lock() {
            terms.insert(sale_id.to_owned(), Arc::clone(&sale));
        }
        Ok(sale)
    }

    pub async fn confirm_flash(
        &self,
        reservation_id: String,
        now: i64,
    ) -> Result<ReservationRecord> {
        let mut tx = self.pool.begin().await?;
        let confirmed = sqlx::query(CONFIRM_RESERVATION)
            .bind(&reservation_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if confirmed {
            pg_trail_reservation(&mut tx, &reservation_id, now, "redeemed").await?;
        }
        let r = Self::reservation_in(&mut tx, &reservation_id).await?;
        tx.commit().await?;
        confirmed_or_refused(r, &reservation_id)
    }

    async fn release_in(tx: &mut Tx, id: &str, give_up: bool, now: i64) -> Result<bool> {
        let Some(r) = Self::reservation_in(tx, id).await? else {
            return Ok(false);
        };
        let released = sqlx::query(RELEASE_RESERVATION)
            .bind(id)
            .bind(now)
            .bind(give_up)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
        if released {
            sqlx::query(RETURN_FLASH_STOCK)
                .bind(&r.sale_id)
                .bind(r.quantity)
                .bind(&r.id)
                .execute(&mut **tx)
                .await?;
            sqlx::query(RETURN_FLASH_USER)
                .bind(&r.sale_id)
                .bind(&r.user_id)
                .bind(r.quantity)
                .execute(&mut **tx)
                .await?;
            let kind = if r.expires_at <= now {
                "expired"
            } else {
                "rolled_back"
            };
            pg_trail_reservation(tx, id, now, kind).await?;
        }
        Ok(released)
    }

    pub async fn release_flash(
        &self,
        reservation_id: String,
        give_up: bool,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let released = Self::release_in(&mut tx, &reservation_id, give_up, now).await?;
        tx.commit().await?;
        Ok(released)
    }

    pub async fn flash_reservation_ids(&self, sale_id: String) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(FLASH_RESERVATION_IDS)
            .bind(&sale_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn sweep_flash(&self, now: i64) -> Result<usize> {
        let ids: Vec<String> = sqlx::query_scalar(EXPIRED_RESERVATIONS)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut released = 0;
        for id in ids {
            let mut tx = self.pool.begin().await?;
            released += usize::from(Self::release_in(&mut tx, &id, false, now).await?);
            tx.commit().await?;
        }
        Ok(released)
    }

    /// Stores a packet with its pre-drawn shares in one transaction; false if the id exists.
    pub async fn create_red_packet(&self, p: RedPacketRecord, amounts: Vec<i64>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(INSERT_RED_PACKET)
            .bind(&p.id)
            .bind(&p.sender)
            .bind(&p.kind)
            .bind(p.total)
            .bind(&p.currency)
            .bind(p.shares)
            .bind(p.expires_at)
            .bind(p.created_at)
            .bind(p.unlock_helpers)
            .bind(p.opens_at)
            .bind(&p.rain_id)
            .bind(p.helps_per_helper_per_day)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if created {
            let positions: Vec<i64> = (0..amounts.len() as i64).collect();
            sqlx::query(
                "INSERT INTO red_packet_shares (packet_id, position, amount) \
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[])",
            )
            .bind(&p.id)
            .bind(&positions)
            .bind(&amounts)
            .execute(&mut *tx)
            .await?;
            pg_trail(
                &mut tx,
                TrailEntry {
                    at: p.created_at,
                    kind: "issued",
                    promotion_type: "red_packet",
                    promotion_id: &p.id,
                    subject: &p.id,
                    user_id: Some(&p.sender),
                    order_id: None,
                    amount: Some(p.total),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn red_packet(
        &self,
        id: String,
    ) -> Result<Option<(RedPacketRecord, Vec<RedPacketShare>)>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {RED_PACKET_COLUMNS} FROM red_packets WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let shares = sqlx::query(RED_PACKET_SHARES)
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(pg_share_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((pg_red_packet_row(&row)?, shares)))
    }

    /// A rain's rounds (its packets), in time order.
    pub async fn rain_rounds(&self, rain_id: String) -> Result<Vec<RedPacketRecord>> {
        sqlx::query(&format!(
            "SELECT {RED_PACKET_COLUMNS} FROM red_packets {RAIN_ROUNDS}"
        ))
        .bind(&rain_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pg_red_packet_row)
        .collect()
    }

    /// Counts `helper`'s help with a share-to-unlock packet in one transaction: the help's row by
    /// an insert-if-absent (a helper racing themself waits on the first insert and finds it),
    /// then the packet's conditional increment, whose row lock orders helps from every node and
    /// which opens the packet with the last help it needs. A refused help is rolled back.
    pub async fn help_red_packet(
        &self,
        id: String,
        helper: String,
        now: i64,
        helper_day: BudgetLine,
    ) -> Result<PacketHelp> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(INSERT_RED_PACKET_HELP)
            .bind(&id)
            .bind(&helper)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !inserted {
            let packet = pg_red_packet_in(&mut tx, id).await?;
            return Ok(PacketHelp::Duplicate(packet));
        }
        let counted: Option<i64> = sqlx::query_scalar(COUNT_RED_PACKET_HELP)
            .bind(&id)
            .bind(now)
            .bind(&helper)
            .fetch_optional(&mut *tx)
            .await?;
        let packet = pg_red_packet_in(&mut tx, id).await?;
        // Dropping the transaction on a refusal rolls the help's row back.
        if counted.is_none() {
            return Err(help_refusal(&packet, &helper, now));
        }
        if let Some(spend) = helper_day_spend(&packet, &helper, helper_day) {
            pg_spend(&mut tx, spend, now)
                .await
                .map_err(|e| helper_cap_refusal(e, &packet, &helper))?;
        }
        tx.commit().await?;
        Ok(PacketHelp::New(packet))
    }

    /// Takes the next share in one transaction: the packet's row lock orders concurrent claims
    /// from every node. A claimant racing themself hits the unique index and gets their share.
    pub async fn claim_red_packet(
        &self,
        id: String,
        user: String,
        now: i64,
    ) -> Result<PacketClaim> {
        let existing = |pool: &sqlx::PgPool, id: String, user: String| {
            let pool = pool.clone();
            async move {
                sqlx::query(RED_PACKET_SHARE_OF)
                    .bind(&id)
                    .bind(&user)
                    .fetch_optional(&pool)
                    .await?
                    .as_ref()
                    .map(pg_share_row)
                    .transpose()
            }
        };
        if let Some(share) = existing(&self.pool, id.clone(), user.clone()).await? {
            return Ok(PacketClaim::Duplicate(share));
        }
        let mut tx = self.pool.begin().await?;
        let count: Option<i64> = sqlx::query_scalar(TAKE_RED_PACKET_SHARE)
            .bind(&id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(count) = count else {
            drop(tx);
            let packet = self
                .red_packet(id.clone())
                .await?
                .ok_or_else(|| Error::NotFound {
                    entity: "red packet",
                    id: id.clone(),
                })?;
            return Err(packet_refusal(&packet.0, now));
        };
        let amount: std::result::Result<i64, sqlx::Error> =
            sqlx::query_scalar(CLAIM_RED_PACKET_SHARE)
                .bind(&id)
                .bind(count - 1)
                .bind(&user)
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
        let amount = match amount {
            Ok(a) => a,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                return existing(&self.pool, id.clone(), user.clone())
                    .await?
                    .map(PacketClaim::Duplicate)
                    .ok_or_else(|| {
                        Error::Conflict(format!("red packet {id:?}: claim raced and lost"))
                    });
            }
            Err(e) => return Err(e.into()),
        };
        sqlx::query(ADD_RED_PACKET_CLAIMED)
            .bind(&id)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
        pg_trail(
            &mut tx,
            TrailEntry {
                at: now,
                kind: "claimed",
                promotion_type: "red_packet",
                promotion_id: &id,
                subject: &(count - 1).to_string(),
                user_id: Some(&user),
                order_id: None,
                amount: Some(amount),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(PacketClaim::New(RedPacketShare {
            position: count - 1,
            amount,
            claimed_by: Some(user),
            claimed_at: Some(now),
        }))
    }

    pub async fn expire_red_packets(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(EXPIRE_RED_PACKETS)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let expired = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>>>()?;
        for (id, _) in &expired {
            sqlx::query(TRAIL_RED_PACKET_EXPIRED)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(expired)
    }

    pub async fn create_group_deal(&self, d: GroupDealRecord) -> Result<bool> {
        Ok(sqlx::query(INSERT_GROUP_DEAL)
            .bind(&d.id)
            .bind(&d.sku)
            .bind(d.group_size)
            .bind(d.leader_price)
            .bind(d.member_price)
            .bind(d.window_ms)
            .bind(d.starts_at)
            .bind(d.ends_at)
            .bind(d.created_at)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn group_deal(&self, id: String) -> Result<Option<GroupDealRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_DEAL_COLUMNS} FROM group_deals WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pg_group_deal_row).transpose()
    }

    async fn member_by_order(&self, order_id: &str) -> Result<Option<GroupMemberRecord>> {
        let row = sqlx::query(GROUP_MEMBER_BY_ORDER)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pg_member_row).transpose()
    }

    /// A unique violation while joining: the same order raced itself (its membership again), or
    /// the user is already in the group.
    async fn join_conflict(&self, order_id: &str, group_id: &str, user_id: &str) -> Result<Joined> {
        match self.member_by_order(order_id).await? {
            Some(m) => repeated_join(m, group_id, user_id),
            None => Err(Error::Conflict(format!(
                "{user_id:?} is already in group {group_id:?}, or the group id is used"
            ))),
        }
    }

    pub async fn open_group(
        &self,
        deal_id: String,
        group_id: String,
        leader: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        if let Some(m) = self.member_by_order(&order_id).await? {
            return repeated_join(m, &group_id, &leader);
        }
        let deal = self
            .group_deal(deal_id.clone())
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "group deal",
                id: deal_id.clone(),
            })?;
        if now < deal.starts_at || now >= deal.ends_at {
            return Err(Error::Conflict(format!(
                "group deal {deal_id:?} is not running"
            )));
        }
        let deadline = now.saturating_add(deal.window_ms).min(deal.ends_at);
        let m = GroupMemberRecord {
            group_id: group_id.clone(),
            user_id: leader.clone(),
            order_id: order_id.clone(),
            price: deal.leader_price,
            leader: true,
            state: "joined".into(),
            joined_at: now,
        };
        let mut tx = self.pool.begin().await?;
        let done = async {
            sqlx::query(INSERT_GROUP)
                .bind(&group_id)
                .bind(&deal_id)
                .bind(&leader)
                .bind(deal.group_size)
                .bind(deadline)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            pg_insert_member(&mut tx, &m).await?;
            pg_trail_group_join(&mut tx, &deal.id, &m, now).await?;
            tx.commit().await
        }
        .await;
        match done {
            Ok(()) => Ok(Joined::New(m)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                self.join_conflict(&order_id, &group_id, &leader).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes a seat in one transaction: the group's row lock orders joins from every node.
    pub async fn join_group(
        &self,
        group_id: String,
        user_id: String,
        order_id: String,
        now: i64,
    ) -> Result<Joined> {
        if let Some(m) = self.member_by_order(&order_id).await? {
            return repeated_join(m, &group_id, &user_id);
        }
        let Some((group, members)) = self.group(group_id.clone()).await? else {
            return Err(Error::NotFound {
                entity: "group",
                id: group_id,
            });
        };
        if members.iter().any(|m| m.user_id == user_id) {
            return Err(Error::Conflict(format!(
                "{user_id:?} is already in group {group_id:?}"
            )));
        }
        let deal = self
            .group_deal(group.deal_id.clone())
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "group deal",
                id: group.deal_id.clone(),
            })?;
        let m = GroupMemberRecord {
            group_id: group_id.clone(),
            user_id: user_id.clone(),
            order_id: order_id.clone(),
            price: deal.member_price,
            leader: false,
            state: "joined".into(),
            joined_at: now,
        };
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(TAKE_GROUP_SEAT)
            .bind(&group_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !taken {
            drop(tx);
            let current = self.group(group_id.clone()).await?.map_or(group, |g| g.0);
            return Err(group_refusal(&current, now));
        }
        let done = async {
            pg_insert_member(&mut tx, &m).await?;
            pg_trail_group_join(&mut tx, &deal.id, &m, now).await?;
            tx.commit().await
        }
        .await;
        match done {
            Ok(()) => Ok(Joined::New(m)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                self.join_conflict(&order_id, &group_id, &user_id).await
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn group(&self, id: String) -> Result<Option<(GroupRecord, Vec<GroupMemberRecord>)>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM group_buys WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let members = sqlx::query(GROUP_MEMBERS)
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(pg_member_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((pg_group_row(&row)?, members)))
    }

    /// Fails open groups past their deadline and refunds their members in one transaction.
    pub async fn expire_groups(&self, now: i64) -> Result<Vec<(String, Vec<GroupMemberRecord>)>> {
        let mut tx = self.pool.begin().await?;
        let failed: Vec<String> = sqlx::query_scalar(FAIL_EXPIRED_GROUPS)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for id in &failed {
            sqlx::query(TRAIL_GROUP_MEMBERS)
                .bind(id)
                .bind(now)
                .bind("rolled_back")
                .bind("failed")
                .execute(&mut *tx)
                .await?;
            sqlx::query(REFUND_GROUP_MEMBERS)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut out = Vec::new();
        for id in failed {
            let members = self
                .group(id.clone())
                .await?
                .map(|g| g.1)
                .unwrap_or_default();
            out.push((id, members));
        }
        Ok(out)
    }

    pub async fn set_budget_limit(&self, scope: String, period: String, amount: i64) -> Result<()> {
        sqlx::query(UPSERT_BUDGET_LIMIT)
            .bind(&scope)
            .bind(&period)
            .bind(amount)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn spend_budget(
        &self,
        key: String,
        lines: Vec<BudgetLine>,
        amount: i64,
        now: i64,
        trail: Option<SpendTrail>,
    ) -> Result<Spent> {
        let mut tx = self.pool.begin().await?;
        let spend = BudgetSpend {
            key,
            lines,
            amount,
            trail,
            counted: Vec::new(),
        };
        let spent = pg_spend(&mut tx, spend, now).await?;
        if spent == Spent::New {
            tx.commit().await?;
        }
        Ok(spent)
    }

    pub async fn spend_budgets(&self, spends: Vec<BudgetSpend>, now: i64) -> Result<Vec<Spent>> {
        let mut tx = self.pool.begin().await?;
        let mut done = vec![Spent::Duplicate; spends.len()];
        for i in spend_order(&spends) {
            // Each in a savepoint: a duplicate rolls back alone; a refusal, all of them.
            let mut one = sqlx::Connection::begin(&mut *tx).await?;
            let spent = pg_spend(&mut one, spends[i].clone(), now).await?;
            if spent == Spent::New {
                one.commit().await?;
            }
            done[i] = spent;
        }
        tx.commit().await?;
        Ok(done)
    }

    pub async fn checkout(&self, order_id: String) -> Result<Option<CheckoutRecord>> {
        let row = sqlx::query(CHECKOUT_OF)
            .bind(&order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(CheckoutRecord {
                request_hash: r.try_get(0)?,
                response: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// A concurrent save of the same order waits on the conflicting insert, so the read after it
    /// sees the row that was kept.
    pub async fn save_checkout(
        &self,
        order_id: String,
        request_hash: String,
        response: String,
        now: i64,
        attempt: Option<CheckoutAttempt>,
    ) -> Result<CheckoutRecord> {
        let mut tx = self.pool.begin().await?;
        let saved = sqlx::query(INSERT_CHECKOUT)
            .bind(&order_id)
            .bind(&request_hash)
            .bind(&response)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let (1, Some(a)) = (saved, attempt) {
            for key in &a.spend_keys {
                sqlx::query(TRAIL_SPEND_KEPT)
                    .bind(key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(FORGET_CHECKOUT_ATTEMPT)
                .bind(&order_id)
                .bind(&a.attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.checkout(order_id.clone())
            .await?
            .ok_or(Error::NotFound {
                entity: "checkout",
                id: order_id,
            })
    }

    pub async fn note_checkout_attempt(
        &self,
        order_id: String,
        attempt: String,
        now: i64,
    ) -> Result<()> {
        sqlx::query(NOTE_CHECKOUT_ATTEMPT)
            .bind(&order_id)
            .bind(&attempt)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn forget_checkout_attempt(&self, order_id: String, attempt: String) -> Result<()> {
        sqlx::query(FORGET_CHECKOUT_ATTEMPT)
            .bind(&order_id)
            .bind(&attempt)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn stale_checkout_attempts(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(STALE_CHECKOUT_ATTEMPTS)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn standing_checkout_spends(&self, order_id: String) -> Result<Vec<(String, bool)>> {
        Ok(sqlx::query_as(STANDING_CHECKOUT_SPENDS)
            .bind(&order_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn keep_campaign_spend(&self, key: String, now: i64) -> Result<bool> {
        let kept = sqlx::query(TRAIL_SPEND_KEPT)
            .bind(&key)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(kept > 0)
    }

    pub async fn return_refund_shares(
        &self,
        order_id: String,
        refund_id: String,
        units: Vec<(i64, i64)>,
        plan: SharePlan,
        now: i64,
    ) -> Result<SharesReturned> {
        let mut tx = self.pool.begin().await?;
        // The refunds of one order are worked out one after another, each from where the one
        // before ended.
        sqlx::query(LOCK_CHECKOUT)
            .bind(&order_id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut before = std::collections::BTreeMap::new();
        for r in sqlx::query(REFUND_RETURNS_OF)
            .bind(&order_id)
            .fetch_all(&mut *tx)
            .await?
        {
            if r.try_get::<String, _>(0)? == refund_id {
                return Ok(SharesReturned::Duplicate);
            }
            add_units(&r.try_get::<String, _>(1)?, &mut before);
        }
        let mut returned = Vec::new();
        for share in plan(&before) {
            if share.amount <= 0
                || sqlx::query(RETURN_SHARE)
                    .bind(&share.spend_key)
                    .bind(share.amount)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 0
            {
                continue;
            }
            for r in sqlx::query(BUDGET_LINES_OF)
                .bind(&share.spend_key)
                .fetch_all(&mut *tx)
                .await?
            {
                sqlx::query(RETURN_BUDGET)
                    .bind(r.try_get::<String, _>(0)?)
                    .bind(r.try_get::<String, _>(1)?)
                    .bind(r.try_get::<String, _>(2)?)
                    .bind(share.amount)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(TRAIL_SHARE_RETURNED)
                .bind(now)
                .bind(&share.promotion_type)
                .bind(&share.promotion_id)
                .bind(&share.subject)
                .bind(&order_id)
                .bind(share.amount)
                .execute(&mut *tx)
                .await?;
            returned.push(share);
        }
        sqlx::query(INSERT_REFUND_RETURN)
            .bind(&order_id)
            .bind(&refund_id)
            .bind(units_text(&units))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SharesReturned::Returned(returned))
    }

    pub async fn revert_budget(&self, key: String, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let marked = sqlx::query(MARK_REVERTED)
            .bind(&key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        let rows = sqlx::query(BUDGET_LEDGER_OF)
            .bind(&key)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            sqlx::query(RETURN_BUDGET)
                .bind(r.try_get::<String, _>(0)?)
                .bind(r.try_get::<String, _>(1)?)
                .bind(r.try_get::<String, _>(2)?)
                .bind(r.try_get::<i64, _>(3)?)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(TRAIL_SPEND_REVERTED)
            .bind(&key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn promotion_trail(&self, filter: TrailFilter) -> Result<Vec<PromotionEventRecord>> {
        let (sql, texts) = trail_query(&filter);
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t);
        }
        if let Some(before) = filter.before_id {
            q = q.bind(before);
        }
        q.bind(filter.limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(pg_promotion_event_row)
            .collect()
    }

    /// The trail entries after `cursor`, at most `limit`, and the cursor after them. Ids are
    /// drawn before commit, so entries are taken in (transaction, id) order and only from
    /// transactions older than every running one: an entry still being written can never be
    /// skipped, and each is given exactly once.
    pub async fn promotion_feed(
        &self,
        cursor: TrailCursor,
        limit: i64,
    ) -> Result<(Vec<PromotionEventRecord>, TrailCursor)> {
        let rows = sqlx::query(&format!(
            "SELECT tx::text::bigint, {PROMOTION_EVENT_COLUMNS} FROM promotion_events \
             WHERE (tx, id) > ($1::text::xid8, $2) \
             AND tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx, id LIMIT $3"
        ))
        .bind(cursor.tx.to_string())
        .bind(cursor.id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut next = cursor;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            next = TrailCursor {
                tx: r.try_get(0)?,
                id: r.try_get(1)?,
            };
            out.push(pg_promotion_event_row_from(r, 1)?);
        }
        Ok((out, next))
    }

    pub async fn trail_counts(&self, from: i64, to: i64) -> Result<Vec<TrailCount>> {
        sqlx::query(TRAIL_COUNTS)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(TrailCount {
                    promotion_type: r.try_get(0)?,
                    promotion_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    events: r.try_get(3)?,
                    users: r.try_get(4)?,
                    amount: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn budget_limits(&self, scope: String) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(BUDGET_LIMITS_OF)
            .bind(&scope)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn budget_used(&self, line: BudgetLine) -> Result<i64> {
        let used: Option<i64> = sqlx::query_scalar(BUDGET_USED)
            .bind(&line.scope)
            .bind(&line.period)
            .bind(&line.period_key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(used.unwrap_or(0))
    }

    pub async fn events_present(&self, ids: Vec<String>) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM events WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

async fn insert_events(tx: &mut Tx, events: &[Event], received_at: i64) -> Result<Vec<Written>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for the whole batch; RETURNING tells which ids were new.
    let col = |f: &dyn Fn(&Event) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<String> = events.iter().map(|e| e.id.0.clone()).collect();
    let kinds: Vec<String> = events.iter().map(|e| e.kind.as_str().to_owned()).collect();
    let times: Vec<i64> = events.iter().map(|e| e.time.0).collect();
    let channels: Vec<String> = events
        .iter()
        .map(|e| e.channel.as_str().to_owned())
        .collect();
    let ratings: Vec<Option<i16>> = events.iter().map(|e| e.rating.map(i16::from)).collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, type, time, user_id, device_id, channel, sku_id, store_id, order_id, query, text, \
           rating, properties, received_at) \
         SELECT DISTINCT ON (t.id) t.id, t.type, t.time, t.user_id, t.device_id, t.channel, t.sku_id, t.store_id, \
           t.order_id, t.query, t.text, t.rating, t.properties, $14::int8 \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], \
           $8::text[], $9::text[], $10::text[], $11::text[], $12::int2[], $13::text[]) WITH ORDINALITY \
           AS t(id, type, time, user_id, device_id, channel, sku_id, store_id, order_id, query, text, rating, \
           properties, ord) \
         ORDER BY t.id, t.ord \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&times)
    .bind(col(&|e| e.user_id.as_ref().map(|u| u.0.clone())))
    .bind(col(&|e| e.device_id.as_ref().map(|d| d.0.clone())))
    .bind(&channels)
    .bind(col(&|e| e.sku_id.as_ref().map(|s| s.0.clone())))
    .bind(col(&|e| e.store_id.as_ref().map(|s| s.0.clone())))
    .bind(col(&|e| e.order_id.as_ref().map(|o| o.0.clone())))
    .bind(col(&|e| e.query.clone()))
    .bind(col(&|e| e.text.clone()))
    .bind(&ratings)
    .bind(col(&|e| properties_text(e)))
    .bind(received_at)
    .fetch_all(&mut **tx)
    .await?;
    let mut fresh: std::collections::HashSet<String> = inserted.into_iter().collect();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        // An id repeated inside one batch is new only the first time.
        if fresh.remove(e.id.as_str()) {
            attach_customer(tx, e.user_id.as_ref(), e.device_id.as_ref(), received_at).await?;
            out.push(Written::Inserted);
        } else {
            out.push(Written::Duplicate);
        }
    }
    Ok(out)
}

async fn attach_customer(
    tx: &mut Tx,
    user: Option<&UserId>,
    device: Option<&DeviceId>,
    now: i64,
) -> Result<()> {
    if let Some(user) = user {
        sqlx::query(INSERT_BARE_USER)
            .bind(user.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        if let Some(device) = device {
            link_if_new(tx, "device", device.as_str(), user.as_str(), "login", now).await?;
        }
    }
    Ok(())
}

async fn link_if_new(
    tx: &mut Tx,
    kind: &str,
    source: &str,
    target: &str,
    reason: &str,
    now: i64,
) -> Result<u64> {
    Ok(sqlx::query(LINK_IF_NEW)
        .bind(kind)
        .bind(source)
        .bind(target)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

async fn insert_order_header(
    tx: &mut Tx,
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
    let n = sqlx::query(sql)
        .bind(order.id.as_str())
        .bind(order.kind.as_str())
        .bind(order.status.as_str())
        .bind(order.user_id.as_ref().map(|u| u.as_str()))
        .bind(order.device_id.as_ref().map(|d| d.as_str()))
        .bind(order.store_id.as_ref().map(|s| s.as_str()))
        .bind(order.channel.as_str())
        .bind(order.currency.as_str())
        .bind(order.placed_at.0)
        .bind(order.shipping_fee)
        .bind(order.discount_total())
        .bind(total)
        .bind(line_count)
        .bind(serde_json::to_string(&order.coupon_codes).unwrap_or_else(|_| "[]".into()))
        .bind(order.original_order_id.as_ref().map(|o| o.as_str()))
        .bind(source)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

async fn insert_line(
    tx: &mut Tx,
    order: &Order,
    l: &OrderLine,
    line_no: i64,
    source_line: Option<i64>,
) -> Result<bool> {
    let n = sqlx::query(INSERT_ORDER_LINE)
        .bind(order.id.as_str())
        .bind(line_no)
        .bind(l.sku_id.as_str())
        .bind(&l.title)
        .bind(l.quantity)
        .bind(l.unit_price)
        .bind(l.discount)
        .bind(l.amount().unwrap_or(0))
        .bind(source_line)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

fn bind_product<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    p: &'q Product,
    now: i64,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    q.bind(p.id.as_str())
        .bind(p.title.as_str())
        .bind(p.category.join("/"))
        .bind(p.brand.as_deref())
        .bind(p.spu_id.as_deref())
        .bind(p.price)
        .bind(p.cost)
        .bind(p.currency.as_str())
        .bind(p.stock)
        .bind(json_text(&p.attributes))
        .bind(now)
}

fn ids_of(customer: &Customer) -> (Vec<String>, Vec<String>) {
    (
        customer.member_ids.iter().map(|u| u.0.clone()).collect(),
        customer.device_ids.iter().map(|d| d.0.clone()).collect(),
    )
}

async fn canonical_of(tx: &mut Tx, user_id: &str) -> Result<String> {
    let mut current = user_id.to_owned();
    for _ in 0..32 {
        let next: Option<String> = sqlx::query_scalar(ACTIVE_LINK_OF)
            .bind("user")
            .bind(&current)
            .fetch_optional(&mut **tx)
            .await?;
        match next {
            Some(next) if next != current => current = next,
            _ => break,
        }
    }
    Ok(current)
}

async fn active_link(tx: &mut Tx, kind: LinkKind, source: &str) -> Result<Option<IdentityLink>> {
    let row = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM identity_links WHERE kind = $1 AND source_id = $2 AND undone_at IS NULL"
    ))
    .bind(kind.as_str())
    .bind(source)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| link_row(&r)).transpose()
}

fn link_row(r: &PgRow) -> Result<IdentityLink> {
    let kind: String = r.try_get(1)?;
    link_from(
        r.try_get(0)?,
        &kind,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
    )
}

fn user_row(r: &PgRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.try_get(0)?,
        phone_enc: r.try_get(1)?,
        phone_hash: r.try_get(2)?,
        email_enc: r.try_get(3)?,
        email_hash: r.try_get(4)?,
        name_enc: r.try_get(5)?,
        gender: r.try_get(6)?,
        birthday: r.try_get(7)?,
        city: r.try_get(8)?,
        city_tier: r.try_get(9)?,
        registration_channel: r.try_get(10)?,
        registered_at: r.try_get(11)?,
        attributes: r.try_get(12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        erased_at: r.try_get(15)?,
    })
}

fn event_row(r: &PgRow) -> Result<EventRow> {
    Ok(EventRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        time: r.try_get(2)?,
        user_id: r.try_get(3)?,
        device_id: r.try_get(4)?,
        channel: r.try_get(5)?,
        sku_id: r.try_get(6)?,
        store_id: r.try_get(7)?,
        order_id: r.try_get(8)?,
        query: r.try_get(9)?,
        text: r.try_get(10)?,
        rating: r.try_get::<Option<i16>, _>(11)?.map(i64::from),
        properties: r.try_get(12)?,
        received_at: r.try_get(13)?,
    })
}

fn order_row(r: &PgRow) -> Result<OrderRow> {
    Ok(OrderRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        status: r.try_get(2)?,
        user_id: r.try_get(3)?,
        device_id: r.try_get(4)?,
        store_id: r.try_get(5)?,
        channel: r.try_get(6)?,
        currency: r.try_get(7)?,
        placed_at: r.try_get(8)?,
        shipping_fee: r.try_get(9)?,
        total: r.try_get(10)?,
        coupon_codes: r.try_get(11)?,
        original_order_id: r.try_get(12)?,
        refunded_amount: r.try_get(13)?,
        source: r.try_get(14)?,
    })
}

fn line_row(r: &PgRow) -> Result<OrderLine> {
    Ok(OrderLine {
        sku_id: r.try_get::<String, _>(0)?.into(),
        quantity: r.try_get(1)?,
        unit_price: r.try_get(2)?,
        discount: r.try_get(3)?,
        title: r.try_get(4)?,
    })
}

fn api_key_row(r: &PgRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        scopes: scopes_from(&r.try_get::<String, _>(3)?),
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

fn snapshot_row(r: &sqlx::postgres::PgRow, with_members: bool) -> Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        segment: r.try_get(0)?,
        day: r.try_get(1)?,
        taken_at: r.try_get(2)?,
        size: r.try_get(3)?,
        entered: r.try_get(4)?,
        left: r.try_get(5)?,
        members: if with_members {
            r.try_get(6)?
        } else {
            Vec::new()
        },
    })
}

fn pg_template_row(r: &sqlx::postgres::PgRow) -> Result<CouponTemplateRecord> {
    Ok(CouponTemplateRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        rule: r.try_get(2)?,
        quota: r.try_get(3)?,
        issued: r.try_get(4)?,
        per_user_limit: r.try_get(5)?,
        valid_from: r.try_get(6)?,
        valid_until: r.try_get(7)?,
        valid_days: r.try_get(8)?,
        created_at: r.try_get(9)?,
        per_device_limit: r.try_get(10)?,
        per_phone_limit: r.try_get(11)?,
        in_centre: r.try_get::<i64, _>(12)? != 0,
        issue_on: r.try_get(13)?,
        scope: r.try_get(14)?,
        code_prefix: r.try_get(15)?,
    })
}

fn pg_coupon_row(r: &sqlx::postgres::PgRow) -> Result<CouponRecord> {
    Ok(CouponRecord {
        code: r.try_get(0)?,
        template_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        claim_key: r.try_get(3)?,
        claimed_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        state: r.try_get(6)?,
        order_id: r.try_get(7)?,
        redeemed_at: r.try_get(8)?,
        reserved_until: r.try_get(9)?,
    })
}

fn pg_campaign_row(r: &sqlx::postgres::PgRow) -> Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        state: r.try_get(2)?,
        promotion: r.try_get(3)?,
        starts_at: r.try_get(4)?,
        ends_at: r.try_get(5)?,
        segment: r.try_get(6)?,
        budget: r.try_get(7)?,
        version: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        recurrence: r.try_get(11)?,
        per_customer_limit: r.try_get(12)?,
    })
}

fn pg_flash_row(r: &sqlx::postgres::PgRow) -> Result<FlashSaleRecord> {
    Ok(FlashSaleRecord {
        id: r.try_get(0)?,
        sku: r.try_get(1)?,
        price: r.try_get(2)?,
        stock: r.try_get(3)?,
        taken: r.try_get(4)?,
        per_user_limit: r.try_get(5)?,
        starts_at: r.try_get(6)?,
        ends_at: r.try_get(7)?,
        hold_ms: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

fn pg_reservation_row(r: &sqlx::postgres::PgRow) -> Result<ReservationRecord> {
    Ok(ReservationRecord {
        id: r.try_get(0)?,
        sale_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        quantity: r.try_get(3)?,
        state: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

/// A packet's row read on `conn`; not found is an error naming it.
async fn pg_red_packet_in(conn: &mut sqlx::PgConnection, id: String) -> Result<RedPacketRecord> {
    sqlx::query(&format!(
        "SELECT {RED_PACKET_COLUMNS} FROM red_packets WHERE id = $1"
    ))
    .bind(&id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(pg_red_packet_row)
    .transpose()?
    .ok_or(Error::NotFound {
        entity: "red packet",
        id,
    })
}

fn pg_red_packet_row(r: &sqlx::postgres::PgRow) -> Result<RedPacketRecord> {
    Ok(RedPacketRecord {
        id: r.try_get(0)?,
        sender: r.try_get(1)?,
        kind: r.try_get(2)?,
        total: r.try_get(3)?,
        currency: r.try_get(4)?,
        shares: r.try_get(5)?,
        claimed_count: r.try_get(6)?,
        claimed_amount: r.try_get(7)?,
        state: r.try_get(8)?,
        returned: r.try_get(9)?,
        expires_at: r.try_get(10)?,
        created_at: r.try_get(11)?,
        unlock_helpers: r.try_get(12)?,
        helpers: r.try_get(13)?,
        opens_at: r.try_get(14)?,
        rain_id: r.try_get(15)?,
        helps_per_helper_per_day: r.try_get(16)?,
    })
}

fn pg_promotion_event_row(r: &sqlx::postgres::PgRow) -> Result<PromotionEventRecord> {
    pg_promotion_event_row_from(r, 0)
}

/// A trail entry whose columns start at `first`.
fn pg_promotion_event_row_from(
    r: &sqlx::postgres::PgRow,
    first: usize,
) -> Result<PromotionEventRecord> {
    Ok(PromotionEventRecord {
        id: r.try_get(first)?,
        at: r.try_get(first + 1)?,
        kind: r.try_get(first + 2)?,
        promotion_type: r.try_get(first + 3)?,
        promotion_id: r.try_get(first + 4)?,
        subject: r.try_get(first + 5)?,
        user_id: r.try_get(first + 6)?,
        order_id: r.try_get(first + 7)?,
        amount: r.try_get(first + 8)?,
    })
}

fn pg_share_row(r: &sqlx::postgres::PgRow) -> Result<RedPacketShare> {
    Ok(RedPacketShare {
        position: r.try_get(0)?,
        amount: r.try_get(1)?,
        claimed_by: r.try_get(2)?,
        claimed_at: r.try_get(3)?,
    })
}

fn pg_group_deal_row(r: &sqlx::postgres::PgRow) -> Result<GroupDealRecord> {
    Ok(GroupDealRecord {
        id: r.try_get(0)?,
        sku: r.try_get(1)?,
        group_size: r.try_get(2)?,
        leader_price: r.try_get(3)?,
        member_price: r.try_get(4)?,
        window_ms: r.try_get(5)?,
        starts_at: r.try_get(6)?,
        ends_at: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

fn pg_group_row(r: &sqlx::postgres::PgRow) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: r.try_get(0)?,
        deal_id: r.try_get(1)?,
        leader: r.try_get(2)?,
        size: r.try_get(3)?,
        joined: r.try_get(4)?,
        state: r.try_get(5)?,
        deadline: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

fn pg_member_row(r: &sqlx::postgres::PgRow) -> Result<GroupMemberRecord> {
    Ok(GroupMemberRecord {
        group_id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        order_id: r.try_get(2)?,
        price: r.try_get(3)?,
        leader: r.try_get::<i64, _>(4)? != 0,
        state: r.try_get(5)?,
        joined_at: r.try_get(6)?,
    })
}

/// One promotion-trail entry, as [`INSERT_PROMOTION_EVENT`] takes it.
struct TrailEntry<'a> {
    at: i64,
    kind: &'a str,
    promotion_type: &'a str,
    promotion_id: &'a str,
    subject: &'a str,
    user_id: Option<&'a str>,
    order_id: Option<&'a str>,
    amount: Option<i64>,
}

/// One budget spend in `conn`'s transaction ([`PgStore::spend_budget`]). On
/// [`Spent::Duplicate`] the caller rolls its transaction back (the same key may have won a race
/// after this one's writes began).
async fn pg_spend(conn: &mut sqlx::PgConnection, spend: BudgetSpend, now: i64) -> Result<Spent> {
    let BudgetSpend {
        key,
        lines,
        amount,
        trail,
        counted,
    } = spend;
    let stands: bool = sqlx::query_scalar(BUDGET_SPEND_STANDS)
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?;
    if stands {
        return Ok(Spent::Duplicate);
    }
    sqlx::query(FORGET_REVERTED_SPEND)
        .bind(&key)
        .execute(&mut *conn)
        .await?;
    for (l, amount, limit) in takes(lines, amount, counted) {
        sqlx::query(OPEN_BUDGET_PERIOD)
            .bind(&l.scope)
            .bind(&l.period)
            .bind(&l.period_key)
            .execute(&mut *conn)
            .await?;
        let mut take = sqlx::query(if limit.is_some() {
            SPEND_UNDER
        } else {
            SPEND_BUDGET
        })
        .bind(&l.scope)
        .bind(&l.period)
        .bind(&l.period_key)
        .bind(amount);
        if let Some(limit) = limit {
            take = take.bind(limit);
        }
        let taken = take.execute(&mut *conn).await?.rows_affected();
        if taken == 0 {
            return Err(over_budget(&l));
        }
        let logged = sqlx::query(INSERT_BUDGET_LEDGER)
            .bind(&key)
            .bind(&l.scope)
            .bind(&l.period)
            .bind(&l.period_key)
            .bind(amount)
            .bind(now)
            .execute(&mut *conn)
            .await;
        if let Err(sqlx::Error::Database(e)) = &logged {
            if e.is_unique_violation() {
                // The same key won a race: this spend rolls back.
                return Ok(Spent::Duplicate);
            }
        }
        logged?;
    }
    if let Some(t) = &trail {
        if let (Some(order), Some(attempt)) = (&t.order_id, &t.attempt) {
            sqlx::query(NOTE_CHECKOUT_ATTEMPT)
                .bind(order)
                .bind(attempt)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        pg_trail(
            conn,
            TrailEntry {
                at: now,
                kind: "reserved",
                promotion_type: "campaign",
                promotion_id: &t.campaign_id,
                subject: &key,
                user_id: t.user_id.as_deref(),
                order_id: t.order_id.as_deref(),
                amount: Some(amount),
            },
        )
        .await?;
    }
    Ok(Spent::New)
}

async fn pg_trail(
    conn: &mut sqlx::PgConnection,
    e: TrailEntry<'_>,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(INSERT_PROMOTION_EVENT)
        .bind(e.at)
        .bind(e.kind)
        .bind(e.promotion_type)
        .bind(e.promotion_id)
        .bind(e.subject)
        .bind(e.user_id)
        .bind(e.order_id)
        .bind(e.amount)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn pg_trail_reservation(
    tx: &mut Tx,
    id: &str,
    now: i64,
    kind: &str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(TRAIL_FLASH_RESERVATION)
        .bind(id)
        .bind(now)
        .bind(kind)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a seat taken in a group, and every member's purchase when that seat completed it.
async fn pg_trail_group_join(
    tx: &mut Tx,
    deal_id: &str,
    m: &GroupMemberRecord,
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    pg_trail(
        tx,
        TrailEntry {
            at: now,
            kind: "reserved",
            promotion_type: "group_buy",
            promotion_id: deal_id,
            subject: &m.group_id,
            user_id: Some(&m.user_id),
            order_id: Some(&m.order_id),
            amount: Some(m.price),
        },
    )
    .await?;
    sqlx::query(TRAIL_GROUP_MEMBERS)
        .bind(&m.group_id)
        .bind(now)
        .bind("redeemed")
        .bind("complete")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn pg_insert_member(
    tx: &mut Tx,
    m: &GroupMemberRecord,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(INSERT_GROUP_MEMBER)
        .bind(&m.group_id)
        .bind(&m.user_id)
        .bind(&m.order_id)
        .bind(m.price)
        .bind(i64::from(m.leader))
        .bind(m.joined_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
