-- A refund of an order checked out here gives back the share of each promotion's discount that
-- the refunded units carried: `returned` is what partial returns have given back of a budget
-- spend (a whole revert gives back the rest), and `refund_returns` records each refund once,
-- with the units it returned per order line, so later refunds start where it ended.

ALTER TABLE budget_ledger ADD COLUMN returned BIGINT NOT NULL DEFAULT 0;

CREATE TABLE refund_returns (
    order_id  TEXT NOT NULL,
    refund_id TEXT NOT NULL,
    lines     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (order_id, refund_id)
);
