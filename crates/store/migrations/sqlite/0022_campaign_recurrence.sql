-- A campaign may recur (会员日 every Wednesday, 每晚8点到10点): when it applies inside its window,
-- in the shop's local time, as JSON (weekdays, days_of_month, from, to); none for all the time.

ALTER TABLE campaigns ADD COLUMN recurrence TEXT;
