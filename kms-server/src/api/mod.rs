//! tonic service implementations: proto ⇄ domain conversion, authentication and
//! authorization, request ids and logging. No business logic: that is [`crate::service`].

mod admin;
mod data;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

pub use admin::KeyAdminApi;
pub use data::KeyServiceApi;

use crate::auth::{
    AdminPrincipal, AdminVerifier, AuthError, ServiceCredential, ServicePolicy, ServicePrincipal,
    bearer_token,
};
use crate::error::KmsError;
use crate::keys::{Context, TenantId};
use crate::service::{Caller, Kms};

/// Header carrying the request id (accepted from the caller when well-formed, else
/// generated) and returned on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Credentials and policy shared by both services.
#[derive(Debug)]
pub struct Authn {
    /// Data-plane service credentials and policies.
    pub services: ServicePolicy,
    /// Admin JWT verification; `None` disables the admin plane (every call
    /// UNAUTHENTICATED).
    pub admin: Option<AdminVerifier>,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The KMS.
    pub kms: Arc<Kms>,
    /// Authentication.
    pub authn: Arc<Authn>,
}

/// Per-request bookkeeping: the request id and method, for logs and the audit.
#[derive(Debug)]
pub(crate) struct Call {
    method: &'static str,
    caller: Caller,
    started: std::time::Instant,
}

impl Call {
    fn new(metadata: &MetadataMap, method: &'static str) -> Self {
        let request_id = metadata
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map_or_else(new_request_id, str::to_owned);
        Self {
            method,
            caller: Caller {
                actor: "anonymous".to_owned(),
                request_id,
                jti: None,
            },
            started: std::time::Instant::now(),
        }
    }

    /// Logs the outcome and turns it into a response with the request id attached.
    fn finish<T>(self, result: Result<T, KmsError>) -> Result<tonic::Response<T>, Status> {
        let elapsed_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let id = MetadataValue::try_from(self.caller.request_id.as_str()).ok();
        match result {
            Ok(body) => {
                tracing::info!(method = self.method, actor = %self.caller.actor, request_id = %self.caller.request_id, elapsed_us, "ok");
                let mut response = tonic::Response::new(body);
                if let Some(id) = id {
                    response.metadata_mut().insert(REQUEST_ID_HEADER, id);
                }
                Ok(response)
            }
            Err(e) => {
                let (code, reason) = e.code_and_reason();
                tracing::info!(method = self.method, actor = %self.caller.actor, request_id = %self.caller.request_id, elapsed_us, ?code, reason, "error");
                let mut status = Status::from(e);
                if let Some(id) = id {
                    status.metadata_mut().insert(REQUEST_ID_HEADER, id);
                }
                Err(status)
            }
        }
    }
}

fn new_request_id() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 12];
    rand_core::OsRng.fill_bytes(&mut b);
    base16ct::lower::encode_string(&b)
}

/// The bearer token of a request, kept in a zeroizing string.
fn token(metadata: &MetadataMap) -> Result<SecretString, KmsError> {
    let header = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(KmsError::Unauthenticated(
            crate::auth::UNAUTHENTICATED_MESSAGE,
        ))?;
    Ok(SecretString::from(bearer_token(header)?))
}

impl Shared {
    /// Runs a data-plane handler: request id, authentication, then `f`, then logging and
    /// the status mapping.
    async fn data_call<Req, Resp>(
        &self,
        request: tonic::Request<Req>,
        method: &'static str,
        f: impl AsyncFnOnce(&Call, &ServicePrincipal, Req) -> Result<Resp, KmsError>,
    ) -> Result<tonic::Response<Resp>, Status> {
        let mut call = Call::new(request.metadata(), method);
        let result = match self.service(request.metadata(), &mut call).await {
            Ok(principal) => f(&call, &principal, request.into_inner()).await,
            Err(e) => Err(e),
        };
        call.finish(result)
    }

    /// Runs an admin handler: request id, admin authentication, then `f`.
    async fn admin_call<Req, Resp>(
        &self,
        request: tonic::Request<Req>,
        method: &'static str,
        f: impl AsyncFnOnce(&Caller, Req) -> Result<Resp, KmsError>,
    ) -> Result<tonic::Response<Resp>, Status> {
        let mut call = Call::new(request.metadata(), method);
        let result = match self.admin(request.metadata(), &mut call).await {
            Ok(_) => f(&call.caller, request.into_inner()).await,
            Err(e) => Err(e),
        };
        call.finish(result)
    }

    /// Authenticates a data-plane call.
    async fn service(
        &self,
        metadata: &MetadataMap,
        call: &mut Call,
    ) -> Result<Arc<ServicePrincipal>, KmsError> {
        let result = token(metadata).and_then(|t| {
            self.authn
                .services
                .authenticate(t.expose_secret())
                .map_err(KmsError::from)
        });
        match result {
            Ok(p) => {
                call.caller.actor = format!("service:{}", p.id().as_str());
                Ok(p)
            }
            Err(e) => {
                self.kms.count_auth_failure();
                self.kms
                    .audit_rejection(&call.caller, None, call.method, "unauthenticated")
                    .await;
                Err(e)
            }
        }
    }

    /// Authenticates an admin call: a JWT; a valid service credential is
    /// PERMISSION_DENIED (wrong plane), anything else UNAUTHENTICATED.
    async fn admin(
        &self,
        metadata: &MetadataMap,
        call: &mut Call,
    ) -> Result<AdminPrincipal, KmsError> {
        let result = token(metadata).and_then(|t| {
            let t = t.expose_secret();
            if ServiceCredential::looks_like(t) {
                return match self.authn.services.authenticate(t) {
                    Ok(p) => {
                        call.caller.actor = format!("service:{}", p.id().as_str());
                        Err(KmsError::PermissionDenied {
                            reason: "SERVICE_CREDENTIAL_ON_ADMIN",
                            message: "service credentials cannot call KeyAdmin".to_owned(),
                        })
                    }
                    Err(e) => Err(e.into()),
                };
            }
            let verifier = self.authn.admin.as_ref().ok_or(KmsError::Unauthenticated(
                crate::auth::UNAUTHENTICATED_MESSAGE,
            ))?;
            verifier.verify(t).map_err(|e| match e {
                AuthError::PermissionDenied { reason } => KmsError::PermissionDenied {
                    reason: "ADMIN_NOT_AUTHORIZED",
                    message: reason,
                },
                other => other.into(),
            })
        });
        match result {
            Ok(p) => {
                call.caller.actor = format!("admin:{}", p.sub);
                call.caller.jti = p.jti.clone();
                Ok(p)
            }
            Err(e) => {
                self.kms.count_auth_failure();
                self.kms
                    .audit_rejection(&call.caller, None, call.method, "admin_auth_failed")
                    .await;
                Err(e)
            }
        }
    }

    /// Records a policy denial (rate-limited) and converts it.
    async fn denied(&self, call: &Call, tenant: &TenantId, e: AuthError) -> KmsError {
        self.kms.count_policy_denial();
        self.kms
            .audit_rejection(&call.caller, Some(tenant), call.method, "policy_denied")
            .await;
        e.into()
    }
}

fn tenant(id: &str) -> Result<TenantId, KmsError> {
    Ok(TenantId::new(id)?)
}

fn context(map: &std::collections::HashMap<String, String>) -> Result<Context, KmsError> {
    Ok(Context::from_caller(
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}
