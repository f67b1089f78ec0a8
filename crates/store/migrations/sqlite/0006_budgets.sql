-- Budgets and limits: a limit per scope (campaign:…, coupon:…, customer:…, device:…, store:…) and
-- period kind (total, day, week, month); usage per period; and a ledger keyed by the caller's
-- idempotency key so a retried spend or revert counts once.

CREATE TABLE budget_limits (
    scope  TEXT NOT NULL,
    period TEXT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (scope, period)
);

CREATE TABLE budget_usage (
    scope      TEXT NOT NULL,
    period     TEXT NOT NULL,
    period_key TEXT NOT NULL,
    used       BIGINT NOT NULL,
    PRIMARY KEY (scope, period, period_key)
);

CREATE TABLE budget_ledger (
    key      TEXT NOT NULL,
    scope    TEXT NOT NULL,
    period   TEXT NOT NULL,
    period_key TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    reverted BIGINT NOT NULL DEFAULT 0,
    at       BIGINT NOT NULL,
    PRIMARY KEY (key, scope, period)
);
