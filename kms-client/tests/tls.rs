#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! TLS (rustls, *ring*) and mutual TLS against the in-process fake, with a test PKI made
//! afresh by every run (rcgen): a CA, a server certificate for kms.test / localhost /
//! 127.0.0.1, a client certificate, and an unrelated CA.

mod common;

use kms_client::{ClientConfig, ClientError, ClientIdentity, Context, KmsClient, TlsConfig};
use secrecy::SecretString;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

struct Pki {
    ca: Vec<u8>,
    other_ca: Vec<u8>,
    server: (Vec<u8>, Vec<u8>),
    client: (Vec<u8>, Vec<u8>),
}

fn pki() -> &'static Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("test CA");
        let (other_ca, _) = ca("unrelated CA");
        let leaf = |names: &[&str]| {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca_cert, &ca_key)
                .unwrap();
            (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
        };
        Pki {
            ca: ca_cert.pem().into_bytes(),
            other_ca: other_ca.pem().into_bytes(),
            server: leaf(&["kms.test", "localhost", "127.0.0.1"]),
            client: leaf(&["shopify-adapter"]),
        }
    })
}

fn server_tls(mutual: bool) -> ServerTlsConfig {
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&pki().server.0, &pki().server.1));
    if mutual {
        tls.client_ca_root(Certificate::from_pem(&pki().ca))
    } else {
        tls
    }
}

fn client_tls(ca: &[u8], domain: Option<&str>, identity: bool) -> TlsConfig {
    TlsConfig {
        ca_cert_pem: ca.to_vec(),
        domain_name: domain.map(str::to_owned),
        client_identity: identity.then(|| ClientIdentity {
            cert_pem: pki().client.0.clone(),
            key_pem: pki().client.1.clone().into(),
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
    let kms = connect(&endpoint, client_tls(&pki().ca, None, false))
        .await
        .unwrap();
    let context = Context::from([("vendor", "shopify")]);
    let wrapped = kms.wrap("t1", &context, b"shpat_tls").await.unwrap();
    assert_eq!(wrapped.ciphertext, common::fake_seal("t1", b"shpat_tls"));
    assert_eq!(fake.calls("wrap"), 1);

    // The certificate names kms.test too.
    let kms = connect(&endpoint, client_tls(&pki().ca, Some("kms.test"), false))
        .await
        .unwrap();
    kms.wrap("t1", &context, b"x").await.unwrap();
}

#[tokio::test]
async fn untrusted_or_misnamed_servers_are_refused() {
    let (fake, endpoint) = common::serve_with(0, Some(server_tls(false))).await;
    let error = connect(&endpoint, client_tls(&pki().other_ca, None, false))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    let error = connect(&endpoint, client_tls(&pki().ca, Some("other.test"), false))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert_eq!(fake.calls("wrap"), 0);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_identity() {
    let (fake, endpoint) = common::serve_with(0, Some(server_tls(true))).await;
    let context = Context::from([("vendor", "shopify")]);
    let kms = connect(&endpoint, client_tls(&pki().ca, None, true))
        .await
        .unwrap();
    kms.wrap("t1", &context, b"x").await.unwrap();
    assert_eq!(fake.calls("wrap"), 1);

    // Without a client certificate the server refuses the handshake (the connection
    // fails at connect time or on the first call, depending on TLS 1.3 timing).
    let refused = match connect(&endpoint, client_tls(&pki().ca, None, false)).await {
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
