-- What a deal is worth and what was in it (issue 16, DealUpserted v2): order type and method,
-- purchase and paid sums (decimal text), when it was paid in full (microseconds, UTC), and the
-- order lines (a JSON array). Rows written from v1 snapshots keep them unknown (NULL, no
-- lines), as a replay of those snapshots would; the next snapshot of the order fills them.
ALTER TABLE deals ADD COLUMN order_type TEXT;
ALTER TABLE deals ADD COLUMN order_method TEXT;
ALTER TABLE deals ADD COLUMN purchase_sum TEXT;
ALTER TABLE deals ADD COLUMN paid_sum TEXT;
ALTER TABLE deals ADD COLUMN paid_at BIGINT;
ALTER TABLE deals ADD COLUMN items TEXT;
