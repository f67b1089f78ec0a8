-- How many orders one customer may get a campaign's discount on (每人限享 N 次); none for no
-- limit. Each use is counted in the budget ledger under campaign:ID:customer:USER, with the
-- campaign's spend, so a cancelled order gives its use back with its money.

ALTER TABLE campaigns ADD COLUMN per_customer_limit BIGINT;
