-- Red-packet rain (红包雨): a schedule of rounds, each a lucky packet that opens at its start
-- (no claim before opens_at) and expires at its end, returning what nobody claimed. A round
-- names its rain, so a rain's rounds are read in order and a claim finds the round that is on.

ALTER TABLE red_packets ADD COLUMN opens_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE red_packets ADD COLUMN rain_id TEXT;
CREATE INDEX red_packets_rain ON red_packets (rain_id, opens_at);
