-- A paper fetched only because a reader said they like it (an arXiv id of their list that
-- no feed had carried) is stored unlisted: it is no one's new paper, so digest windows
-- leave it out. A feed that carries it later lists it.
ALTER TABLE papers ADD COLUMN listed BOOLEAN NOT NULL DEFAULT TRUE;
