//! The store suite: every [`Store`] implementation must pass it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kms_server::audit::{AuditChain, AuditKey, AuditVerifyError, NewAuditEvent, verify_chain};
use kms_server::envelope::Salt;
use kms_server::keys::{KeyVersion, TenantId};
use kms_server::root::{RootKey, RootKeyId, RootKeyRing};
use kms_server::store::{KeyState, Labels, NewSecret, Store, StoreError};

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn put(
    store: &dyn Store,
    tenant: &TenantId,
    vendor: &str,
    name: &str,
    version: u32,
    envelope: &[u8],
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    let labels = labels(&[("env", "test")]);
    store
        .put_secret(
            tenant,
            NewSecret {
                vendor,
                name,
                key_version: v(version),
                envelope,
                labels: &labels,
            },
            expected,
        )
        .await
}

/// Runs the whole suite against a fresh, empty store.
pub async fn run(store: &dyn Store) {
    key_versions(store).await;
    secrets(store).await;
    lifecycle(store).await;
    cross_tenant(store).await;
    audit(store).await;
    root_keys(store).await;
}

async fn key_versions(store: &dyn Store) {
    // The first version is created once; a second "first" creation is refused.
    let first = t("first-only");
    let created = store
        .create_first_key_version(
            &first,
            &RootKeyId::new("root-1").unwrap(),
            &Salt::generate(),
        )
        .await
        .unwrap();
    assert_eq!(created.map(|r| r.version.get()), Some(1));
    let again = store
        .create_first_key_version(
            &first,
            &RootKeyId::new("root-1").unwrap(),
            &Salt::generate(),
        )
        .await
        .unwrap();
    assert!(again.is_none());
    assert_eq!(store.key_versions(&first).await.unwrap().len(), 1);

    let a = t("kv-a");
    let root = RootKeyId::new("root-1").unwrap();
    assert_eq!(store.tenant(&a).await.unwrap(), None);
    assert_eq!(store.primary_version(&a).await.unwrap(), None);
    assert!(store.key_versions(&a).await.unwrap().is_empty());
    assert!(matches!(
        store.set_key_state(&a, v(1), KeyState::Disabled).await,
        Err(StoreError::NotFound { .. })
    ));

    let salt1 = Salt::generate();
    let r1 = store.create_key_version(&a, &root, &salt1).await.unwrap();
    assert_eq!((r1.version, r1.state), (v(1), KeyState::Active));
    assert_eq!(r1.salt.as_ref().unwrap().expose(), salt1.expose());
    assert_eq!(r1.root_key_id, root);
    let salt2 = Salt::generate();
    let r2 = store.create_key_version(&a, &root, &salt2).await.unwrap();
    assert_eq!(r2.version, v(2));

    let all = store.key_versions(&a).await.unwrap();
    let states: Vec<_> = all.iter().map(|r| (r.version.get(), r.state)).collect();
    assert_eq!(
        states,
        [(1, KeyState::DecryptOnly), (2, KeyState::Active)],
        "rotation demotes the previous primary"
    );
    assert_eq!(all[0].salt.as_ref().unwrap().expose(), salt1.expose());
    assert_eq!(store.primary_version(&a).await.unwrap(), Some(v(2)));
    let one = store.key_version(&a, v(2)).await.unwrap().unwrap();
    assert_eq!(one.salt.as_ref().unwrap().expose(), salt2.expose());
    assert!(store.key_version(&a, v(3)).await.unwrap().is_none());

    let tenant = store.tenant(&a).await.unwrap().unwrap();
    assert_eq!(tenant.primary_version, Some(v(2)));
    assert_eq!(tenant.min_decrypt_version, v(1));
    assert_eq!((tenant.destroy_after, tenant.shredded_at), (None, None));

    // State rules.
    for (version, to) in [
        (2, KeyState::Disabled),
        (2, KeyState::Destroyed),
        (2, KeyState::DecryptOnly),
        (1, KeyState::Active),
    ] {
        assert!(
            matches!(
                store.set_key_state(&a, v(version), to).await,
                Err(StoreError::Refused { .. })
            ),
            "{version} -> {to}"
        );
    }
    store
        .set_key_state(&a, v(1), KeyState::Disabled)
        .await
        .unwrap();
    store
        .set_key_state(&a, v(1), KeyState::Disabled)
        .await
        .unwrap();
    assert_eq!(
        store.key_version(&a, v(1)).await.unwrap().unwrap().state,
        KeyState::Disabled
    );
    store
        .set_key_state(&a, v(1), KeyState::DecryptOnly)
        .await
        .unwrap();

    // Minimum decryption version.
    assert!(matches!(
        store.set_min_decrypt_version(&a, v(3)).await,
        Err(StoreError::Refused { .. })
    ));
    store.set_min_decrypt_version(&a, v(2)).await.unwrap();
    assert_eq!(
        store.tenant(&a).await.unwrap().unwrap().min_decrypt_version,
        v(2)
    );
    assert!(matches!(
        store.set_min_decrypt_version(&t("kv-nobody"), v(1)).await,
        Err(StoreError::NotFound { .. })
    ));

    // Auto rotation.
    store.set_auto_rotate(&a, Some(90)).await.unwrap();
    assert_eq!(
        store.tenant(&a).await.unwrap().unwrap().auto_rotate_days,
        Some(90)
    );
    store.set_auto_rotate(&a, None).await.unwrap();
    assert_eq!(
        store.tenant(&a).await.unwrap().unwrap().auto_rotate_days,
        None
    );
    assert!(matches!(
        store.set_auto_rotate(&a, Some(0)).await,
        Err(StoreError::Refused { .. })
    ));
}

