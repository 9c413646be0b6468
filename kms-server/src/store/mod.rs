//! Storage (SPEC §6): the [`Store`] trait, its record types and [`StoreError`], with a
//! PostgreSQL ([`PgStore`]) and an embedded SQLite ([`SqliteStore`]) implementation that
//! pass one shared test suite. Migrations live in `schema/postgres/` and
//! `schema/sqlite/` at the workspace root; `docs/STORAGE.md` describes the schema, the
//! two PostgreSQL roles and the narrow cross-tenant path.
//!
//! Every tenant-scoped method opens a transaction that sets the tenant first (on
//! PostgreSQL `SELECT set_config('hygo.tenant_id', $1, true)`, which row-level security
//! checks). Nothing stored is key material or plaintext except salts (key shares) and
//! root key check values. Times are Unix milliseconds.

/// Binds the columns of an [`AuditRecord`] to [`sql::INSERT_AUDIT`], for either store.
macro_rules! bind_audit {
    ($query:expr, $r:expr) => {
        $query
            .bind($r.chain.as_str())
            .bind($crate::store::to_i64($r.seq)?)
            .bind($r.at)
            .bind($r.actor.as_str())
            .bind($r.action.as_str())
            .bind($r.key_version.map(|v| i64::from(v.get())))
            .bind($r.outcome.as_str())
            .bind($r.request_id.as_str())
            .bind($r.detail.as_str())
            .bind($r.prev_hash.as_slice())
            .bind($r.hash.as_slice())
            .bind($r.mac.as_slice())
            .bind($r.mac_root_key_id.as_str())
    };
}
use bind_audit;

#[macro_use]
mod shared;
mod postgres;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use postgres::{PG_MIGRATOR, PgStore, RUNTIME_GRANTS, migrate_postgres};
pub use sqlite::{SQLITE_MIGRATOR, SqliteStore};

use crate::audit::{AuditChain, AuditKey, AuditRecord, NewAuditEvent};
use crate::envelope::Salt;
use crate::keys::{KeyVersion, TenantId};
use crate::root::{RootKeyId, RootKeyRing};

/// How long acquiring a pooled connection (including connecting) may take before a
/// call fails with [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most rows one page of [`Store::list_secrets`], [`Store::list_tenants`],
/// [`Store::list_audit`] or [`Store::secrets_below_version`] returns.
pub const MAX_PAGE: u32 = 1000;

/// Why a store call failed. Messages are fixed or name ids only: never SQL parameters,
/// salts, envelopes or driver messages (which can echo values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached: connect or acquire timed out, I/O failed, the
    /// pool is closed. Retry later.
    #[error("the database is unavailable")]
    Unavailable,
    /// The tenant, key version or secret does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (a kind, not a value).
        what: &'static str,
    },
    /// A compare-and-swap on a secret's revision failed.
    #[error("revision mismatch: expected {expected}, found {}", found.map_or("none".to_owned(), |r| r.to_string()))]
    RevisionMismatch {
        /// The revision the caller expected (0: must not exist).
        expected: u64,
        /// The current revision, `None` if the secret does not exist.
        found: Option<u64>,
    },
    /// A concurrent change won; the call changed nothing and may be retried.
    #[error("conflicting concurrent change")]
    Conflict,
    /// Data read back violates an invariant (e.g. a salt that is not 32 bytes).
    #[error("stored data is corrupt: {what}")]
    Corruption {
        /// What is corrupt (never the data itself).
        what: String,
    },
    /// The database schema is not the one this build expects: run `kms-server migrate`.
    #[error("database schema is out of date ({detail}): run `kms-server migrate`")]
    SchemaOutdated {
        /// Which migration differs.
        detail: String,
    },
    /// A root key's check value differs from the stored one: a wrong or swapped key.
    #[error("root key {id} does not match its stored check value: wrong or swapped key")]
    RootKeyMismatch {
        /// The key's id.
        id: RootKeyId,
    },
    /// Key versions that are not destroyed reference a root key that is not loaded.
    #[error("root key {id} is missing from the namespace but still used by tenants {}", tenants.join(", "))]
    RootKeyMissing {
        /// The missing key's id.
        id: String,
        /// Tenants (at most 1000 in all) with versions derived from it.
        tenants: Vec<String>,
    },
    /// A lifecycle rule refuses the change (e.g. disabling the active version).
    #[error("refused: {reason}")]
    Refused {
        /// The rule.
        reason: &'static str,
    },
    /// The store's configuration is unusable (e.g. a malformed database URL, which is
    /// not echoed: it may hold a password).
    #[error("invalid store configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: &'static str,
    },
    /// Applying migrations failed.
    #[error("migration failed: {detail}")]
    Migration {
        /// The migrator's report (about the schema's SQL, never about stored values).
        detail: String,
    },
    /// Any other database error (details are not reported: they can echo values).
    #[error("database error")]
    Database,
}

