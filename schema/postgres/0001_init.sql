-- HYGO KMS schema 1 (PostgreSQL). See docs/STORAGE.md.
--
-- Applied by `kms-server migrate` connected as the OWNER role, which then grants the
-- RUNTIME role exactly what it needs. Times are BIGINT Unix milliseconds (`*_at`).
-- Identifiers that are paged through (tenant ids, vendors, names) use COLLATE "C":
-- bytewise order, never a locale's.
-- Nothing here is key material or plaintext except salts (key shares) and root key
-- check values; stored secrets are envelopes.

-- Check values of the root keys (SPEC §3): refuse a wrong or swapped key at start-up.
-- Not tenant-scoped.
CREATE TABLE root_key_checks (
    root_key_id TEXT COLLATE "C" PRIMARY KEY CHECK (root_key_id ~ '^[a-z0-9-]{1,32}$'),
    kcv         BYTEA  NOT NULL CHECK (length(kcv) = 16),
    created_at  BIGINT NOT NULL
);

-- One row per tenant that ever had keys. A shredded tenant keeps its row (and its
-- destroyed versions) so that version numbers continue after re-provisioning.
CREATE TABLE tenants (
    tenant_id           TEXT COLLATE "C" PRIMARY KEY
                        CHECK (tenant_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    min_decrypt_version BIGINT NOT NULL DEFAULT 1
                        CHECK (min_decrypt_version BETWEEN 1 AND 4294967295),
    destroy_after       BIGINT,
    shredded_at         BIGINT,
    auto_rotate_days    BIGINT CHECK (auto_rotate_days IS NULL OR auto_rotate_days BETWEEN 1 AND 36500),
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Tenant key versions. The primary is the one `active` row (a partial unique index,
-- so concurrent rotations cannot make two). A destroyed version keeps its row with
-- its salt erased.
CREATE TABLE tenant_key_versions (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id),
    version     BIGINT NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    root_key_id TEXT COLLATE "C" NOT NULL CHECK (root_key_id <> ''),
    salt        BYTEA,
    state       TEXT NOT NULL
                CHECK (state IN ('active', 'decrypt_only', 'disabled', 'destroyed')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version),
    CONSTRAINT tenant_key_versions_salt_length CHECK (salt IS NULL OR length(salt) = 32),
    CONSTRAINT tenant_key_versions_salt_destroyed CHECK ((state = 'destroyed') = (salt IS NULL))
);
CREATE UNIQUE INDEX tenant_key_versions_one_active
    ON tenant_key_versions (tenant_id) WHERE state = 'active';
CREATE INDEX tenant_key_versions_root_key ON tenant_key_versions (root_key_id);

-- Stored secrets: envelopes whose context binds tenant, vendor and name. Labels are
-- non-secret metadata (a JSON object of strings).
CREATE TABLE secrets (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    vendor      TEXT COLLATE "C" NOT NULL CHECK (vendor <> ''),
    name        TEXT COLLATE "C" NOT NULL CHECK (name <> ''),
    revision    BIGINT NOT NULL CHECK (revision >= 1),
    key_version BIGINT NOT NULL,
    envelope    BYTEA  NOT NULL,
    labels      TEXT   NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, vendor, name),
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_key_versions (tenant_id, version)
);
CREATE INDEX secrets_by_version ON secrets (tenant_id, key_version);

-- Audit events (SPEC §8): one hash-chained, MACed chain per tenant (`tenant_id` is the
-- chain id) and one for events without a tenant (`#global`, never a valid tenant id).
-- Append-only: the runtime role may only SELECT and INSERT.
CREATE TABLE audit_events (
    tenant_id       TEXT COLLATE "C" NOT NULL
                    CHECK (tenant_id = '#global' OR tenant_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    at              BIGINT NOT NULL,
    actor           TEXT   NOT NULL,
    action          TEXT   NOT NULL,
    key_version     BIGINT CHECK (key_version IS NULL OR key_version BETWEEN 1 AND 4294967295),
    outcome         TEXT   NOT NULL,
    request_id      TEXT   NOT NULL,
    detail          TEXT   NOT NULL DEFAULT '',
    prev_hash       BYTEA  NOT NULL CHECK (length(prev_hash) = 32),
    hash            BYTEA  NOT NULL CHECK (length(hash) = 32),
    mac             BYTEA  NOT NULL CHECK (length(mac) = 32),
    mac_root_key_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- Row-level security: enabled and FORCEd (so the owner is bound too) on every
-- tenant-scoped table. Every transaction runs
--   SELECT set_config('hygo.tenant_id', $1, true)
-- first. An unset setting is NULL and a reset one is '': NULLIF makes both NULL, and
-- `tenant_id = NULL` matches nothing.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'tenant_key_versions', 'secrets', 'audit_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = NULLIF(current_setting(''hygo.tenant_id'', true), '''')) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''hygo.tenant_id'', true), ''''))',
            t);
    END LOOP;
END
$$;

-- The one narrow cross-tenant path. The owner role (whoever runs this migration) may
-- READ all tenants and key versions; nobody may write across tenants. The runtime role
-- reaches those rows only through the SECURITY DEFINER functions below, which return
-- non-secret metadata (ids and times, never salts or envelopes).
DO $$
BEGIN
    EXECUTE format(
        'CREATE POLICY owner_cross_tenant_read ON tenants FOR SELECT TO %I USING (true)',
        current_user);
    EXECUTE format(
        'CREATE POLICY owner_cross_tenant_read ON tenant_key_versions FOR SELECT TO %I USING (true)',
        current_user);
END
$$;

-- Tenants in bytewise id order after `after_id` (NULL: from the start), at most
-- `lim` (capped at 1000): for the admin plane.
CREATE FUNCTION hygo_list_tenants(after_id TEXT, lim INTEGER)
RETURNS TABLE (tenant_id TEXT, created_at BIGINT, destroy_after BIGINT, shredded_at BIGINT)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT t.tenant_id, t.created_at, t.destroy_after, t.shredded_at
    FROM public.tenants t
    WHERE after_id IS NULL OR t.tenant_id > after_id
    ORDER BY t.tenant_id
    LIMIT least(greatest(lim, 0), 1000)
$$;

-- Tenants whose scheduled destruction is due at `now_ms`: for the destruction sweeper,
-- which then handles each one with the tenant set as usual.
CREATE FUNCTION hygo_due_destructions(now_ms BIGINT)
RETURNS TABLE (tenant_id TEXT)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT t.tenant_id
    FROM public.tenants t
    WHERE t.destroy_after IS NOT NULL AND t.destroy_after <= now_ms
    ORDER BY t.tenant_id
$$;

-- (tenant, root key id) pairs of non-destroyed versions whose root key is not in
-- `known`: start-up fails closed naming these tenants (SPEC §7).
CREATE FUNCTION hygo_unknown_root_key_refs(known TEXT[])
RETURNS TABLE (tenant_id TEXT, root_key_id TEXT)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT DISTINCT v.tenant_id, v.root_key_id
    FROM public.tenant_key_versions v
    WHERE v.state <> 'destroyed' AND NOT (v.root_key_id = ANY (known))
    ORDER BY v.tenant_id, v.root_key_id
    LIMIT 1000
$$;

REVOKE ALL ON FUNCTION hygo_list_tenants(TEXT, INTEGER) FROM PUBLIC;
REVOKE ALL ON FUNCTION hygo_due_destructions(BIGINT) FROM PUBLIC;
REVOKE ALL ON FUNCTION hygo_unknown_root_key_refs(TEXT[]) FROM PUBLIC;
