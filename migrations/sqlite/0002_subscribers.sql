-- Readers, the links that confirm them, and the record of their consent.

CREATE TABLE subscribers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT NOT NULL,
    -- The address folded to lower case: one reader per mailbox whatever the spelling.
    email_key       TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'active', 'paused', 'unsubscribed', 'bounced')),
    -- One query per line, as the reader typed them (each parsed before it was stored).
    queries         TEXT NOT NULL DEFAULT '',
    -- daily | weekdays | weekly:mon … weekly:sun
    frequency       TEXT NOT NULL,
    send_hour       INTEGER NOT NULL CHECK (send_hour BETWEEN 0 AND 23),
    timezone        TEXT NOT NULL,
    max_papers      INTEGER NOT NULL CHECK (max_papers BETWEEN 1 AND 100),
    -- Random, mixed into every signed link, so links die with the reader.
    link_key        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    -- When the last confirmation or "manage" email went out: at most one per 10 minutes.
    link_sent_at    TEXT,
    confirmed_at    TEXT,
    unsubscribed_at TEXT
);

-- Confirmation links: only the SHA-256 of the token is kept. Each carries the settings
-- asked for with it, which take effect when it is used, so nobody can change what a
-- reader is about to confirm.
CREATE TABLE confirmation_tokens (
    token_hash    TEXT PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT,
    queries       TEXT NOT NULL,
    frequency     TEXT NOT NULL,
    send_hour     INTEGER NOT NULL,
    timezone      TEXT NOT NULL,
    max_papers    INTEGER NOT NULL
);
CREATE INDEX confirmation_tokens_subscriber ON confirmation_tokens (subscriber_id);

-- What the reader agreed to, when, and from where: one row per request and confirmation.
CREATE TABLE consents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    event         TEXT NOT NULL CHECK (event IN ('requested', 'confirmed')),
    at            TEXT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    form_version  TEXT NOT NULL,
    form_text     TEXT NOT NULL
);
CREATE INDEX consents_subscriber ON consents (subscriber_id);
