-- A feed that was read only by repairing or assuming something (a bare `&` escaped, an
-- undeclared encoding guessed, dates without a zone read as UTC) is degraded: its papers
-- are stored, and what was repaired or assumed is kept here until a fetch needs none.
ALTER TABLE feeds ADD COLUMN last_warning TEXT;
