//! The gRPC server: builds the KMS from a [`Config`] and serves it on an already bound
//! listener until a shutdown future completes (SIGTERM in the binary; tests bind port
//! 0). Health (`grpc.health.v1`) and, when configured, server reflection are served
//! beside `KeyService` and `KeyAdmin`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_proto::v1::key_admin_server::KeyAdminServer;
use kms_proto::v1::key_service_server::KeyServiceServer;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::api::{Authn, KeyAdminApi, KeyServiceApi, Shared};
use crate::auth::{AdminVerifier, AuthError, ServicePolicy};
use crate::config::{Config, ConfigError};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::root::{DirSource, EnvSource, RootKeyError, RootKeyId, RootKeyRing, RootKeySource};
use crate::service::Kms;
use crate::store::{PgStore, SqliteStore, Store, StoreError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The root key namespace was refused.
    #[error(transparent)]
    RootKeys(#[from] RootKeyError),
    /// The store could not be opened or refused the keys.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Auth configuration was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(String),
}

/// A built server: the KMS and everything it serves with.
#[derive(Debug)]
pub struct App {
    shared: Shared,
    tls: Option<ServerTlsConfig>,
    reflection: bool,
    sweep_every: Duration,
}

/// Opens the store named by `url`: SQLite (migrated automatically) or PostgreSQL (schema
/// checked; migrations are `kms-server migrate`'s job).
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, ServerError> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        return Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ));
    }
    let store = PgStore::connect(url).await?;
    store.check_schema().await?;
    Ok(Arc::new(store))
}

/// Builds the KMS: root keys, store, check values, auth.
pub async fn build(config: &Config) -> Result<App, ServerError> {
    let source: Box<dyn RootKeySource> = match &config.root_keys.dir {
        Some(dir) => Box::new(DirSource::new(dir)),
        None => Box::new(EnvSource::process()),
    };
    let primary = config
        .root_keys
        .primary
        .clone()
        .map(RootKeyId::new)
        .transpose()?;
    let roots = Arc::new(RootKeyRing::load(source.as_ref(), primary)?);
    let url = config.database_url();
    let store = open_store(url.expose_secret()).await?;
    store.check_root_keys(&roots).await?;
    let authn = Authn {
        services: ServicePolicy::from_config(&config.services)?,
        admin: config.admin.clone().map(AdminVerifier::new).transpose()?,
    };
    let kms = Kms::new(store, roots, config.cache_config(), config.auto_provision);
    let tls = match &config.tls {
        None => None,
        Some(t) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|source| ServerError::Tls {
                    path: path.clone(),
                    source,
                })
            };
            let mut tls = ServerTlsConfig::new()
                .identity(Identity::from_pem(read(&t.cert_file)?, read(&t.key_file)?));
            if let Some(ca) = &t.client_ca_file {
                tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            Some(tls)
        }
    };
    Ok(App {
        shared: Shared {
            kms: Arc::new(kms),
            authn: Arc::new(authn),
        },
        tls,
        reflection: config.reflection,
        sweep_every: Duration::from_secs(config.destruction_sweep_secs),
    })
}

/// Serves `app` on `listener` until `shutdown` completes; in-flight calls finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<KeyServiceServer<KeyServiceApi>>()
        .await;
    health_reporter
        .set_serving::<KeyAdminServer<KeyAdminApi>>()
        .await;

    let kms = app.shared.kms.clone();
    let every = app.sweep_every;
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = kms.sweep_destructions().await {
                tracing::warn!(error = %e, "destruction sweep failed; will retry");
            }
        }
    });

    let data = KeyServiceServer::new(KeyServiceApi(app.shared.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = KeyAdminServer::new(KeyAdminApi(app.shared.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let mut builder = Server::builder();
    if let Some(tls) = app.tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServerError::Transport(e.to_string()))?;
    }
    let reflection = if app.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(kms_proto::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| ServerError::Transport(e.to_string()))?,
        )
    } else {
        None
    };
    let router = builder
        .add_service(health)
        .add_service(data)
        .add_service(admin)
        .add_optional_service(reflection);
    let result = router
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(|e| ServerError::Transport(e.to_string()));
    sweeper.abort();
    tracing::info!("server stopped");
    result
}

/// Builds and serves: what `kms-server serve` does.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    serve(build(config).await?, listener, shutdown).await
}
