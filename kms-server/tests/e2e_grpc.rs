//! End to end: the real server on a 127.0.0.1:0 socket, real gRPC clients, SQLite and
//! PostgreSQL (as the runtime role, under RLS). Statuses and `ErrorInfo` reasons are
//! those of SPEC §3–5 and docs/API.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kms_proto::v1 as pb;
use kms_proto::v1::key_admin_client::KeyAdminClient;
use kms_proto::v1::key_service_client::KeyServiceClient;
use kms_server::auth::dev_idp;
use kms_server::auth::{
    AdminAuthConfig, Permission, ServiceCredential, ServiceId, ServicePolicyConfig,
};
use kms_server::config::Config;
use kms_server::root::{RootKey, RootKeyId, write_new_key_file};
use secrecy::ExposeSecret;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const CANARY_PLAINTEXT: &[u8] = b"CANARY-PLAINTEXT-7f3a9c";

// ---- log capture (one subscriber per test binary) -----------------------------------

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,tower=info,sqlx=warn")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init()
            .ok();
        buf
    })
}

// ---- the server under test --------------------------------------------------------------

enum Db {
    Sqlite,
    Postgres(common::PgTestDb),
}

struct Kms {
    addr: std::net::SocketAddr,
    dir: PathBuf,
    full: String,
    shopify: String,
    wrap_only: String,
    idp: dev_idp::DevIdp,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    db: Option<Db>,
}

fn policy(id: &str, perms: &[Permission], vendor: Option<&str>) -> (String, ServicePolicyConfig) {
    let (cred, hash) = ServiceCredential::generate(&ServiceId::new(id).unwrap());
    let mut context = std::collections::BTreeMap::new();
    if let Some(v) = vendor {
        context.insert("vendor".to_owned(), vec![v.to_owned()]);
    }
    (
        cred.expose_secret().to_owned(),
        ServicePolicyConfig {
            id: id.to_owned(),
            credential_sha256: vec![hash.to_hex()],
            permissions: perms.to_vec(),
            tenants: None,
            context,
        },
    )
}

impl Kms {
    async fn start(postgres: bool) -> Self {
        logs();
        let dir = std::env::temp_dir().join(format!("kms-e2e-{}", common::random_hex(8)));
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        write_new_key_file(
            &dir.join("keys"),
            &RootKey::generate(RootKeyId::new("e2e").unwrap()),
        )
        .unwrap();
        let idp = dev_idp::ensure(&dir.join("idp")).unwrap();
        let (full, full_p) = policy("full", &Permission::ALL, None);
        let (shopify, shopify_p) = policy("shopify", &Permission::ALL, Some("shopify"));
        let (wrap_only, wrap_p) = policy("wraponly", &[Permission::Wrap], None);
        let (db, url) = if postgres {
            let db = common::PgTestDb::new().await;
            let url = db.url(common::RUNTIME_ROLE);
            (Db::Postgres(db), url)
        } else {
            (
                Db::Sqlite,
                format!("sqlite://{}", dir.join("kms.db").display()),
            )
        };
        let mut config = Config::parse("").unwrap();
        config.root_keys.dir = Some(dir.join("keys"));
        config.database.url = Some(url);
        config.auto_provision = true;
        config.admin = Some(AdminAuthConfig::new(
            idp.jwks_file.clone(),
            "hygo-kms-dev",
            "hygo-kms",
            "roles",
            "kms-admin",
        ));
        config.services = vec![full_p, shopify_p, wrap_p];
        config.validate().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = kms_server::server::build(&config).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            kms_server::server::serve(app, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            dir,
            full,
            shopify,
            wrap_only,
            idp,
            shutdown: Some(tx),
            handle: Some(handle),
            db: Some(db),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn data(&self, token: &str) -> KeyServiceClient<InterceptedService<Channel, Auth>> {
        KeyServiceClient::with_interceptor(self.channel().await, Auth(Some(token.to_owned())))
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20)
    }

    async fn anonymous(&self) -> KeyServiceClient<InterceptedService<Channel, Auth>> {
        KeyServiceClient::with_interceptor(self.channel().await, Auth(None))
    }

    async fn admin_with(&self, token: &str) -> KeyAdminClient<InterceptedService<Channel, Auth>> {
        KeyAdminClient::with_interceptor(self.channel().await, Auth(Some(token.to_owned())))
    }

    fn admin_token(&self) -> String {
        self.sign(&claims())
    }

    async fn admin(&self) -> KeyAdminClient<InterceptedService<Channel, Auth>> {
        self.admin_with(&self.admin_token()).await
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let der = std::fs::read(&self.idp.private_key_file).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.idp.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h).await.ok();
        }
        if let Some(Db::Postgres(db)) = self.db.take() {
            db.drop().await;
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[derive(Clone)]
struct Auth(Option<String>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            let v: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "hygo-kms-dev", "aud": "hygo-kms", "sub": "alice", "roles": "kms-admin",
        "iat": now(), "auth_time": now(), "exp": now() + 300, "jti": common::random_hex(8),
    })
}

fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shopify() -> HashMap<String, String> {
    ctx(&[("vendor", "shopify")])
}

/// Asserts the status code and the ErrorInfo reason.
fn expect<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), code, "{s:?}");
    let info = s.get_error_details().error_info().cloned();
    assert_eq!(info.map(|i| i.reason), Some(reason.to_owned()), "{s:?}");
    s
}

