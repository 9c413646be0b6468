//! `hygo.kms.v1.KeyAdmin`: the admin plane. Every call needs a fresh admin JWT and is
//! audited before it acts (fail closed).

use std::pin::Pin;

use kms_proto::v1 as pb;
use kms_proto::v1::key_admin_server::KeyAdmin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{Shared, tenant};
use crate::audit::{AuditChain, AuditRecord};
use crate::error::KmsError;
use crate::keys::KeyVersion;
use crate::service::TenantInfo;
use crate::store::KeyState;

/// The `KeyAdmin` implementation.
#[derive(Debug, Clone)]
pub struct KeyAdminApi(pub Shared);

fn state_pb(s: KeyState) -> pb::KeyVersionState {
    match s {
        KeyState::Active => pb::KeyVersionState::Active,
        KeyState::DecryptOnly => pb::KeyVersionState::DecryptOnly,
        KeyState::Disabled => pb::KeyVersionState::Disabled,
        KeyState::Destroyed => pb::KeyVersionState::Destroyed,
    }
}

fn info(i: TenantInfo) -> pb::TenantKeyInfo {
    pb::TenantKeyInfo {
        tenant_id: i.record.tenant_id.to_string(),
        primary_version: i.record.primary_version.map_or(0, KeyVersion::get),
        min_decryption_version: i.record.min_decrypt_version.get(),
        versions: i
            .versions
            .iter()
            .map(|v| pb::KeyVersionInfo {
                version: v.version.get(),
                state: state_pb(v.state) as i32,
                root_key_id: v.root_key_id.to_string(),
                created_at_ms: v.created_at,
                secret_count: i.secret_counts.get(&v.version).copied().unwrap_or(0),
            })
            .collect(),
        destroy_after_ms: i.record.destroy_after.unwrap_or(0),
        shredded_at_ms: i.record.shredded_at.unwrap_or(0),
    }
}

fn audit_pb(r: AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        chain: r.chain.to_string(),
        seq: r.seq,
        at_ms: r.at,
        actor: r.actor,
        action: r.action,
        key_version: r.key_version.map_or(0, KeyVersion::get),
        outcome: r.outcome,
        request_id: r.request_id,
        prev_hash: r.prev_hash.to_vec(),
        hash: r.hash.to_vec(),
        mac: r.mac.to_vec(),
        mac_root_key_id: r.mac_root_key_id.to_string(),
    }
}

fn version(v: u32) -> Result<KeyVersion, KmsError> {
    Ok(KeyVersion::new(v)?)
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::RewrapProgress, Status>> + Send>>;

#[tonic::async_trait]
impl KeyAdmin for KeyAdminApi {
    async fn create_tenant_key(
        &self,
        request: Request<pb::CreateTenantKeyRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "CreateTenantKey", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                Ok(info(self.0.kms.create_tenant_key(caller, &t).await?))
            })
            .await
    }

    async fn get_tenant_key(
        &self,
        request: Request<pb::GetTenantKeyRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "GetTenantKey", async |_, req| {
                let t = tenant(&req.tenant_id)?;
                Ok(info(self.0.kms.tenant_info(&t).await?))
            })
            .await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.0
            .admin_call(request, "ListTenants", async |_, req| {
                let (page, next_page_token) = self
                    .0
                    .kms
                    .list_tenants(req.page_size, &req.page_token)
                    .await?;
                Ok(pb::ListTenantsResponse {
                    tenants: page
                        .into_iter()
                        .map(|t| pb::TenantSummary {
                            tenant_id: t.tenant_id.to_string(),
                            created_at_ms: t.created_at,
                            destroy_after_ms: t.destroy_after.unwrap_or(0),
                            shredded_at_ms: t.shredded_at.unwrap_or(0),
                        })
                        .collect(),
                    next_page_token,
                })
            })
            .await
    }

    async fn rotate_tenant_key(
        &self,
        request: Request<pb::RotateTenantKeyRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "RotateTenantKey", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                Ok(info(self.0.kms.rotate_tenant_key(caller, &t).await?))
            })
            .await
    }

    type RewrapTenantSecretsStream = ProgressStream;

    async fn rewrap_tenant_secrets(
        &self,
        request: Request<pb::RewrapTenantSecretsRequest>,
    ) -> Result<Response<Self::RewrapTenantSecretsStream>, Status> {
        self.0
            .admin_call(request, "RewrapTenantSecrets", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let kms = self.0.kms.clone();
                let caller = caller.clone();
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result = kms
                        .rewrap_tenant_secrets(&caller, &t, req.batch_size, move |p| {
                            progress_tx.send(Ok(progress(p, false))).is_ok()
                        })
                        .await;
                    let _ = tx.send(
                        result
                            .map(|p| progress(p, p.remaining == 0))
                            .map_err(Status::from),
                    );
                });
                let stream: ProgressStream =
                    Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
                Ok(stream)
            })
            .await
    }

    async fn set_min_decryption_version(
        &self,
        request: Request<pb::SetMinDecryptionVersionRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "SetMinDecryptionVersion", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                let v = version(req.version)?;
                Ok(info(
                    self.0.kms.set_min_decryption_version(caller, &t, v).await?,
                ))
            })
            .await
    }

    async fn set_key_version_state(
        &self,
        request: Request<pb::SetKeyVersionStateRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "SetKeyVersionState", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                let v = version(req.version)?;
                let state = match pb::KeyVersionState::try_from(req.state) {
                    Ok(pb::KeyVersionState::DecryptOnly) => KeyState::DecryptOnly,
                    Ok(pb::KeyVersionState::Disabled) => KeyState::Disabled,
                    Ok(pb::KeyVersionState::Destroyed) => KeyState::Destroyed,
                    _ => {
                        return Err(KmsError::invalid(
                            "INVALID_KEY_STATE",
                            "state must be DECRYPT_ONLY, DISABLED or DESTROYED",
                        ));
                    }
                };
                Ok(info(
                    self.0
                        .kms
                        .set_key_version_state(caller, &t, v, state)
                        .await?,
                ))
            })
            .await
    }

    async fn schedule_tenant_destruction(
        &self,
        request: Request<pb::ScheduleTenantDestructionRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "ScheduleTenantDestruction", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                Ok(info(
                    self.0
                        .kms
                        .schedule_tenant_destruction(caller, &t, req.days)
                        .await?,
                ))
            })
            .await
    }

    async fn cancel_tenant_destruction(
        &self,
        request: Request<pb::CancelTenantDestructionRequest>,
    ) -> Result<Response<pb::TenantKeyInfo>, Status> {
        self.0
            .admin_call(request, "CancelTenantDestruction", async |caller, req| {
                let t = tenant(&req.tenant_id)?;
                Ok(info(
                    self.0.kms.cancel_tenant_destruction(caller, &t).await?,
                ))
            })
            .await
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        self.0
            .admin_call(request, "ListAuditEvents", async |_, req| {
                let chain = match req.tenant_id.as_str() {
                    "" => AuditChain::Global,
                    t => AuditChain::Tenant(tenant(t)?),
                };
                let events = self
                    .0
                    .kms
                    .list_audit_events(&chain, req.after_seq, req.page_size)
                    .await?;
                Ok(pb::ListAuditEventsResponse {
                    events: events.into_iter().map(audit_pb).collect(),
                })
            })
            .await
    }
}

fn progress(p: crate::service::RewrapProgress, done: bool) -> pb::RewrapProgress {
    pb::RewrapProgress {
        rewrapped: p.rewrapped,
        remaining: p.remaining,
        primary_version: p.primary.get(),
        done,
    }
}
