-- Tenants (issue 15): every integration belongs to one cabinet customer. Integrations stored
-- before tenants existed belong to `default`, as their v1 `IntegrationConfigured` records
-- decode (DESIGN §4), so no manual step and no replay is needed.
ALTER TABLE integrations ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
