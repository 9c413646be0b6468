//! SQL shared by both stores (`$N` placeholders work on SQLite too) and the row tuples
//! they decode into. Every statement names `tenant_id` explicitly: on PostgreSQL row-level
//! security is the second fence, on SQLite the only one.

use super::{
    KeyState, KeyVersionRecord, SecretMeta, SecretRecord, StoreError, TenantRecord, hash_from_db,
    labels_from_db, root_key_id_from_db, salt_from_db, tenant_from_db, to_u64, version_from_db,
};
use crate::audit::{AuditChain, AuditRecord};

pub(super) const INSERT_TENANT: &str = "INSERT INTO tenants (tenant_id, created_at, updated_at) \
     VALUES ($1, $2, $2) ON CONFLICT (tenant_id) DO NOTHING";
pub(super) const SELECT_TENANT: &str = "SELECT t.tenant_id, \
     (SELECT v.version FROM tenant_key_versions v \
       WHERE v.tenant_id = t.tenant_id AND v.state = 'active'), \
     t.min_decrypt_version, t.destroy_after, t.shredded_at, t.auto_rotate_days, \
     t.created_at, t.updated_at FROM tenants t WHERE t.tenant_id = $1";
pub(super) const MAX_VERSION: &str =
    "SELECT coalesce(max(version), 0) FROM tenant_key_versions WHERE tenant_id = $1";
pub(super) const DEMOTE_ACTIVE: &str = "UPDATE tenant_key_versions \
     SET state = 'decrypt_only', updated_at = $2 WHERE tenant_id = $1 AND state = 'active'";
pub(super) const INSERT_VERSION: &str = "INSERT INTO tenant_key_versions \
     (tenant_id, version, root_key_id, salt, state, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 'active', $5, $5) \
     RETURNING version, root_key_id, salt, state, created_at, updated_at";
pub(super) const TOUCH_TENANT: &str = "UPDATE tenants SET updated_at = $2 WHERE tenant_id = $1";
pub(super) const SELECT_VERSIONS: &str = "SELECT version, root_key_id, salt, state, \
     created_at, updated_at FROM tenant_key_versions WHERE tenant_id = $1 ORDER BY version";
pub(super) const SELECT_VERSION: &str = "SELECT version, root_key_id, salt, state, \
     created_at, updated_at FROM tenant_key_versions WHERE tenant_id = $1 AND version = $2";
pub(super) const SELECT_PRIMARY: &str =
    "SELECT version FROM tenant_key_versions WHERE tenant_id = $1 AND state = 'active'";
pub(super) const COUNT_SECRETS_OF_VERSION: &str =
    "SELECT count(*) FROM secrets WHERE tenant_id = $1 AND key_version = $2";
pub(super) const SET_STATE: &str = "UPDATE tenant_key_versions SET state = $3, updated_at = $4 \
     WHERE tenant_id = $1 AND version = $2";
pub(super) const DESTROY_VERSION: &str = "UPDATE tenant_key_versions \
     SET state = 'destroyed', salt = NULL, updated_at = $3 WHERE tenant_id = $1 AND version = $2";
pub(super) const SET_MIN_DECRYPT: &str = "UPDATE tenants SET min_decrypt_version = $2, \
     updated_at = $3 WHERE tenant_id = $1";
pub(super) const SET_DESTROY_AFTER: &str = "UPDATE tenants SET destroy_after = $2, \
     updated_at = $3 WHERE tenant_id = $1";
pub(super) const SET_AUTO_ROTATE: &str = "UPDATE tenants SET auto_rotate_days = $2, \
     updated_at = $3 WHERE tenant_id = $1";
pub(super) const DELETE_ALL_SECRETS: &str = "DELETE FROM secrets WHERE tenant_id = $1";
pub(super) const DESTROY_ALL_VERSIONS: &str = "UPDATE tenant_key_versions \
     SET state = 'destroyed', salt = NULL, updated_at = $2 \
     WHERE tenant_id = $1 AND state <> 'destroyed'";
