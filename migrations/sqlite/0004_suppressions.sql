-- Addresses that must not be mailed again, kept only as a hash: what remains of a reader
-- after `paperboy subscribers erase`.
CREATE TABLE suppressions (
    -- Hex SHA-256 of the address folded to lower case.
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