/// The state of a tenant key version (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// The primary: new envelopes are sealed under it. Exactly one per tenant with keys.
    Active,
    /// Opens existing envelopes only.
    DecryptOnly,
    /// Opens nothing until re-enabled (reversible).
    Disabled,
    /// Salt erased; opens nothing ever again.
    Destroyed,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::DecryptOnly => "decrypt_only",
            Self::Disabled => "disabled",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "decrypt_only" => Self::DecryptOnly,
            "disabled" => Self::Disabled,
            "destroyed" => Self::Destroyed,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The primary (active) version, derived from the key versions; `None` when the
    /// tenant has no usable keys (e.g. shredded).
    pub primary_version: Option<KeyVersion>,
    /// Versions below this are refused for decryption.
    pub min_decrypt_version: KeyVersion,
    /// When a scheduled destruction becomes due (Unix ms); `None` if none is scheduled.
    pub destroy_after: Option<i64>,
    /// When the tenant was last crypto-shredded (Unix ms).
    pub shredded_at: Option<i64>,
    /// Automatic rotation period in days, if enabled.
    pub auto_rotate_days: Option<u32>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Non-secret metadata of a tenant, as the cross-tenant listing returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Unix ms.
    pub created_at: i64,
    /// See [`TenantRecord::destroy_after`].
    pub destroy_after: Option<i64>,
    /// See [`TenantRecord::shredded_at`].
    pub shredded_at: Option<i64>,
}

/// A tenant key version. `Debug` redacts the salt.
#[derive(Debug, Clone)]
pub struct KeyVersionRecord {
    /// The version.
    pub version: KeyVersion,
    /// The root key it is derived from.
    pub root_key_id: RootKeyId,
    /// The salt (a key share); `None` once destroyed.
    pub salt: Option<Salt>,
    /// Its state.
    pub state: KeyState,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Non-secret labels of a stored secret.
pub type Labels = BTreeMap<String, String>;

/// A secret to store: the envelope, never the plaintext.
#[derive(Debug, Clone, Copy)]
pub struct NewSecret<'a> {
    /// Vendor, e.g. `shopify`.
    pub vendor: &'a str,
    /// Name within the vendor.
    pub name: &'a str,
    /// The key version the envelope is sealed under.
    pub key_version: KeyVersion,
    /// The envelope (its context binds tenant, vendor and name).
    pub envelope: &'a [u8],
    /// Non-secret labels.
    pub labels: &'a Labels,
}

/// A stored secret's metadata (no envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Vendor.
    pub vendor: String,
    /// Name.
    pub name: String,
    /// Revision, from 1, incremented by every write.
    pub revision: u64,
    /// The key version of its envelope.
    pub key_version: KeyVersion,
    /// Labels.
    pub labels: Labels,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// A stored secret. `Debug` shows the envelope's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Its metadata.
    pub meta: SecretMeta,
    /// The envelope.
    pub envelope: Vec<u8>,
}

impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("meta", &self.meta)
            .field("envelope_len", &self.envelope.len())
            .finish()
    }
}

/// What shredding a tenant removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShredReport {
    /// Key versions destroyed by this call.
    pub versions_destroyed: u64,
    /// Secrets deleted.
    pub secrets_deleted: u64,
    /// When (Unix ms).
    pub shredded_at: i64,
}

