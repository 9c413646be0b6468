//! The PostgreSQL store against a real server (KMS_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres): the shared suite, row-level security
//! proofs connected as the runtime role, a dump check, concurrency, outages,
//! corruption and schema checks. Every test fails (never skips) without PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: failing loudly is the point"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{OWNER_ROLE, PgTestDb, RUNTIME_ROLE, suite};
use kms_server::audit::{AuditChain, AuditKey, NewAuditEvent};
use kms_server::envelope::{Salt, TenantKeys, open, seal};
use kms_server::keys::{Context, KeyVersion, TenantId};
use kms_server::root::{RootKey, RootKeyId, RootKeyRing};
use kms_server::store::{NewSecret, PgStore, Store, StoreError, migrate_postgres};
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Two tenants with a key version, a secret and an audit event each.
async fn two_tenants(store: &PgStore) {
    let root = RootKeyId::new("root-1").unwrap();
    let ring = common::ring("root-1");
    let key = AuditKey::derive(ring.primary());
    for tenant in ["rls-a", "rls-b"] {
        let tenant = t(tenant);
        store
            .create_key_version(&tenant, &root, &Salt::generate())
            .await
            .unwrap();
        store
            .put_secret(
                &tenant,
                NewSecret {
                    vendor: "shopify",
                    name: "token",
                    key_version: KeyVersion::FIRST,
                    envelope: b"envelope",
                    labels: &Default::default(),
                },
                None,
            )
            .await
            .unwrap();
        let event = NewAuditEvent {
            chain: AuditChain::Tenant(tenant.clone()),
            actor: "admin".into(),
            action: "rotate".into(),
            key_version: Some(KeyVersion::FIRST),
            outcome: "ok".into(),
            request_id: "r".into(),
            detail: String::new(),
        };
        store.append_audit(&event, &key).await.unwrap();
    }
}

const TENANT_TABLES: [&str; 4] = ["tenants", "tenant_key_versions", "secrets", "audit_events"];

async fn set_tenant(conn: &mut PgConnection, tenant: &str) {
    sqlx::query("SELECT set_config('hygo.tenant_id', $1, true)")
        .bind(tenant)
        .execute(conn)
        .await
        .unwrap();
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn pg_passes_the_store_suite() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(4).await;
    suite::run(&store).await;
    store.pool().close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_concurrent_rotations_serialise() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(8).await;
    suite::concurrent_rotations(Arc::new(store.clone())).await;
    store.pool().close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_concurrent_audit_appends_and_puts_serialise() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(8).await;
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    suite::concurrent_audit_appends(shared.clone()).await;
    suite::concurrent_create_only_puts(shared).await;
    store.pool().close().await;
    db.drop().await;
}

/// With the tenant set to A, queries without `WHERE tenant_id` see only A's rows, and
/// rows of B can be neither inserted nor updated.
#[tokio::test]
async fn pg_rls_scopes_every_query_to_the_set_tenant() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(2).await;
    two_tenants(&store).await;
    let mut conn = db.connect_as(RUNTIME_ROLE).await;

    let mut tx = conn.begin().await.unwrap();
    set_tenant(&mut tx, "rls-a").await;
    for table in TENANT_TABLES {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT tenant_id FROM {table}"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{table}");
        assert!(rows.iter().all(|(t,)| t == "rls-a"), "{table}: {rows:?}");
    }
    // Updating B's rows touches nothing: they are invisible.
    let updated =
        sqlx::query("UPDATE secrets SET labels = '{\"x\":\"y\"}' WHERE tenant_id = 'rls-b'")
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let updated = sqlx::query("UPDATE tenant_key_versions SET state = 'disabled'")
        .execute(&mut *tx)
        .await;
    // Only A's version is visible; it is active, so the CHECK-free update applies to A
    // alone (then rolled back).
    assert_eq!(updated.unwrap().rows_affected(), 1);
    tx.rollback().await.unwrap();

    let attempts = [
        "INSERT INTO secrets (tenant_id, vendor, name, revision, key_version, envelope, \
         labels, created_at, updated_at) VALUES ('rls-b', 'v', 'n', 1, 1, '\\x00', '{}', 0, 0)",
        "INSERT INTO tenant_key_versions (tenant_id, version, root_key_id, salt, state, \
         created_at, updated_at) VALUES ('rls-b', 2, 'r', decode(repeat('00', 32), 'hex'), \
         'decrypt_only', 0, 0)",
        "INSERT INTO tenants (tenant_id, created_at, updated_at) VALUES ('rls-c', 0, 0)",
        "INSERT INTO audit_events (tenant_id, seq, at, actor, action, outcome, request_id, \
         prev_hash, hash, mac, mac_root_key_id) VALUES ('rls-b', 9, 0, 'a', 'b', 'c', 'd', \
         decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'), \
         decode(repeat('00', 32), 'hex'), 'r')",
        "UPDATE secrets SET tenant_id = 'rls-b', name = 'moved' WHERE tenant_id = 'rls-a'",
    ];
    for attempt in attempts {
        let mut tx = conn.begin().await.unwrap();
        set_tenant(&mut tx, "rls-a").await;
        let err = sqlx::query(attempt).execute(&mut *tx).await.unwrap_err();
        assert_eq!(code(&err).as_deref(), Some("42501"), "{attempt}: {err}");
        tx.rollback().await.unwrap();
    }
    conn.close().await.unwrap();
    store.pool().close().await;
    db.drop().await;
}

