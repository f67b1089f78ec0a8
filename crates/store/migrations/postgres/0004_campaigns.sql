-- Campaigns: a promotion with a schedule, a target segment, a budget and a state
-- (draft, scheduled, running, paused, ended). Every change, edits and transitions, is recorded.

CREATE TABLE campaigns (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    -- The promotion (rule, scope, stacking, priority, base, audience, code) as JSON.
    promotion  TEXT NOT NULL,
    starts_at  BIGINT,
    ends_at    BIGINT,
    segment    TEXT,
    budget     BIGINT,
    spent      BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE campaign_changes (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    version     BIGINT NOT NULL,
    change      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX campaign_changes_campaign ON campaign_changes (campaign_id, id);
