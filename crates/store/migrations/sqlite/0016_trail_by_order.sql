-- The trail by order: a checkout finds the campaign spends every attempt of its order made
-- (attempts that died before their answer was kept included), to give back those its kept answer
-- does not use.
CREATE INDEX promotion_events_order ON promotion_events (order_id, id);
