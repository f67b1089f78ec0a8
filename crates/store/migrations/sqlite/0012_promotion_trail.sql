-- One trail for every promotion: what was issued, claimed, reserved, redeemed, rolled back or
-- expired, for whom, on which order and for how much. Each row is written in the transaction of
-- the change it records; analytics and profiles read it. It replaces the coupons' own trail.
-- `tx` orders the feed on PostgreSQL (the writing transaction); here one writer commits in id
-- order, so it stays 0.
CREATE TABLE promotion_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tx             BIGINT NOT NULL DEFAULT 0,
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    promotion_type TEXT NOT NULL,
    promotion_id   TEXT NOT NULL,
    subject        TEXT NOT NULL,
    user_id        TEXT,
    order_id       TEXT,
    amount         BIGINT
);
INSERT INTO promotion_events (at, kind, promotion_type, promotion_id, subject, user_id, order_id)
SELECT at,
       CASE kind WHEN 'hold_lapsed' THEN 'expired' WHEN 'released' THEN 'rolled_back' ELSE kind END,
       'coupon', template_id, code, user_id, order_id
FROM coupon_events ORDER BY id;
DROP TABLE coupon_events;
CREATE INDEX promotion_events_user ON promotion_events (user_id, id);
CREATE INDEX promotion_events_promotion ON promotion_events (promotion_type, promotion_id, id);
CREATE INDEX promotion_events_subject ON promotion_events (subject, id);
