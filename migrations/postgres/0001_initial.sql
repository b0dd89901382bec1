-- The partner state DB (PostgreSQL dialect). Timestamps are TIMESTAMPTZ;
-- ids are identity columns.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE customers (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('onboarding', 'backfilling', 'active', 'paused', 'token_rejected', 'offboarded')),
    status_reason TEXT,
    vomo_url      TEXT NOT NULL,
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    offboarded_at TIMESTAMPTZ
);

CREATE TABLE tokens (
    customer_id  BIGINT PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    ciphertext   BYTEA NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('valid', 'rejected', 'forbidden', 'unchecked')),
    validated_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE destinations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL,
    secret      BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (customer_id, name)
);

CREATE TABLE checkpoints (
    customer_id   BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    stream        TEXT NOT NULL,
    watermark     TIMESTAMPTZ NOT NULL,
    window_from   TIMESTAMPTZ,
    window_to     TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, stream)
);

CREATE TABLE mappings (
    customer_id     BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    vomo_user_id    BIGINT NOT NULL,
    email           TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    vomo_updated_at TIMESTAMPTZ NOT NULL,
    external_ids    TEXT NOT NULL DEFAULT '{}',
    first_synced_at TIMESTAMPTZ NOT NULL,
    last_synced_at  TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    PRIMARY KEY (customer_id, vomo_user_id)
);
CREATE INDEX mappings_email ON mappings (customer_id, email);

CREATE TABLE dlq (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    vomo_user_id  BIGINT NOT NULL,
    destination   TEXT NOT NULL,
    change_kind   TEXT NOT NULL,
    payload       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    vomo_updated_at TIMESTAMPTZ NOT NULL,
    class         TEXT NOT NULL CHECK (class IN ('retryable', 'permanent')),
    message       TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 1,
    next_retry_at TIMESTAMPTZ,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'resolved', 'superseded', 'discarded')),
    note          TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX dlq_pending ON dlq (customer_id, status, next_retry_at);
CREATE INDEX dlq_user ON dlq (customer_id, vomo_user_id, destination);

CREATE TABLE runs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT NOT NULL,
    counts        TEXT NOT NULL DEFAULT '{}',
    requests_used BIGINT NOT NULL DEFAULT 0,
    message       TEXT
);
CREATE INDEX runs_customer ON runs (customer_id, kind, started_at);

-- No foreign key: the audit log outlives a purged customer.
CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    actor    TEXT NOT NULL,
    customer TEXT,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    result   TEXT NOT NULL
);
CREATE INDEX audit_customer ON audit_log (customer, at);

CREATE TABLE leases (
    customer_id  BIGINT PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    owner        TEXT,
    acquired_at  TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ NOT NULL
);