async fn secrets(store: &dyn Store) {
    let a = t("sec-a");
    let root = RootKeyId::new("root-1").unwrap();
    store
        .create_key_version(&a, &root, &Salt::generate())
        .await
        .unwrap();

    // Revisions and compare-and-swap.
    assert_eq!(
        put(store, &a, "shopify", "token", 1, b"env-1", None).await,
        Ok(1)
    );
    assert_eq!(
        put(store, &a, "shopify", "token", 1, b"env-2", None).await,
        Ok(2)
    );
    assert_eq!(
        put(store, &a, "shopify", "token", 1, b"env-3", Some(2)).await,
        Ok(3)
    );
    assert_eq!(
        put(store, &a, "shopify", "token", 1, b"env-x", Some(2)).await,
        Err(StoreError::RevisionMismatch {
            expected: 2,
            found: Some(3)
        })
    );
    assert_eq!(
        put(store, &a, "shopify", "token", 1, b"env-x", Some(0)).await,
        Err(StoreError::RevisionMismatch {
            expected: 0,
            found: Some(3)
        })
    );
    assert_eq!(
        put(store, &a, "amazon", "absent", 1, b"env-x", Some(4)).await,
        Err(StoreError::RevisionMismatch {
            expected: 4,
            found: None
        })
    );
    assert_eq!(
        put(store, &a, "amazon", "refresh", 1, b"am-1", Some(0)).await,
        Ok(1)
    );
    assert!(matches!(
        put(store, &a, "amazon", "x", 9, b"e", None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        put(store, &a, "", "x", 1, b"e", None).await,
        Err(StoreError::Refused { .. })
    ));

    let got = store
        .get_secret(&a, "shopify", "token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.envelope, b"env-3");
    assert_eq!(got.meta.revision, 3);
    assert_eq!(got.meta.key_version, v(1));
    assert_eq!(got.meta.labels, labels(&[("env", "test")]));
    assert!(
        !format!("{got:?}").contains("env-3"),
        "Debug hides envelopes"
    );
    assert!(
        store
            .get_secret(&a, "shopify", "nope")
            .await
            .unwrap()
            .is_none()
    );

    // Keyset paging in bytewise order, metadata only.
    for name in ["b", "a", "B", "c"] {
        put(store, &a, "ayrshare", name, 1, b"x", None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .list_secrets(&a, after.as_ref().map(|(v, n)| (v.as_str(), n.as_str())), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|m| (m.vendor.clone(), m.name.clone()));
        seen.extend(page.into_iter().map(|m| format!("{}/{}", m.vendor, m.name)));
    }
    assert_eq!(
        seen,
        [
            "amazon/refresh",
            "ayrshare/B",
            "ayrshare/a",
            "ayrshare/b",
            "ayrshare/c",
            "shopify/token"
        ]
    );

    // Rewrap support.
    store
        .create_key_version(&a, &root, &Salt::generate())
        .await
        .unwrap();
    assert_eq!(
        store.secret_counts(&a).await.unwrap(),
        BTreeMap::from([(v(1), 6)])
    );
    let todo = store.secrets_below_version(&a, v(2), 4).await.unwrap();
    assert_eq!(todo.len(), 4);
    assert_eq!(todo[0].meta.name, "refresh");
    assert!(
        !store
            .replace_secret_envelope(&a, "shopify", "token", b"stale", b"new", v(2))
            .await
            .unwrap(),
        "CAS on a changed envelope does nothing"
    );
    assert!(
        store
            .replace_secret_envelope(&a, "shopify", "token", b"env-3", b"env-v2", v(2))
            .await
            .unwrap()
    );
    let got = store
        .get_secret(&a, "shopify", "token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            got.envelope.as_slice(),
            got.meta.key_version,
            got.meta.revision
        ),
        (&b"env-v2"[..], v(2), 4)
    );
    assert_eq!(
        store.secret_counts(&a).await.unwrap(),
        BTreeMap::from([(v(1), 5), (v(2), 1)])
    );

    // A version holding secrets cannot be destroyed; writes under a disabled one fail.
    assert!(matches!(
        store.set_key_state(&a, v(1), KeyState::Destroyed).await,
        Err(StoreError::Refused { .. })
    ));
    store
        .set_key_state(&a, v(1), KeyState::Disabled)
        .await
        .unwrap();
    assert!(matches!(
        put(store, &a, "shopify", "new", 1, b"e", None).await,
        Err(StoreError::Refused { .. })
    ));
    assert!(matches!(
        store
            .replace_secret_envelope(&a, "amazon", "refresh", b"am-1", b"am-x", v(1))
            .await,
        Err(StoreError::Refused { .. })
    ));
    for s in store.secrets_below_version(&a, v(2), 100).await.unwrap() {
        let new = [s.envelope.as_slice(), b"-v2"].concat();
        assert!(
            store
                .replace_secret_envelope(&a, &s.meta.vendor, &s.meta.name, &s.envelope, &new, v(2))
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .secrets_below_version(&a, v(2), 100)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .set_key_state(&a, v(1), KeyState::Destroyed)
        .await
        .unwrap();
    let destroyed = store.key_version(&a, v(1)).await.unwrap().unwrap();
    assert_eq!(destroyed.state, KeyState::Destroyed);
    assert!(destroyed.salt.is_none(), "destroying erases the salt");
    assert!(matches!(
        store.set_key_state(&a, v(1), KeyState::DecryptOnly).await,
        Err(StoreError::Refused { .. })
    ));

    // Deletion.
    assert_eq!(
        store.delete_secret(&a, "amazon", "refresh", Some(1)).await,
        Err(StoreError::RevisionMismatch {
            expected: 1,
            found: Some(2)
        })
    );
    assert_eq!(
        store.delete_secret(&a, "amazon", "refresh", Some(2)).await,
        Ok(true)
    );
    assert_eq!(
        store.delete_secret(&a, "amazon", "refresh", None).await,
        Ok(false)
    );
    assert_eq!(
        store.delete_secret(&a, "ayrshare", "a", None).await,
        Ok(true)
    );
    assert!(
        store
            .get_secret(&a, "ayrshare", "a")
            .await
            .unwrap()
            .is_none()
    );
}

async fn lifecycle(store: &dyn Store) {
    let a = t("life-a");
    let b = t("life-b");
    let root = RootKeyId::new("root-1").unwrap();
    for tenant in [&a, &b] {
        store
            .create_key_version(tenant, &root, &Salt::generate())
            .await
            .unwrap();
        store
            .create_key_version(tenant, &root, &Salt::generate())
            .await
            .unwrap();
    }
    put(store, &a, "shopify", "token", 2, b"e", None)
        .await
        .unwrap();

    // Cross-tenant listing (the narrow path).
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_tenants(after.as_ref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| s.tenant_id.clone());
        listed.extend(page.into_iter().map(|s| s.tenant_id));
    }
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    assert!(listed.windows(2).all(|w| w[0] < w[1]));

    // Scheduling, due list, cancel.
    assert!(matches!(
        store.schedule_destruction(&t("life-nobody"), Some(1)).await,
        Err(StoreError::NotFound { .. })
    ));
    store.schedule_destruction(&a, Some(1_000)).await.unwrap();
    assert_eq!(
        store.due_destructions(999).await.unwrap(),
        Vec::<TenantId>::new()
    );
    assert_eq!(
        store.due_destructions(1_000).await.unwrap(),
        vec![a.clone()]
    );
    assert!(matches!(
        store.create_key_version(&a, &root, &Salt::generate()).await,
        Err(StoreError::Refused { .. })
    ));
    store.schedule_destruction(&a, None).await.unwrap();
    assert!(store.due_destructions(i64::MAX).await.unwrap().is_empty());
    store.schedule_destruction(&a, Some(1_000)).await.unwrap();
    assert_eq!(
        store.tenant(&a).await.unwrap().unwrap().destroy_after,
        Some(1_000)
    );

    // Shredding keeps version numbers going.
    let report = store.shred_tenant(&a).await.unwrap();
    assert_eq!((report.versions_destroyed, report.secrets_deleted), (2, 1));
    let tenant = store.tenant(&a).await.unwrap().unwrap();
    assert_eq!(tenant.primary_version, None);
    assert_eq!(tenant.destroy_after, None);
    assert_eq!(tenant.shredded_at, Some(report.shredded_at));
    assert!(
        store
            .key_versions(&a)
            .await
            .unwrap()
            .iter()
            .all(|r| r.state == KeyState::Destroyed && r.salt.is_none())
    );
    assert!(store.list_secrets(&a, None, 10).await.unwrap().is_empty());
    assert!(store.due_destructions(i64::MAX).await.unwrap().is_empty());
    let again = store
        .create_key_version(&a, &root, &Salt::generate())
        .await
        .unwrap();
    assert_eq!(again.version, v(3));
    assert_eq!(
        store.primary_version(&b).await.unwrap(),
        Some(v(2)),
        "b untouched"
    );
}

async fn cross_tenant(store: &dyn Store) {
    let a = t("x-a");
    let b = t("x-b");
    let root = RootKeyId::new("root-1").unwrap();
    for tenant in [&a, &b] {
        store
            .create_key_version(tenant, &root, &Salt::generate())
            .await
            .unwrap();
    }
    put(store, &a, "shopify", "token", 1, b"a-envelope", None)
        .await
        .unwrap();
    assert!(
        store
            .get_secret(&b, "shopify", "token")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_secrets(&b, None, 100).await.unwrap().is_empty());
    assert!(store.secret_counts(&b).await.unwrap().is_empty());
    assert!(
        store
            .secrets_below_version(&b, v(9), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.delete_secret(&b, "shopify", "token", None).await,
        Ok(false)
    );
    assert!(
        !store
            .replace_secret_envelope(&b, "shopify", "token", b"a-envelope", b"evil", v(1))
            .await
            .unwrap()
    );
    // The same (vendor, name) in another tenant is another row: no conflict that could
    // reveal A's row.
    assert_eq!(
        put(store, &b, "shopify", "token", 1, b"b-envelope", Some(0)).await,
        Ok(1)
    );
    let a_secret = store
        .get_secret(&a, "shopify", "token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_secret.envelope, b"a-envelope");
}

async fn audit(store: &dyn Store) {
    let ring = super::ring("audit-root");
    let key = AuditKey::derive(ring.primary());
    let a = AuditChain::Tenant(t("audit-a"));
    let event = |chain: &AuditChain, action: &str| NewAuditEvent {
        chain: chain.clone(),
        actor: "admin:alice".into(),
        action: action.into(),
        key_version: Some(v(1)),
        outcome: "ok".into(),
        request_id: "req-1".into(),
        detail: String::new(),
    };
    for action in ["rotate", "disable", "destroy"] {
        store.append_audit(&event(&a, action), &key).await.unwrap();
    }
    for action in ["root_rotate", "login_rejected"] {
        store
            .append_audit(&event(&AuditChain::Global, action), &key)
            .await
            .unwrap();
    }
    let events = store.list_audit(&a, 0, 100).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].action, "disable");
    let head = verify_chain(&a, &events, &ring).unwrap().unwrap();
    assert_eq!(head.seq, 3);
    let global = store.list_audit(&AuditChain::Global, 0, 100).await.unwrap();
    assert_eq!(
        verify_chain(&AuditChain::Global, &global, &ring)
            .unwrap()
            .unwrap()
            .seq,
        2
    );
    assert_eq!(store.list_audit(&a, 2, 100).await.unwrap().len(), 1);
    assert!(
        store
            .list_audit(&AuditChain::Tenant(t("audit-b")), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let mut tampered = events.clone();
    tampered[0].actor = "admin:mallory".into();
    assert!(matches!(
        verify_chain(&a, &tampered, &ring),
        Err(AuditVerifyError::BadHash { seq: 1, .. })
    ));
    let mut dropped = events;
    dropped.remove(0);
    assert!(verify_chain(&a, &dropped, &ring).is_err());
}

async fn root_keys(store: &dyn Store) {
    let id = RootKeyId::new("root-1").unwrap();
    let good = RootKeyRing::new(vec![RootKey::generate(id.clone())], None).unwrap();
    store.check_root_keys(&good).await.unwrap();
    store.check_root_keys(&good).await.unwrap();
    let swapped = RootKeyRing::new(vec![RootKey::generate(id.clone())], None).unwrap();
    assert_eq!(
        store.check_root_keys(&swapped).await,
        Err(StoreError::RootKeyMismatch { id: id.clone() })
    );
    let err = store.check_root_keys(&swapped).await.unwrap_err();
    assert!(err.to_string().contains("root-1"), "{err}");

    // A ring without a key that non-destroyed versions still use.
    let other = super::ring("root-2");
    match store.check_root_keys(&other).await {
        Err(StoreError::RootKeyMissing { id, tenants }) => {
            assert_eq!(id, "root-1");
            assert!(tenants.contains(&"kv-a".to_owned()), "{tenants:?}");
        }
        other => panic!("expected RootKeyMissing, got {other:?}"),
    }
}

/// 8 tasks rotate one (new) tenant 3 times each: versions 1..=24 consecutive, exactly
/// one active (the last).
pub async fn concurrent_rotations(store: Arc<dyn Store>) {
    let tenant = t("concurrent");
    let root = RootKeyId::new("root-1").unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let tenant = tenant.clone();
            let root = root.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    store
                        .create_key_version(&tenant, &root, &Salt::generate())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let versions = store.key_versions(&tenant).await.unwrap();
    let numbers: Vec<u32> = versions.iter().map(|r| r.version.get()).collect();
    assert_eq!(numbers, (1..=24).collect::<Vec<_>>());
    let active: Vec<u32> = versions
        .iter()
        .filter(|r| r.state == KeyState::Active)
        .map(|r| r.version.get())
        .collect();
    assert_eq!(active, [24]);
    assert_eq!(store.primary_version(&tenant).await.unwrap(), Some(v(24)));
}

/// Concurrent appends to one audit chain: seq 1..=24 with no gap, and the chain verifies.
pub async fn concurrent_audit_appends(store: Arc<dyn Store>) {
    let ring = Arc::new(super::ring("audit-root"));
    let chain = AuditChain::Tenant(t("concurrent-audit"));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, ring, chain) = (store.clone(), ring.clone(), chain.clone());
            tokio::spawn(async move {
                let key = AuditKey::derive(ring.primary());
                for j in 0..3 {
                    let event = NewAuditEvent {
                        chain: chain.clone(),
                        actor: format!("task-{i}"),
                        action: "rotate".into(),
                        key_version: None,
                        outcome: "ok".into(),
                        request_id: format!("{i}-{j}"),
                        detail: String::new(),
                    };
                    store.append_audit(&event, &key).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events = store.list_audit(&chain, 0, 100).await.unwrap();
    assert_eq!(events.len(), 24);
    assert_eq!(
        verify_chain(&chain, &events, &ring).unwrap().unwrap().seq,
        24
    );
}

/// Concurrent create-only puts of one secret: exactly one wins.
pub async fn concurrent_create_only_puts(store: Arc<dyn Store>) {
    let tenant = t("concurrent-put");
    let root = RootKeyId::new("root-1").unwrap();
    store
        .create_key_version(&tenant, &root, &Salt::generate())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let (store, tenant) = (store.clone(), tenant.clone());
            tokio::spawn(async move {
                put(&*store, &tenant, "shopify", "token", 1, &[i], Some(0)).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(1) => won += 1,
            Err(StoreError::RevisionMismatch {
                expected: 0,
                found: Some(1),
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}
