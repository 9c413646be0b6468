//! A tiny in-process `KeyService`/`KeyAdmin` on 127.0.0.1:0, shared by the test crates.
//! Its "envelope" is `tenant || 0 || reversed plaintext`.

#![allow(dead_code, reason = "each test crate uses a part")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kms_client::proto::key_admin_server::{KeyAdmin, KeyAdminServer};
use kms_client::proto::key_service_server::{KeyService, KeyServiceServer};
use kms_client::proto::{self as pb};
use tonic::codegen::tokio_stream;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

pub(crate) const CREDENTIAL: &str = "hkms_test_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

#[derive(Default)]
pub(crate) struct Fake {
    /// Calls per method name.
    pub(crate) calls: Mutex<HashMap<&'static str, u32>>,
    /// Authorization headers seen.
    pub(crate) authorizations: Mutex<Vec<String>>,
    /// grpc-timeout headers seen.
    pub(crate) timeouts: Mutex<Vec<String>>,
    /// This many calls of each method fail with UNAVAILABLE first.
    pub(crate) fail_first: AtomicU32,
}

impl Fake {
    fn record<T>(&self, method: &'static str, request: &Request<T>) -> Result<(), Status> {
        let metadata = request.metadata();
        if let Some(value) = metadata.get("authorization") {
            self.authorizations
                .lock()
                .unwrap()
                .push(value.to_str().unwrap().to_owned());
        }
        if let Some(value) = metadata.get("grpc-timeout") {
            self.timeouts
                .lock()
                .unwrap()
                .push(value.to_str().unwrap().to_owned());
        }
        let mut calls = self.calls.lock().unwrap();
        let count = calls.entry(method).or_default();
        *count += 1;
        if *count <= self.fail_first.load(Ordering::SeqCst) {
            return Err(Status::unavailable("storage down"));
        }
        Ok(())
    }

    pub(crate) fn calls(&self, method: &str) -> u32 {
        self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }
}

fn reasoned(code: Code, message: &str, reason: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, "kms.hygo.shop", HashMap::new()),
    )
}

/// The "envelope" of the fake: the plaintext reversed, with the tenant and context checked.
pub(crate) fn fake_seal(tenant: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut ct = tenant.as_bytes().to_vec();
    ct.push(0);
    ct.extend(plaintext.iter().rev());
    ct
}

fn fake_open(tenant: &str, ciphertext: &[u8]) -> Result<Vec<u8>, Status> {
    let prefix_len = tenant.len() + 1;
    if ciphertext.len() < prefix_len || &ciphertext[..tenant.len()] != tenant.as_bytes() {
        return Err(reasoned(
            Code::PermissionDenied,
            "envelope of another tenant",
            "CROSS_TENANT",
        ));
    }
    Ok(ciphertext[prefix_len..].iter().rev().copied().collect())
}

/// The fake as a service (a local type, for the orphan rule).
struct Svc(Arc<Fake>);

