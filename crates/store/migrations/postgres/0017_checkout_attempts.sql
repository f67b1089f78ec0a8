-- Checkout attempts not yet settled: an attempt is noted before it spends any campaign budget and
-- forgotten once an answer is kept for its order and its strays are given back. One still here
-- after the request could have timed out died (a kill, a dropped request): the sweeper gives back
-- its spends that the order's kept answer does not use, or all of them when none was kept.
CREATE TABLE checkout_attempts (
    order_id TEXT NOT NULL,
    attempt  TEXT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (order_id, attempt)
);
CREATE INDEX checkout_attempts_at ON checkout_attempts (at);
