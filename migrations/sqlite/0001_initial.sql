-- The partner state DB (SQLite dialect). Timestamps are sqlx chrono values
-- (RFC 3339 text); ids are INTEGER PRIMARY KEY rowids.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE customers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('onboarding', 'backfilling', 'active', 'paused', 'token_rejected', 'offboarded')),
    status_reason TEXT,
    vomo_url      TEXT NOT NULL,
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    offboarded_at TEXT
);

CREATE TABLE tokens (
    customer_id  INTEGER PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    ciphertext   BLOB NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('valid', 'rejected', 'forbidden', 'unchecked')),
    validated_at TEXT,
    created_at   TEXT NOT NULL
);

CREATE TABLE destinations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL,
    secret      BLOB,
    created_at  TEXT NOT NULL,
    UNIQUE (customer_id, name)
);

CREATE TABLE checkpoints (
    customer_id   INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    stream        TEXT NOT NULL,
    watermark     TEXT NOT NULL,
    window_from   TEXT,
    window_to     TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (customer_id, stream)
);

CREATE TABLE mappings (
    customer_id     INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    vomo_user_id    INTEGER NOT NULL,
    email           TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    vomo_updated_at TEXT NOT NULL,
    external_ids    TEXT NOT NULL DEFAULT '{}',
    first_synced_at TEXT NOT NULL,
    last_synced_at  TEXT NOT NULL,
    deleted_at      TEXT,
    PRIMARY KEY (customer_id, vomo_user_id)
) WITHOUT ROWID;
CREATE INDEX mappings_email ON mappings (customer_id, email);

CREATE TABLE dlq (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id   INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    vomo_user_id  INTEGER NOT NULL,
    destination   TEXT NOT NULL,
    change_kind   TEXT NOT NULL,
    payload       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    vomo_updated_at TEXT NOT NULL,
    class         TEXT NOT NULL CHECK (class IN ('retryable', 'permanent')),
    message       TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 1,
    next_retry_at TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'resolved', 'superseded', 'discarded')),
    note          TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX dlq_pending ON dlq (customer_id, status, next_retry_at);
CREATE INDEX dlq_user ON dlq (customer_id, vomo_user_id, destination);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id   INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    outcome       TEXT NOT NULL,
    counts        TEXT NOT NULL DEFAULT '{}',
    requests_used INTEGER NOT NULL DEFAULT 0,
    message       TEXT
);
CREATE INDEX runs_customer ON runs (customer_id, kind, started_at);

-- No foreign key: the audit log outlives a purged customer.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    customer TEXT,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    result   TEXT NOT NULL
);
CREATE INDEX audit_customer ON audit_log (customer, at);

CREATE TABLE leases (
    customer_id  INTEGER PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    owner        TEXT,
    acquired_at  TEXT,
    heartbeat_at TEXT,
    expires_at   TEXT NOT NULL
);
