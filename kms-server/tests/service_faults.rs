//! The service layer against a real SQLite store: replayed stored-secret envelopes
//! (THREATS 4), an audit sink that fails (THREATS 14), the store going away (offline
//! grace), and start-up with a wrong root key (THREATS 21).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use kms_server::error::KmsError;
use kms_server::keyring::CacheConfig;
use kms_server::keys::{Context, TenantId};
use kms_server::root::{RootKey, RootKeyId, RootKeyRing};
use kms_server::service::{Caller, Kms, SecretName};
use kms_server::store::{Labels, NewSecret, SqliteStore, Store, StoreError};

fn caller() -> Caller {
    Caller {
        actor: "admin:test".to_owned(),
        request_id: "test".to_owned(),
        jti: None,
    }
}

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

async fn setup(cache: CacheConfig) -> (Arc<SqliteStore>, Kms, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("kms-svc-{}", common::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("kms.db")).await.unwrap());
    let roots = Arc::new(
        RootKeyRing::new(vec![RootKey::generate(RootKeyId::new("r1").unwrap())], None).unwrap(),
    );
    store.check_root_keys(&roots).await.unwrap();
    let dyn_store: Arc<dyn Store> = store.clone();
    (store, Kms::new(dyn_store, roots, cache, true), dir)
}

