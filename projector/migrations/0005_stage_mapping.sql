-- The user's stage mapping (issue 16, IntegrationConfigured v4): outcome overrides and excluded
-- statuses by status code, as the event's JSON object; `{}` maps every status by its group.
ALTER TABLE integrations ADD COLUMN stage_mapping TEXT NOT NULL DEFAULT '{}';
-- 1 when the deal's current stage is excluded: left out of lists, CSVs and `deals_count`
-- unless asked for. Derived, like `outcome`.
ALTER TABLE deals ADD COLUMN excluded BIGINT NOT NULL DEFAULT 0;
-- `deals_count` from the index alone again, now that excluded deals do not count.
DROP INDEX deals_live;
CREATE INDEX deals_live ON deals (integration_id, deleted, excluded);
