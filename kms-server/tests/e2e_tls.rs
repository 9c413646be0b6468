//! Real TLS (rustls) and mutual TLS on a 127.0.0.1:0 socket, with certificates made for
//! the test: the bearer credential is still required; a client without a certificate,
//! or speaking plaintext, gets nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::time::Duration;

use kms_proto::v1 as pb;
use kms_proto::v1::key_service_client::KeyServiceClient;
use kms_server::auth::{Permission, ServiceCredential, ServiceId, ServicePolicyConfig};
use kms_server::config::{Config, TlsConfig};
use kms_server::root::{RootKey, RootKeyId, write_new_key_file};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use secrecy::ExposeSecret;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: leaf("localhost"),
        client: leaf("shopify-adapter"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_bearer_credentials() {
    let dir = std::env::temp_dir().join(format!("kms-tls-{}", common::random_hex(8)));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    write_new_key_file(
        &dir.join("keys"),
        &RootKey::generate(RootKeyId::new("tls").unwrap()),
    )
    .unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (cred, hash) = ServiceCredential::generate(&ServiceId::new("svc").unwrap());
    let mut config = Config::parse("").unwrap();
    config.tls = Some(TlsConfig {
        cert_file: write("server.crt", &pki.server.0),
        key_file: write("server.key", &pki.server.1),
        client_ca_file: Some(write("ca.crt", &pki.ca_pem)),
    });
    config.root_keys.dir = Some(dir.join("keys"));
    config.database.url = Some(format!("sqlite://{}", dir.join("kms.db").display()));
    config.auto_provision = true;
    config.services = vec![ServicePolicyConfig {
        id: "svc".into(),
        credential_sha256: vec![hash.to_hex()],
        permissions: Permission::ALL.to_vec(),
        tenants: None,
        context: Default::default(),
    }];
    config.validate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        kms_server::server::run(&config, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });

    let tls = |identity: bool| {
        let mut t = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca_pem))
            .domain_name("localhost");
        if identity {
            t = t.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
        }
        t
    };
    let url = format!("https://localhost:{}", addr.port());
    let connect = |t: ClientTlsConfig| {
        let url = url.clone();
        async move {
            Channel::from_shared(url)
                .unwrap()
                .tls_config(t)
                .unwrap()
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await
        }
    };
    let wrap = |token: Option<String>| {
        let mut r = Request::new(pb::WrapRequest {
            tenant_id: "acme".into(),
            context: Default::default(),
            plaintext: b"over tls".to_vec(),
        });
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    };

    // mTLS + bearer: works.
    let channel = connect(tls(true)).await.unwrap();
    let mut c = KeyServiceClient::new(channel);
    let ct = c
        .wrap(wrap(Some(cred.expose_secret().to_owned())))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    assert_eq!(ct.len(), 8 + 74);
    // mTLS without the bearer credential: a certificate is no substitute.
    let s = c.wrap(wrap(None)).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // No client certificate: the handshake (or the first call) fails.
    let no_cert = match connect(tls(false)).await {
        Err(_) => true,
        Ok(ch) => KeyServiceClient::new(ch)
            .wrap(wrap(Some(cred.expose_secret().to_owned())))
            .await
            .is_err(),
    };
    assert!(no_cert, "a client without a certificate must be refused");

    // Plaintext HTTP/2 to the TLS port gets nothing.
    let plain = match Channel::from_shared(format!("http://127.0.0.1:{}", addr.port()))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
    {
        Err(_) => true,
        Ok(ch) => KeyServiceClient::new(ch)
            .wrap(wrap(Some(cred.expose_secret().to_owned())))
            .await
            .is_err(),
    };
    assert!(plain, "plaintext must be refused on the TLS port");

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .ok();
    std::fs::remove_dir_all(&dir).ok();
}
