-- A worker claims the oldest due deliveries of each status in (next_attempt_at, id)
-- order; with id in the index that order is read straight from it, without sorting the
-- whole queue at every claim.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at, id);
