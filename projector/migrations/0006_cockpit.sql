-- The operator's cockpit (issue 19): what happened to each order, what could not be processed,
-- and how far each integration's synchronisation is. All three are projections of topics, so a
-- replay rebuilds them.

-- The newest state the enricher reported per integration on `sync-state` (GET …/sync), as the
-- event's JSON; `updated_at` keeps the newest whatever the delivery order.
CREATE TABLE sync_states (
    integration_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Each order's sync log (GET …/deals/{order_id}/trace and the deal page), one row per thing
-- that happened to it. `entry_key` (the event's id and the entry's kind, or the dead letter's
-- id) makes an entry once whatever the redeliveries; it also orders entries of one instant.
CREATE TABLE deal_trace (
    integration_id TEXT NOT NULL,
    order_id BIGINT NOT NULL,
    entry_key TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (integration_id, order_id, entry_key)
);
CREATE INDEX deal_trace_at ON deal_trace (integration_id, order_id, at);

-- What could not be processed, per integration (GET …/dead-letters): a projection of the
-- dead-letter topic, one row per letter whatever the copies. `resolved_at` is set once a
-- later snapshot or deletion of the same order has been applied: the order got through.
CREATE TABLE dead_letters (
    integration_id TEXT NOT NULL,
    letter_id TEXT NOT NULL,
    order_id BIGINT,
    stage TEXT NOT NULL,
    error TEXT NOT NULL,
    at BIGINT NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (integration_id, letter_id)
);
CREATE INDEX dead_letters_open ON dead_letters (integration_id, resolved_at, at);

-- The deals page's charts count from indexes alone: deals per current stage (this one also
-- serves `deals_count`, as its prefix) and deals created per day by outcome.
DROP INDEX deals_live;
CREATE INDEX deals_live ON deals (integration_id, deleted, excluded, status_code);
CREATE INDEX deals_created_outcome ON deals (integration_id, created_at, deleted, excluded, outcome);
