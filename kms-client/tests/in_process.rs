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

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{CREDENTIAL, serve};
use kms_client::{
    AdminClient, ClientConfig, ClientError, Context, KmsClient, PutSecretOptions, UnwrapItem,
};
use secrecy::SecretString;
use tonic::Code;

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

#[tokio::test]
async fn oversize_requests_are_refused_locally_and_not_retried() {
    let (fake, endpoint) = serve(0).await;
    let kms = client(&endpoint).await;
    let plaintext = vec![0u8; 8 * 1024 * 1024 + 1];
    let error = kms.wrap("t1", &shopify(), &plaintext).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::ResourceExhausted), "{error:?}");
    assert_eq!(fake.calls("wrap"), 0);
}
