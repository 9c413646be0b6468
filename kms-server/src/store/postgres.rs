//! The PostgreSQL store: row-level security on every tenant-scoped table, a runtime
//! role that owns nothing, and the narrow cross-tenant path through `SECURITY DEFINER`
//! functions (docs/STORAGE.md).

use std::collections::BTreeMap;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions, Transaction};
use subtle::ConstantTimeEq;

use super::sql::{self, AuditRow, MetaRow, SecretRow, TenantRow, VersionRow};
use super::writable_state;
use super::{
    ACQUIRE_TIMEOUT, KeyState, KeyVersionRecord, NewSecret, SecretMeta, SecretRecord, ShredReport,
    Store, StoreError, TenantRecord, TenantSummary, check_transition, labels_to_db, map_err,
    now_ms, page, tenant_from_db, to_i64, to_u64, version_from_db,
};
use crate::audit::{AuditChain, AuditKey, AuditRecord, NewAuditEvent};
use crate::envelope::Salt;
use crate::keys::{KeyVersion, TenantId};
use crate::root::{RootKeyId, RootKeyRing};

/// The PostgreSQL migrations (`schema/postgres/`), embedded at build time.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("../schema/postgres");

/// Default pool size.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// Server-side bounds for the runtime role's sessions: no statement (or lock wait) runs
/// longer than this, so a call cannot hang on a stuck lock.
const STATEMENT_TIMEOUT: &str = "10s";
/// A transaction left idle (e.g. by a stalled client) is ended by the server.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";

/// What `kms-server migrate` grants the runtime role, `{role}` standing for its quoted
/// name: exactly what the store needs, and nothing that could bypass row-level security
/// (no ownership, no DELETE on audit events, no UPDATE on check values).
pub const RUNTIME_GRANTS: &[&str] = &[
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON _sqlx_migrations TO {role}",
    "GRANT SELECT, INSERT ON root_key_checks TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON tenants TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON tenant_key_versions TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON secrets TO {role}",
    "GRANT SELECT, INSERT ON audit_events TO {role}",
    "GRANT EXECUTE ON FUNCTION hygo_list_tenants(TEXT, INTEGER) TO {role}",
    "GRANT EXECUTE ON FUNCTION hygo_due_destructions(BIGINT) TO {role}",
    "GRANT EXECUTE ON FUNCTION hygo_unknown_root_key_refs(TEXT[]) TO {role}",
];

/// A PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url)
        .map(|o| o.disable_statement_logging())
        .map_err(|_| StoreError::Config {
            reason: "invalid PostgreSQL URL",
        })
}

/// Connect options of the runtime store: the URL plus the session time bounds.
fn runtime_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(parse_url(url)?.options([
        ("statement_timeout", STATEMENT_TIMEOUT),
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
    ]))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// `kms-server migrate`: applies the embedded migrations connected as whoever `url`
/// names (the owner role), then grants `runtime_role` exactly [`RUNTIME_GRANTS`] after
/// revoking everything else it held on the schema's tables. Refuses a runtime role that
/// does not exist, is the owner, is a superuser or may bypass row-level security.
pub async fn migrate_postgres(url: &str, runtime_role: &str) -> Result<(), StoreError> {
    let pool = pool_options(1)
        .connect_with(parse_url(url)?)
        .await
        .map_err(map_err)?;
    let result = migrate_on(&pool, runtime_role).await;
    pool.close().await;
    result
}

async fn migrate_on(pool: &PgPool, runtime_role: &str) -> Result<(), StoreError> {
    let role: Option<(bool, bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolname = current_user FROM pg_roles WHERE rolname = $1",
    )
    .bind(runtime_role)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    match role {
        None => {
            return Err(StoreError::Refused {
                reason: "the runtime role does not exist (docs/STORAGE.md shows how to create it)",
            });
        }
        Some((true, _, _)) | Some((_, true, _)) => {
            return Err(StoreError::Refused {
                reason: "the runtime role must be NOSUPERUSER and NOBYPASSRLS",
            });
        }
        Some((_, _, true)) => {
            return Err(StoreError::Refused {
                reason: "the runtime role must not be the owner role that runs migrations",
            });
        }
        Some(_) => {}
    }
    PG_MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration {
            detail: e.to_string(),
        })?;
    let role = quote_ident(runtime_role);
    let mut tx = pool.begin().await.map_err(map_err)?;
    for revoke in [
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}",
    ]
    .iter()
    .chain(RUNTIME_GRANTS)
    {
        sqlx::query(&revoke.replace("{role}", &role))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// Compares the migrations applied to the database with `migrator`'s.
async fn check_schema_with(pool: &PgPool, migrator: &Migrator) -> Result<(), StoreError> {
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Database => StoreError::SchemaOutdated {
                    detail: "no migrations applied".to_owned(),
                },
                other => other,
            })?;
    let applied: BTreeMap<i64, (Vec<u8>, bool)> = applied
        .into_iter()
        .map(|(v, sum, ok)| (v, (sum, ok)))
        .collect();
    for m in migrator.iter() {
        match applied.get(&m.version) {
            None => {
                return Err(StoreError::SchemaOutdated {
                    detail: format!("migration {} is not applied", m.version),
                });
            }
            Some((_, false)) => {
                return Err(StoreError::SchemaOutdated {
                    detail: format!("migration {} failed", m.version),
                });
            }
            Some((sum, true)) if sum.as_slice() != m.checksum.as_ref() => {
                return Err(StoreError::SchemaOutdated {
                    detail: format!("migration {} differs from this build's", m.version),
                });
            }
            Some(_) => {}
        }
    }
    if let Some(v) = applied.keys().find(|v| !migrator.version_exists(**v)) {
        return Err(StoreError::SchemaOutdated {
            detail: format!("the database has migration {v}, which this build does not know"),
        });
    }
    Ok(())
}

