#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! The client against a tiny in-process `KeyService`/`KeyAdmin` on 127.0.0.1:0: the bearer
//! header is sent, idempotent calls are retried on UNAVAILABLE and writes are not, reasons
//! and deadlines travel, plaintext lands in zeroizing results, admin tokens are fetched
//! per call and rewrap progress streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kms_client::proto::key_admin_server::{KeyAdmin, KeyAdminServer};
use kms_client::proto::key_service_server::{KeyService, KeyServiceServer};
use kms_client::proto::{self as pb};
use kms_client::{
    AdminClient, ClientConfig, ClientError, Context, KmsClient, PutSecretOptions, UnwrapItem,
};
use secrecy::SecretString;
use tonic::codegen::tokio_stream;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

const CREDENTIAL: &str = "hkms_test_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

#[derive(Default)]
struct Fake {
    /// Calls per method name.
    calls: Mutex<HashMap<&'static str, u32>>,
    /// Authorization headers seen.
    authorizations: Mutex<Vec<String>>,
    /// grpc-timeout headers seen.
    timeouts: Mutex<Vec<String>>,
    /// This many calls of each method fail with UNAVAILABLE first.
    fail_first: AtomicU32,
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

    fn calls(&self, method: &str) -> u32 {
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
fn fake_seal(tenant: &str, plaintext: &[u8]) -> Vec<u8> {
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
async fn serve(fail_first: u32) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.fail_first.store(fail_first, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let router = tonic::transport::Server::builder()
        .add_service(KeyServiceServer::new(Svc(Arc::clone(&fake))))
        .add_service(KeyAdminServer::new(Svc(Arc::clone(&fake))));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    (fake, endpoint)
}

fn config(endpoint: &str) -> ClientConfig {
    let mut config = ClientConfig::new(endpoint);
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config
}

async fn client(endpoint: &str) -> KmsClient {
    KmsClient::connect(config(endpoint), SecretString::from(CREDENTIAL))
        .await
        .unwrap()
}

fn shopify() -> Context {
    Context::from([("vendor", "shopify")])
}

#[tokio::test]
async fn bearer_header_and_deadline_are_sent_on_every_call() {
    let (fake, endpoint) = serve(0).await;
    let kms = client(&endpoint).await;
    let wrapped = kms.wrap("t1", &shopify(), b"shpat_abc").await.unwrap();
    let opened = kms
        .unwrap("t1", &shopify(), &wrapped.ciphertext)
        .await
        .unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"shpat_abc");
    assert_eq!(opened.key_version, 1);
    kms.get_secret("t1", "shopify", "token").await.unwrap();
    let authorizations = fake.authorizations.lock().unwrap().clone();
    assert_eq!(authorizations, vec![format!("Bearer {CREDENTIAL}"); 3]);
    let timeouts = fake.timeouts.lock().unwrap().clone();
    assert_eq!(timeouts.len(), 3, "grpc-timeout on every unary call");
}

#[tokio::test]
async fn unwrap_is_retried_on_unavailable() {
    let (fake, endpoint) = serve(2).await;
    let kms = client(&endpoint).await;
    let ct = [b"t1\0".as_slice(), b"cba"].concat();
    let opened = kms.unwrap("t1", &shopify(), &ct).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"abc");
    assert_eq!(fake.calls("unwrap"), 3);
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let (fake, endpoint) = serve(100).await;
    let kms = client(&endpoint).await;
    let error = kms.get_secret("t1", "shopify", "token").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(fake.calls("get_secret"), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn writes_are_not_retried() {
    let (fake, endpoint) = serve(1).await;
    let kms = client(&endpoint).await;
    let error = kms
        .put_secret("t1", "shopify", "token", b"v", &PutSecretOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(fake.calls("put_secret"), 1);
    let error = kms
        .delete_secret("t1", "shopify", "token")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::Unavailable));
    assert_eq!(fake.calls("delete_secret"), 1);
    // The next attempts succeed (fail_first is per method).
    assert!(kms.delete_secret("t1", "shopify", "token").await.unwrap());
}

#[tokio::test]
async fn reasons_travel_and_other_errors_are_not_retried() {
    let (fake, endpoint) = serve(0).await;
    let kms = client(&endpoint).await;
    let ct = [b"t2\0".as_slice(), b"x"].concat();
    let error = kms.unwrap("t1", &shopify(), &ct).await.unwrap_err();
    assert!(
        matches!(error, ClientError::PermissionDenied { .. }),
        "{error:?}"
    );
    assert_eq!(error.reason(), Some("CROSS_TENANT"));
    assert_eq!(fake.calls("unwrap"), 1);
    let error = kms.unwrap("t1", &Context::new(), &ct).await.unwrap_err();
    assert_eq!(error.reason(), Some("CONTEXT_MISMATCH"));
    let options = PutSecretOptions {
        expected_revision: Some(7),
        ..PutSecretOptions::default()
    };
    let error = kms
        .put_secret("t1", "shopify", "token", b"v", &options)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::FailedPrecondition));
    assert_eq!(error.reason(), Some("REVISION_MISMATCH"));
    assert!(!format!("{error:?}").contains(CREDENTIAL));
}

