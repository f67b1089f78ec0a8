-- Flash sales (秒杀): stock that can only be taken by conditional writes, reservations that hold
-- units until they are confirmed or expire, and a per-user limit.

CREATE TABLE flash_sales (
    id             TEXT PRIMARY KEY,
    sku            TEXT NOT NULL,
    price          BIGINT NOT NULL,
    stock          BIGINT NOT NULL,
    -- Units held by live reservations plus confirmed ones: never above stock.
    taken          BIGINT NOT NULL DEFAULT 0,
    per_user_limit BIGINT NOT NULL,
    starts_at      BIGINT NOT NULL,
    ends_at        BIGINT NOT NULL,
    hold_ms        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE flash_sale_users (
    sale_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (sale_id, user_id)
);

-- state: reserved (until expires_at), confirmed, released.
CREATE TABLE flash_reservations (
    id         TEXT PRIMARY KEY,
    sale_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX flash_reservations_expiry ON flash_reservations (sale_id, state, expires_at);