pub(super) const MARK_SHREDDED: &str = "UPDATE tenants SET shredded_at = $2, \
     destroy_after = NULL, updated_at = $2 WHERE tenant_id = $1";
pub(super) const UPSERT_SECRET: &str = "INSERT INTO secrets (tenant_id, vendor, name, revision, \
     key_version, envelope, labels, created_at, updated_at) \
     VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $7) \
     ON CONFLICT (tenant_id, vendor, name) DO UPDATE SET revision = secrets.revision + 1, \
     key_version = excluded.key_version, envelope = excluded.envelope, \
     labels = excluded.labels, updated_at = excluded.updated_at RETURNING revision";
pub(super) const CREATE_SECRET: &str = "INSERT INTO secrets (tenant_id, vendor, name, revision, \
     key_version, envelope, labels, created_at, updated_at) \
     VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $7) \
     ON CONFLICT (tenant_id, vendor, name) DO NOTHING RETURNING revision";
pub(super) const UPDATE_SECRET: &str = "UPDATE secrets SET revision = revision + 1, \
     key_version = $4, envelope = $5, labels = $6, updated_at = $7 \
     WHERE tenant_id = $1 AND vendor = $2 AND name = $3 AND revision = $8 RETURNING revision";
pub(super) const SECRET_REVISION: &str =
    "SELECT revision FROM secrets WHERE tenant_id = $1 AND vendor = $2 AND name = $3";
pub(super) const SELECT_SECRET: &str = "SELECT vendor, name, revision, key_version, labels, \
     created_at, updated_at, envelope FROM secrets \
     WHERE tenant_id = $1 AND vendor = $2 AND name = $3";
pub(super) const LIST_SECRETS: &str = "SELECT vendor, name, revision, key_version, labels, \
     created_at, updated_at FROM secrets \
     WHERE tenant_id = $1 AND (vendor > $2 OR (vendor = $2 AND name > $3)) \
     ORDER BY vendor, name LIMIT $4";
pub(super) const DELETE_SECRET: &str = "DELETE FROM secrets \
     WHERE tenant_id = $1 AND vendor = $2 AND name = $3 AND ($4 IS NULL OR revision = $4)";
pub(super) const SECRETS_BELOW: &str = "SELECT vendor, name, revision, key_version, labels, \
     created_at, updated_at, envelope FROM secrets \
     WHERE tenant_id = $1 AND key_version < $2 ORDER BY vendor, name LIMIT $3";
pub(super) const REPLACE_ENVELOPE: &str = "UPDATE secrets SET envelope = $5, key_version = $6, \
     revision = revision + 1, updated_at = $7 \
     WHERE tenant_id = $1 AND vendor = $2 AND name = $3 AND envelope = $4";
pub(super) const SECRET_COUNTS: &str = "SELECT key_version, count(*) FROM secrets \
     WHERE tenant_id = $1 GROUP BY key_version";
