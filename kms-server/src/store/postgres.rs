//! The PostgreSQL store: row-level security on every tenant-scoped table, a runtime
//! role that owns nothing, and the narrow cross-tenant path through `SECURITY DEFINER`
//! functions (docs/STORAGE.md).

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions, Transaction};
use subtle::ConstantTimeEq;

use super::sql::{self, AuditRow, MetaRow, SecretRow, TenantRow, VersionRow};
use super::writable_state;
use super::{
    ACQUIRE_TIMEOUT, KeyState, KeyVersionRecord, NewSecret, SecretMeta, SecretRecord, ShredReport,
    StoreError, TenantRecord, TenantSummary, check_transition, labels_to_db, map_err, now_ms, page,
    tenant_from_db, to_i64, to_u64, version_from_db,
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

    /// A write transaction scoped to `tenant` (row-level security).
    async fn begin_write(
        &self,
        tenant: &str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin(tenant).await
    }

    /// A read transaction scoped to `tenant` (row-level security).
    async fn begin_read(&self, tenant: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin(tenant).await
    }

    /// A transaction for the tables without a tenant (root key check values).
    async fn begin_global(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// Serialises audit appends per chain (a hash collision only serialises two chains).
    async fn lock_chain(
        tx: &mut Transaction<'static, Postgres>,
        chain: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("hygo-kms/audit/{chain}"))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Cross-tenant (the narrow path): `(tenant, root key id)` of versions that are not
    /// destroyed and use a root key outside `ring`.
    async fn unknown_root_key_refs(
        &self,
        ring: &RootKeyRing,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let known: Vec<String> = ring.iter().map(|k| k.id().as_str().to_owned()).collect();
        sqlx::query_as("SELECT tenant_id, root_key_id FROM hygo_unknown_root_key_refs($1)")
            .bind(known)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    /// Cross-tenant (the narrow path): a page of tenant metadata.
    async fn tenant_page(
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

    /// Cross-tenant (the narrow path): tenants whose destruction is due.
    async fn due_tenants(&self, now: i64) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT tenant_id FROM hygo_due_destructions($1)")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(|(t,)| tenant_from_db(t)).collect()
    }
}

impl_store!(
    PgStore,
    Postgres,
    for_update = " FOR UPDATE",
    for_share = " FOR SHARE"
);
