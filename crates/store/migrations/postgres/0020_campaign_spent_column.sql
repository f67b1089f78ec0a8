-- A campaign's spend is what its budget scope (campaign:ID, period total) has used: the budget
-- ledger is the one record of it, and every read of a campaign's spend joins it. The column
-- campaigns.spent was never written; it goes, so nothing can read a stale zero from it.

ALTER TABLE campaigns DROP COLUMN spent;