/// The key store. Implementations are cheap to share (`Arc<dyn Store>`); every
/// tenant-scoped method runs in one transaction that sets the tenant first.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Compares every key of `ring` with its stored check value in constant time
    /// ([`StoreError::RootKeyMismatch`] naming the key), storing absent ones; then
    /// refuses ([`StoreError::RootKeyMissing`]) if versions that are not destroyed use
    /// a root key the ring does not hold.
    async fn check_root_keys(&self, ring: &RootKeyRing) -> Result<(), StoreError>;

    /// The tenant's settings, `None` if it never had keys.
    async fn tenant(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Cross-tenant (the narrow path): tenants after `after` in bytewise order, at most
    /// `limit` (capped at [`MAX_PAGE`]), non-secret metadata only.
    async fn list_tenants(
        &self,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantSummary>, StoreError>;

    /// Cross-tenant (the narrow path): tenants whose scheduled destruction is due at
    /// `now` (Unix ms).
    async fn due_destructions(&self, now: i64) -> Result<Vec<TenantId>, StoreError>;

    /// Creates the tenant's next version (max + 1, destroyed ones included) as the
    /// active one with `salt` (generate it with [`Salt::generate`]); the previous active
    /// version becomes decrypt-only. Concurrent calls for one tenant serialise. Refused
    /// while a destruction is scheduled.
    async fn create_key_version(
        &self,
        tenant: &TenantId,
        root_key_id: &RootKeyId,
        salt: &Salt,
    ) -> Result<KeyVersionRecord, StoreError>;

    /// Creates the tenant's first version (or, after shredding, the next one) only if it
    /// has no active version; `None` when it already had one. Concurrent calls for one
    /// tenant create one version (checked under the tenant's row lock).
    async fn create_first_key_version(
        &self,
        tenant: &TenantId,
        root_key_id: &RootKeyId,
        salt: &Salt,
    ) -> Result<Option<KeyVersionRecord>, StoreError>;

    /// All versions of the tenant, ascending. A salt of the wrong length is
    /// [`StoreError::Corruption`].
    async fn key_versions(&self, tenant: &TenantId) -> Result<Vec<KeyVersionRecord>, StoreError>;

    /// One version, `None` if unknown.
    async fn key_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<Option<KeyVersionRecord>, StoreError>;

    /// The primary (active) version, `None` if the tenant has none.
    async fn primary_version(&self, tenant: &TenantId) -> Result<Option<KeyVersion>, StoreError>;

    /// Moves a version between `decrypt_only` and `disabled`, or to `destroyed`
    /// (erasing its salt). Refused: making a version active (rotate instead), changing
    /// the active version (rotate first) or a destroyed one, destroying a version that
    /// still holds stored secrets.
    async fn set_key_state(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
        state: KeyState,
    ) -> Result<(), StoreError>;

    /// Sets the minimum decryption version; refused above the primary version.
    async fn set_min_decrypt_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<(), StoreError>;

    /// Schedules the tenant's destruction at `destroy_after` (Unix ms), or cancels it
    /// with `None`. The waiting period is the caller's rule.
    async fn schedule_destruction(
        &self,
        tenant: &TenantId,
        destroy_after: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Sets or clears automatic rotation.
    async fn set_auto_rotate(&self, tenant: &TenantId, days: Option<u32>)
    -> Result<(), StoreError>;

    /// Crypto-shreds the tenant: deletes its secrets, destroys every version (erasing
    /// salts), records `shredded_at` and clears the schedule. The rows of destroyed
    /// versions stay, so a re-provisioned tenant continues its version numbers.
    async fn shred_tenant(&self, tenant: &TenantId) -> Result<ShredReport, StoreError>;

    /// Creates or overwrites a secret and returns its new revision. `expected_revision`:
    /// `None` writes unconditionally; `Some(0)` creates only if absent; `Some(n)`
    /// overwrites only revision `n`. A mismatch is [`StoreError::RevisionMismatch`].
    /// The key version must exist and be active or decrypt-only.
    async fn put_secret(
        &self,
        tenant: &TenantId,
        secret: NewSecret<'_>,
        expected_revision: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// One secret, `None` if absent.
    async fn get_secret(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError>;

    /// Metadata of the tenant's secrets after `after` = (vendor, name) in bytewise
    /// order, at most `limit` (capped at [`MAX_PAGE`]).
    async fn list_secrets(
        &self,
        tenant: &TenantId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SecretMeta>, StoreError>;

    /// Deletes a secret (only at `expected_revision` if given); `false` if absent.
    async fn delete_secret(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
        expected_revision: Option<u64>,
    ) -> Result<bool, StoreError>;

    /// Secrets sealed under a version below `version`, at most `limit`, in (vendor,
    /// name) order: the rewrap work list.
    async fn secrets_below_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
        limit: u32,
    ) -> Result<Vec<SecretRecord>, StoreError>;

    /// Rewrap's compare-and-swap: replaces the envelope only if it is still
    /// `old_envelope`, bumping the revision. `false` if the secret changed or vanished
    /// meanwhile (a concurrent put is never overwritten).
    async fn replace_secret_envelope(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
        old_envelope: &[u8],
        new_envelope: &[u8],
        new_version: KeyVersion,
    ) -> Result<bool, StoreError>;

    /// How many stored secrets each version holds (versions holding none are absent).
    async fn secret_counts(
        &self,
        tenant: &TenantId,
    ) -> Result<BTreeMap<KeyVersion, u64>, StoreError>;

    /// Appends an event to its chain, linking and MACing it inside the transaction;
    /// appends to one chain serialise.
    async fn append_audit(
        &self,
        event: &NewAuditEvent,
        key: &AuditKey,
    ) -> Result<AuditRecord, StoreError>;

    /// Events of a chain with `seq > after_seq`, ascending, at most `limit` (capped at
    /// [`MAX_PAGE`]).
    async fn list_audit(
        &self,
        chain: &AuditChain,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Maps a driver error to a [`StoreError`] with a fixed message.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
            StoreError::Unavailable
        }
        E::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict,
            _ => match db.code().as_deref() {
                // PostgreSQL serialization failure / deadlock: retryable.
                Some("40001" | "40P01") => StoreError::Conflict,
                // PostgreSQL connection exceptions, admin shutdown, cannot connect now.
                Some(c) if c.starts_with("08") || c.starts_with("57P") => StoreError::Unavailable,
                // SQLite BUSY / LOCKED.
                Some("5" | "6" | "517" | "262") => StoreError::Unavailable,
                _ => StoreError::Database,
            },
        },
        _ => StoreError::Database,
    }
}

/// Caps a page size at [`MAX_PAGE`].
pub(crate) fn page(limit: u32) -> i64 {
    i64::from(limit.min(MAX_PAGE))
}

/// A stored version number (BIGINT 1..=u32::MAX) as a [`KeyVersion`].
pub(crate) fn version_from_db(v: i64, what: &str) -> Result<KeyVersion, StoreError> {
    u32::try_from(v)
        .ok()
        .and_then(|v| KeyVersion::new(v).ok())
        .ok_or_else(|| StoreError::Corruption {
            what: format!("{what}: version out of range"),
        })
}

/// A stored tenant id.
pub(crate) fn tenant_from_db(s: &str) -> Result<TenantId, StoreError> {
    TenantId::new(s).map_err(|_| StoreError::Corruption {
        what: "invalid stored tenant id".to_owned(),
    })
}

/// A stored root key id.
pub(crate) fn root_key_id_from_db(s: &str) -> Result<RootKeyId, StoreError> {
    RootKeyId::new(s).map_err(|_| StoreError::Corruption {
        what: "invalid stored root key id".to_owned(),
    })
}

/// A stored salt: present exactly when the version is not destroyed, and 32 bytes.
pub(crate) fn salt_from_db(
    salt: Option<Vec<u8>>,
    state: KeyState,
    version: KeyVersion,
) -> Result<Option<Salt>, StoreError> {
    match (salt, state) {
        (None, KeyState::Destroyed) => Ok(None),
        (Some(bytes), s) if s != KeyState::Destroyed => {
            let salt = Salt::from_slice(&bytes).map_err(|e| StoreError::Corruption {
                what: format!("key version {version}: {e}"),
            });
            let mut bytes = bytes;
            zeroize::Zeroize::zeroize(&mut bytes);
            salt.map(Some)
        }
        _ => Err(StoreError::Corruption {
            what: format!("key version {version}: salt presence does not match its state"),
        }),
    }
}

/// A stored 32-byte hash or MAC.
pub(crate) fn hash_from_db(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corruption {
        what: format!("audit {what} is not 32 bytes"),
    })
}

/// Labels as stored JSON.
pub(crate) fn labels_to_db(labels: &Labels) -> Result<String, StoreError> {
    serde_json::to_string(labels).map_err(|_| StoreError::Database)
}

/// Stored JSON as labels.
pub(crate) fn labels_from_db(s: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(s).map_err(|_| StoreError::Corruption {
        what: "secret labels are not a JSON object of strings".to_owned(),
    })
}

/// A `u64` for a BIGINT column.
pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Refused {
        reason: "number out of range",
    })
}