fn wrap_req(tenant: &str, c: HashMap<String, String>, pt: &[u8]) -> pb::WrapRequest {
    pb::WrapRequest {
        tenant_id: tenant.into(),
        context: c,
        plaintext: pt.to_vec(),
    }
}

fn unwrap_req(tenant: &str, c: HashMap<String, String>, ct: &[u8]) -> pb::UnwrapRequest {
    pb::UnwrapRequest {
        tenant_id: tenant.into(),
        context: c,
        ciphertext: ct.to_vec(),
    }
}

// ---- round trips ----------------------------------------------------------------------

async fn round_trip_every_method(kms: &Kms) {
    let mut c = kms.data(&kms.full).await;
    let w = c
        .wrap(wrap_req("acme", shopify(), b"shpat_token"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.key_version, 1);
    assert_eq!(w.ciphertext.len(), b"shpat_token".len() + 74);
    let u = c
        .unwrap(unwrap_req("acme", shopify(), &w.ciphertext))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.plaintext, b"shpat_token");

    // Rewrap under the same primary is byte-identical.
    let r = c
        .rewrap(pb::RewrapRequest {
            tenant_id: "acme".into(),
            context: shopify(),
            ciphertext: w.ciphertext.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.ciphertext, w.ciphertext);

    // Data keys.
    let dk = c
        .generate_data_key(pb::GenerateDataKeyRequest {
            tenant_id: "acme".into(),
            context: shopify(),
            length: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dk.plaintext_key.len(), 32);
    let opened = c
        .unwrap(unwrap_req("acme", shopify(), &dk.ciphertext))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, dk.plaintext_key);
    let dk = c
        .generate_data_key_without_plaintext(pb::GenerateDataKeyRequest {
            tenant_id: "acme".into(),
            context: shopify(),
            length: 64,
        })
        .await
        .unwrap()
        .into_inner();
    let opened = c
        .unwrap(unwrap_req("acme", shopify(), &dk.ciphertext))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext.len(), 64);
    for bad in [15, 65] {
        expect(
            c.generate_data_key(pb::GenerateDataKeyRequest {
                tenant_id: "acme".into(),
                context: shopify(),
                length: bad,
            })
            .await,
            Code::InvalidArgument,
            "INVALID_DATA_KEY_LENGTH",
        );
    }

    // Batches.
    let bw = c
        .batch_wrap(pb::BatchWrapRequest {
            items: vec![
                wrap_req("acme", shopify(), b"one"),
                wrap_req("acme", shopify(), b"two"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let cts: Vec<Vec<u8>> = bw
        .results
        .iter()
        .map(|r| match &r.result {
            Some(pb::batch_wrap_result::Result::Ok(ok)) => ok.ciphertext.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let bu = c
        .batch_unwrap(pb::BatchUnwrapRequest {
            items: cts
                .iter()
                .map(|ct| unwrap_req("acme", shopify(), ct))
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    let pts: Vec<Vec<u8>> = bu
        .results
        .iter()
        .map(|r| match &r.result {
            Some(pb::batch_unwrap_result::Result::Ok(ok)) => ok.plaintext.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pts, vec![b"one".to_vec(), b"two".to_vec()]);

    // The secret store.
    let put = c
        .put_secret(pb::PutSecretRequest {
            tenant_id: "acme".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
            value: b"shpat_stored".to_vec(),
            labels: ctx(&[("shop", "acme.myshopify.com")]),
            expected_revision: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.revision, 1);
    expect(
        c.put_secret(pb::PutSecretRequest {
            tenant_id: "acme".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
            value: b"x".to_vec(),
            labels: HashMap::new(),
            expected_revision: Some(7),
        })
        .await,
        Code::FailedPrecondition,
        "REVISION_MISMATCH",
    );
    let got = c
        .get_secret(pb::GetSecretRequest {
            tenant_id: "acme".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.value, b"shpat_stored");
    assert_eq!(
        got.metadata.as_ref().unwrap().labels["shop"],
        "acme.myshopify.com"
    );
    for i in 0..3 {
        c.put_secret(pb::PutSecretRequest {
            tenant_id: "acme".into(),
            vendor: "amazon".into(),
            name: format!("token-{i}"),
            value: b"amzn".to_vec(),
            labels: HashMap::new(),
            expected_revision: None,
        })
        .await
        .unwrap();
    }
    let page = c
        .list_secrets(pb::ListSecretsRequest {
            tenant_id: "acme".into(),
            vendor: "amazon".into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.secrets.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = c
        .list_secrets(pb::ListSecretsRequest {
            tenant_id: "acme".into(),
            vendor: "amazon".into(),
            page_size: 2,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.secrets.len(), 1);
    assert!(rest.secrets.iter().all(|s| s.vendor == "amazon"));
    let del = c
        .delete_secret(pb::DeleteSecretRequest {
            tenant_id: "acme".into(),
            vendor: "amazon".into(),
            name: "token-0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.deleted);

    // Admin: rotate, rewrap the store, retire, audit.
    let mut a = kms.admin().await;
    let info = a
        .get_tenant_key(pb::GetTenantKeyRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.primary_version, 1);
    let info = a
        .rotate_tenant_key(pb::RotateTenantKeyRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.primary_version, 2);
    // An old envelope still opens; rewrap moves it to v2.
    let r = c
        .rewrap(pb::RewrapRequest {
            tenant_id: "acme".into(),
            context: shopify(),
            ciphertext: w.ciphertext.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.key_version, 2);
    assert_ne!(r.ciphertext, w.ciphertext);
    expect(
        a.set_min_decryption_version(pb::SetMinDecryptionVersionRequest {
            tenant_id: "acme".into(),
            version: 2,
        })
        .await,
        Code::FailedPrecondition,
        "SECRETS_UNDER_OLDER_VERSIONS",
    );
    let mut stream = a
        .rewrap_tenant_secrets(pb::RewrapTenantSecretsRequest {
            tenant_id: "acme".into(),
            batch_size: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(p) = stream.message().await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert!(
        last.done && last.remaining == 0 && last.rewrapped == 3,
        "{last:?}"
    );
    let info = a
        .set_min_decryption_version(pb::SetMinDecryptionVersionRequest {
            tenant_id: "acme".into(),
            version: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.min_decryption_version, 2);
    expect(
        c.unwrap(unwrap_req("acme", shopify(), &w.ciphertext)).await,
        Code::FailedPrecondition,
        "KEY_VERSION_RETIRED",
    );
    let got = c
        .get_secret(pb::GetSecretRequest {
            tenant_id: "acme".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.value.as_slice(), got.metadata.unwrap().key_version),
        (&b"shpat_stored"[..], 2)
    );

    // Version states.
    let info = a
        .set_key_version_state(pb::SetKeyVersionStateRequest {
            tenant_id: "acme".into(),
            version: 1,
            state: pb::KeyVersionState::Disabled as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.versions[0].state, pb::KeyVersionState::Disabled as i32);
    expect(
        c.unwrap(unwrap_req("acme", shopify(), &w.ciphertext)).await,
        Code::FailedPrecondition,
        "KEY_VERSION_DISABLED",
    );
    a.set_key_version_state(pb::SetKeyVersionStateRequest {
        tenant_id: "acme".into(),
        version: 1,
        state: pb::KeyVersionState::Destroyed as i32,
    })
    .await
    .unwrap();
    expect(
        c.unwrap(unwrap_req("acme", shopify(), &w.ciphertext)).await,
        Code::FailedPrecondition,
        "KEY_VERSION_DESTROYED",
    );

    // Create, list.
    a.create_tenant_key(pb::CreateTenantKeyRequest {
        tenant_id: "globex".into(),
    })
    .await
    .unwrap();
    expect(
        a.create_tenant_key(pb::CreateTenantKeyRequest {
            tenant_id: "globex".into(),
        })
        .await,
        Code::AlreadyExists,
        "ALREADY_EXISTS",
    );
    let tenants = a
        .list_tenants(pb::ListTenantsRequest {
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = tenants
        .tenants
        .iter()
        .map(|t| t.tenant_id.as_str())
        .collect();
    assert!(ids.contains(&"acme") && ids.contains(&"globex"), "{ids:?}");

    // Destruction: 7..30 days; pending blocks crypto, not listing; cancel restores.
    expect(
        a.schedule_tenant_destruction(pb::ScheduleTenantDestructionRequest {
            tenant_id: "acme".into(),
            days: 6,
        })
        .await,
        Code::InvalidArgument,
        "INVALID_DESTRUCTION_WINDOW",
    );
    expect(
        a.schedule_tenant_destruction(pb::ScheduleTenantDestructionRequest {
            tenant_id: "acme".into(),
            days: 31,
        })
        .await,
        Code::InvalidArgument,
        "INVALID_DESTRUCTION_WINDOW",
    );
    let info = a
        .schedule_tenant_destruction(pb::ScheduleTenantDestructionRequest {
            tenant_id: "acme".into(),
            days: 7,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.destroy_after_ms > 0);
    expect(
        c.wrap(wrap_req("acme", shopify(), b"x")).await,
        Code::FailedPrecondition,
        "TENANT_PENDING_DESTRUCTION",
    );
    expect(
        c.unwrap(unwrap_req("acme", shopify(), &r.ciphertext)).await,
        Code::FailedPrecondition,
        "TENANT_PENDING_DESTRUCTION",
    );
    expect(
        c.get_secret(pb::GetSecretRequest {
            tenant_id: "acme".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
        })
        .await,
        Code::FailedPrecondition,
        "TENANT_PENDING_DESTRUCTION",
    );
    c.list_secrets(pb::ListSecretsRequest {
        tenant_id: "acme".into(),
        vendor: String::new(),
        page_size: 0,
        page_token: String::new(),
    })
    .await
    .unwrap();
    a.cancel_tenant_destruction(pb::CancelTenantDestructionRequest {
        tenant_id: "acme".into(),
    })
    .await
    .unwrap();
    let u = c
        .unwrap(unwrap_req("acme", shopify(), &r.ciphertext))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.plaintext, b"shpat_token");

    // The audit chain recorded the admin actions with the admin's sub.
    let events = a
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            after_seq: 0,
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "rotate_tenant_key",
        "rewrap_tenant_secrets",
        "set_min_decryption_version",
        "schedule_tenant_destruction",
        "cancel_tenant_destruction",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
    assert!(
        events
            .iter()
            .all(|e| e.actor == "admin:alice" || e.actor.starts_with("service:"))
    );
    // Each admin action: "authorized" before it runs, its outcome after.
    for outcome in ["authorized", "succeeded"] {
        assert!(
            events
                .iter()
                .any(|e| e.action == "rotate_tenant_key" && e.outcome == outcome),
            "{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_every_method_sqlite() {
    let kms = Kms::start(false).await;
    round_trip_every_method(&kms).await;
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_every_method_postgres() {
    let kms = Kms::start(true).await;
    round_trip_every_method(&kms).await;
    kms.stop().await;
}

// ---- cross-tenant and tampering -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_tampering_and_key_state_statuses() {
    let kms = Kms::start(true).await;
    let mut c = kms.data(&kms.full).await;
    let a_ct = c
        .wrap(wrap_req("tenant-a", shopify(), b"a-token"))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    c.wrap(wrap_req("tenant-b", shopify(), b"b-token"))
        .await
        .unwrap();

    expect(
        c.unwrap(unwrap_req("tenant-b", shopify(), &a_ct)).await,
        Code::PermissionDenied,
        "CROSS_TENANT",
    );
    // Recorded in B's audit chain.
    let mut a = kms.admin().await;
    let events = a
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "tenant-b".into(),
            after_seq: 0,
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "cross_tenant" && e.actor == "service:full"),
        "{events:?}"
    );
    // Unauthenticated calls land in the global chain (RLS-protected like the others).
    let _ = kms
        .anonymous()
        .await
        .wrap(wrap_req("tenant-a", shopify(), b"x"))
        .await;
    let global = a
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: String::new(),
            after_seq: 0,
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        global
            .iter()
            .any(|e| e.chain == "#global" && e.outcome == "unauthenticated"),
        "{global:?}"
    );

    // A stored secret of A is invisible to B.
    c.put_secret(pb::PutSecretRequest {
        tenant_id: "tenant-a".into(),
        vendor: "shopify".into(),
        name: "admin-token".into(),
        value: b"a-secret".to_vec(),
        labels: HashMap::new(),
        expected_revision: None,
    })
    .await
    .unwrap();
    expect(
        c.get_secret(pb::GetSecretRequest {
            tenant_id: "tenant-b".into(),
            vendor: "shopify".into(),
            name: "admin-token".into(),
        })
        .await,
        Code::NotFound,
        "SECRET_NOT_FOUND",
    );
    let listed = c
        .list_secrets(pb::ListSecretsRequest {
            tenant_id: "tenant-b".into(),
            vendor: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.secrets.is_empty());

    // Tampering: one opaque error.
    let mut flipped = a_ct.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let s1 = expect(
        c.unwrap(unwrap_req("tenant-a", shopify(), &flipped)).await,
        Code::InvalidArgument,
        "CIPHERTEXT_AUTHENTICATION",
    );
    let s2 = expect(
        c.unwrap(unwrap_req("tenant-a", ctx(&[("vendor", "amazon")]), &a_ct))
            .await,
        Code::InvalidArgument,
        "CIPHERTEXT_AUTHENTICATION",
    );
    let mut commit = a_ct.clone();
    commit[30] ^= 1;
    let s3 = expect(
        c.unwrap(unwrap_req("tenant-a", shopify(), &commit)).await,
        Code::InvalidArgument,
        "CIPHERTEXT_AUTHENTICATION",
    );
    assert_eq!(s1.message(), s2.message());
    assert_eq!(s2.message(), s3.message());
    assert_eq!(s1.message(), "ciphertext failed authentication");

    // Unknown version, malformed, unknown tenant.
    let mut v9 = a_ct.clone();
    v9[5] = 9;
    let s = expect(
        c.unwrap(unwrap_req("tenant-a", shopify(), &v9)).await,
        Code::FailedPrecondition,
        "KEY_VERSION_UNKNOWN",
    );
    assert!(s.message().contains('9'), "{}", s.message());
    expect(
        c.unwrap(unwrap_req("tenant-a", shopify(), &a_ct[..73]))
            .await,
        Code::InvalidArgument,
        "MALFORMED_CIPHERTEXT",
    );
    let mut alg = a_ct.clone();
    alg[1] = 2;
    expect(
        c.unwrap(unwrap_req("tenant-a", shopify(), &alg)).await,
        Code::InvalidArgument,
        "MALFORMED_CIPHERTEXT",
    );
    let mut k = kms.data(&kms.full).await;
    let unknown = {
        // An envelope whose tfp names a tenant that has no keys.
        let mut env = a_ct.clone();
        env[6..14].copy_from_slice(&kms_server::envelope::format::tenant_fingerprint(b"nobody"));
        env
    };
    expect(
        k.unwrap(unwrap_req("nobody", shopify(), &unknown)).await,
        Code::NotFound,
        "TENANT_NOT_FOUND",
    );
    kms.stop().await;
}

// ---- limits -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_before_any_work() {
    let kms = Kms::start(false).await;
    let mut c = kms.data(&kms.full).await;
    let fresh = "limits-tenant";
    let big = vec![7u8; 64 * 1024 + 1];
    expect(
        c.wrap(wrap_req(fresh, shopify(), &big)).await,
        Code::InvalidArgument,
        "LIMIT_PLAINTEXT",
    );
    expect(
        c.wrap(wrap_req(fresh, shopify(), b"")).await,
        Code::InvalidArgument,
        "LIMIT_PLAINTEXT",
    );
    let many: HashMap<String, String> =
        (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    expect(
        c.wrap(wrap_req(fresh, many, b"x")).await,
        Code::InvalidArgument,
        "LIMIT_CONTEXT_PAIRS",
    );
    expect(
        c.wrap(wrap_req(fresh, ctx(&[(&"k".repeat(65), "v")]), b"x"))
            .await,
        Code::InvalidArgument,
        "INVALID_CONTEXT",
    );
    expect(
        c.wrap(wrap_req(fresh, ctx(&[("k", &"v".repeat(513))]), b"x"))
            .await,
        Code::InvalidArgument,
        "LIMIT_CONTEXT_VALUE",
    );
    expect(
        c.wrap(wrap_req(fresh, ctx(&[("kms.vendor", "x")]), b"x"))
            .await,
        Code::InvalidArgument,
        "RESERVED_CONTEXT_KEY",
    );
    expect(
        c.wrap(wrap_req(&"t".repeat(129), shopify(), b"x")).await,
        Code::InvalidArgument,
        "INVALID_TENANT_ID",
    );
    expect(
        c.wrap(wrap_req("bad tenant", shopify(), b"x")).await,
        Code::InvalidArgument,
        "INVALID_TENANT_ID",
    );
    expect(
        c.unwrap(unwrap_req(fresh, shopify(), &vec![1u8; 64 * 1024 + 75]))
            .await,
        Code::InvalidArgument,
        "LIMIT_CIPHERTEXT",
    );
    let items: Vec<_> = (0..1001)
        .map(|_| wrap_req(fresh, shopify(), b"x"))
        .collect();
    expect(
        c.batch_wrap(pb::BatchWrapRequest { items }).await,
        Code::ResourceExhausted,
        "LIMIT_BATCH",
    );
    // At the limits: accepted.
    let at: HashMap<String, String> = (0..16)
        .map(|i| (format!("k{i}"), "v".repeat(512)))
        .collect();
    c.wrap(wrap_req("limits-ok", at, &vec![1u8; 64 * 1024]))
        .await
        .unwrap();

    // None of the refused calls provisioned the fresh tenant (no database work).
    let mut a = kms.admin().await;
    expect(
        a.get_tenant_key(pb::GetTenantKeyRequest {
            tenant_id: fresh.into(),
        })
        .await,
        Code::NotFound,
        "TENANT_NOT_FOUND",
    );

    // A 9 MiB message is refused by the transport before decoding (tonic: OUT_OF_RANGE).
    let huge = wrap_req(fresh, shopify(), &vec![0u8; 9 << 20]);
    let s = c.wrap(huge).await.expect_err("9 MiB refused");
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_item_fails_only_itself() {
    let kms = Kms::start(false).await;
    let mut c = kms.data(&kms.shopify).await;
    let r = c
        .batch_wrap(pb::BatchWrapRequest {
            items: vec![
                wrap_req("acme", shopify(), b"good-1"),
                wrap_req("acme", shopify(), b""),
                wrap_req("acme", ctx(&[("vendor", "amazon")]), b"out of scope"),
                wrap_req("acme", shopify(), b"good-2"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<_> = r
        .results
        .iter()
        .map(|r| match &r.result {
            Some(pb::batch_wrap_result::Result::Ok(_)) => "ok".to_owned(),
            Some(pb::batch_wrap_result::Result::Error(e)) => e.reason.clone(),
            None => "none".to_owned(),
        })
        .collect();
    assert_eq!(codes, ["ok", "LIMIT_PLAINTEXT", "PERMISSION_DENIED", "ok"]);
    kms.stop().await;
}

// ---- authentication and authorization ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_credentials_and_vendor_scope() {
    let kms = Kms::start(false).await;
    expect(
        kms.anonymous()
            .await
            .wrap(wrap_req("acme", shopify(), b"x"))
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    let forged = format!("{}x", &kms.full[..kms.full.len() - 1]);
    expect(
        kms.data(&forged)
            .await
            .wrap(wrap_req("acme", shopify(), b"x"))
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    expect(
        kms.data("not-a-credential")
            .await
            .wrap(wrap_req("acme", shopify(), b"x"))
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );

    let mut s = kms.data(&kms.shopify).await;
    let ct = s
        .wrap(wrap_req("acme", shopify(), b"tok"))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    expect(
        s.wrap(wrap_req("acme", ctx(&[("vendor", "amazon")]), b"x"))
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        s.wrap(wrap_req("acme", HashMap::new(), b"x")).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        s.unwrap(unwrap_req("acme", ctx(&[("vendor", "amazon")]), &ct))
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        s.rewrap(pb::RewrapRequest {
            tenant_id: "acme".into(),
            context: HashMap::new(),
            ciphertext: ct.clone(),
        })
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        s.generate_data_key(pb::GenerateDataKeyRequest {
            tenant_id: "acme".into(),
            context: ctx(&[("vendor", "amazon")]),
            length: 0,
        })
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    let r = s
        .batch_unwrap(pb::BatchUnwrapRequest {
            items: vec![
                unwrap_req("acme", shopify(), &ct),
                unwrap_req("acme", HashMap::new(), &ct),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        r.results[0].result,
        Some(pb::batch_unwrap_result::Result::Ok(_))
    ));
    assert!(
        matches!(&r.results[1].result, Some(pb::batch_unwrap_result::Result::Error(e)) if e.code == Code::PermissionDenied as i32)
    );
    expect(
        s.put_secret(pb::PutSecretRequest {
            tenant_id: "acme".into(),
            vendor: "amazon".into(),
            name: "n".into(),
            value: b"v".to_vec(),
            labels: HashMap::new(),
            expected_revision: None,
        })
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        s.list_secrets(pb::ListSecretsRequest {
            tenant_id: "acme".into(),
            vendor: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    s.put_secret(pb::PutSecretRequest {
        tenant_id: "acme".into(),
        vendor: "shopify".into(),
        name: "n".into(),
        value: b"v".to_vec(),
        labels: HashMap::new(),
        expected_revision: None,
    })
    .await
    .unwrap();

    // A service without Unwrap.
    let mut w = kms.data(&kms.wrap_only).await;
    w.wrap(wrap_req("acme", shopify(), b"x")).await.unwrap();
    expect(
        w.unwrap(unwrap_req("acme", shopify(), &ct)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    expect(
        w.rewrap(pb::RewrapRequest {
            tenant_id: "acme".into(),
            context: shopify(),
            ciphertext: ct,
        })
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens() {
    let kms = Kms::start(false).await;
    let get = |t: String| {
        let kms = &kms;
        async move {
            kms.admin_with(&t)
                .await
                .get_tenant_key(pb::GetTenantKeyRequest {
                    tenant_id: "acme".into(),
                })
                .await
        }
    };
    // Valid: NOT_FOUND (the tenant has no keys), i.e. authorized.
    expect(
        get(kms.admin_token()).await,
        Code::NotFound,
        "TENANT_NOT_FOUND",
    );
    // A data-plane credential on KeyAdmin.
    expect(
        get(kms.full.clone()).await,
        Code::PermissionDenied,
        "SERVICE_CREDENTIAL_ON_ADMIN",
    );
    // Bad signature.
    let t = kms.admin_token();
    let (head, sig) = t.rsplit_once('.').unwrap();
    let bad = format!(
        "{head}.{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    expect(get(bad).await, Code::Unauthenticated, "UNAUTHENTICATED");
    // alg: none and HS256.
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "kid": kms.idp.kid})),
        b64(&claims())
    );
    expect(get(none).await, Code::Unauthenticated, "UNAUTHENTICATED");
    let jwks = std::fs::read(&kms.idp.jwks_file).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kms.idp.kid.clone());
    let hs = jsonwebtoken::encode(
        &h,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&jwks),
    )
    .unwrap();
    expect(get(hs).await, Code::Unauthenticated, "UNAUTHENTICATED");
    // Claims.
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        f(&mut c);
        kms.sign(&c)
    };
    expect(
        get(with(&|c| c["aud"] = "other".into())).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    expect(
        get(with(&|c| c["roles"] = "viewer".into())).await,
        Code::PermissionDenied,
        "ADMIN_NOT_AUTHORIZED",
    );
    expect(
        get(with(&|c| {
            c.as_object_mut().unwrap().remove("auth_time");
        }))
        .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    expect(
        get(with(&|c| c["auth_time"] = (now() - 3600).into())).await,
        Code::PermissionDenied,
        "ADMIN_NOT_AUTHORIZED",
    );
    expect(
        get(with(&|c| c["auth_time"] = (now() + 3600).into())).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    expect(
        get(with(&|c| c["exp"] = (now() - 3600).into())).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    expect(
        get(String::new()).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    kms.stop().await;
}

// ---- secrets never reach the logs -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_plaintext_and_credentials_never_reach_logs() {
    let kms = Kms::start(false).await;
    let mut c = kms.data(&kms.full).await;
    let ct = c
        .wrap(wrap_req("canary", shopify(), CANARY_PLAINTEXT))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    c.unwrap(unwrap_req("canary", shopify(), &ct))
        .await
        .unwrap();
    let _ = c
        .unwrap(unwrap_req("canary", ctx(&[("vendor", "x")]), &ct))
        .await;
    let _ = c.unwrap(unwrap_req("other", shopify(), &ct)).await;
    let _ = c
        .wrap(wrap_req("canary", ctx(&[("kms.x", "y")]), CANARY_PLAINTEXT))
        .await;
    c.put_secret(pb::PutSecretRequest {
        tenant_id: "canary".into(),
        vendor: "shopify".into(),
        name: "n".into(),
        value: CANARY_PLAINTEXT.to_vec(),
        labels: HashMap::new(),
        expected_revision: None,
    })
    .await
    .unwrap();
    c.get_secret(pb::GetSecretRequest {
        tenant_id: "canary".into(),
        vendor: "shopify".into(),
        name: "n".into(),
    })
    .await
    .unwrap();
    let _ = kms
        .data(&format!("{}X", kms.full))
        .await
        .wrap(wrap_req("canary", shopify(), CANARY_PLAINTEXT))
        .await;
    let token = kms.admin_token();
    let _ = kms
        .admin_with(&token)
        .await
        .get_tenant_key(pb::GetTenantKeyRequest {
            tenant_id: "canary".into(),
        })
        .await;
    let _ = kms
        .admin_with(&kms.full)
        .await
        .get_tenant_key(pb::GetTenantKeyRequest {
            tenant_id: "canary".into(),
        })
        .await;
    // Error messages never echo the plaintext either.
    let s = c
        .wrap(wrap_req("canary", ctx(&[("kms.x", "y")]), CANARY_PLAINTEXT))
        .await
        .unwrap_err();
    assert!(!s.message().contains("CANARY"), "{s:?}");
    // Nor does the database (SQLite file and its WAL).
    assert!(kms.dir.join("kms.db").exists());
    for file in ["kms.db", "kms.db-wal"] {
        if let Ok(bytes) = std::fs::read(kms.dir.join(file)) {
            assert!(
                !bytes
                    .windows(CANARY_PLAINTEXT.len())
                    .any(|w| w == CANARY_PLAINTEXT),
                "{file} holds the plaintext"
            );
            let secret_part = kms.full.rsplit('_').next().unwrap().as_bytes();
            assert!(
                !bytes.windows(secret_part.len()).any(|w| w == secret_part),
                "{file} holds the credential"
            );
        }
    }
    let logs = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(logs.contains("Wrap"), "logs were captured");
    let secret_part = kms.full.rsplit('_').next().unwrap();
    let hex_canary = base16ct::lower::encode_string(CANARY_PLAINTEXT);
    for needle in [
        std::str::from_utf8(CANARY_PLAINTEXT).unwrap(),
        hex_canary.as_str(),
        kms.full.as_str(),
        secret_part,
        token.as_str(),
        token.rsplit('.').next().unwrap(),
    ] {
        assert!(!logs.contains(needle), "logs contain a secret: {needle}");
    }
    kms.stop().await;
}

// ---- kms-server --dev -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_starts_from_an_empty_directory() {
    let dir = std::env::temp_dir().join(format!("kms-dev-{}", common::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kms-server"))
        .args(["--dev", "--dev-listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let endpoint_file = dir.join(".kms-dev/endpoint");
    for _ in 0..100 {
        if endpoint_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let endpoint = std::fs::read_to_string(&endpoint_file)
        .unwrap()
        .trim()
        .to_owned();
    let cred_file = dir.join(".kms-dev/service-credential");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cred_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cred = std::fs::read_to_string(&cred_file)
        .unwrap()
        .trim()
        .to_owned();
    let channel = Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = KeyServiceClient::with_interceptor(channel, Auth(Some(cred)));
    let ct = c
        .wrap(wrap_req("acme", shopify(), b"dev-token"))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let pt = c
        .unwrap(unwrap_req("acme", shopify(), &ct))
        .await
        .unwrap()
        .into_inner()
        .plaintext;
    assert_eq!(pt, b"dev-token");
    // Hardened at start-up: no core dumps.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(
        core.split_whitespace().skip(4).take(2).all(|v| v == "0"),
        "{core}"
    );
    // SIGTERM: graceful shutdown.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("NOT FOR PRODUCTION"), "{stderr}");
    assert!(!stderr.contains("dev-token"));
    std::fs::remove_dir_all(&dir).ok();
}

// ---- through kms-client ------------------------------------------------------------------

async fn round_trip_through_kms_client(kms: &Kms) {
    use kms_client::{
        AdminClient, ClientConfig, Context, KmsClient, PutSecretOptions, UnwrapItem, WrapItem,
    };
    let config = ClientConfig::new(format!("http://{}", kms.addr));
    let c = KmsClient::connect(config.clone(), kms.full.clone().into())
        .await
        .unwrap();
    let shop = Context::new().with("vendor", "shopify");
    let w = c.wrap("client-co", &shop, b"via-client").await.unwrap();
    let u = c.unwrap("client-co", &shop, &w.ciphertext).await.unwrap();
    assert_eq!(&u.plaintext[..], b"via-client");
    let r = c.rewrap("client-co", &shop, &w.ciphertext).await.unwrap();
    assert_eq!(r.ciphertext, w.ciphertext);
    let batch = c
        .batch_wrap(&[
            WrapItem {
                tenant: "client-co",
                context: &shop,
                plaintext: b"a",
            },
            WrapItem {
                tenant: "client-co",
                context: &shop,
                plaintext: b"",
            },
        ])
        .await
        .unwrap();
    assert!(batch[0].is_ok());
    assert_eq!(
        batch[1].as_ref().unwrap_err().reason(),
        Some("LIMIT_PLAINTEXT")
    );
    let ct = batch[0].as_ref().unwrap().ciphertext.clone();
    let opened = c
        .batch_unwrap(&[UnwrapItem {
            tenant: "client-co",
            context: &shop,
            ciphertext: &ct,
        }])
        .await
        .unwrap();
    assert_eq!(&opened[0].as_ref().unwrap().plaintext[..], b"a");
    let dk = c.generate_data_key("client-co", &shop, 24).await.unwrap();
    assert_eq!(dk.plaintext_key.len(), 24);
    let dk2 = c
        .generate_data_key_without_plaintext("client-co", &shop, 0)
        .await
        .unwrap();
    assert_eq!(
        c.unwrap("client-co", &shop, &dk2.ciphertext)
            .await
            .unwrap()
            .plaintext
            .len(),
        32
    );
    let rev = c
        .put_secret(
            "client-co",
            "shopify",
            "token",
            b"stored-via-client",
            &PutSecretOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(rev.revision, 1);
    let got = c.get_secret("client-co", "shopify", "token").await.unwrap();
    assert_eq!(&got.value[..], b"stored-via-client");
    let page = c.list_secrets("client-co", None, 10, None).await.unwrap();
    assert_eq!(page.secrets.len(), 1);
    assert!(
        c.delete_secret("client-co", "shopify", "token")
            .await
            .unwrap()
    );
    let err = c
        .get_secret("client-co", "shopify", "token")
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("SECRET_NOT_FOUND"));
    let err = c
        .unwrap("other-co", &shop, &w.ciphertext)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("CROSS_TENANT"));

    let der = kms.idp.private_key_file.clone();
    let kid = kms.idp.kid.clone();
    let a = AdminClient::connect(config, move || {
        kms_client::dev::mint_admin_token(
            &der,
            &kms_client::dev::AdminTokenRequest {
                subject: "alice",
                ..kms_client::dev::AdminTokenRequest::dev(&kid)
            },
        )
        .map_err(|e| {
            kms_client::ClientError::from_parts(tonic::Code::Unauthenticated, e.to_string(), None)
        })
    })
    .await
    .unwrap();
    a.create_tenant_key("client-admin").await.unwrap();
    assert_eq!(
        a.get_tenant_key("client-admin")
            .await
            .unwrap()
            .primary_version,
        1
    );
    assert_eq!(
        a.rotate_tenant_key("client-admin")
            .await
            .unwrap()
            .primary_version,
        2
    );
    let mut progress = a.rewrap_tenant_secrets("client-admin", 0).await.unwrap();
    let mut last = None;
    while let Some(p) = progress.next().await {
        last = Some(p.unwrap());
    }
    assert!(last.unwrap().done);
    a.set_min_decryption_version("client-admin", 2)
        .await
        .unwrap();
    a.set_key_version_state("client-admin", 1, pb::KeyVersionState::Destroyed)
        .await
        .unwrap();
    a.schedule_tenant_destruction("client-admin", 30)
        .await
        .unwrap();
    a.cancel_tenant_destruction("client-admin").await.unwrap();
    assert!(!a.list_tenants(0, None).await.unwrap().tenants.is_empty());
    let events = a
        .list_audit_events(Some("client-admin"), 0, 0)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.action == "set_key_version_state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_kms_client_sqlite() {
    let kms = Kms::start(false).await;
    round_trip_through_kms_client(&kms).await;
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_kms_client_postgres() {
    let kms = Kms::start(true).await;
    round_trip_through_kms_client(&kms).await;
    kms.stop().await;
}

// ---- deadlines and graceful shutdown (PostgreSQL, a row lock makes a call wait) ------------

impl Kms {
    /// An owner connection to the test database holding `tenant`'s row locked.
    async fn lock_tenant_row(&self, tenant: &str) -> sqlx::PgConnection {
        let Some(Db::Postgres(db)) = &self.db else {
            panic!("needs PostgreSQL")
        };
        let mut conn = db.connect_as(common::OWNER_ROLE).await;
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("SELECT set_config('hygo.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut conn)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM (SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE) locked",
        )
        .bind(tenant)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(n, 1, "the tenant row is locked");
        sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
        conn
    }

    /// Waits until a server query is blocked on a lock (the call is in flight).
    async fn wait_for_lock_waiter(&self) {
        let Some(Db::Postgres(db)) = &self.db else {
            panic!("needs PostgreSQL")
        };
        let mut admin = common::PgTestDb::admin().await;
        for _ in 0..200 {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&db.name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if n > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no call ever waited on the lock");
    }

    async fn versions(&self, tenant: &str) -> usize {
        let mut a = self.admin().await;
        a.get_tenant_key(pb::GetTenantKeyRequest {
            tenant_id: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions
        .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_honoured_and_a_cancelled_call_changes_nothing() {
    let kms = Kms::start(true).await;
    kms.data(&kms.full)
        .await
        .wrap(wrap_req("slow", shopify(), b"x"))
        .await
        .unwrap();
    let lock = kms.lock_tenant_row("slow").await;
    let mut a = kms.admin().await;
    let mut req = Request::new(pb::RotateTenantKeyRequest {
        tenant_id: "slow".into(),
    });
    req.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let s = a.rotate_tenant_key(req).await.unwrap_err();
    assert!(
        matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{s:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(lock); // the blocked transaction is released and rolled back
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        kms.versions("slow").await,
        1,
        "the cancelled rotation changed nothing"
    );
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_calls_finish() {
    let mut kms = Kms::start(true).await;
    kms.data(&kms.full)
        .await
        .wrap(wrap_req("inflight", shopify(), b"x"))
        .await
        .unwrap();
    let lock = kms.lock_tenant_row("inflight").await;
    let mut a = kms.admin().await;
    let call = tokio::spawn(async move {
        a.rotate_tenant_key(pb::RotateTenantKeyRequest {
            tenant_id: "inflight".into(),
        })
        .await
    });
    kms.wait_for_lock_waiter().await;
    // Shut down while the rotation waits for the lock.
    let _ = kms.shutdown.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(lock);
    let info = call.await.unwrap().unwrap().into_inner();
    assert_eq!(info.primary_version, 2, "the in-flight call finished");
    let server = kms.handle.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    kms.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_wraps_create_one_version_postgres() {
    let kms = Kms::start(true).await;
    let mut calls = Vec::new();
    for i in 0..8 {
        let mut c = kms.data(&kms.full).await;
        calls.push(tokio::spawn(async move {
            c.wrap(wrap_req("brand-new", shopify(), format!("t{i}").as_bytes()))
                .await
                .unwrap()
                .into_inner()
                .key_version
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 1);
    }
    assert_eq!(kms.versions("brand-new").await, 1);
    kms.stop().await;
}
