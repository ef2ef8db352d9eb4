-- Feeds, papers, and which feeds carried which paper.
-- Timestamps are RFC 3339 text in UTC written by paperboy (never SQL defaults), so they
-- compare correctly as text.

CREATE TABLE feeds (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT NOT NULL UNIQUE,
    url                  TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    etag                 TEXT,
    last_modified        TEXT,
    last_attempt_at      TEXT,
    last_success_at      TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL
);

CREATE TABLE papers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    key            TEXT NOT NULL UNIQUE,
    arxiv_id       TEXT,
    version        INTEGER,
    doi            TEXT,
    title          TEXT NOT NULL,
    abstract       TEXT NOT NULL,
    authors        TEXT NOT NULL,  -- JSON array of names
    categories     TEXT NOT NULL,  -- JSON array of category codes
    abs_url        TEXT,
    pdf_url        TEXT,
    discussion_url TEXT,
    thumbnail_url  TEXT,
    published_at   TEXT,
    upvotes        INTEGER,
    comments       INTEGER,
    -- When paperboy first stored the paper: digest windows are cut on this.
    first_seen_at  TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX papers_first_seen ON papers (first_seen_at, id);
CREATE INDEX papers_doi ON papers (doi) WHERE doi IS NOT NULL;
CREATE INDEX papers_arxiv ON papers (arxiv_id) WHERE arxiv_id IS NOT NULL;

CREATE TABLE paper_sources (
    paper_id      INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    feed_id       INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    entry_id      TEXT NOT NULL,
    version       INTEGER,
    announce_type TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (paper_id, feed_id)
);
CREATE INDEX paper_sources_feed ON paper_sources (feed_id);

-- Instance-wide values kept with the data (the generated token secret, later).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
