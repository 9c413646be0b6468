//! `kms-server --dev`: one command, nothing to prepare. Everything lives under one
//! directory (default `./.kms-dev/`), kept across restarts:
//!
//! | path | what |
//! | --- | --- |
//! | `kms.sqlite` | the embedded database |
//! | `root-keys/dev.key` | a generated root key namespace (mode 0600 in a 0700 directory) |
//! | `service-credential` | a dev service credential with every data-plane right (0600) |
//! | `idp/` | a dev identity provider: `kms-cli --dev` mints admin tokens from it |
//! | `endpoint` | the address the server listens on, for `kms-cli --dev` |
//!
//! Loopback only, auto-provisioning and reflection on. Never use it in production.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::auth::{
    AdminAuthConfig, Permission, ServiceCredential, ServiceId, ServicePolicyConfig, dev_idp,
};
use crate::config::{Config, RootKeysConfig};
use crate::root::{RootKey, RootKeyId, write_new_key_file};

/// Issuer of dev admin tokens.
pub const DEV_ISSUER: &str = "hygo-kms-dev";
/// Audience of dev admin tokens.
pub const DEV_AUDIENCE: &str = "hygo-kms";
/// Role claim of dev admin tokens.
pub const DEV_ROLE_CLAIM: &str = "roles";
/// Required role value.
pub const DEV_ROLE: &str = "kms-admin";
/// File holding the dev service credential.
pub const CREDENTIAL_FILE: &str = "service-credential";
/// File holding the listening address.
pub const ENDPOINT_FILE: &str = "endpoint";

/// Why dev mode could not prepare its directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// A file or directory could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The root key namespace could not be created or loaded.
    #[error(transparent)]
    RootKeys(#[from] crate::root::RootKeyError),
    /// The credential or identity provider could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.to_owned(),
        source,
    }
}

fn private_dir(path: &Path) -> Result<(), DevError> {
    if !path.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io(path))?;
    }
    Ok(())
}

/// Prepares `dir` (creating what is missing, keeping what exists) and returns the dev
/// configuration listening on `listen`.
pub fn prepare(dir: &Path, listen: std::net::SocketAddr) -> Result<Config, DevError> {
    private_dir(dir)?;
    let keys = dir.join("root-keys");
    private_dir(&keys)?;
    if fs::read_dir(&keys).map_err(io(&keys))?.next().is_none() {
        write_new_key_file(&keys, &RootKey::generate(RootKeyId::new("dev")?))?;
    }

    let idp = dev_idp::ensure(&dir.join("idp"))?;

    let cred_path = dir.join(CREDENTIAL_FILE);
    let hash = if cred_path.exists() {
        let text = fs::read_to_string(&cred_path).map_err(io(&cred_path))?;
        ServiceCredential::parse(text.trim())?.hash()
    } else {
        let (credential, hash) = ServiceCredential::generate(&ServiceId::new("dev")?);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&cred_path)
            .map_err(io(&cred_path))?;
        writeln!(f, "{}", credential.expose_secret()).map_err(io(&cred_path))?;
        hash
    };

    let mut config = Config::parse("").map_err(|e| DevError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e),
    })?;
    config.listen = listen;
    config.reflection = true;
    config.auto_provision = true;
    config.root_keys = RootKeysConfig {
        dir: Some(keys),
        primary: None,
    };
    config.database.url = Some(format!("sqlite://{}", dir.join("kms.sqlite").display()));
    config.admin = Some(AdminAuthConfig::new(
        idp.jwks_file,
        DEV_ISSUER,
        DEV_AUDIENCE,
        DEV_ROLE_CLAIM,
        DEV_ROLE,
    ));
    config.services = vec![ServicePolicyConfig {
        id: "dev".to_owned(),
        credential_sha256: vec![hash.to_hex()],
        permissions: Permission::ALL.to_vec(),
        tenants: None,
        context: Default::default(),
    }];
    Ok(config)
}

/// Writes the endpoint file for `kms-cli --dev`.
pub fn write_endpoint(dir: &Path, addr: std::net::SocketAddr) -> Result<(), DevError> {
    let path = dir.join(ENDPOINT_FILE);
    fs::write(&path, format!("http://{addr}\n")).map_err(io(&path))
}