impl std::ops::Deref for Svc {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl KeyService for Svc {
    async fn wrap(&self, request: Request<pb::WrapRequest>) -> Res<pb::WrapResponse> {
        self.record("wrap", &request)?;
        let r = request.into_inner();
        if r.tenant_id == "slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok(Response::new(pb::WrapResponse {
            ciphertext: fake_seal(&r.tenant_id, &r.plaintext),
            key_version: 1,
        }))
    }

    async fn unwrap(&self, request: Request<pb::UnwrapRequest>) -> Res<pb::UnwrapResponse> {
        self.record("unwrap", &request)?;
        let r = request.into_inner();
        if r.context.get("vendor").map(String::as_str) != Some("shopify") {
            return Err(reasoned(
                Code::InvalidArgument,
                "bad context",
                "CONTEXT_MISMATCH",
            ));
        }
        Ok(Response::new(pb::UnwrapResponse {
            plaintext: fake_open(&r.tenant_id, &r.ciphertext)?,
            key_version: 1,
        }))
    }

    async fn rewrap(&self, request: Request<pb::RewrapRequest>) -> Res<pb::RewrapResponse> {
        self.record("rewrap", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn batch_wrap(
        &self,
        request: Request<pb::BatchWrapRequest>,
    ) -> Res<pb::BatchWrapResponse> {
        self.record("batch_wrap", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn batch_unwrap(
        &self,
        request: Request<pb::BatchUnwrapRequest>,
    ) -> Res<pb::BatchUnwrapResponse> {
        self.record("batch_unwrap", &request)?;
        let results = request
            .into_inner()
            .items
            .into_iter()
            .map(|item| pb::BatchUnwrapResult {
                result: Some(match fake_open(&item.tenant_id, &item.ciphertext) {
                    Ok(plaintext) => pb::batch_unwrap_result::Result::Ok(pb::UnwrapResponse {
                        plaintext,
                        key_version: 1,
                    }),
                    Err(status) => pb::batch_unwrap_result::Result::Error(pb::ItemError {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                        reason: "CROSS_TENANT".into(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchUnwrapResponse { results }))
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Res<pb::GenerateDataKeyResponse> {
        self.record("generate_data_key", &request)?;
        let r = request.into_inner();
        let key = vec![0x42; if r.length == 0 { 32 } else { r.length as usize }];
        Ok(Response::new(pb::GenerateDataKeyResponse {
            ciphertext: fake_seal(&r.tenant_id, &key),
            plaintext_key: key,
            key_version: 3,
        }))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Res<pb::GenerateDataKeyWithoutPlaintextResponse> {
        self.record("generate_data_key_without_plaintext", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn put_secret(
        &self,
        request: Request<pb::PutSecretRequest>,
    ) -> Res<pb::PutSecretResponse> {
        self.record("put_secret", &request)?;
        let r = request.into_inner();
        if r.expected_revision == Some(7) {
            return Err(reasoned(
                Code::FailedPrecondition,
                "revision mismatch",
                "REVISION_MISMATCH",
            ));
        }
        Ok(Response::new(pb::PutSecretResponse {
            revision: 1,
            key_version: 1,
        }))
    }

    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Res<pb::GetSecretResponse> {
        self.record("get_secret", &request)?;
        let r = request.into_inner();
        Ok(Response::new(pb::GetSecretResponse {
            value: b"shpat_value".to_vec(),
            metadata: Some(pb::SecretMetadata {
                vendor: r.vendor,
                name: r.name,
                revision: 4,
                key_version: 2,
                labels: HashMap::from([("env".into(), "prod".into())]),
                created_at_ms: 1,
                updated_at_ms: 2,
            }),
        }))
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Res<pb::ListSecretsResponse> {
        self.record("list_secrets", &request)?;
        Ok(Response::new(pb::ListSecretsResponse {
            secrets: vec![pb::SecretMetadata::default()],
            next_page_token: String::new(),
        }))
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Res<pb::DeleteSecretResponse> {
        self.record("delete_secret", &request)?;
        Ok(Response::new(pb::DeleteSecretResponse { deleted: true }))
    }
}

fn info(tenant: &str, primary: u32) -> pb::TenantKeyInfo {
    pb::TenantKeyInfo {
        tenant_id: tenant.to_owned(),
        primary_version: primary,
        ..pb::TenantKeyInfo::default()
    }
}

#[tonic::async_trait]
impl KeyAdmin for Svc {
    async fn create_tenant_key(
        &self,
        request: Request<pb::CreateTenantKeyRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("create_tenant_key", &request)?;
        Ok(Response::new(info(&request.into_inner().tenant_id, 1)))
    }

    async fn get_tenant_key(
        &self,
        request: Request<pb::GetTenantKeyRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("get_tenant_key", &request)?;
        Ok(Response::new(info(&request.into_inner().tenant_id, 2)))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Res<pb::ListTenantsResponse> {
        self.record("list_tenants", &request)?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: vec![pb::TenantSummary::default()],
            next_page_token: "next".into(),
        }))
    }

    async fn rotate_tenant_key(
        &self,
        request: Request<pb::RotateTenantKeyRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("rotate_tenant_key", &request)?;
        Ok(Response::new(info(&request.into_inner().tenant_id, 2)))
    }

    type RewrapTenantSecretsStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<pb::RewrapProgress, Status>>>;

    async fn rewrap_tenant_secrets(
        &self,
        request: Request<pb::RewrapTenantSecretsRequest>,
    ) -> Res<Self::RewrapTenantSecretsStream> {
        self.record("rewrap_tenant_secrets", &request)?;
        let steps = vec![
            Ok(pb::RewrapProgress {
                rewrapped: 100,
                remaining: 50,
                primary_version: 2,
                done: false,
            }),
            Ok(pb::RewrapProgress {
                rewrapped: 150,
                remaining: 0,
                primary_version: 2,
                done: true,
            }),
        ];
        Ok(Response::new(tokio_stream::iter(steps)))
    }

    async fn set_min_decryption_version(
        &self,
        request: Request<pb::SetMinDecryptionVersionRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("set_min_decryption_version", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn set_key_version_state(
        &self,
        request: Request<pb::SetKeyVersionStateRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("set_key_version_state", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn schedule_tenant_destruction(
        &self,
        request: Request<pb::ScheduleTenantDestructionRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("schedule_tenant_destruction", &request)?;
        Err(reasoned(
            Code::InvalidArgument,
            "days must be 7..30",
            "DESTRUCTION_WINDOW",
        ))
    }

    async fn cancel_tenant_destruction(
        &self,
        request: Request<pb::CancelTenantDestructionRequest>,
    ) -> Res<pb::TenantKeyInfo> {
        self.record("cancel_tenant_destruction", &request)?;
        Err(Status::unimplemented(""))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Res<pb::ListAuditEventsResponse> {
        self.record("list_audit_events", &request)?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: vec![],
        }))
    }
}

/// Serves a fake on 127.0.0.1:0; returns it and the endpoint.
pub(crate) async fn serve(fail_first: u32) -> (Arc<Fake>, String) {
    serve_with(fail_first, None).await
}

/// Serves a fake on 127.0.0.1:0, over TLS when `tls` is given; returns it and the
/// endpoint (`http://` or `https://` and the address).
pub(crate) async fn serve_with(
    fail_first: u32,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.fail_first.store(fail_first, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{}", listener.local_addr().unwrap());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).unwrap();
    }
    let router = builder
        .add_service(KeyServiceServer::new(Svc(Arc::clone(&fake))))
        .add_service(KeyAdminServer::new(Svc(Arc::clone(&fake))));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    (fake, endpoint)
}