#[tokio::test]
async fn stored_secret_envelopes_do_not_open_in_another_row() {
    let (store, kms, dir) = setup(CacheConfig::default()).await;
    let labels = Labels::new();
    let shopify = SecretName::new("shopify", "admin-token").unwrap();
    kms.put_secret(&t("acme"), &shopify, b"shpat_acme", &labels, None)
        .await
        .unwrap();
    kms.put_secret(&t("globex"), &shopify, b"shpat_globex", &labels, None)
        .await
        .unwrap();
    let record = store
        .get_secret(&t("acme"), "shopify", "admin-token")
        .await
        .unwrap()
        .unwrap();
    let copy = |tenant: &'static str, vendor: &'static str, name: &'static str| {
        let store = store.clone();
        let envelope = record.envelope.clone();
        let version = record.meta.key_version;
        async move {
            store
                .put_secret(
                    &t(tenant),
                    NewSecret {
                        vendor,
                        name,
                        key_version: version,
                        envelope: &envelope,
                        labels: &Labels::new(),
                    },
                    None,
                )
                .await
                .unwrap();
        }
    };
    // Another vendor's row, another name's row: the context binds vendor and name.
    copy("acme", "amazon", "admin-token").await;
    copy("acme", "shopify", "other-token").await;
    for (vendor, name) in [("amazon", "admin-token"), ("shopify", "other-token")] {
        let err = kms
            .get_secret(
                &caller(),
                &t("acme"),
                &SecretName::new(vendor, name).unwrap(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, KmsError::Authentication),
            "{vendor}/{name}: {err:?}"
        );
    }
    // Another tenant's row: refused as cross-tenant before any key is used.
    copy("globex", "shopify", "admin-token").await;
    let err = kms
        .get_secret(&caller(), &t("globex"), &shopify)
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::CrossTenant), "{err:?}");
    assert_eq!(
        kms.counters()
            .cross_tenant
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the cross-tenant refusal is counted"
    );
    // The original still opens.
    let (value, _) = kms
        .get_secret(&caller(), &t("acme"), &shopify)
        .await
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&value), b"shpat_acme");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_failing_audit_sink_fails_admin_calls_closed() {
    let (store, kms, dir) = setup(CacheConfig::default()).await;
    let tenant = t("acme");
    kms.wrap(&tenant, &Context::empty(), b"x").await.unwrap();
    let before = kms.tenant_info(&tenant).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events \
         BEGIN SELECT RAISE(ABORT, 'audit sink down'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let c = caller();
    let results = [
        kms.rotate_tenant_key(&c, &tenant).await.err(),
        kms.schedule_tenant_destruction(&c, &tenant, 7).await.err(),
        kms.create_tenant_key(&c, &t("newco")).await.err(),
        kms.set_key_version_state(
            &c,
            &tenant,
            kms_server::keys::KeyVersion::FIRST,
            kms_server::store::KeyState::Disabled,
        )
        .await
        .err(),
    ];
    for r in results {
        assert!(matches!(r, Some(KmsError::Unavailable(_))), "{r:?}");
    }
    let after = kms.tenant_info(&tenant).await.unwrap();
    assert_eq!(
        after.versions.len(),
        before.versions.len(),
        "nothing changed"
    );
    assert_eq!(after.record.destroy_after, None);
    assert!(store.tenant(&t("newco")).await.unwrap().is_none());
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn cached_tenants_survive_a_store_outage_within_the_grace() {
    let cache = CacheConfig {
        max_entries: 100,
        ttl: Duration::from_millis(1),
        offline_grace: Duration::from_secs(3600),
    };
    let (store, kms, dir) = setup(cache).await;
    let ctx = Context::empty();
    let (ct, _) = kms.wrap(&t("cached"), &ctx, b"token").await.unwrap();
    store.pool().close().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Past the TTL, the refresh fails: the entry is served within the grace.
    let (pt, _) = kms
        .unwrap(&caller(), &t("cached"), &ctx, &ct)
        .await
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&pt), b"token");
    kms.wrap(&t("cached"), &ctx, b"more").await.unwrap();
    // A tenant not cached: UNAVAILABLE, no panic, no hang.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        kms.wrap(&t("uncached"), &ctx, b"x"),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, KmsError::Unavailable(_)), "{err:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn cached_tenants_stop_after_the_grace() {
    let cache = CacheConfig {
        max_entries: 100,
        ttl: Duration::from_millis(1),
        offline_grace: Duration::from_millis(20),
    };
    let (store, kms, dir) = setup(cache).await;
    let ctx = Context::empty();
    kms.wrap(&t("cached"), &ctx, b"token").await.unwrap();
    store.pool().close().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = kms.wrap(&t("cached"), &ctx, b"x").await.unwrap_err();
    assert!(matches!(err, KmsError::Unavailable(_)), "{err:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn start_up_refuses_a_swapped_root_key() {
    let dir = std::env::temp_dir().join(format!("kms-svc-{}", common::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(&dir.join("kms.db")).await.unwrap();
    let id = RootKeyId::new("prod").unwrap();
    let ring = RootKeyRing::new(vec![RootKey::generate(id.clone())], None).unwrap();
    store.check_root_keys(&ring).await.unwrap();
    let swapped = RootKeyRing::new(vec![RootKey::generate(id)], None).unwrap();
    let err = store.check_root_keys(&swapped).await.unwrap_err();
    assert!(matches!(err, StoreError::RootKeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("prod"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_stale_cache_loads_a_version_another_replica_created() {
    // Two replicas on one store and one root key namespace, each with its own cache.
    let dir = std::env::temp_dir().join(format!("kms-svc-{}", common::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("kms.db")).await.unwrap());
    let key = RootKey::generate(RootKeyId::new("r1").unwrap());
    let copy = RootKey::from_hex(
        RootKeyId::new("r1").unwrap(),
        key.to_hex().as_bytes(),
        "test",
    )
    .unwrap();
    let ring = |k| Arc::new(RootKeyRing::new(vec![k], None).unwrap());
    let a = Kms::new(store.clone(), ring(key), CacheConfig::default(), true);
    let b = Kms::new(store.clone(), ring(copy), CacheConfig::default(), true);
    let ctx = Context::empty();
    let (v1, _) = b.wrap(&t("acme"), &ctx, b"v1").await.unwrap(); // B caches acme at v1
    a.rotate_tenant_key(&caller(), &t("acme")).await.unwrap();
    tokio::time::sleep(kms_server::keyring::MIN_RELOAD_INTERVAL).await;
    let (v2, version) = a.wrap(&t("acme"), &ctx, b"v2").await.unwrap();
    assert_eq!(version.get(), 2);
    // B has never seen v2: it reloads instead of refusing, and never fails open.
    let (pt, v) = b.unwrap(&caller(), &t("acme"), &ctx, &v2).await.unwrap();
    assert_eq!(
        (secrecy::ExposeSecret::expose_secret(&pt), v.get()),
        (&b"v2"[..], 2)
    );
    b.unwrap(&caller(), &t("acme"), &ctx, &v1).await.unwrap();
    // A version that exists nowhere is still refused after the reload.
    let mut v9 = v2.clone();
    v9[5] = 9;
    let err = b
        .unwrap(&caller(), &t("acme"), &ctx, &v9)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::FailedPrecondition {
                reason: "KEY_VERSION_UNKNOWN",
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_wraps_provision_one_version() {
    let (_store, kms, dir) = setup(CacheConfig::default()).await;
    let kms = Arc::new(kms);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let kms = kms.clone();
            tokio::spawn(async move {
                kms.wrap(&t("fresh"), &Context::empty(), format!("v{i}").as_bytes())
                    .await
                    .unwrap()
                    .1
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().get(), 1);
    }
    assert_eq!(
        kms.tenant_info(&t("fresh")).await.unwrap().versions.len(),
        1
    );
    std::fs::remove_dir_all(dir).ok();
}
