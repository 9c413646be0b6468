//! The KMS's operations, free of tonic types: wrap, unwrap, rewrap, data keys, the
//! stored secret store and the key lifecycle. Authorization happens before these are
//! called (in `api`); every limit is checked here or in the typed inputs before any
//! cryptography or storage work.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::audit::{AuditChain, AuditKey, AuditRecord, NewAuditEvent};
use crate::envelope::{self, Plaintext, Salt};
use crate::error::KmsError;
use crate::keyring::{Keyring, TenantEntry};
use crate::keys::{Context, KeyVersion, TenantId, is_valid_name};
use crate::limits::MAX_TENANT_ID_LEN;
use crate::root::RootKeyRing;
use crate::store::{
    KeyState, KeyVersionRecord, Labels, NewSecret, SecretMeta, Store, TenantRecord, TenantSummary,
    now_ms,
};

/// Default and bounds of `GenerateDataKey`'s length (SPEC §4).
pub const DATA_KEY_DEFAULT_LEN: usize = 32;
/// Shortest data key.
pub const DATA_KEY_MIN_LEN: usize = 16;
/// Longest data key.
pub const DATA_KEY_MAX_LEN: usize = 64;
/// Destruction waiting period bounds in days (SPEC §7).
pub const DESTRUCTION_DAYS: std::ops::RangeInclusive<u32> = 7..=30;
/// Default and largest page of list calls.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page of list calls.
pub const MAX_PAGE: u32 = 1000;
/// Rejection audit events per caller per minute; the rest are counted, not written.
const REJECTION_AUDIT_PER_MINUTE: u32 = 10;

/// Who is calling, for the audit.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `service:<id>`, `admin:<sub>` or `anonymous`.
    pub actor: String,
    /// The request id.
    pub request_id: String,
    /// The admin token's `jti`, when there is one.
    pub jti: Option<String>,
}

/// A stored secret's name: vendor and name, each like a tenant id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    vendor: String,
    name: String,
}

impl SecretName {
    /// Validates vendor and name (`[A-Za-z0-9._:-]{1,128}`).
    pub fn new(vendor: &str, name: &str) -> Result<Self, KmsError> {
        Self::check_vendor(vendor)?;
        if !is_valid_name(name, MAX_TENANT_ID_LEN) {
            return Err(KmsError::invalid(
                "INVALID_SECRET_NAME",
                "name must be 1..=128 characters of [A-Za-z0-9._:-]",
            ));
        }
        Ok(Self {
            vendor: vendor.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Validates a vendor on its own (e.g. the filter of `ListSecrets`).
    pub fn check_vendor(vendor: &str) -> Result<(), KmsError> {
        if is_valid_name(vendor, MAX_TENANT_ID_LEN) {
            Ok(())
        } else {
            Err(KmsError::invalid(
                "INVALID_VENDOR",
                "vendor must be 1..=128 characters of [A-Za-z0-9._:-]",
            ))
        }
    }

    /// The context a stored secret is sealed with: `{kms.vendor, kms.name}`.
    fn context(&self) -> Result<Context, KmsError> {
        Ok(Context::internal([
            ("kms.vendor", self.vendor.as_str()),
            ("kms.name", self.name.as_str()),
        ])?)
    }
}

/// A tenant's keys as the admin plane reports them (no salts).
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// The tenant's settings.
    pub record: TenantRecord,
    /// Its versions (salts are never reported).
    pub versions: Vec<KeyVersionRecord>,
    /// Stored secrets per version.
    pub secret_counts: BTreeMap<KeyVersion, u64>,
}

/// Progress of a rewrap of a tenant's stored secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrapProgress {
    /// Moved so far by this call.
    pub rewrapped: u64,
    /// Still under older versions.
    pub remaining: u64,
    /// The version they move to.
    pub primary: KeyVersion,
}

/// The KMS.
#[derive(Debug)]
pub struct Kms {
    store: Arc<dyn Store>,
    roots: Arc<RootKeyRing>,
    keyring: Keyring,
    audit_key: AuditKey,
    auto_provision: bool,
    rejections: Mutex<HashMap<String, (Instant, u32)>>,
    counters: Counters,
}

/// Security counters (exported as metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls without a valid credential.
    pub auth_failures: AtomicU64,
    /// Calls denied by policy.
    pub policy_denials: AtomicU64,
    /// Cross-tenant ciphertexts refused.
    pub cross_tenant: AtomicU64,
}

