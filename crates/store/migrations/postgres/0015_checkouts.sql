-- Each checkout's answer by its order id, so that a retried checkout gets the answer the first
-- one got instead of pricing again against campaigns and budgets that may have changed since
-- (which could leave a campaign's spend behind for an order that no longer uses it).
-- `request_hash` tells a retry from a different request sent under the same order id.
CREATE TABLE checkouts (
    order_id     TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    at           BIGINT NOT NULL
);
