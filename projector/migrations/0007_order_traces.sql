-- Order traces as one row per order (issue 20): `entries` is a JSON array of
-- [at, key, kind, source, detail], oldest first, the newest 200 kept (projector/src/store/traces.rs).
-- The rows of `deal_trace` are moved here and that table dropped by the projector at start
-- (portable SQL cannot build the JSON on both databases): `apply::trace::move_entry_rows`.
CREATE TABLE order_traces (
    integration_id TEXT NOT NULL,
    order_id BIGINT NOT NULL,
    entries TEXT NOT NULL,
    PRIMARY KEY (integration_id, order_id)
);
