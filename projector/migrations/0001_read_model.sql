-- The read model (DESIGN §4, §5). One schema for PostgreSQL and SQLite: only TEXT and BIGINT
-- columns, so the same statements run on both. Times are microseconds since the Unix epoch
-- (UTC), money is a decimal string, flags are 0/1, lists and maps are JSON text.
-- Everything here can be rebuilt from the topics (`dealflow replay`).

-- What the read model has applied: the next offset of every (topic, partition). Written in the
-- same transaction as the rows it produced, so a batch is either applied and recorded, or
-- neither; records below `next_offset` are skipped when the bus redelivers them.
CREATE TABLE applied_offsets (
    topic TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition_id)
);

-- The current settings of every integration (`IntegrationConfigured`, newest `updated_at`).
CREATE TABLE integrations (
    id TEXT NOT NULL PRIMARY KEY,
    crm_url TEXT NOT NULL,
    api_key_hint TEXT NOT NULL,
    active BIGINT NOT NULL,
    default_funnel BIGINT NOT NULL,
    include_delivery_cost BIGINT NOT NULL,
    backfill_days BIGINT NOT NULL,
    webhook_token_generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Integrations their owner deleted: their rows are gone and later events for them are ignored.
CREATE TABLE removed_integrations (
    id TEXT NOT NULL PRIMARY KEY,
    removed_at BIGINT NOT NULL
);

-- `IntegrationHealthChanged`, newest `checked_at`.
CREATE TABLE integration_health (
    integration_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    message TEXT,
    checked_at BIGINT NOT NULL
);

-- Activity counters: the latest webhook (`OrderChanged` from a webhook) and reconciliation.
CREATE TABLE integration_activity (
    integration_id TEXT NOT NULL PRIMARY KEY,
    last_webhook_at BIGINT,
    last_reconciled_at BIGINT
);

-- One row per order: the facts of the newest snapshot, and what the projector derives from
-- them with the integration's markers. A row whose `observed_at` is NULL is a tombstone: the
-- order was deleted before any snapshot of it arrived (it is not listed).
CREATE TABLE deals (
    integration_id TEXT NOT NULL,
    order_id BIGINT NOT NULL,
    -- facts (`DealUpserted`)
    number TEXT,
    external_id TEXT,
    site TEXT,
    status_code TEXT,
    status_group TEXT,
    total_sum TEXT,
    delivery_cost TEXT,
    net_sum TEXT, -- total_sum - delivery_cost, computed once from the two facts above
    currency TEXT,
    manager_id BIGINT,
    manager_name TEXT,
    manager_email TEXT,
    manager_phone TEXT,
    contact_id BIGINT,
    contact_name TEXT,
    contact_phones TEXT,
    contact_emails TEXT,
    company_id BIGINT,
    company_name TEXT,
    utm_source TEXT,
    utm_medium TEXT,
    utm_campaign TEXT,
    utm_keyword TEXT,
    utm_content TEXT,
    client_id TEXT,
    custom_fields TEXT,
    created_at BIGINT,
    stage_entered_at BIGINT,
    observed_at BIGINT,
    -- facts (`DealDeleted`, newest)
    deleted_observed_at BIGINT,
    merged_into BIGINT,
    -- derived: markers (DESIGN §5) and the stage history
    deleted BIGINT NOT NULL,
    amount TEXT,
    funnel_id TEXT,
    stage_group TEXT,
    outcome TEXT,
    closed_at BIGINT,
    last_open_stage TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, order_id)
);

-- Keyset pagination, newest first, with and without the indexed filters.
CREATE INDEX deals_newest ON deals (integration_id, created_at DESC, order_id DESC);
CREATE INDEX deals_by_site ON deals (integration_id, site, created_at DESC, order_id DESC);
CREATE INDEX deals_by_stage ON deals (integration_id, status_code, created_at DESC, order_id DESC);
CREATE INDEX deals_by_manager ON deals (integration_id, manager_id, created_at DESC, order_id DESC);
CREATE INDEX deals_by_update ON deals (integration_id, updated_at);
-- `deals_count` of an integration from the index alone (tombstones are always deleted).
CREATE INDEX deals_live ON deals (integration_id, deleted);

-- The stages each deal entered, with when: a set, so replays add nothing.
CREATE TABLE stage_history (
    integration_id TEXT NOT NULL,
    order_id BIGINT NOT NULL,
    entered_at BIGINT NOT NULL,
    stage_code TEXT NOT NULL,
    -- the stage's group as the snapshot reported it (NULL: look it up in `stages`)
    stage_group TEXT,
    PRIMARY KEY (integration_id, order_id, entered_at, stage_code)
);

-- RetailCRM statuses (account-wide) as `FunnelStageSeen` last described them.
CREATE TABLE stages (
    integration_id TEXT NOT NULL,
    stage_code TEXT NOT NULL,
    stage_name TEXT NOT NULL,
    stage_ordering BIGINT NOT NULL,
    active BIGINT NOT NULL,
    group_code TEXT NOT NULL,
    group_name TEXT,
    group_ordering BIGINT NOT NULL,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, stage_code)
);

-- Which stages each shop's funnel has.
CREATE TABLE site_stages (
    integration_id TEXT NOT NULL,
    site TEXT NOT NULL,
    stage_code TEXT NOT NULL,
    PRIMARY KEY (integration_id, site, stage_code)
);

-- Shops (RetailCRM sites) and their names, for per-shop funnels.
CREATE TABLE sites (
    integration_id TEXT NOT NULL,
    site TEXT NOT NULL,
    name TEXT,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, site)
);

-- `ContactUpserted`, newest `observed_at`; people and companies have separate id spaces.
CREATE TABLE contacts (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    name TEXT,
    phones TEXT NOT NULL,
    emails TEXT NOT NULL,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, kind, contact_id)
);

-- Responsible managers as the newest deal snapshot naming them described them.
CREATE TABLE managers (
    integration_id TEXT NOT NULL,
    manager_id BIGINT NOT NULL,
    name TEXT,
    email TEXT,
    phone TEXT,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, manager_id)
);
