-- Several instances on one state DB (issue 7): who is alive and what it is
-- doing, operator commands for customers another process runs, and which
-- process ran each run; alerts sent once across the instances.

-- One row per running process. Workers and attached consoles write their
-- heartbeat every few seconds; a worker's `figures` carries the live
-- snapshots of the customers it runs (JSON), read by consoles elsewhere.
CREATE TABLE instances (
    owner        TEXT PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('worker', 'attached')),
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    figures      TEXT NOT NULL DEFAULT '[]'
);

-- Operator commands carried out by the process holding the customer's
-- lease: pending -> running (claimed once) -> done | failed; pending
-- commands nobody claims in time become expired.
CREATE TABLE commands (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer    TEXT NOT NULL,
    command     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'expired')),
    claimed_by  TEXT,
    result      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    claimed_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX commands_pending ON commands (status, customer);

ALTER TABLE runs ADD COLUMN owner TEXT;

-- Alerts sent, by customer and kind: every instance watches every customer,
-- and the first to claim a transition here sends it; nobody sends it again
-- within the cool-down.
CREATE TABLE alerts_sent (
    customer TEXT NOT NULL,
    kind     TEXT NOT NULL,
    sent_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer, kind)
);
