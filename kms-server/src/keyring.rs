//! The key cache: per tenant, its key state and the derived keys of every usable
//! version, so the hot path does no database round trip and no HKDF.
//!
//! Entries are refreshed from the store after `ttl` (the spec's `cache_max_stale`,
//! default 60 s); changes made through this process invalidate at once. While the store
//! is unavailable an entry keeps serving for `offline_grace` (default 15 min) after its
//! last successful refresh, then calls fail UNAVAILABLE. The cache is bounded in
//! entries; evicted keys are zeroized when their last user drops them
//! ([`TenantKeys`] is `ZeroizeOnDrop`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::envelope::TenantKeys;
use crate::error::KmsError;
use crate::keys::{KeyVersion, TenantId};
use crate::root::RootKeyRing;
use crate::store::{KeyState, Store, StoreError};

/// Least time between two reloads of one tenant caused by an unknown newer version.
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(250);

/// Cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Most tenants cached.
    pub max_entries: usize,
    /// Refresh from the store after this long (`cache_max_stale`).
    pub ttl: Duration,
    /// With the store down, keep serving this long after the last refresh.
    pub offline_grace: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            ttl: Duration::from_secs(60),
            offline_grace: Duration::from_secs(15 * 60),
        }
    }
}

/// One version's state and, when usable, its keys.
#[derive(Debug)]
struct VersionEntry {
    state: KeyState,
    keys: Option<Arc<TenantKeys>>,
}

/// A tenant's cached key state.
#[derive(Debug)]
pub struct TenantEntry {
    tenant: TenantId,
    /// The primary (active) version.
    pub primary: Option<KeyVersion>,
    /// Versions below this are refused for decryption.
    pub min_decrypt: KeyVersion,
    /// A destruction is scheduled: every cryptographic call fails.
    pub pending_destruction: bool,
    versions: BTreeMap<KeyVersion, VersionEntry>,
    refreshed_at: Instant,
}

impl TenantEntry {
    fn check_not_pending(&self) -> Result<(), KmsError> {
        if self.pending_destruction {
            return Err(KmsError::precondition(
                "TENANT_PENDING_DESTRUCTION",
                format!("tenant {} is scheduled for destruction", self.tenant),
            ));
        }
        Ok(())
    }

    /// The primary version and its keys, for sealing.
    pub fn encryption_keys(&self) -> Result<(KeyVersion, Arc<TenantKeys>), KmsError> {
        self.check_not_pending()?;
        let keys = self.primary.and_then(|v| {
            self.versions
                .get(&v)
                .and_then(|e| e.keys.clone())
                .map(|k| (v, k))
        });
        keys.ok_or_else(|| {
            KmsError::precondition(
                "NO_PRIMARY_KEY_VERSION",
                format!("tenant {} has no active key version", self.tenant),
            )
        })
    }

    /// True when `version` is newer than every version this entry knows and the entry
    /// is older than [`MIN_RELOAD_INTERVAL`]: another replica may have rotated, so the
    /// entry should be reloaded before refusing. (The floor keeps a flood of envelopes
    /// with made-up versions from turning every call into a database read.)
    pub fn is_newer_than_known(&self, version: u32) -> bool {
        self.refreshed_at.elapsed() >= MIN_RELOAD_INTERVAL
            && self
                .versions
                .keys()
                .next_back()
                .is_none_or(|latest| version > latest.get())
    }

    /// The keys of `version` for opening, after the state checks of SPEC §3.
    pub fn decryption_keys(&self, version: u32) -> Result<Arc<TenantKeys>, KmsError> {
        self.check_not_pending()?;
        let state = KeyVersion::new(version)
            .ok()
            .and_then(|v| self.versions.get(&v).map(|e| (v, e)));
        let Some((v, entry)) = state else {
            return Err(KmsError::precondition(
                "KEY_VERSION_UNKNOWN",
                format!("key version {version} is unknown"),
            ));
        };
        match entry.state {
            KeyState::Destroyed => Err(KmsError::precondition(
                "KEY_VERSION_DESTROYED",
                format!("key version {version} is destroyed"),
            )),
            KeyState::Disabled => Err(KmsError::precondition(
                "KEY_VERSION_DISABLED",
                format!("key version {version} is disabled"),
            )),
            _ if v < self.min_decrypt => Err(KmsError::precondition(
                "KEY_VERSION_RETIRED",
                format!(
                    "key version {version} is below the minimum decryption version {}",
                    self.min_decrypt
                ),
            )),
            _ => entry
                .keys
                .clone()
                .ok_or(KmsError::Internal("usable key version without keys")),
        }
    }
}

