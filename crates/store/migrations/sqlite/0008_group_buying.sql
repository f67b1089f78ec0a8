-- Group buying (拼团): a deal sets the group size, the leader's and members' prices, and how
-- long a group has to fill. A group fills by a conditional increment of `joined`; when its
-- deadline passes unfilled, it fails and every member is marked refunded, in one transaction.

CREATE TABLE group_deals (
    id           TEXT PRIMARY KEY,
    sku          TEXT NOT NULL,
    group_size   BIGINT NOT NULL,
    leader_price BIGINT NOT NULL,
    member_price BIGINT NOT NULL,
    window_ms    BIGINT NOT NULL,
    starts_at    BIGINT NOT NULL,
    ends_at      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- state: open, complete (full), failed (deadline passed; members refunded).
CREATE TABLE group_buys (
    id         TEXT PRIMARY KEY,
    deal_id    TEXT NOT NULL,
    leader     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    joined     BIGINT NOT NULL,
    state      TEXT NOT NULL,
    deadline   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX group_buys_deadline ON group_buys (state, deadline);

-- state: joined, refunded. The order id is the caller's idempotency key.
CREATE TABLE group_members (
    group_id  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    order_id  TEXT NOT NULL UNIQUE,
    price     BIGINT NOT NULL,
    leader    BIGINT NOT NULL,
    state     TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
