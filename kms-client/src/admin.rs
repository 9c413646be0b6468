//! [`AdminClient`]: the admin plane (`KeyAdmin`).

use std::fmt;

use kms_proto::v1 as pb;
use pb::key_admin_client::KeyAdminClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{AdminInterceptor, TokenProvider};
use crate::call::{self, Caller};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::retry::Method;
use crate::types::{TenantPage, page_token};

pub use pb::{
    AuditEvent, KeyVersionInfo, KeyVersionState, RewrapProgress, TenantKeyInfo, TenantSummary,
};

type Inner = KeyAdminClient<InterceptedService<Channel, AdminInterceptor>>;

/// A client of the KMS admin plane (`KeyAdmin`), sending an admin JWT from a
/// [`TokenProvider`] (asked once per call) as `authorization: Bearer`.
///
/// Results are the API's messages ([`TenantKeyInfo`], ...). Only reads are retried.
///
/// ```no_run
/// # async fn example() -> Result<(), kms_client::ClientError> {
/// use kms_client::{AdminClient, ClientConfig};
/// use secrecy::SecretString;
///
/// let token = SecretString::from(std::env::var("HYGO_KMS_ADMIN_TOKEN").unwrap_or_default());
/// let admin = AdminClient::connect(ClientConfig::new("http://127.0.0.1:7650"), token).await?;
/// let info = admin.rotate_tenant_key("tenant-42").await?;
/// let mut progress = admin.rewrap_tenant_secrets("tenant-42", 0).await?;
/// while let Some(step) = progress.next().await {
///     let step = step?;
///     eprintln!("{} rewrapped, {} remaining", step.rewrapped, step.remaining);
/// }
/// # let _ = info; Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AdminClient {
    inner: Inner,
    caller: Caller,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

macro_rules! admin_unary {
    ($self:ident, $method:expr, $rpc:ident, $message:expr) => {{
        let message = $message;
        $self
            .caller
            .unary($method, &message, |request| {
                let mut client = $self.inner.clone();
                async move { client.$rpc(request).await }
            })
            .await
    }};
}

impl AdminClient {
    /// Validates `config`, connects, and returns a client taking tokens from `tokens`.
    pub async fn connect(
        config: ClientConfig,
        tokens: impl TokenProvider,
    ) -> Result<Self, ClientError> {
        let channel = call::connect(&config).await?;
        Ok(Self::from_channel(
            channel,
            &config,
            AdminInterceptor::new(tokens),
        ))
    }

    /// As [`AdminClient::connect`], connecting on the first call.
    pub fn connect_lazy(
        config: ClientConfig,
        tokens: impl TokenProvider,
    ) -> Result<Self, ClientError> {
        let channel = call::connect_lazy(&config)?;
        Ok(Self::from_channel(
            channel,
            &config,
            AdminInterceptor::new(tokens),
        ))
    }

    fn from_channel(
        channel: Channel,
        config: &ClientConfig,
        interceptor: AdminInterceptor,
    ) -> Self {
        let inner = KeyAdminClient::with_interceptor(channel, interceptor)
            .max_decoding_message_size(config.max_decoding_message_size)
            .max_encoding_message_size(config.max_encoding_message_size);
        Self {
            inner,
            caller: Caller::new(config),
        }
    }