pub(super) const INSERT_KCV: &str = "INSERT INTO root_key_checks (root_key_id, kcv, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (root_key_id) DO NOTHING";
pub(super) const SELECT_KCV: &str = "SELECT kcv FROM root_key_checks WHERE root_key_id = $1";
pub(super) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_events WHERE tenant_id = $1 \
     ORDER BY seq DESC LIMIT 1";
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_events (tenant_id, seq, at, actor, \
     action, key_version, outcome, request_id, detail, prev_hash, hash, mac, mac_root_key_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(super) const LIST_AUDIT: &str = "SELECT tenant_id, seq, at, actor, action, key_version, \
     outcome, request_id, detail, prev_hash, hash, mac, mac_root_key_id FROM audit_events \
     WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// `tenants` row with the derived primary version.
pub(super) type TenantRow = (
    String,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);
/// `tenant_key_versions` row.
pub(super) type VersionRow = (i64, String, Option<Vec<u8>>, String, i64, i64);
/// `secrets` row without the envelope.
pub(super) type MetaRow = (String, String, i64, i64, String, i64, i64);
/// `secrets` row with the envelope last.
pub(super) type SecretRow = (String, String, i64, i64, String, i64, i64, Vec<u8>);
/// `audit_events` row.
pub(super) type AuditRow = (
    String,
    i64,
    i64,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    String,
);

pub(super) fn tenant(row: TenantRow) -> Result<TenantRecord, StoreError> {
    let (id, primary, min, destroy_after, shredded_at, auto, created_at, updated_at) = row;
    Ok(TenantRecord {
        tenant_id: tenant_from_db(&id)?,
        primary_version: primary
            .map(|v| version_from_db(v, "primary version"))
            .transpose()?,
        min_decrypt_version: version_from_db(min, "minimum decryption version")?,
        destroy_after,
        shredded_at,
        auto_rotate_days: auto
            .map(|d| {
                u32::try_from(d).map_err(|_| StoreError::Corruption {
                    what: "auto rotation days out of range".to_owned(),
                })
            })
            .transpose()?,
        created_at,
        updated_at,
    })
}

pub(super) fn version(row: VersionRow) -> Result<KeyVersionRecord, StoreError> {
    let (v, root_key_id, salt, state, created_at, updated_at) = row;
    let version = version_from_db(v, "key version")?;
    let state = KeyState::parse(&state).ok_or_else(|| StoreError::Corruption {
        what: format!("key version {version}: unknown state"),
    })?;
    Ok(KeyVersionRecord {
        version,
        root_key_id: root_key_id_from_db(&root_key_id)?,
        salt: salt_from_db(salt, state, version)?,
        state,
        created_at,
        updated_at,
    })
}

pub(super) fn meta(row: MetaRow) -> Result<SecretMeta, StoreError> {
    let (vendor, name, revision, key_version, labels, created_at, updated_at) = row;
    Ok(SecretMeta {
        vendor,
        name,
        revision: to_u64(revision, "secret revision")?,
        key_version: version_from_db(key_version, "secret key version")?,
        labels: labels_from_db(&labels)?,
        created_at,
        updated_at,
    })
}

pub(super) fn secret(row: SecretRow) -> Result<SecretRecord, StoreError> {
    let (vendor, name, revision, key_version, labels, created_at, updated_at, envelope) = row;
    Ok(SecretRecord {
        meta: meta((
            vendor,
            name,
            revision,
            key_version,
            labels,
            created_at,
            updated_at,
        ))?,
        envelope,
    })
}

pub(super) fn audit(row: AuditRow) -> Result<AuditRecord, StoreError> {
    let (chain, seq, at, actor, action, kv, outcome, request_id, detail, prev, hash, mac, key_id) =
        row;
    Ok(AuditRecord {
        chain: AuditChain::from_stored(&chain).ok_or_else(|| StoreError::Corruption {
            what: "invalid audit chain id".to_owned(),
        })?,
        seq: to_u64(seq, "audit seq")?,
        at,
        actor,
        action,
        key_version: kv
            .map(|v| version_from_db(v, "audit key version"))
            .transpose()?,
        outcome,
        request_id,
        detail,
        prev_hash: hash_from_db(&prev, "prev_hash")?,
        hash: hash_from_db(&hash, "hash")?,
        mac: hash_from_db(&mac, "mac")?,
        mac_root_key_id: root_key_id_from_db(&key_id)?,
    })
}

/// The next link of a chain whose newest event is `head`.
pub(super) fn next_link(head: Option<(i64, Vec<u8>)>) -> Result<(u64, [u8; 32]), StoreError> {
    match head {
        None => Ok((1, [0; 32])),
        Some((seq, hash)) => Ok((
            to_u64(seq, "audit seq")?
                .checked_add(1)
                .ok_or(StoreError::Refused {
                    reason: "audit chain is full",
                })?,
            hash_from_db(&hash, "hash")?,
        )),
    }
}
