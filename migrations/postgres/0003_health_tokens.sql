-- Read-only access tokens for the customer-facing health page: one per
-- customer, kept as a SHA-256 hash (the token is shown once, at creation).
CREATE TABLE health_tokens (
    customer_id BIGINT PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);
