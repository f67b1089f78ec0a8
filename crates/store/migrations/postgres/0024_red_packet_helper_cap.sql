-- Anti-abuse for share-to-unlock (刷助力): a packet may cap how many share packets one helper may
-- help in a shop-local day. Helps are counted in the budget ledger under helper:USER (period day),
-- in the help's own transaction, so a refused help leaves no count and no help behind.

ALTER TABLE red_packets ADD COLUMN helps_per_helper_per_day BIGINT;
