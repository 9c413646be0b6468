#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! TLS (rustls, *ring*) and mutual TLS against the in-process fake, with the test PKI in
//! `tests/tls/` (regenerate with `tests/tls/generate.sh`).

mod common;

use kms_client::{ClientConfig, ClientError, ClientIdentity, Context, KmsClient, TlsConfig};
use secrecy::SecretString;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

const CA: &[u8] = include_bytes!("tls/ca.pem");
const OTHER_CA: &[u8] = include_bytes!("tls/other-ca.pem");
const SERVER: &[u8] = include_bytes!("tls/server.pem");
const SERVER_KEY: &[u8] = include_bytes!("tls/server-key.pem");
const CLIENT: &[u8] = include_bytes!("tls/client.pem");
const CLIENT_KEY: &[u8] = include_bytes!("tls/client-key.pem");

fn server_tls(mutual: bool) -> ServerTlsConfig {
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(SERVER, SERVER_KEY));
    if mutual {
        tls.client_ca_root(Certificate::from_pem(CA))
    } else {
        tls
    }
}

fn client_tls(ca: &[u8], domain: Option<&str>, identity: bool) -> TlsConfig {
    TlsConfig {
        ca_cert_pem: ca.to_vec(),
        domain_name: domain.map(str::to_owned),
        client_identity: identity.then(|| ClientIdentity {
            cert_pem: CLIENT.to_vec(),
            key_pem: CLIENT_KEY.to_vec().into(),
        }),
    }
}

async fn connect(endpoint: &str, tls: TlsConfig) -> Result<KmsClient, ClientError> {
    let mut config = ClientConfig::new(endpoint);
    config.tls = Some(tls);
    config.max_retries = 0;
    KmsClient::connect(config, SecretString::from(common::CREDENTIAL)).await
}

#[tokio::test]
async fn tls_with_the_private_ca() {
    let (fake, endpoint) = common::serve_with(0, Some(server_tls(false))).await;
    let kms = connect(&endpoint, client_tls(CA, None, false))
        .await
        .unwrap();
    let context = Context::from([("vendor", "shopify")]);
    let wrapped = kms.wrap("t1", &context, b"shpat_tls").await.unwrap();
    assert_eq!(wrapped.ciphertext, common::fake_seal("t1", b"shpat_tls"));
    assert_eq!(fake.calls("wrap"), 1);

    // The certificate names kms.test too.
    let kms = connect(&endpoint, client_tls(CA, Some("kms.test"), false))
        .await
        .unwrap();
    kms.wrap("t1", &context, b"x").await.unwrap();
}

#[tokio::test]
async fn untrusted_or_misnamed_servers_are_refused() {
    let (fake, endpoint) = common::serve_with(0, Some(server_tls(false))).await;
    let error = connect(&endpoint, client_tls(OTHER_CA, None, false))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    let error = connect(&endpoint, client_tls(CA, Some("other.test"), false))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert_eq!(fake.calls("wrap"), 0);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_identity() {
    let (fake, endpoint) = common::serve_with(0, Some(server_tls(true))).await;
    let context = Context::from([("vendor", "shopify")]);
    let kms = connect(&endpoint, client_tls(CA, None, true))
        .await
        .unwrap();
    kms.wrap("t1", &context, b"x").await.unwrap();
    assert_eq!(fake.calls("wrap"), 1);

    // Without a client certificate the server refuses the handshake (the connection
    // fails at connect time or on the first call, depending on TLS 1.3 timing).
    let refused = match connect(&endpoint, client_tls(CA, None, false)).await {
        Err(error) => error,
        Ok(kms) => kms.wrap("t1", &context, b"x").await.unwrap_err(),
    };
    assert!(
        matches!(
            refused,
            ClientError::Transport { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Internal { .. }
        ),
        "{refused:?}"
    );
    assert_eq!(fake.calls("wrap"), 1);
}