/// With no tenant set, or an empty one, nothing is visible.
#[tokio::test]
async fn pg_rls_without_a_tenant_sees_nothing() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(2).await;
    two_tenants(&store).await;
    let mut conn = db.connect_as(RUNTIME_ROLE).await;
    for table in TENANT_TABLES {
        assert_eq!(count(&mut conn, table).await, 0, "{table}, never set");
    }
    let mut tx = conn.begin().await.unwrap();
    set_tenant(&mut tx, "").await;
    for table in TENANT_TABLES {
        assert_eq!(count(&mut tx, table).await, 0, "{table}, empty setting");
    }
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    store.pool().close().await;
    db.drop().await;
}

/// A pooled connection used for A and then, without setting the tenant, for B sees
/// nothing of A: the setting is transaction-local.
#[tokio::test]
async fn pg_rls_tenant_setting_does_not_leak_through_the_pool() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(2).await;
    two_tenants(&store).await;
    let pool = db.pool_as(RUNTIME_ROLE, 1).await;

    let mut tx = pool.begin().await.unwrap();
    let (pid_a,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    set_tenant(&mut tx, "rls-a").await;
    assert_eq!(count(&mut tx, "secrets").await, 1);
    tx.commit().await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let (pid_b,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(pid_a, pid_b, "the same pooled connection");
    for table in TENANT_TABLES {
        assert_eq!(count(&mut conn, table).await, 0, "{table}");
    }
    let mut tx = conn.begin().await.unwrap();
    for table in TENANT_TABLES {
        assert_eq!(
            count(&mut tx, table).await,
            0,
            "{table} in a new transaction"
        );
    }
    tx.rollback().await.unwrap();
    drop(conn);

    // The store itself, on a single connection, alternating tenants.
    let single = db.runtime_store(1).await;
    let a = single
        .get_secret(&t("rls-a"), "shopify", "token")
        .await
        .unwrap();
    assert!(a.is_some());
    assert!(
        single
            .list_secrets(&t("rls-c"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    single.pool().close().await;
    pool.close().await;
    store.pool().close().await;
    db.drop().await;
}

/// The runtime role is not superuser, cannot bypass RLS and owns nothing; every table
/// with a `tenant_id` column has RLS enabled and forced with USING and WITH CHECK
/// policies; every view is `security_invoker`.
#[tokio::test]
async fn pg_runtime_role_cannot_bypass_rls() {
    let db = PgTestDb::new().await;
    let mut admin = db.connect_as("postgres").await;

    let (sup, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(RUNTIME_ROLE)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(!sup && !bypass);
    let owned: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname = $1",
    )
    .bind(RUNTIME_ROLE)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(owned.is_empty(), "runtime role owns {owned:?}");
    let (member,): (bool,) = sqlx::query_as("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(RUNTIME_ROLE)
        .bind(OWNER_ROLE)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(
        !member,
        "the runtime role must not inherit the owner's rights"
    );

    let scoped: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
              AND NOT a.attisdropped \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r', 'p') \
         ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let names: Vec<&str> = scoped.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["audit_events", "secrets", "tenant_key_versions", "tenants"]
    );
    for (table, enabled, forced) in &scoped {
        assert!(
            *enabled && *forced,
            "{table}: RLS enabled {enabled}, forced {forced}"
        );
        let (policies,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_policies WHERE tablename = $1 \
             AND policyname = 'tenant_isolation' AND qual IS NOT NULL \
             AND with_check IS NOT NULL AND cmd = 'ALL'",
        )
        .bind(table)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(
            policies, 1,
            "{table} needs a USING + WITH CHECK tenant policy"
        );
    }

    let unsafe_views: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        unsafe_views.is_empty(),
        "views without security_invoker: {unsafe_views:?}"
    );

    // Uniqueness includes tenant_id: every unique index of a tenant-scoped table leads
    // with it.
    let bad_unique: Vec<(String,)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
         WHERE i.indisunique AND c.relname = ANY ($1) AND a.attname <> 'tenant_id'",
    )
    .bind(TENANT_TABLES.map(str::to_owned).to_vec())
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(bad_unique.is_empty(), "{bad_unique:?}");
    admin.close().await.unwrap();

    // Audit events are append-only for the runtime role.
    let store = db.runtime_store(1).await;
    two_tenants(&store).await;
    let mut conn = db.connect_as(RUNTIME_ROLE).await;
    for statement in [
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
        "UPDATE root_key_checks SET kcv = kcv",
        "DELETE FROM tenants",
        "ALTER TABLE secrets DISABLE ROW LEVEL SECURITY",
    ] {
        let mut tx = conn.begin().await.unwrap();
        set_tenant(&mut tx, "rls-a").await;
        let err = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert!(
            matches!(code(&err).as_deref(), Some("42501")),
            "{statement}: {err}"
        );
        tx.rollback().await.unwrap();
    }
    conn.close().await.unwrap();
    store.pool().close().await;
    db.drop().await;
}

/// The `kms-server migrate` subcommand, with the URL from `HYGO_KMS_DATABASE_URL`.
#[tokio::test]
async fn pg_migrate_subcommand_migrates_and_grants() {
    let db = PgTestDb::empty().await;
    let run = |role: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kms-server"))
            .args(["migrate", "--runtime-role", role])
            .env("HYGO_KMS_DATABASE_URL", db.url(OWNER_ROLE))
            .output()
            .unwrap()
    };
    let out = run(RUNTIME_ROLE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(RUNTIME_ROLE);
    assert!(out.status.success(), "re-running is safe");
    let out = run("postgres");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOBYPASSRLS"));
    db.runtime_store(1).await.pool().close().await;
    db.drop().await;
}

/// `kms-server migrate` refuses a runtime role that could bypass RLS.
#[tokio::test]
async fn pg_migrate_refuses_unsafe_runtime_roles() {
    let db = PgTestDb::empty().await;
    for role in ["postgres", OWNER_ROLE, "no_such_role_here"] {
        assert!(
            matches!(
                migrate_postgres(&db.url(OWNER_ROLE), role).await,
                Err(StoreError::Refused { .. })
            ),
            "{role}"
        );
    }
    db.drop().await;
}

/// A dump after storing secrets contains neither plaintexts nor root keys.
#[tokio::test]
async fn pg_dump_holds_no_plaintext_or_root_key() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(2).await;
    let root_bytes: [u8; 32] = {
        let mut b = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        b
    };
    let root_hex: String = root_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let root = RootKey::from_bytes(RootKeyId::new("dump-root").unwrap(), root_bytes);
    let tenant = t("dump-tenant");
    let salt = Salt::generate();
    let record = store
        .create_key_version(&tenant, root.id(), &salt)
        .await
        .unwrap();
    let keys = TenantKeys::derive(&root, &salt, &tenant, record.version);

    let mut plaintexts = Vec::new();
    let mut envelopes = Vec::new();
    for i in 0..3 {
        let plaintext = format!("canary-plaintext-{i}-{}", common::random_hex(16));
        let name = format!("token-{i}");
        let context =
            Context::internal([("kms.vendor", "shopify"), ("kms.name", name.as_str())]).unwrap();
        let envelope = seal(
            &keys,
            &tenant,
            record.version,
            &context,
            plaintext.as_bytes(),
        )
        .unwrap();
        store
            .put_secret(
                &tenant,
                NewSecret {
                    vendor: "shopify",
                    name: &name,
                    key_version: record.version,
                    envelope: &envelope,
                    labels: &Default::default(),
                },
                None,
            )
            .await
            .unwrap();
        // Round trip through the store: the stored salt opens the stored envelope.
        let stored = store
            .get_secret(&tenant, "shopify", &name)
            .await
            .unwrap()
            .unwrap();
        let version = store
            .key_version(&tenant, record.version)
            .await
            .unwrap()
            .unwrap();
        let keys2 = TenantKeys::derive(
            &root,
            version.salt.as_ref().unwrap(),
            &tenant,
            version.version,
        );
        let opened = open(&keys2, &tenant, &context, &stored.envelope).unwrap();
        assert_eq!(opened.expose_secret(), plaintext.as_bytes());
        plaintexts.push(plaintext);
        envelopes.push(envelope);
    }
    let ring = RootKeyRing::new(vec![root], None).unwrap();
    store.check_root_keys(&ring).await.unwrap();

    let out = std::process::Command::new("/usr/bin/pg_dump")
        .args(["--dbname", &db.url("postgres"), "--no-owner"])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = out.stdout;
    let contains = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // Sanity: the dump does hold the data (envelopes as bytea hex).
    assert!(
        contains(hex(&envelopes[0]).as_bytes()),
        "dump lacks the envelope"
    );
    for plaintext in &plaintexts {
        assert!(!contains(plaintext.as_bytes()), "plaintext in dump");
        assert!(
            !contains(hex(plaintext.as_bytes()).as_bytes()),
            "plaintext hex in dump"
        );
    }
    assert!(!contains(&root_bytes), "raw root key in dump");
    assert!(!contains(root_hex.as_bytes()), "root key hex in dump");
    assert!(
        !contains(root_hex.to_uppercase().as_bytes()),
        "root key HEX in dump"
    );
    store.pool().close().await;
    db.drop().await;
}

/// Database unreachable: typed `Unavailable`, quickly, no hang, no panic.
#[tokio::test]
async fn pg_unreachable_database_is_unavailable_quickly() {
    let url = "postgres://postgres@127.0.0.1:1/kms";
    let bound = Duration::from_secs(6);
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(15), PgStore::connect(url))
        .await
        .expect("connect must not hang");
    assert_eq!(result.unwrap_err(), StoreError::Unavailable);
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());

    let store = PgStore::connect_lazy(url, 2).unwrap();
    let tenant = t("offline");
    let root = RootKeyId::new("r").unwrap();
    let ring = common::ring("r");
    let start = Instant::now();
    // Concurrently: each call is bounded by the acquire timeout on its own.
    let calls = async {
        tokio::join!(
            async { store.key_versions(&tenant).await.map(|_| ()) },
            async {
                store
                    .create_key_version(&tenant, &root, &Salt::generate())
                    .await
                    .map(|_| ())
            },
            async { store.list_tenants(None, 10).await.map(|_| ()) },
            store.check_root_keys(&ring),
        )
    };
    let (a, b, c, d) = tokio::time::timeout(Duration::from_secs(30), calls)
        .await
        .expect("store calls must not hang");
    for r in [a, b, c, d] {
        assert_eq!(r, Err(StoreError::Unavailable));
    }
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());
    assert!(matches!(
        PgStore::connect("not a url").await,
        Err(StoreError::Config { .. })
    ));
}

