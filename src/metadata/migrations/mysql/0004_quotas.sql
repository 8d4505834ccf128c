-- Per-tenant quotas: the tenant an object counts against, per-tenant overrides of the configured
-- defaults (NULL: the default), and the running usage, updated in the same transaction that
-- commits or retires an object so that concurrent uploads cannot both squeeze under a limit.
ALTER TABLE objects ADD COLUMN tenant_id VARBINARY(255);
ALTER TABLE tenants ADD COLUMN max_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN max_objects BIGINT;
CREATE TABLE tenant_usage (
    tenant_id  VARBINARY(255) NOT NULL PRIMARY KEY,
    bytes      BIGINT NOT NULL DEFAULT 0,
    objects    BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB;