impl Kms {
    /// The KMS over `store` with the keys of `roots`.
    pub fn new(
        store: Arc<dyn Store>,
        roots: Arc<RootKeyRing>,
        cache: crate::keyring::CacheConfig,
        auto_provision: bool,
    ) -> Self {
        let audit_key = AuditKey::derive(roots.primary());
        Self {
            keyring: Keyring::new(store.clone(), roots.clone(), cache),
            store,
            roots,
            audit_key,
            auto_provision,
            rejections: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// Security counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a call without a valid credential.
    pub fn count_auth_failure(&self) {
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a policy denial.
    pub fn count_policy_denial(&self) {
        self.counters.policy_denials.fetch_add(1, Ordering::Relaxed);
    }

    // ---- data plane -----------------------------------------------------------------

    async fn entry(&self, tenant: &TenantId) -> Result<Arc<TenantEntry>, KmsError> {
        self.keyring
            .tenant(tenant)
            .await?
            .ok_or_else(|| tenant_not_found(tenant))
    }

    /// The tenant's entry for sealing, provisioning its first version if configured.
    async fn entry_for_seal(&self, tenant: &TenantId) -> Result<Arc<TenantEntry>, KmsError> {
        if let Some(e) = self.keyring.tenant(tenant).await? {
            return Ok(e);
        }
        if !self.auto_provision {
            return Err(tenant_not_found(tenant));
        }
        // Concurrent first calls (on any replica) create one version.
        if self.provision(tenant, false).await?.is_some() {
            tracing::info!(tenant = %tenant, "auto-provisioned tenant key");
        }
        self.entry(tenant).await
    }

    /// A new primary version: the next one (`rotate`), or the first one only if the
    /// tenant has none (race-free across replicas: decided under the tenant's row lock).
    /// `None` when `rotate` is false and the tenant already had an active version.
    async fn provision(
        &self,
        tenant: &TenantId,
        rotate: bool,
    ) -> Result<Option<KeyVersionRecord>, KmsError> {
        let root = self.roots.primary().id();
        let salt = Salt::generate();
        let record = if rotate {
            Some(self.store.create_key_version(tenant, root, &salt).await?)
        } else {
            self.store
                .create_first_key_version(tenant, root, &salt)
                .await?
        };
        self.keyring.invalidate(tenant);
        Ok(record)
    }

    /// Seals `plaintext` under the tenant's primary version.
    pub async fn wrap(
        &self,
        tenant: &TenantId,
        context: &Context,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, KeyVersion), KmsError> {
        envelope::check_plaintext_len(plaintext)?;
        let entry = self.entry_for_seal(tenant).await?;
        let (version, keys) = entry.encryption_keys()?;
        let envelope = envelope::seal(&keys, tenant, version, context, plaintext)?;
        Ok((envelope, version))
    }

    /// Opens an envelope of the tenant's, in the order of SPEC §3.
    pub async fn unwrap(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        context: &Context,
        ciphertext: &[u8],
    ) -> Result<(Plaintext, KeyVersion), KmsError> {
        envelope::check_size(ciphertext)?;
        let parsed = envelope::parse(ciphertext)?;
        if let Err(e) = envelope::check_tenant(&parsed, tenant) {
            self.counters.cross_tenant.fetch_add(1, Ordering::Relaxed);
            self.audit_rejection(caller, Some(tenant), "unwrap", "cross_tenant")
                .await;
            return Err(e.into());
        }
        let mut entry = self.entry(tenant).await?;
        if entry.is_newer_than_known(parsed.header.version) {
            // Another replica may have rotated since this entry was cached.
            self.keyring.invalidate(tenant);
            entry = self.entry(tenant).await?;
        }
        let keys = entry.decryption_keys(parsed.header.version)?;
        let opened = envelope::open_parsed(&keys, tenant, context, &parsed);
        if opened.is_err() {
            self.audit_rejection(caller, Some(tenant), "unwrap", "authentication_failed")
                .await;
        }
        let version = KeyVersion::new(parsed.header.version)?;
        Ok((opened?, version))
    }

    /// Re-seals an envelope under the primary version; one already there is returned
    /// byte-identical. The plaintext never leaves this function.
    pub async fn rewrap(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        context: &Context,
        ciphertext: &[u8],
    ) -> Result<(Vec<u8>, KeyVersion), KmsError> {
        let (plaintext, version) = self.unwrap(caller, tenant, context, ciphertext).await?;
        let entry = self.entry(tenant).await?;
        let (primary, keys) = entry.encryption_keys()?;
        if version == primary {
            return Ok((ciphertext.to_vec(), version));
        }
        let envelope = envelope::seal(&keys, tenant, primary, context, plaintext.expose_secret())?;
        Ok((envelope, primary))
    }

    /// A fresh random data key of `length` bytes (0 means 32) and the same key wrapped.
    pub async fn generate_data_key(
        &self,
        tenant: &TenantId,
        context: &Context,
        length: u32,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, KeyVersion), KmsError> {
        let len = match usize::try_from(length).unwrap_or(usize::MAX) {
            0 => DATA_KEY_DEFAULT_LEN,
            n if (DATA_KEY_MIN_LEN..=DATA_KEY_MAX_LEN).contains(&n) => n,
            n => {
                return Err(KmsError::invalid(
                    "INVALID_DATA_KEY_LENGTH",
                    format!("length is {n}; it must be 16..=64 (0 means 32)"),
                ));
            }
        };
        let mut key = Zeroizing::new(vec![0u8; len]);
        OsRng.fill_bytes(&mut key);
        let (envelope, version) = self.wrap(tenant, context, &key).await?;
        Ok((key, envelope, version))
    }

    // ---- stored secrets -------------------------------------------------------------

    /// Creates or overwrites a stored secret; returns its revision and key version.
    pub async fn put_secret(
        &self,
        tenant: &TenantId,
        secret: &SecretName,
        value: &[u8],
        labels: &Labels,
        expected_revision: Option<u64>,
    ) -> Result<(u64, KeyVersion), KmsError> {
        envelope::check_plaintext_len(value)?;
        let context = secret.context()?;
        let (envelope, version) = self.wrap(tenant, &context, value).await?;
        let revision = self
            .store
            .put_secret(
                tenant,
                NewSecret {
                    vendor: &secret.vendor,
                    name: &secret.name,
                    key_version: version,
                    envelope: &envelope,
                    labels,
                },
                expected_revision,
            )
            .await?;
        Ok((revision, version))
    }

    /// A stored secret's value and metadata.
    pub async fn get_secret(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        secret: &SecretName,
    ) -> Result<(Plaintext, SecretMeta), KmsError> {
        let Some(record) = self
            .store
            .get_secret(tenant, &secret.vendor, &secret.name)
            .await?
        else {
            return Err(KmsError::NotFound {
                reason: "SECRET_NOT_FOUND",
                message: format!("secret {}/{} not found", secret.vendor, secret.name),
            });
        };
        let (plaintext, _) = self
            .unwrap(caller, tenant, &secret.context()?, &record.envelope)
            .await?;
        Ok((plaintext, record.meta))
    }

    /// Stored secrets' metadata after `page_token`, optionally of one vendor.
    pub async fn list_secrets(
        &self,
        tenant: &TenantId,
        vendor: Option<&str>,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<SecretMeta>, String), KmsError> {
        let limit = page_size_of(page_size)?;
        let after = match page_token {
            "" => vendor.map(|v| (v.to_owned(), String::new())),
            token => {
                let (v, n) = token.split_once('/').ok_or_else(bad_token)?;
                SecretName::new(v, n).map_err(|_| bad_token())?;
                Some((v.to_owned(), n.to_owned()))
            }
        };
        let mut page = self
            .store
            .list_secrets(
                tenant,
                after.as_ref().map(|(v, n)| (v.as_str(), n.as_str())),
                limit,
            )
            .await?;
        if let Some(v) = vendor {
            page.retain(|m| m.vendor == v);
        }
        let next = if page.len() == limit as usize {
            page.last()
                .map(|m| format!("{}/{}", m.vendor, m.name))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((page, next))
    }

    /// Deletes a stored secret; `false` if there was none.
    pub async fn delete_secret(
        &self,
        tenant: &TenantId,
        secret: &SecretName,
    ) -> Result<bool, KmsError> {
        Ok(self
            .store
            .delete_secret(tenant, &secret.vendor, &secret.name, None)
            .await?)
    }

    // ---- admin plane ----------------------------------------------------------------

    /// Records an admin action before it happens: if the audit cannot be written the
    /// action is refused and changes nothing (fail closed).
    async fn audit_admin(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        action: &str,
        version: Option<KeyVersion>,
        detail: &str,
        outcome: &str,
    ) -> Result<AuditRecord, KmsError> {
        let event = NewAuditEvent {
            chain: AuditChain::Tenant(tenant.clone()),
            actor: caller.actor.clone(),
            action: action.to_owned(),
            key_version: version,
            outcome: outcome.to_owned(),
            request_id: caller.request_id.clone(),
            detail: match &caller.jti {
                Some(jti) => format!("jti={jti} {detail}").trim_end().to_owned(),
                None => detail.to_owned(),
            },
        };
        self.store
            .append_audit(&event, &self.audit_key)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, action, "audit append failed");
                KmsError::Unavailable("the audit log is unavailable")
            })
    }

    /// Runs an admin action on `tenant`: the audit event `authorized` is written first,
    /// and if it cannot be the action is refused and changes nothing (fail closed);
    /// then the action runs, the tenant's cached keys are dropped, and its outcome
    /// (`succeeded` or `failed:<REASON>`) is appended, best effort.
    async fn admin_action<T>(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        action: &str,
        version: Option<KeyVersion>,
        detail: &str,
        f: impl AsyncFnOnce() -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        self.audit_admin(caller, tenant, action, version, detail, "authorized")
            .await?;
        let result = f().await;
        self.keyring.invalidate(tenant);
        let outcome = match &result {
            Ok(_) => "succeeded".to_owned(),
            Err(e) => format!("failed:{}", e.code_and_reason().1),
        };
        if let Err(e) = self
            .audit_admin(caller, tenant, action, version, detail, &outcome)
            .await
        {
            tracing::error!(error = %e, action, "audit of the outcome failed");
        }
        result
    }

    /// Records a rejection (cross-tenant ciphertext, failed authentication, denied
    /// policy), rate-limited per caller. Best effort: a failure is logged.
    pub async fn audit_rejection(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        action: &str,
        outcome: &str,
    ) {
        tracing::warn!(actor = %caller.actor, tenant = ?tenant.map(TenantId::as_str), action, outcome, request_id = %caller.request_id, "request rejected");
        if !self.rejection_allowed(&caller.actor) {
            return;
        }
        let event = NewAuditEvent {
            chain: tenant.map_or(AuditChain::Global, |t| AuditChain::Tenant(t.clone())),
            actor: caller.actor.clone(),
            action: action.to_owned(),
            key_version: None,
            outcome: outcome.to_owned(),
            request_id: caller.request_id.clone(),
            detail: String::new(),
        };
        if let Err(e) = self.store.append_audit(&event, &self.audit_key).await {
            tracing::error!(error = %e, "audit append of a rejection failed");
        }
    }

    fn rejection_allowed(&self, actor: &str) -> bool {
        let Ok(mut m) = self.rejections.lock() else {
            return false;
        };
        let now = Instant::now();
        let slot = m.entry(actor.to_owned()).or_insert((now, 0));
        if now.duration_since(slot.0) > Duration::from_secs(60) {
            *slot = (now, 0);
        }
        slot.1 += 1;
        slot.1 <= REJECTION_AUDIT_PER_MINUTE
    }

    /// The tenant's record; NOT_FOUND if it never had keys.
    async fn existing_tenant(&self, tenant: &TenantId) -> Result<TenantRecord, KmsError> {
        self.store
            .tenant(tenant)
            .await?
            .ok_or_else(|| tenant_not_found(tenant))
    }

    /// The tenant's versions, states and secret counts.
    pub async fn tenant_info(&self, tenant: &TenantId) -> Result<TenantInfo, KmsError> {
        let record = self.existing_tenant(tenant).await?;
        Ok(TenantInfo {
            record,
            versions: self.store.key_versions(tenant).await?,
            secret_counts: self.store.secret_counts(tenant).await?,
        })
    }

    /// Provisions a tenant's first version (or the next one after shredding).
    pub async fn create_tenant_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
    ) -> Result<TenantInfo, KmsError> {
        if self.store.primary_version(tenant).await?.is_some() {
            return Err(already_has_keys(tenant));
        }
        self.admin_action(caller, tenant, "create_tenant_key", None, "", async || {
            // Re-decided under the tenant's row lock: a concurrent call may have won.
            self.provision(tenant, false)
                .await?
                .ok_or_else(|| already_has_keys(tenant))?;
            self.tenant_info(tenant).await
        })
        .await
    }

