-- Stage timelines in RetailCRM's own order (issue 14): RetailCRM times have one-second
-- resolution, so entries of the same instant are ordered by the `orders/history` record id
-- that reported them (when one did) and then by when a snapshot first reported them, never by
-- the stage code. Rows written before this migration have neither (a replay fills them).
ALTER TABLE stage_history ADD COLUMN history_id BIGINT;
ALTER TABLE stage_history ADD COLUMN observed_at BIGINT;
