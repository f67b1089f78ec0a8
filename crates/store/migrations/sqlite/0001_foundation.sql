-- Customers, catalogue, orders, events, identity links and API keys.
-- Money is BIGINT minor units; times are BIGINT UTC epoch milliseconds; ids are TEXT.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    phone_enc            BLOB,
    phone_hash           BLOB,
    email_enc            BLOB,
    email_hash           BLOB,
    name_enc             BLOB,
    gender               TEXT,
    birthday             TEXT,
    city                 TEXT,
    city_tier            TEXT,
    registration_channel TEXT,
    registered_at        BIGINT,
    attributes           TEXT NOT NULL DEFAULT '{}',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    erased_at            BIGINT
);
CREATE INDEX users_phone_hash ON users (phone_hash) WHERE phone_hash IS NOT NULL;
CREATE INDEX users_email_hash ON users (email_hash) WHERE email_hash IS NOT NULL;

CREATE TABLE products (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    category_path TEXT NOT NULL DEFAULT '',
    brand         TEXT,
    spu_id        TEXT,
    price         BIGINT NOT NULL,
    cost          BIGINT,
    currency      TEXT NOT NULL,
    stock         BIGINT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    updated_at    BIGINT NOT NULL
);
CREATE INDEX products_category ON products (category_path);

CREATE TABLE stores (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    city       TEXT,
    city_tier  TEXT,
    address    TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE orders (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    user_id           TEXT,
    device_id         TEXT,
    store_id          TEXT,
    channel           TEXT NOT NULL,
    currency          TEXT NOT NULL,
    placed_at         BIGINT NOT NULL,
    shipping_fee      BIGINT NOT NULL DEFAULT 0,
    discount_total    BIGINT NOT NULL DEFAULT 0,
    total             BIGINT NOT NULL,
    line_count        BIGINT NOT NULL,
    coupon_codes      TEXT NOT NULL DEFAULT '[]',
    original_order_id TEXT,
    refunded_amount   BIGINT NOT NULL DEFAULT 0,
    source            TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, placed_at) WHERE user_id IS NOT NULL;
CREATE INDEX orders_device ON orders (device_id, placed_at) WHERE device_id IS NOT NULL;
CREATE INDEX orders_placed ON orders (placed_at);

-- line_no is the position in the order (API), or for an imported line a digest of the line's
-- content, so that an exact duplicate line is stored once; source_line is its line in the file.
CREATE TABLE order_lines (
    order_id          TEXT NOT NULL,
    line_no           BIGINT NOT NULL,
    sku_id            TEXT NOT NULL,
    title             TEXT,
    quantity          BIGINT NOT NULL,
    unit_price        BIGINT NOT NULL,
    discount          BIGINT NOT NULL DEFAULT 0,
    amount            BIGINT NOT NULL,
    refunded_quantity BIGINT NOT NULL DEFAULT 0,
    refunded_amount   BIGINT NOT NULL DEFAULT 0,
    source_line       BIGINT,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

CREATE TABLE refunds (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    lines       TEXT NOT NULL,
    reason      TEXT,
    refunded_at BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    time        BIGINT NOT NULL,
    user_id     TEXT,
    device_id   TEXT,
    channel     TEXT NOT NULL,
    sku_id      TEXT,
    store_id    TEXT,
    order_id    TEXT,
    query       TEXT,
    text        TEXT,
    rating      INTEGER,
    properties  TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX events_user_time ON events (user_id, time) WHERE user_id IS NOT NULL;
CREATE INDEX events_device_time ON events (device_id, time) WHERE device_id IS NOT NULL;

-- ID-Mapping. kind 'device': an anonymous device that logged in as target_user_id;
-- kind 'user': a user merged into target_user_id (same phone, or by hand). Undo sets undone_at.
CREATE TABLE identity_links (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    undone_at      BIGINT
);
CREATE UNIQUE INDEX identity_links_active ON identity_links (kind, source_id) WHERE undone_at IS NULL;
CREATE INDEX identity_links_target ON identity_links (target_user_id) WHERE undone_at IS NULL;
CREATE INDEX identity_links_source ON identity_links (kind, source_id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
