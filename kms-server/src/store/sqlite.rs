//! The embedded SQLite store (the default for a single machine and development).
//!
//! SQLite has no roles or row-level security: every statement names its `tenant_id`,
//! and the cross-tenant reads are plain queries. Writes run in `BEGIN IMMEDIATE`
//! transactions, so concurrent writers (e.g. two rotations of one tenant) queue on the
//! busy timeout instead of failing. The database runs with `secure_delete=ON` (deleted
//! salts and envelopes are overwritten), WAL and foreign keys, and migrates itself on
//! open.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
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

/// The SQLite migrations (`schema/sqlite/`), embedded at build time.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../schema/sqlite");

/// How long a writer waits for another one before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pool size (readers run concurrently under WAL; writers queue).
const MAX_CONNECTIONS: u32 = 4;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` with `secure_delete=ON`,
    /// WAL, foreign keys and a busy timeout, and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT.max(BUSY_TIMEOUT))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration {
                detail: e.to_string(),
            })?;
        Ok(Self { pool })
    }

    /// The pool (for tests and maintenance such as WAL checkpoints).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Checkpoints and truncates the WAL, so that deleted pages (already overwritten by
    /// `secure_delete`) leave no copy in the log: part of crypto-shredding (SPEC §7).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// A write transaction: `BEGIN IMMEDIATE` takes the database's write lock at once, so
    /// concurrent writers queue (busy timeout) instead of failing on lock upgrade.
    async fn begin_write(&self, _tenant: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// A read transaction (one consistent snapshot).
    async fn begin_read(&self, _tenant: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// A transaction for the tables without a tenant (root key check values).
    async fn begin_global(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.begin_write("").await
    }

    /// `BEGIN IMMEDIATE` already serialises appends (and every other write).
    async fn lock_chain(
        _tx: &mut Transaction<'static, Sqlite>,
        _chain: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// `(tenant, root key id)` of versions that are not destroyed and use a root key
    /// outside `ring` (at most 1000).
    async fn unknown_root_key_refs(
        &self,
        ring: &RootKeyRing,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let used: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT tenant_id, root_key_id FROM tenant_key_versions \
             WHERE state <> 'destroyed' ORDER BY tenant_id, root_key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(used
            .into_iter()
            .filter(|(_, id)| {
                RootKeyId::new(id.as_str()).map_or(true, |id| ring.get(&id).is_none())
            })
            .take(1000)
            .collect())
    }

    /// A page of tenant metadata.
    async fn tenant_page(
        &self,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT tenant_id, created_at, destroy_after, shredded_at FROM tenants \
             WHERE $1 IS NULL OR tenant_id > $1 ORDER BY tenant_id LIMIT $2",
        )
        .bind(after.map(TenantId::as_str))
        .bind(page(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(super::tenant_summary).collect()
    }

    /// Tenants whose destruction is due.
    async fn due_tenants(&self, now: i64) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT tenant_id FROM tenants \
             WHERE destroy_after IS NOT NULL AND destroy_after <= $1 ORDER BY tenant_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(|(t,)| tenant_from_db(t)).collect()
    }
}

impl_store!(SqliteStore, Sqlite, for_update = "", for_share = "");
