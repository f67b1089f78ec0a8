-- Red packets (红包): the shares are drawn when the packet is made and stored; a claim takes the
-- next share by a conditional increment of claimed_count, so concurrent claims need no lock
-- beyond the packet's row. Expiry returns what nobody claimed, once.

CREATE TABLE red_packets (
    id             TEXT PRIMARY KEY,
    sender         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    total          BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    shares         BIGINT NOT NULL,
    claimed_count  BIGINT NOT NULL DEFAULT 0,
    claimed_amount BIGINT NOT NULL DEFAULT 0,
    -- open, finished (every share claimed), expired (the remainder returned).
    state          TEXT NOT NULL,
    returned       BIGINT NOT NULL DEFAULT 0,
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX red_packets_expiry ON red_packets (state, expires_at);

CREATE TABLE red_packet_shares (
    packet_id  TEXT NOT NULL,
    position   BIGINT NOT NULL,
    amount     BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_at BIGINT,
    PRIMARY KEY (packet_id, position)
);
-- One share per claimant and packet (unclaimed shares have no claimant).
CREATE UNIQUE INDEX red_packet_claimants ON red_packet_shares (packet_id, claimed_by);
