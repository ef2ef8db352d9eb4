-- Feeds, papers, and which feeds carried which paper.

CREATE TABLE feeds (
    id                   BIGSERIAL PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    url                  TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    etag                 TEXT,
    last_modified        TEXT,
    last_attempt_at      TIMESTAMPTZ,
    last_success_at      TIMESTAMPTZ,
    last_error           TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE papers (
    id             BIGSERIAL PRIMARY KEY,
    key            TEXT NOT NULL UNIQUE,
    arxiv_id       TEXT,
    version        BIGINT,
    doi            TEXT,
    title          TEXT NOT NULL,
    abstract       TEXT NOT NULL,
    authors        TEXT NOT NULL,  -- JSON array of names
    categories     TEXT NOT NULL,  -- JSON array of category codes
    abs_url        TEXT,
    pdf_url        TEXT,
    discussion_url TEXT,
    thumbnail_url  TEXT,
    published_at   TIMESTAMPTZ,
    upvotes        BIGINT,
    comments       BIGINT,
    -- When paperboy first stored the paper: digest windows are cut on this.
    first_seen_at  TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX papers_first_seen ON papers (first_seen_at, id);
CREATE INDEX papers_doi ON papers (doi) WHERE doi IS NOT NULL;
CREATE INDEX papers_arxiv ON papers (arxiv_id) WHERE arxiv_id IS NOT NULL;

CREATE TABLE paper_sources (
    paper_id      BIGINT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    feed_id       BIGINT NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    entry_id      TEXT NOT NULL,
    version       BIGINT,
    announce_type TEXT,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (paper_id, feed_id)
);
CREATE INDEX paper_sources_feed ON paper_sources (feed_id);

-- Instance-wide values kept with the data (the generated token secret, later).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
