-- Bounces and complaints that came back for a delivery (a 5xx during the SMTP exchange,
-- a DSN or an ARF report read later), and the suppressions an operator lifted.

CREATE TABLE bounce_events (
    id            BIGSERIAL PRIMARY KEY,
    -- When the bounce was received (the report's date, else when it was read).
    at            TIMESTAMPTZ NOT NULL,
    delivery_id   BIGINT REFERENCES deliveries (id) ON DELETE SET NULL,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
    -- The enhanced status code (RFC 3463), e.g. 5.1.1, when the report gave one.
    status        TEXT,
    diagnostic    TEXT,
    -- smtp (refused while sending), dsn, arf, or verp (a bounce that is neither).
    source        TEXT NOT NULL,
    -- The report's Message-ID (or a hash of it): reading the same mailbox twice records
    -- each report once.
    report_key    TEXT UNIQUE,
    recorded_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, at);
CREATE INDEX bounce_events_at ON bounce_events (at);
CREATE INDEX bounce_events_delivery ON bounce_events (delivery_id);

CREATE TABLE suppression_lifts (
    id            BIGSERIAL PRIMARY KEY,
    subscriber_id BIGINT REFERENCES subscribers (id) ON DELETE CASCADE,
    at            TIMESTAMPTZ NOT NULL,
    -- What was lifted: bounced (the reader's status) and/or a suppression list entry.
    lifted        TEXT NOT NULL,
    lifted_by     TEXT NOT NULL,
    reason        TEXT NOT NULL
);
CREATE INDEX suppression_lifts_subscriber ON suppression_lifts (subscriber_id);

-- Tokens of signed provider webhooks already taken, so a replayed call changes nothing.
CREATE TABLE webhook_tokens (
    provider TEXT NOT NULL,
    token    TEXT NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, token)
);
