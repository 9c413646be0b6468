-- HYGO KMS schema 1 (SQLite). See docs/STORAGE.md. The same tables and constraints as
-- schema/postgres/0001_init.sql; SQLite has no roles or row-level security, so the
-- store scopes every statement by tenant itself. Applied automatically at start-up.
-- The connection runs with secure_delete=ON, WAL, foreign_keys=ON and a busy timeout.
-- Times are INTEGER Unix milliseconds. Text compares with BINARY (bytewise) collation.

CREATE TABLE root_key_checks (
    root_key_id TEXT PRIMARY KEY NOT NULL CHECK (root_key_id <> '' AND length(root_key_id) <= 32),
    kcv         BLOB    NOT NULL CHECK (length(kcv) = 16),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE tenants (
    tenant_id           TEXT PRIMARY KEY NOT NULL
                        CHECK (length(tenant_id) BETWEEN 1 AND 128),
    min_decrypt_version INTEGER NOT NULL DEFAULT 1
                        CHECK (min_decrypt_version BETWEEN 1 AND 4294967295),
    destroy_after       INTEGER,
    shredded_at         INTEGER,
    auto_rotate_days    INTEGER CHECK (auto_rotate_days IS NULL OR auto_rotate_days BETWEEN 1 AND 36500),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_key_versions (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (tenant_id),
    version     INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    root_key_id TEXT    NOT NULL CHECK (root_key_id <> ''),
    salt        BLOB,
    state       TEXT    NOT NULL
                CHECK (state IN ('active', 'decrypt_only', 'disabled', 'destroyed')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version),
    CONSTRAINT tenant_key_versions_salt_length CHECK (salt IS NULL OR length(salt) = 32),
    CONSTRAINT tenant_key_versions_salt_destroyed CHECK ((state = 'destroyed') = (salt IS NULL))
) STRICT;
CREATE UNIQUE INDEX tenant_key_versions_one_active
    ON tenant_key_versions (tenant_id) WHERE state = 'active';
CREATE INDEX tenant_key_versions_root_key ON tenant_key_versions (root_key_id);

CREATE TABLE secrets (
    tenant_id   TEXT    NOT NULL,
    vendor      TEXT    NOT NULL CHECK (vendor <> ''),
    name        TEXT    NOT NULL CHECK (name <> ''),
    revision    INTEGER NOT NULL CHECK (revision >= 1),
    key_version INTEGER NOT NULL,
    envelope    BLOB    NOT NULL,
    labels      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, vendor, name),
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_key_versions (tenant_id, version)
) STRICT;
CREATE INDEX secrets_by_version ON secrets (tenant_id, key_version);

CREATE TABLE audit_events (
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    key_version     INTEGER CHECK (key_version IS NULL OR key_version BETWEEN 1 AND 4294967295),
    outcome         TEXT    NOT NULL,
    request_id      TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT '',
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    mac             BLOB    NOT NULL CHECK (length(mac) = 32),
    mac_root_key_id TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) STRICT;

-- Append-only at the database level too.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
