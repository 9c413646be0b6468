//! Shared test support: the PostgreSQL harness and the store suite both stores pass.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module shared by test binaries"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support code: failing loudly is the point"
)]

pub mod suite;

use std::path::PathBuf;
use std::str::FromStr;

use kms_server::root::{RootKey, RootKeyId, RootKeyRing};
use kms_server::store::{PgStore, SqliteStore, migrate_postgres};
use rand_core::{OsRng, RngCore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

/// The owner role the harness creates (runs migrations, owns the tables).
pub const OWNER_ROLE: &str = "hygo_kms_owner";
/// The runtime role the harness creates (what the server connects as).
pub const RUNTIME_ROLE: &str = "hygo_kms_runtime";

/// A random lowercase hex string of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ring of one fresh root key with `id`.
pub fn ring(id: &str) -> RootKeyRing {
    RootKeyRing::new(vec![RootKey::generate(RootKeyId::new(id).unwrap())], None).unwrap()
}

/// The superuser URL of the test server (`KMS_TEST_PG_URL`).
pub fn admin_url() -> String {
    std::env::var("KMS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `host:port` of the admin URL.
fn host_port() -> String {
    let url = admin_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A fresh database owned by the owner role, migrated by `kms-server migrate`'s code.
/// Fails (never skips) when PostgreSQL is unreachable.
pub struct PgTestDb {
    /// Database name.
    pub name: String,
}

impl PgTestDb {
    /// Creates the roles if missing, a fresh database, and migrates it.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        migrate_postgres(&db.url(OWNER_ROLE), RUNTIME_ROLE)
            .await
            .expect("migrate as the owner role");
        db
    }

    /// Creates the roles if missing and a fresh, unmigrated database.
    pub async fn empty() -> Self {
        let mut admin = Self::admin().await;
        for ddl in [
            format!("CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"),
            format!("CREATE ROLE {RUNTIME_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"),
        ] {
            if let Err(e) = sqlx::query(&ddl).execute(&mut admin).await {
                // Parallel tests race to create the roles: tolerate "already exists"
                // (duplicate_object) and the unique violation of the catalog insert.
                let code = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned());
                assert!(
                    matches!(code.as_deref(), Some("42710" | "23505")),
                    "creating a role failed: {e}"
                );
            }
        }
        let name = format!("kms_test_{}", random_hex(8));
        sqlx::query(&format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        Self { name }
    }

    /// A superuser connection to the admin database. Panics if PostgreSQL is down.
    pub async fn admin() -> PgConnection {
        PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL must be reachable at KMS_TEST_PG_URL (default 127.0.0.1:5432)")
    }

    /// URL of this database as `role` (pg_hba trusts 127.0.0.1).
    pub fn url(&self, role: &str) -> String {
        format!("postgres://{role}@{}/{}", host_port(), self.name)
    }

    /// A raw connection as `role`.
    pub async fn connect_as(&self, role: &str) -> PgConnection {
        PgConnection::connect(&self.url(role))
            .await
            .expect("connect")
    }

    /// A pool of at most `size` connections as `role`.
    pub async fn pool_as(&self, role: &str, size: u32) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .connect_with(PgConnectOptions::from_str(&self.url(role)).unwrap())
            .await
            .expect("pool")
    }

    /// The store as the server opens it: runtime role, schema checked.
    pub async fn runtime_store(&self, pool_size: u32) -> PgStore {
        PgStore::connect_with(&self.url(RUNTIME_ROLE), pool_size)
            .await
            .expect("open the store as the runtime role")
    }

    /// Drops the database (best effort).
    pub async fn drop(self) {
        let mut admin = Self::admin().await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .ok();
        admin.close().await.ok();
    }
}

/// A fresh SQLite database file in the temp dir; removed by [`SqliteTestDb::drop`].
pub struct SqliteTestDb {
    /// The directory holding it.
    pub dir: PathBuf,
    /// The store.
    pub store: SqliteStore,
}

impl SqliteTestDb {
    /// Opens a fresh store.
    pub async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kms-store-test-{}", random_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir.join("kms.db")).await.unwrap();
        Self { dir, store }
    }

    /// Closes the store and removes the directory.
    pub async fn drop(self) {
        self.store.pool().close().await;
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
