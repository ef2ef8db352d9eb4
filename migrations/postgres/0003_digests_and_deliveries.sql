-- Digests (one per reader per window), the papers each holds, and the deliveries that
-- carry them: the outbox, written before anything is sent.

-- Papers are numbered in the order they were committed (one writer at a time), so a
-- reader's windows are cut on paper ids: every paper above the cursor is new to them.
ALTER TABLE subscribers ADD COLUMN paper_cursor BIGINT NOT NULL DEFAULT 0;
-- When the reader's last window ended (the instant their last digest was composed for).
ALTER TABLE subscribers ADD COLUMN last_window_end TIMESTAMPTZ;

CREATE TABLE digests (
    id            BIGSERIAL PRIMARY KEY,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    -- The window: papers with papers_after < id <= papers_upto.
    papers_after BIGINT NOT NULL,
    papers_upto BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('composed', 'skipped')),
    -- Every match (the archive page shows them all) and how many the email lists.
    total         INTEGER NOT NULL,
    shown         INTEGER NOT NULL,
    trending      BOOLEAN NOT NULL,
    -- Random, mixed into the signed link of the archive page.
    archive_key   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- At most one digest per reader per window, whoever composes it (windows end at
    -- increasing instants; see the compare-and-set in the store).
    UNIQUE (subscriber_id, window_end)
);
CREATE INDEX digests_window_end ON digests (window_end);

CREATE TABLE digest_papers (
    digest_id BIGINT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    rank        INTEGER NOT NULL,
    paper_id BIGINT NOT NULL REFERENCES papers (id),
    score       DOUBLE PRECISION NOT NULL,
    -- JSON: the matched queries and fields, and the spans to highlight.
    explanation TEXT NOT NULL,
    PRIMARY KEY (digest_id, rank)
);

CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    digest_id BIGINT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- Fixed when the row is written, so a retry (or a resend after a crash) carries the
    -- same Message-ID.
    message_id      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN
                    ('queued', 'sending', 'sent', 'retry', 'failed', 'bounced', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- While sending: who holds it and until when; an expired lease is claimed again.
    lease_owner     TEXT,
    lease_until TIMESTAMPTZ,
    last_error      TEXT,
    -- The relay's reply to the accepted message, or the file it was written to.
    reply           TEXT,
    -- A resend: the delivery it repeats.
    resend_of       BIGINT REFERENCES deliveries (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_digest ON deliveries (digest_id);