/// A BIGINT that must be non-negative.
pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corruption {
        what: format!("{what} is negative"),
    })
}

/// The rules of [`Store::set_key_state`]: `Ok(false)` for no change, `Ok(true)` to
/// apply, or the refusal. `secrets` is the number of secrets the version holds.
pub(crate) fn check_transition(
    from: KeyState,
    to: KeyState,
    secrets: u64,
) -> Result<bool, StoreError> {
    use KeyState::*;
    match (from, to) {
        _ if from == to => Ok(false),
        (_, Active) => Err(StoreError::Refused {
            reason: "a version becomes active only by rotation",
        }),
        (Active, _) => Err(StoreError::Refused {
            reason: "the active version cannot change state: rotate first",
        }),
        (Destroyed, _) => Err(StoreError::Refused {
            reason: "a destroyed version cannot change state",
        }),
        (_, Destroyed) if secrets > 0 => Err(StoreError::Refused {
            reason: "the version still holds stored secrets: rewrap them first",
        }),
        _ => Ok(true),
    }
}

/// Maps errors of statements whose values the schema constrains: a CHECK violation is
/// a refused value, a foreign key violation an unknown key version.
pub(crate) fn map_check_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
                return StoreError::Refused {
                    reason: "a value is outside what the schema allows",
                };
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::NotFound {
                    what: "key version",
                };
            }
            _ => {}
        }
    }
    map_err(e)
}