    /// Provisions a tenant's first key version (or, after shredding, the next one).
    pub async fn create_tenant_key(&self, tenant: &str) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::CreateTenantKey,
            create_tenant_key,
            pb::CreateTenantKeyRequest {
                tenant_id: tenant.to_owned(),
            }
        )
    }

    /// A tenant's key versions, states, primary, minimum decryption version, secrets per
    /// version and scheduled destruction.
    pub async fn get_tenant_key(&self, tenant: &str) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::GetTenantKey,
            get_tenant_key,
            pb::GetTenantKeyRequest {
                tenant_id: tenant.to_owned(),
            }
        )
    }

    /// One page of tenants (`page_size` 1..1000, 0: 100).
    pub async fn list_tenants(
        &self,
        page_size: u32,
        page_token_in: Option<&str>,
    ) -> Result<TenantPage, ClientError> {
        let response = admin_unary!(
            self,
            Method::ListTenants,
            list_tenants,
            pb::ListTenantsRequest {
                page_size,
                page_token: page_token_in.unwrap_or_default().to_owned(),
            }
        )?;
        Ok(TenantPage {
            tenants: response.tenants,
            next_page_token: page_token(response.next_page_token),
        })
    }

    /// Makes a new version primary; older ones stay decrypt-only. Not retried.
    pub async fn rotate_tenant_key(&self, tenant: &str) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::RotateTenantKey,
            rotate_tenant_key,
            pb::RotateTenantKeyRequest {
                tenant_id: tenant.to_owned(),
            }
        )
    }

    /// Moves the tenant's stored secrets to the primary version in batches of
    /// `batch_size` (1..1000, 0: 100), streaming progress. The call is resumable and
    /// idempotent on the server, but not retried here. The configured request timeout
    /// bounds the wait for the first response and for each next message, not the whole
    /// stream (no `grpc-timeout` is sent).
    pub async fn rewrap_tenant_secrets(
        &self,
        tenant: &str,
        batch_size: u32,
    ) -> Result<RewrapProgressStream, ClientError> {
        let mut client = self.inner.clone();
        let request = tonic::Request::new(pb::RewrapTenantSecretsRequest {
            tenant_id: tenant.to_owned(),
            batch_size,
        });
        let response = tokio::time::timeout(
            self.caller.request_timeout,
            client.rewrap_tenant_secrets(request),
        )
        .await
        .map_err(|_| self.caller.deadline_exceeded())??;
        Ok(RewrapProgressStream {
            inner: response.into_inner(),
            caller: self.caller,
        })
    }

    /// Refuses versions below `version` for decryption (refused by the server while
    /// stored secrets remain under older versions).
    pub async fn set_min_decryption_version(
        &self,
        tenant: &str,
        version: u32,
    ) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::SetMinDecryptionVersion,
            set_min_decryption_version,
            pb::SetMinDecryptionVersionRequest {
                tenant_id: tenant.to_owned(),
                version,
            }
        )
    }

    /// Disables, re-enables (`DecryptOnly`) or destroys one version.
    pub async fn set_key_version_state(
        &self,
        tenant: &str,
        version: u32,
        state: KeyVersionState,
    ) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::SetKeyVersionState,
            set_key_version_state,
            pb::SetKeyVersionStateRequest {
                tenant_id: tenant.to_owned(),
                version,
                state: state.into(),
            }
        )
    }

    /// Schedules crypto-shredding of the tenant after `days` (7..30).
    pub async fn schedule_tenant_destruction(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::ScheduleTenantDestruction,
            schedule_tenant_destruction,
            pb::ScheduleTenantDestructionRequest {
                tenant_id: tenant.to_owned(),
                days,
            }
        )
    }

    /// Cancels a scheduled destruction.
    pub async fn cancel_tenant_destruction(
        &self,
        tenant: &str,
    ) -> Result<TenantKeyInfo, ClientError> {
        admin_unary!(
            self,
            Method::CancelTenantDestruction,
            cancel_tenant_destruction,
            pb::CancelTenantDestructionRequest {
                tenant_id: tenant.to_owned(),
            }
        )
    }

    /// Audit events of one chain (`tenant`, or `None` for the global chain) with a
    /// sequence number above `after_seq`, oldest first (`page_size` 1..1000, 0: 100).
    pub async fn list_audit_events(
        &self,
        tenant: Option<&str>,
        after_seq: u64,
        page_size: u32,
    ) -> Result<Vec<AuditEvent>, ClientError> {
        let response = admin_unary!(
            self,
            Method::ListAuditEvents,
            list_audit_events,
            pb::ListAuditEventsRequest {
                tenant_id: tenant.unwrap_or_default().to_owned(),
                after_seq,
                page_size,
            }
        )?;
        Ok(response.events)
    }
}

/// The progress messages of [`AdminClient::rewrap_tenant_secrets`].
pub struct RewrapProgressStream {
    inner: tonic::Streaming<RewrapProgress>,
    caller: Caller,
}

impl fmt::Debug for RewrapProgressStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewrapProgressStream")
            .finish_non_exhaustive()
    }
}

impl RewrapProgressStream {
    /// The next progress message; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<RewrapProgress, ClientError>> {
        match tokio::time::timeout(self.caller.request_timeout, self.inner.message()).await {
            Ok(Ok(Some(progress))) => Some(Ok(progress)),
            Ok(Ok(None)) => None,
            Ok(Err(status)) => Some(Err(status.into())),
            Err(_elapsed) => Some(Err(self.caller.deadline_exceeded())),
        }
    }
}