/// A salt of the wrong length read back is reported as corruption.
#[tokio::test]
async fn pg_salt_of_wrong_length_is_corruption() {
    let db = PgTestDb::new().await;
    let store = db.runtime_store(2).await;
    let tenant = t("corrupt");
    store
        .create_key_version(&tenant, &RootKeyId::new("r").unwrap(), &Salt::generate())
        .await
        .unwrap();
    let mut owner = db.connect_as(OWNER_ROLE).await;
    sqlx::query("ALTER TABLE tenant_key_versions DROP CONSTRAINT tenant_key_versions_salt_length")
        .execute(&mut owner)
        .await
        .unwrap();
    let mut tx = owner.begin().await.unwrap();
    set_tenant(&mut tx, "corrupt").await;
    let n = sqlx::query("UPDATE tenant_key_versions SET salt = substring(salt from 1 for 31)")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n.rows_affected(), 1);
    tx.commit().await.unwrap();
    owner.close().await.unwrap();

    for err in [
        store.key_versions(&tenant).await.unwrap_err(),
        store
            .key_version(&tenant, KeyVersion::FIRST)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::Corruption { what } if what.contains("31 bytes")),
            "{err:?}"
        );
    }
    store.pool().close().await;
    db.drop().await;
}

/// The server refuses to start on a schema that is missing, altered or newer.
#[tokio::test]
async fn pg_out_of_date_schema_refuses_to_start() {
    let db = PgTestDb::empty().await;
    assert!(matches!(
        PgStore::connect(&db.url(RUNTIME_ROLE)).await,
        Err(StoreError::SchemaOutdated { .. })
    ));
    migrate_postgres(&db.url(OWNER_ROLE), RUNTIME_ROLE)
        .await
        .unwrap();
    db.runtime_store(1).await.pool().close().await;

    let mut owner = db.connect_as(OWNER_ROLE).await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 1")
        .execute(&mut owner)
        .await
        .unwrap();
    assert!(matches!(
        PgStore::connect(&db.url(RUNTIME_ROLE)).await,
        Err(StoreError::SchemaOutdated { .. })
    ));
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'future', true, checksum, 0 FROM _sqlx_migrations WHERE version = 1",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let err = PgStore::connect(&db.url(RUNTIME_ROLE)).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaOutdated { .. }), "{err:?}");
    owner.close().await.unwrap();
    db.drop().await;
}