/// `NotFound` when an update touched no row.
pub(crate) fn found(rows: u64, what: &'static str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound { what })
    } else {
        Ok(())
    }
}

/// The version after the stored maximum `max` (0 when none).
pub(crate) fn next_version(max: i64) -> Result<KeyVersion, StoreError> {
    let next = max.checked_add(1).and_then(|n| u32::try_from(n).ok());
    next.and_then(|n| KeyVersion::new(n).ok())
        .ok_or(StoreError::Refused {
            reason: "the tenant's key version numbers are exhausted",
        })
}

/// The rule of [`Store::set_min_decrypt_version`].
pub(crate) fn check_min_decrypt(primary: Option<i64>, min: KeyVersion) -> Result<(), StoreError> {
    match primary {
        Some(p) if i64::from(min.get()) <= p => Ok(()),
        Some(_) => Err(StoreError::Refused {
            reason: "the minimum decryption version cannot exceed the primary version",
        }),
        None => Err(StoreError::Refused {
            reason: "the tenant has no active version",
        }),
    }
}

/// Per-version secret counts.
pub(crate) fn counts(rows: Vec<(i64, i64)>) -> Result<BTreeMap<KeyVersion, u64>, StoreError> {
    rows.into_iter()
        .map(|(v, n)| {
            Ok((
                version_from_db(v, "secret key version")?,
                to_u64(n, "count")?,
            ))
        })
        .collect()
}

/// A row of the cross-tenant listing.
pub(crate) fn tenant_summary(
    row: (String, i64, Option<i64>, Option<i64>),
) -> Result<TenantSummary, StoreError> {
    let (id, created_at, destroy_after, shredded_at) = row;
    Ok(TenantSummary {
        tenant_id: tenant_from_db(&id)?,
        created_at,
        destroy_after,
        shredded_at,
    })
}

/// [`StoreError::RootKeyMissing`] for the first root key id of `refs` (pairs of
/// tenant id and root key id, ordered), or `Ok` when there are none.
pub(crate) fn missing_root_keys(refs: Vec<(String, String)>) -> Result<(), StoreError> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tenant, key) in refs {
        by_key.entry(key).or_default().push(tenant);
    }
    match by_key.into_iter().next() {
        None => Ok(()),
        Some((id, tenants)) => Err(StoreError::RootKeyMissing { id, tenants }),
    }
}

/// Secrets may be written under an active or decrypt-only version only.
pub(crate) fn writable_state(state: Option<String>) -> Result<(), StoreError> {
    match state.as_deref().and_then(KeyState::parse) {
        None => Err(StoreError::NotFound {
            what: "key version",
        }),
        Some(KeyState::Active | KeyState::DecryptOnly) => Ok(()),
        Some(_) => Err(StoreError::Refused {
            reason: "secrets cannot be written under a disabled or destroyed version",
        }),
    }
}
