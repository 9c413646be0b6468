//! The [`Store`](super::Store) implementation both backends share, as one macro: the
//! stores differ only in how a transaction begins and in a few locks and cross-tenant
//! reads, which each provides as inherent methods.

/// The one [`Store`] implementation, shared by both backends. Each store provides the
/// backend-specific pieces as inherent methods: `begin_write(tenant)` and
/// `begin_read(tenant)` (PostgreSQL: a transaction that sets `hygo.tenant_id` first;
/// SQLite: `BEGIN IMMEDIATE` for writes), `begin_global()` (root key check values),
/// `lock_chain` (serialises audit appends per chain), and the narrow cross-tenant reads
/// `tenant_page`, `due_tenants` and `unknown_root_key_refs`. `for_update` and
/// `for_share` are the row-lock suffixes (empty on SQLite, whose `BEGIN IMMEDIATE` already
/// holds the database's write lock).
macro_rules! impl_store {
    ($store:ty, $db:ty, for_update = $for_update:literal, for_share = $for_share:literal) => {
        impl $store {
            /// Locks the tenant row (serialising lifecycle changes of one tenant) and
            /// returns its `destroy_after`.
            async fn lock_tenant(
                tx: &mut sqlx::Transaction<'static, $db>,
                tenant: &TenantId,
            ) -> Result<Option<i64>, StoreError> {
                let row: Option<(Option<i64>,)> = sqlx::query_as(concat!(
                    "SELECT destroy_after FROM tenants WHERE tenant_id = $1",
                    $for_update
                ))
                .bind(tenant.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                match row {
                    Some((destroy_after,)) => Ok(destroy_after),
                    None => Err(StoreError::NotFound { what: "tenant" }),
                }
            }

            /// Checks that secrets may be sealed under `version`, holding a share lock on
            /// it until commit so it cannot be destroyed meanwhile.
            async fn writable_version(
                tx: &mut sqlx::Transaction<'static, $db>,
                tenant: &TenantId,
                version: KeyVersion,
            ) -> Result<(), StoreError> {
                let row: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT state FROM tenant_key_versions WHERE tenant_id = $1 AND version = $2",
                    $for_share
                ))
                .bind(tenant.as_str())
                .bind(i64::from(version.get()))
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                writable_state(row.map(|(s,)| s))
            }

            /// The secret's current revision, `None` if it does not exist.
            async fn current_revision(
                tx: &mut sqlx::Transaction<'static, $db>,
                tenant: &TenantId,
                vendor: &str,
                name: &str,
            ) -> Result<Option<u64>, StoreError> {
                let found: Option<(i64,)> = sqlx::query_as(sql::SECRET_REVISION)
                    .bind(tenant.as_str())
                    .bind(vendor)
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                Ok(found.and_then(|(r,)| u64::try_from(r).ok()))
            }

            /// Creates the tenant's next version as the active one; with `only_first`,
            /// only when the tenant has no active version (checked under the tenant's
            /// row lock, so concurrent first calls create one version).
            async fn new_version(
                &self,
                tenant: &TenantId,
                root_key_id: &RootKeyId,
                salt: &Salt,
                only_first: bool,
            ) -> Result<Option<KeyVersionRecord>, StoreError> {
                let now = now_ms();
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                if only_first {
                    let active: Option<(i64,)> = sqlx::query_as(sql::SELECT_PRIMARY)
                        .bind(tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if active.is_some() {
                        tx.commit().await.map_err(map_err)?;
                        return Ok(None);
                    }
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
                sql::version(row).map(Some)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn check_root_keys(&self, ring: &RootKeyRing) -> Result<(), StoreError> {
                for key in ring.iter() {
                    let kcv = key.check_value();
                    let mut tx = self.begin_global().await?;
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
                let refs = self.unknown_root_key_refs(ring).await?;
                super::missing_root_keys(refs)
            }

            async fn tenant(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                self.tenant_page(after, limit).await
            }

            async fn due_destructions(&self, now: i64) -> Result<Vec<TenantId>, StoreError> {
                self.due_tenants(now).await
            }

            async fn create_key_version(
                &self,
                tenant: &TenantId,
                root_key_id: &RootKeyId,
                salt: &Salt,
            ) -> Result<KeyVersionRecord, StoreError> {
                self.new_version(tenant, root_key_id, salt, false)
                    .await?
                    .ok_or(StoreError::Conflict)
            }

            async fn create_first_key_version(
                &self,
                tenant: &TenantId,
                root_key_id: &RootKeyId,
                salt: &Salt,
            ) -> Result<Option<KeyVersionRecord>, StoreError> {
                self.new_version(tenant, root_key_id, salt, true).await
            }

            async fn key_versions(
                &self,
                tenant: &TenantId,
            ) -> Result<Vec<KeyVersionRecord>, StoreError> {
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_read(tenant.as_str()).await?;
                let row: Option<VersionRow> = sqlx::query_as(sql::SELECT_VERSION)
                    .bind(tenant.as_str())
                    .bind(i64::from(version.get()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                row.map(sql::version).transpose()
            }

            async fn primary_version(
                &self,
                tenant: &TenantId,
            ) -> Result<Option<KeyVersion>, StoreError> {
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
                let current: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT state FROM tenant_key_versions WHERE tenant_id = $1 AND version = $2",
                    $for_update
                ))
                .bind(tenant.as_str())
                .bind(v)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let current =
                    current
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                    (None, expected) => Err(StoreError::RevisionMismatch {
                        expected: expected.unwrap_or(0),
                        found: Self::current_revision(&mut tx, tenant, secret.vendor, secret.name)
                            .await?,
                    }),
                }
            }

            async fn get_secret(
                &self,
                tenant: &TenantId,
                vendor: &str,
                name: &str,
            ) -> Result<Option<SecretRecord>, StoreError> {
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                    let found = Self::current_revision(&mut tx, tenant, vendor, name).await?;
                    if found.is_some() {
                        return Err(StoreError::RevisionMismatch {
                            expected: expected_revision.unwrap_or(0),
                            found,
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
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(tenant.as_str()).await?;
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
                let mut tx = self.begin_read(tenant.as_str()).await?;
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
                let mut tx = self.begin_write(chain).await?;
                Self::lock_chain(&mut tx, chain).await?;
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
                let mut tx = self.begin_read(chain.as_str()).await?;
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
    };
}
