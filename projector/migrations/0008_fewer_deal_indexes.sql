-- Six indexes per deal instead of eight (issue 20): every deal write updates each of them, and
-- they were most of what a batch cost SQLite. Two pairs shared their leading columns:
-- - `deals_newest` (pages newest first) and `deals_created_outcome` (the charts by day) are one
--   index, scanned backwards for the pages, covering the charts' columns;
-- - `deals_live` (the count of live deals, the chart by stage) is folded into `deals_by_stage`,
--   which now covers `deleted` and `excluded` as well.
-- Ascending keys: both databases scan an index backwards for `ORDER BY … DESC`.
DROP INDEX deals_newest;
DROP INDEX deals_created_outcome;
DROP INDEX deals_live;
DROP INDEX deals_by_stage;
CREATE INDEX deals_newest ON deals (integration_id, created_at, order_id, deleted, excluded, outcome);
CREATE INDEX deals_by_stage ON deals (integration_id, status_code, created_at, order_id, deleted, excluded);
