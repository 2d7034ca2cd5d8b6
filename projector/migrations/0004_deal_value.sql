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
-- The margin with and without delivery (decimal text, computed from the facts when stored), so
-- the `margin` revenue re-derives every deal in one statement; NULL in rows stored before,
-- whose purchase sum is unknown (the total then).
ALTER TABLE deals ADD COLUMN margin_sum TEXT;
ALTER TABLE deals ADD COLUMN margin_net_sum TEXT;
-- What `amount` counts (DESIGN §5 "Revenue"): total, margin or paid.
ALTER TABLE integrations ADD COLUMN revenue TEXT NOT NULL DEFAULT 'total';