/// The cache in front of the store.
#[derive(Debug)]
pub struct Keyring {
    store: Arc<dyn Store>,
    roots: Arc<RootKeyRing>,
    config: CacheConfig,
    entries: Mutex<HashMap<TenantId, Arc<TenantEntry>>>,
}

impl Keyring {
    /// A cache over `store`, deriving from `roots`.
    pub fn new(store: Arc<dyn Store>, roots: Arc<RootKeyRing>, config: CacheConfig) -> Self {
        Self {
            store,
            roots,
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantEntry>> {
        self.entries
            .lock()
            .ok()
            .and_then(|m| m.get(tenant).cloned())
    }

    /// The tenant's key state, `None` if it has no keys. Cached entries younger than the
    /// TTL are returned without touching the store.
    pub async fn tenant(&self, tenant: &TenantId) -> Result<Option<Arc<TenantEntry>>, KmsError> {
        let cached = self.cached(tenant);
        if let Some(e) = &cached {
            if e.refreshed_at.elapsed() < self.config.ttl {
                return Ok(cached);
            }
        }
        match self.load(tenant).await {
            Ok(Some(entry)) => {
                let entry = Arc::new(entry);
                self.insert(tenant, entry.clone());
                Ok(Some(entry))
            }
            Ok(None) => {
                self.invalidate(tenant);
                Ok(None)
            }
            Err(StoreError::Unavailable) => match cached {
                Some(e) if e.refreshed_at.elapsed() < self.config.offline_grace => {
                    tracing::warn!(tenant = %tenant, "store unavailable: serving cached keys");
                    Ok(Some(e))
                }
                _ => Err(KmsError::Unavailable("the key store is unavailable")),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the tenant's entry (after a change made through this process).
    pub fn invalidate(&self, tenant: &TenantId) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(tenant);
        }
    }

    fn insert(&self, tenant: &TenantId, entry: Arc<TenantEntry>) {
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if m.len() >= self.config.max_entries && !m.contains_key(tenant) {
            // Evict the stalest entry; its keys are zeroized when the last user drops them.
            let oldest = m
                .iter()
                .min_by_key(|(_, e)| e.refreshed_at)
                .map(|(t, _)| t.clone());
            if let Some(t) = oldest {
                m.remove(&t);
            }
        }
        m.insert(tenant.clone(), entry);
    }

    async fn load(&self, tenant: &TenantId) -> Result<Option<TenantEntry>, StoreError> {
        let Some(record) = self.store.tenant(tenant).await? else {
            return Ok(None);
        };
        let records = self.store.key_versions(tenant).await?;
        let mut versions = BTreeMap::new();
        for r in records {
            let usable = matches!(r.state, KeyState::Active | KeyState::DecryptOnly);
            let keys = match (&r.salt, usable) {
                (Some(salt), true) => {
                    let Some(root) = self.roots.get(&r.root_key_id) else {
                        return Err(StoreError::RootKeyMissing {
                            id: r.root_key_id.to_string(),
                            tenants: vec![tenant.to_string()],
                        });
                    };
                    Some(Arc::new(TenantKeys::derive(root, salt, tenant, r.version)))
                }
                _ => None,
            };
            versions.insert(
                r.version,
                VersionEntry {
                    state: r.state,
                    keys,
                },
            );
        }
        Ok(Some(TenantEntry {
            tenant: tenant.clone(),
            primary: record.primary_version,
            min_decrypt: record.min_decrypt_version,
            pending_destruction: record.destroy_after.is_some(),
            versions,
            refreshed_at: Instant::now(),
        }))
    }
}