#[tokio::test]
async fn slow_calls_hit_the_deadline() {
    let (_fake, endpoint) = serve(0).await;
    let mut config = config(&endpoint);
    config.request_timeout = Duration::from_millis(200);
    let kms = KmsClient::connect(config, SecretString::from(CREDENTIAL))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = kms.wrap("slow", &shopify(), b"x").await.unwrap_err();
    assert_eq!(error.code(), Some(Code::DeadlineExceeded), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn batch_unwrap_and_data_keys() {
    let (_fake, endpoint) = serve(0).await;
    let kms = client(&endpoint).await;
    let context = shopify();
    let good = [b"t1\0".as_slice(), b"cba"].concat();
    let bad = [b"t9\0".as_slice(), b"cba"].concat();
    let items = [
        UnwrapItem {
            tenant: "t1",
            context: &context,
            ciphertext: &good,
        },
        UnwrapItem {
            tenant: "t1",
            context: &context,
            ciphertext: &bad,
        },
    ];
    let results = kms.batch_unwrap(&items).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().plaintext.as_slice(), b"abc");
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.code(), Some(Code::PermissionDenied));
    assert_eq!(error.reason(), Some("CROSS_TENANT"));

    let key = kms.generate_data_key("t1", &context, 0).await.unwrap();
    assert_eq!(key.plaintext_key.as_slice(), [0x42; 32]);
    assert_eq!(key.key_version, 3);
    let opened = kms.unwrap("t1", &context, &key.ciphertext).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), key.plaintext_key.as_slice());

    let secret = kms.get_secret("t1", "shopify", "token").await.unwrap();
    assert_eq!(secret.value.as_slice(), b"shpat_value");
    assert_eq!(secret.metadata.revision, 4);
    assert_eq!(
        secret.metadata.labels.get("env").map(String::as_str),
        Some("prod")
    );
    let page = kms.list_secrets("t1", None, 0, None).await.unwrap();
    assert_eq!(page.secrets.len(), 1);
    assert_eq!(page.next_page_token, None);
}

#[tokio::test]
async fn unreachable_server() {
    // A port that was bound and released: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = KmsClient::connect(config(&endpoint), SecretString::from(CREDENTIAL))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    let kms = KmsClient::connect_lazy(config(&endpoint), SecretString::from(CREDENTIAL)).unwrap();
    let error = kms.unwrap("t1", &shopify(), b"x").await.unwrap_err();
    assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");
}

#[tokio::test]
async fn admin_tokens_per_call_and_rewrap_progress() {
    let (fake, endpoint) = serve(0).await;
    let minted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&minted);
    let tokens = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Ok(SecretString::from(format!("jwt.{n}")))
    };
    let admin = AdminClient::connect(config(&endpoint), tokens)
        .await
        .unwrap();
    let info = admin.rotate_tenant_key("t1").await.unwrap();
    assert_eq!(info.primary_version, 2);
    let mut progress = admin.rewrap_tenant_secrets("t1", 0).await.unwrap();
    let mut steps = Vec::new();
    while let Some(step) = progress.next().await {
        steps.push(step.unwrap());
    }
    assert_eq!(steps.len(), 2);
    assert!(steps[1].done && steps[1].remaining == 0);
    let page = admin.list_tenants(0, None).await.unwrap();
    assert_eq!(page.next_page_token.as_deref(), Some("next"));
    let error = admin
        .schedule_tenant_destruction("t1", 3)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), Some("DESTRUCTION_WINDOW"));
    assert_eq!(
        fake.authorizations.lock().unwrap().clone(),
        [
            "Bearer jwt.0",
            "Bearer jwt.1",
            "Bearer jwt.2",
            "Bearer jwt.3"
        ]
    );
    // The streaming call carries no grpc-timeout; the three unary calls do.
    assert_eq!(fake.timeouts.lock().unwrap().len(), 3);
}