/// The PostgreSQL store, connected as the runtime role.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects (bounded by [`ACQUIRE_TIMEOUT`]) and refuses an out-of-date schema
    /// ([`StoreError::SchemaOutdated`]). The server runs as the runtime role.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`PgStore::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pool_options(max_connections.max(1))
            .connect_with(runtime_options(url)?)
            .await
            .map_err(map_err)?;
        let store = Self { pool };
        store.check_schema().await?;
        Ok(store)
    }

    /// A store that connects on first use (no schema check): calls fail with
    /// [`StoreError::Unavailable`] while the database cannot be reached.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pool_options(max_connections.max(1)).connect_lazy_with(runtime_options(url)?);
        Ok(Self { pool })
    }

    /// Checks that exactly this build's migrations are applied.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        check_schema_with(&self.pool, &PG_MIGRATOR).await
    }

    /// The pool (for tests and health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction scoped to `tenant` (a tenant id or an audit chain id): the
    /// first statement sets `hygo.tenant_id` for this transaction only.
    async fn begin(&self, tenant: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SELECT set_config('hygo.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }

    /// Locks the tenant row (serialising lifecycle changes of one tenant) and returns its
    /// `destroy_after`.
    async fn lock_tenant(
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT destroy_after FROM tenants WHERE tenant_id = $1 FOR UPDATE")
                .bind(tenant.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
        match row {
            Some((destroy_after,)) => Ok(destroy_after),
            None => Err(StoreError::NotFound { what: "tenant" }),
        }
    }

    /// Checks that secrets may be sealed under `version` and holds a share lock on it
    /// until commit, so it cannot be destroyed meanwhile.
    async fn writable_version(
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<(), StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM tenant_key_versions WHERE tenant_id = $1 AND version = $2 FOR SHARE",
        )
        .bind(tenant.as_str())
        .bind(i64::from(version.get()))
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        writable_state(row.map(|(s,)| s))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn check_root_keys(&self, ring: &RootKeyRing) -> Result<(), StoreError> {
        for key in ring.iter() {
            let kcv = key.check_value();
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            sqlx::query(sql::INSERT_KCV)
                .bind(key.id().as_str())
                .bind(kcv.as_slice())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let (stored,): (Vec<u8>,) = sqlx::query_as(sql::SELECT_KCV)
                .bind(key.id().as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            if !bool::from(stored.as_slice().ct_eq(kcv.as_slice())) {
                return Err(StoreError::RootKeyMismatch {
                    id: key.id().clone(),
                });
            }
            tx.commit().await.map_err(map_err)?;
        }
        let known: Vec<String> = ring.iter().map(|k| k.id().as_str().to_owned()).collect();
        let refs: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, root_key_id FROM hygo_unknown_root_key_refs($1)")
                .bind(known)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        super::missing_root_keys(refs)
    }

    async fn tenant(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let row: Option<TenantRow> = sqlx::query_as(sql::SELECT_TENANT)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(sql::tenant).transpose()
    }

    async fn list_tenants(
        &self,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT tenant_id, created_at, destroy_after, shredded_at \
             FROM hygo_list_tenants($1, $2)",
        )
        .bind(after.map(TenantId::as_str))
        .bind(i32::try_from(page(limit)).unwrap_or(i32::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(super::tenant_summary).collect()
    }

    async fn due_destructions(&self, now: i64) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT tenant_id FROM hygo_due_destructions($1)")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(|(t,)| tenant_from_db(t)).collect()
    }

    async fn create_key_version(
        &self,
        tenant: &TenantId,
        root_key_id: &RootKeyId,
        salt: &Salt,
    ) -> Result<KeyVersionRecord, StoreError> {
        let now = now_ms();
        let mut tx = self.begin(tenant.as_str()).await?;
        sqlx::query(sql::INSERT_TENANT)
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if Self::lock_tenant(&mut tx, tenant).await?.is_some() {
            return Err(StoreError::Refused {
                reason: "the tenant is scheduled for destruction",
            });
        }
        let (max,): (i64,) = sqlx::query_as(sql::MAX_VERSION)
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let next = super::next_version(max)?;
        sqlx::query(sql::DEMOTE_ACTIVE)
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let row: VersionRow = sqlx::query_as(sql::INSERT_VERSION)
            .bind(tenant.as_str())
            .bind(i64::from(next.get()))
            .bind(root_key_id.as_str())
            .bind(salt.expose().as_slice())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(sql::TOUCH_TENANT)
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        sql::version(row)
    }

    async fn key_versions(&self, tenant: &TenantId) -> Result<Vec<KeyVersionRecord>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let rows: Vec<VersionRow> = sqlx::query_as(sql::SELECT_VERSIONS)
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(sql::version).collect()
    }

    async fn key_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<Option<KeyVersionRecord>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let row: Option<VersionRow> = sqlx::query_as(sql::SELECT_VERSION)
            .bind(tenant.as_str())
            .bind(i64::from(version.get()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(sql::version).transpose()
    }

    async fn primary_version(&self, tenant: &TenantId) -> Result<Option<KeyVersion>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let row: Option<(i64,)> = sqlx::query_as(sql::SELECT_PRIMARY)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(|(v,)| version_from_db(v, "primary version"))
            .transpose()
    }

    async fn set_key_state(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
        state: KeyState,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let v = i64::from(version.get());
        let mut tx = self.begin(tenant.as_str()).await?;
        let current: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM tenant_key_versions WHERE tenant_id = $1 AND version = $2 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(v)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let current = current
            .and_then(|(s,)| KeyState::parse(&s))
            .ok_or(StoreError::NotFound {
                what: "key version",
            })?;
        let (secrets,): (i64,) = sqlx::query_as(sql::COUNT_SECRETS_OF_VERSION)
            .bind(tenant.as_str())
            .bind(v)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if !check_transition(current, state, to_u64(secrets, "count")?)? {
            return Ok(());
        }
        let q = if state == KeyState::Destroyed {
            sqlx::query(sql::DESTROY_VERSION)
                .bind(tenant.as_str())
                .bind(v)
                .bind(now)
        } else {
            sqlx::query(sql::SET_STATE)
                .bind(tenant.as_str())
                .bind(v)
                .bind(state.as_str())
                .bind(now)
        };
        q.execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_min_decrypt_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        Self::lock_tenant(&mut tx, tenant).await?;
        let primary: Option<(i64,)> = sqlx::query_as(sql::SELECT_PRIMARY)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        super::check_min_decrypt(primary.map(|(p,)| p), version)?;
        sqlx::query(sql::SET_MIN_DECRYPT)
            .bind(tenant.as_str())
            .bind(i64::from(version.get()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn schedule_destruction(
        &self,
        tenant: &TenantId,
        destroy_after: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let done = sqlx::query(sql::SET_DESTROY_AFTER)
            .bind(tenant.as_str())
            .bind(destroy_after)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        super::found(done.rows_affected(), "tenant")?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_auto_rotate(
        &self,
        tenant: &TenantId,
        days: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let done = sqlx::query(sql::SET_AUTO_ROTATE)
            .bind(tenant.as_str())
            .bind(days.map(i64::from))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(super::map_check_err)?;
        super::found(done.rows_affected(), "tenant")?;
        tx.commit().await.map_err(map_err)
    }

    async fn shred_tenant(&self, tenant: &TenantId) -> Result<ShredReport, StoreError> {
        let now = now_ms();
        let mut tx = self.begin(tenant.as_str()).await?;
        Self::lock_tenant(&mut tx, tenant).await?;
        let secrets = sqlx::query(sql::DELETE_ALL_SECRETS)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        let versions = sqlx::query(sql::DESTROY_ALL_VERSIONS)
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query(sql::MARK_SHREDDED)
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(ShredReport {
            versions_destroyed: versions,
            secrets_deleted: secrets,
            shredded_at: now,
        })
    }

    async fn put_secret(
        &self,
        tenant: &TenantId,
        secret: NewSecret<'_>,
        expected_revision: Option<u64>,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let labels = labels_to_db(secret.labels)?;
        let mut tx = self.begin(tenant.as_str()).await?;
        Self::writable_version(&mut tx, tenant, secret.key_version).await?;
        let (statement, expected) = match expected_revision {
            None => (sql::UPSERT_SECRET, None),
            Some(0) => (sql::CREATE_SECRET, None),
            Some(n) => (sql::UPDATE_SECRET, Some(to_i64(n)?)),
        };
        let mut q = sqlx::query_as::<_, (i64,)>(statement)
            .bind(tenant.as_str())
            .bind(secret.vendor)
            .bind(secret.name)
            .bind(i64::from(secret.key_version.get()))
            .bind(secret.envelope)
            .bind(labels)
            .bind(now);
        if let Some(n) = expected {
            q = q.bind(n);
        }
        let row = q
            .fetch_optional(&mut *tx)
            .await
            .map_err(super::map_check_err)?;
        match (row, expected_revision) {
            (Some((revision,)), _) => {
                tx.commit().await.map_err(map_err)?;
                to_u64(revision, "secret revision")
            }
            (None, expected) => {
                let found: Option<(i64,)> = sqlx::query_as(sql::SECRET_REVISION)
                    .bind(tenant.as_str())
                    .bind(secret.vendor)
                    .bind(secret.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Err(StoreError::RevisionMismatch {
                    expected: expected.unwrap_or(0),
                    found: found.and_then(|(r,)| u64::try_from(r).ok()),
                })
            }
        }
    }

    async fn get_secret(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let row: Option<SecretRow> = sqlx::query_as(sql::SELECT_SECRET)
            .bind(tenant.as_str())
            .bind(vendor)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(sql::secret).transpose()
    }

    async fn list_secrets(
        &self,
        tenant: &TenantId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SecretMeta>, StoreError> {
        let (vendor, name) = after.unwrap_or(("", ""));
        let mut tx = self.begin(tenant.as_str()).await?;
        let rows: Vec<MetaRow> = sqlx::query_as(sql::LIST_SECRETS)
            .bind(tenant.as_str())
            .bind(vendor)
            .bind(name)
            .bind(page(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(sql::meta).collect()
    }

    async fn delete_secret(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
        expected_revision: Option<u64>,
    ) -> Result<bool, StoreError> {
        let expected = expected_revision.map(to_i64).transpose()?;
        let mut tx = self.begin(tenant.as_str()).await?;
        let deleted = sqlx::query(sql::DELETE_SECRET)
            .bind(tenant.as_str())
            .bind(vendor)
            .bind(name)
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted == 0 && expected.is_some() {
            let found: Option<(i64,)> = sqlx::query_as(sql::SECRET_REVISION)
                .bind(tenant.as_str())
                .bind(vendor)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if let Some((r,)) = found {
                return Err(StoreError::RevisionMismatch {
                    expected: expected_revision.unwrap_or(0),
                    found: u64::try_from(r).ok(),
                });
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(deleted > 0)
    }

    async fn secrets_below_version(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
        limit: u32,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let rows: Vec<SecretRow> = sqlx::query_as(sql::SECRETS_BELOW)
            .bind(tenant.as_str())
            .bind(i64::from(version.get()))
            .bind(page(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(sql::secret).collect()
    }

    async fn replace_secret_envelope(
        &self,
        tenant: &TenantId,
        vendor: &str,
        name: &str,
        old_envelope: &[u8],
        new_envelope: &[u8],
        new_version: KeyVersion,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        Self::writable_version(&mut tx, tenant, new_version).await?;
        let replaced = sqlx::query(sql::REPLACE_ENVELOPE)
            .bind(tenant.as_str())
            .bind(vendor)
            .bind(name)
            .bind(old_envelope)
            .bind(new_envelope)
            .bind(i64::from(new_version.get()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(replaced == 1)
    }

    async fn secret_counts(
        &self,
        tenant: &TenantId,
    ) -> Result<BTreeMap<KeyVersion, u64>, StoreError> {
        let mut tx = self.begin(tenant.as_str()).await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql::SECRET_COUNTS)
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        super::counts(rows)
    }

    async fn append_audit(
        &self,
        event: &NewAuditEvent,
        key: &AuditKey,
    ) -> Result<AuditRecord, StoreError> {
        let chain = event.chain.as_str();
        let mut tx = self.begin(chain).await?;
        // Serialise appends per chain (a hash collision only serialises two chains).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("hygo-kms/audit/{chain}"))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(sql::AUDIT_HEAD)
            .bind(chain)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let (seq, prev) = sql::next_link(head)?;
        let record = AuditRecord::seal(event, seq, now_ms(), prev, key);
        super::bind_audit!(sqlx::query(sql::INSERT_AUDIT), record)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn list_audit(
        &self,
        chain: &AuditChain,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut tx = self.begin(chain.as_str()).await?;
        let rows: Vec<AuditRow> = sqlx::query_as(sql::LIST_AUDIT)
            .bind(chain.as_str())
            .bind(to_i64(after_seq)?)
            .bind(page(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(sql::audit).collect()
    }
}