    /// Rotates: a new primary version; older ones stay decrypt-only.
    pub async fn rotate_tenant_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
    ) -> Result<TenantInfo, KmsError> {
        self.existing_tenant(tenant).await?;
        self.admin_action(caller, tenant, "rotate_tenant_key", None, "", async || {
            self.provision(tenant, true).await?;
            self.tenant_info(tenant).await
        })
        .await
    }

    /// Tenants after `page_token`, non-secret metadata only.
    pub async fn list_tenants(
        &self,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<TenantSummary>, String), KmsError> {
        let limit = page_size_of(page_size)?;
        let after = match page_token {
            "" => None,
            t => Some(TenantId::new(t).map_err(|_| bad_token())?),
        };
        let page = self.store.list_tenants(after.as_ref(), limit).await?;
        let next = if page.len() == limit as usize {
            page.last()
                .map(|t| t.tenant_id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((page, next))
    }

    /// Moves stored secrets to the primary version in batches, reporting progress
    /// after each batch. Resumable and idempotent: each secret moves by a
    /// compare-and-swap on its old envelope, so a concurrent `PutSecret` wins.
    pub async fn rewrap_tenant_secrets<F>(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        batch_size: u32,
        mut progress: F,
    ) -> Result<RewrapProgress, KmsError>
    where
        F: FnMut(RewrapProgress) -> bool + Send,
    {
        let batch = page_size_of(batch_size)?;
        self.admin_action(
            caller,
            tenant,
            "rewrap_tenant_secrets",
            None,
            "",
            async || self.rewrap_batches(tenant, batch, &mut progress).await,
        )
        .await
    }

    async fn rewrap_batches<F>(
        &self,
        tenant: &TenantId,
        batch: u32,
        progress: &mut F,
    ) -> Result<RewrapProgress, KmsError>
    where
        F: FnMut(RewrapProgress) -> bool + Send,
    {
        self.keyring.invalidate(tenant);
        let entry = self.entry(tenant).await?;
        let (primary, new_keys) = entry.encryption_keys()?;
        let mut done = 0u64;
        loop {
            let work = self
                .store
                .secrets_below_version(tenant, primary, batch)
                .await?;
            if work.is_empty() {
                break;
            }
            let mut moved_any = false;
            for record in &work {
                let name = SecretName::new(&record.meta.vendor, &record.meta.name)?;
                let context = name.context()?;
                let parsed = envelope::parse(&record.envelope)?;
                let keys = entry.decryption_keys(parsed.header.version)?;
                let plaintext = envelope::open_parsed(&keys, tenant, &context, &parsed)?;
                let sealed = envelope::seal(
                    &new_keys,
                    tenant,
                    primary,
                    &context,
                    plaintext.expose_secret(),
                )?;
                if self
                    .store
                    .replace_secret_envelope(
                        tenant,
                        &record.meta.vendor,
                        &record.meta.name,
                        &record.envelope,
                        &sealed,
                        primary,
                    )
                    .await?
                {
                    done += 1;
                    moved_any = true;
                }
            }
            let remaining = self.remaining_below(tenant, primary).await?;
            if !progress(RewrapProgress {
                rewrapped: done,
                remaining,
                primary,
            }) {
                break;
            }
            if !moved_any {
                // Everything in this batch changed concurrently; re-read and go on.
                tokio::task::yield_now().await;
            }
        }
        Ok(RewrapProgress {
            rewrapped: done,
            remaining: self.remaining_below(tenant, primary).await?,
            primary,
        })
    }

    async fn remaining_below(
        &self,
        tenant: &TenantId,
        primary: KeyVersion,
    ) -> Result<u64, KmsError> {
        let counts = self.store.secret_counts(tenant).await?;
        Ok(counts.range(..primary).map(|(_, n)| n).sum())
    }

    /// Raises (or lowers) the minimum decryption version; refused while stored secrets
    /// remain under older versions.
    pub async fn set_min_decryption_version(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<TenantInfo, KmsError> {
        let below = self.remaining_below(tenant, version).await?;
        if below > 0 {
            return Err(KmsError::precondition(
                "SECRETS_UNDER_OLDER_VERSIONS",
                format!(
                    "{below} stored secrets are under versions below {version}: rewrap them first"
                ),
            ));
        }
        self.admin_action(
            caller,
            tenant,
            "set_min_decryption_version",
            Some(version),
            "",
            async || {
                self.store.set_min_decrypt_version(tenant, version).await?;
                self.tenant_info(tenant).await
            },
        )
        .await
    }

    /// Disables, re-enables (decrypt-only) or destroys one version.
    pub async fn set_key_version_state(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        version: KeyVersion,
        state: KeyState,
    ) -> Result<TenantInfo, KmsError> {
        if state == KeyState::Active {
            return Err(KmsError::invalid(
                "INVALID_KEY_STATE",
                "a version becomes active only by rotation",
            ));
        }
        let detail = format!("state={state}");
        self.admin_action(
            caller,
            tenant,
            "set_key_version_state",
            Some(version),
            &detail,
            async || {
                self.store.set_key_state(tenant, version, state).await?;
                self.tenant_info(tenant).await
            },
        )
        .await
    }

    /// Schedules crypto-shredding after `days` (7..=30).
    pub async fn schedule_tenant_destruction(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        days: u32,
    ) -> Result<TenantInfo, KmsError> {
        if !DESTRUCTION_DAYS.contains(&days) {
            return Err(KmsError::invalid(
                "INVALID_DESTRUCTION_WINDOW",
                format!("days is {days}; a destruction waits 7..=30 days"),
            ));
        }
        self.existing_tenant(tenant).await?;
        let detail = format!("days={days}");
        self.admin_action(
            caller,
            tenant,
            "schedule_tenant_destruction",
            None,
            &detail,
            async || {
                let at = now_ms().saturating_add(i64::from(days) * 86_400_000);
                self.store.schedule_destruction(tenant, Some(at)).await?;
                self.tenant_info(tenant).await
            },
        )
        .await
    }

    /// Cancels a scheduled destruction.
    pub async fn cancel_tenant_destruction(
        &self,
        caller: &Caller,
        tenant: &TenantId,
    ) -> Result<TenantInfo, KmsError> {
        self.existing_tenant(tenant).await?;
        self.admin_action(
            caller,
            tenant,
            "cancel_tenant_destruction",
            None,
            "",
            async || {
                self.store.schedule_destruction(tenant, None).await?;
                self.tenant_info(tenant).await
            },
        )
        .await
    }

    /// Shreds every tenant whose destruction is due (the sweeper). Returns how many.
    pub async fn sweep_destructions(&self) -> Result<usize, KmsError> {
        let due = self.store.due_destructions(now_ms()).await?;
        let sweeper = Caller {
            actor: "system:destruction-sweeper".to_owned(),
            request_id: String::new(),
            jti: None,
        };
        for tenant in &due {
            let report = self
                .admin_action(&sweeper, tenant, "shred_tenant", None, "", async || {
                    Ok(self.store.shred_tenant(tenant).await?)
                })
                .await?;
            tracing::warn!(tenant = %tenant, shredded_at = report.shredded_at, "tenant crypto-shredded");
        }
        Ok(due.len())
    }

    /// Audit events of a chain after `after_seq`.
    pub async fn list_audit_events(
        &self,
        chain: &AuditChain,
        after_seq: u64,
        page_size: u32,
    ) -> Result<Vec<AuditRecord>, KmsError> {
        let limit = page_size_of(page_size)?;
        Ok(self.store.list_audit(chain, after_seq, limit).await?)
    }
}

fn tenant_not_found(tenant: &TenantId) -> KmsError {
    KmsError::NotFound {
        reason: "TENANT_NOT_FOUND",
        message: format!("tenant {tenant} has no keys"),
    }
}

fn already_has_keys(tenant: &TenantId) -> KmsError {
    KmsError::AlreadyExists(format!(
        "tenant {tenant} already has keys; use RotateTenantKey"
    ))
}

fn bad_token() -> KmsError {
    KmsError::invalid(
        "INVALID_PAGE_TOKEN",
        "page_token is not one this server issued",
    )
}

fn page_size_of(n: u32) -> Result<u32, KmsError> {
    match n {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        n => Err(KmsError::invalid(
            "INVALID_PAGE_SIZE",
            format!("page size is {n}; at most {MAX_PAGE}"),
        )),
    }
}
