-- Deletions found by a full scan that tripped the mass-deletion guard: they
-- wait here, by run, until an operator confirms or dismisses the run.
CREATE TABLE pending_deletions (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    customer_id  INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    vomo_user_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, vomo_user_id)
);
