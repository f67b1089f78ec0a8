-- Share-to-unlock red packets (分享解锁): a packet made with unlock_helpers > 0 starts 'locked'
-- and opens for claims once that many different helpers (never the sender) have helped. A help is
-- one row per (packet, helper), counted by a conditional increment that only a locked, unexpired
-- packet takes, so concurrent helps open it exactly once and never count past the threshold.

ALTER TABLE red_packets ADD COLUMN unlock_helpers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE red_packets ADD COLUMN helpers BIGINT NOT NULL DEFAULT 0;

CREATE TABLE red_packet_helps (
    packet_id TEXT NOT NULL,
    helper    TEXT NOT NULL,
    helped_at BIGINT NOT NULL,
    PRIMARY KEY (packet_id, helper)
);
