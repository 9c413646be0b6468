//! The embedded SQLite store: the shared suite, concurrency, corruption, settings.

mod common;

use std::sync::Arc;

use common::{SqliteTestDb, suite};
use kms_server::envelope::Salt;
use kms_server::keys::TenantId;
use kms_server::root::RootKeyId;
use kms_server::store::{SqliteStore, Store, StoreError};

#[tokio::test]
async fn sqlite_passes_the_store_suite() {
    let db = SqliteTestDb::new().await;
    suite::run(&db.store).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_rotations_serialise() {
    let db = SqliteTestDb::new().await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    suite::concurrent_rotations(store).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_audit_appends_and_puts_serialise() {
    let db = SqliteTestDb::new().await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    suite::concurrent_audit_appends(store.clone()).await;
    suite::concurrent_create_only_puts(store).await;
    db.drop().await;
}

#[tokio::test]
async fn sqlite_runs_with_secure_delete_wal_and_foreign_keys() {
    let db = SqliteTestDb::new().await;
    let pool = db.store.pool();
    let (secure_delete,): (i64,) = sqlx::query_as("PRAGMA secure_delete")
        .fetch_one(pool)
        .await
        .unwrap();
    let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!((secure_delete, journal.as_str(), fk), (1, "wal", 1));
    db.store.checkpoint().await.unwrap();

    // Reopening an existing database is fine (migrations already applied).
    let path = db.dir.join("kms.db");
    let again = SqliteStore::open(&path).await.unwrap();
    again.pool().close().await;
    db.drop().await;
}

#[tokio::test]
async fn sqlite_salt_of_wrong_length_is_corruption() {
    let db = SqliteTestDb::new().await;
    let tenant = TenantId::new("corrupt").unwrap();
    let root = RootKeyId::new("root-1").unwrap();
    db.store
        .create_key_version(&tenant, &root, &Salt::generate())
        .await
        .unwrap();
    let mut conn = db.store.pool().acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE tenant_key_versions SET salt = substr(salt, 1, 31) WHERE tenant_id = 'corrupt'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = OFF")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let err = db.store.key_versions(&tenant).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corruption { what } if what.contains("31 bytes")),
        "{err:?}"
    );
    db.drop().await;
}

#[tokio::test]
async fn sqlite_audit_is_append_only() {
    let db = SqliteTestDb::new().await;
    let ring = common::ring("r1");
    let key = kms_server::audit::AuditKey::derive(ring.primary());
    let event = kms_server::audit::NewAuditEvent {
        chain: kms_server::audit::AuditChain::Global,
        actor: "a".into(),
        action: "b".into(),
        key_version: None,
        outcome: "ok".into(),
        request_id: "r".into(),
        detail: String::new(),
    };
    db.store.append_audit(&event, &key).await.unwrap();
    assert!(
        sqlx::query("UPDATE audit_events SET outcome = 'denied'")
            .execute(db.store.pool())
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_events")
            .execute(db.store.pool())
            .await
            .is_err()
    );
    db.drop().await;
}
