-- Coupons: templates with a total quota and a per-user limit, the coupons claimed from them, and
-- the trail of what happened to each. Every limit is enforced by a conditional write.

CREATE TABLE coupon_templates (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    -- The discount rule (fixed, percent with cap, threshold, exchange) as JSON.
    rule           TEXT NOT NULL,
    quota          BIGINT,
    issued         BIGINT NOT NULL DEFAULT 0,
    per_user_limit BIGINT NOT NULL DEFAULT 1,
    -- Absolute validity, or valid_days after the claim.
    valid_from     BIGINT,
    valid_until    BIGINT,
    valid_days     BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE coupon_claims_per_user (
    template_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    claimed     BIGINT NOT NULL,
    PRIMARY KEY (template_id, user_id)
);

-- state: claimed, reserved (for order_id until reserved_until), redeemed (by order_id).
CREATE TABLE coupons (
    code           TEXT PRIMARY KEY,
    template_id    TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    claim_key      TEXT NOT NULL,
    claimed_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    state          TEXT NOT NULL,
    order_id       TEXT,
    reserved_until BIGINT,
    redeemed_at    BIGINT,
    UNIQUE (template_id, claim_key)
);
CREATE INDEX coupons_user ON coupons (user_id);

CREATE TABLE coupon_events (
    id          BIGSERIAL PRIMARY KEY,
    code        TEXT NOT NULL,
    template_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX coupon_events_code ON coupon_events (code, id);
