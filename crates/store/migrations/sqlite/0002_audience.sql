-- Custom tags (each change a new version), users' current tags and their history, saved
-- segments and their daily snapshots.

CREATE TABLE tag_definitions (
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    rule        TEXT NOT NULL,
    weight      DOUBLE PRECISION NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (name, version)
);

-- The tags each user carries now, as last recorded; tag_history says how they got there.
CREATE TABLE user_tags (
    user_id TEXT NOT NULL,
    tag     TEXT NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (user_id, tag)
);

CREATE TABLE tag_history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    tag     TEXT NOT NULL,
    version BIGINT,
    change  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX tag_history_user ON tag_history (user_id, id);

CREATE TABLE segments (
    name        TEXT PRIMARY KEY,
    expr        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- One row per segment and shop-local day; members is the gzip of the sorted member ids, one per
-- line, kept to tell exactly who entered and left by the next snapshot.
CREATE TABLE segment_snapshots (
    segment    TEXT NOT NULL,
    day        TEXT NOT NULL,
    taken_at   BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    entered    BIGINT NOT NULL,
    left_count BIGINT NOT NULL,
    members    BLOB NOT NULL,
    PRIMARY KEY (segment, day)
);
