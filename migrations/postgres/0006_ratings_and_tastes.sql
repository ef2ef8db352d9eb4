-- What a reader teaches paperboy: "more / less like this" ratings, the taste learned from
-- them, and the digest settings that go with it.

-- One rating per reader and paper; rating it again replaces the old one.
CREATE TABLE ratings (
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    paper_id      BIGINT NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    -- true: more like this; false: less like this.
    more          BOOLEAN NOT NULL,
    -- Where it came from: a digest's page, the preferences page, an operator, an import.
    source        TEXT NOT NULL CHECK (source IN ('digest', 'preferences', 'operator', 'import')),
    rated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscriber_id, paper_id)
);
CREATE INDEX ratings_paper ON ratings (paper_id);

-- Each rated reader's learned taste, rebuilt from their ratings whenever one arrives, so a
-- digest run reads one row per reader instead of every rated paper.
CREATE TABLE tastes (
    subscriber_id BIGINT PRIMARY KEY REFERENCES subscribers (id) ON DELETE CASCADE,
    -- The model in the compact text form of matching::taste::Taste.
    model         TEXT NOT NULL,
    -- How many "more" ratings it was learned from.
    more          INTEGER NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- "Group by query" renders the email as one section per query; "suggestions" adds the
-- "You might also like" papers the taste finds outside the reader's queries.
ALTER TABLE subscribers ADD COLUMN group_by_query BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE subscribers ADD COLUMN suggestions BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE confirmation_tokens ADD COLUMN group_by_query BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE confirmation_tokens ADD COLUMN suggestions BOOLEAN NOT NULL DEFAULT TRUE;

-- A digest's suggestions follow its matches, flagged, and never count among them.
ALTER TABLE digest_papers ADD COLUMN suggested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX digest_papers_suggested ON digest_papers (digest_id) WHERE suggested;

-- How many papers of the window each of the reader's queries matched (JSON: a list of
-- [query, count] in the reader's order), for the email grouped by query.
ALTER TABLE digests ADD COLUMN per_query TEXT NOT NULL DEFAULT '[]';
