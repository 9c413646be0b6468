//! The development identity provider of `kms-server --dev` and `kms-cli` (SPEC §8).
//!
//! [`ensure`] keeps an Ed25519 key pair in a directory: the private key as PKCS#8 DER in
//! [`PRIVATE_KEY_FILE`] (mode 0600, never overwritten) and the public key as a one-key
//! JWKS in [`JWKS_FILE`] (OKP/Ed25519, `alg` EdDSA, `kid` derived from the public key),
//! which the dev server's [`super::AdminVerifier`] reads. `kms-cli --dev` mints fresh
//! admin tokens from the private key (`kms_client::dev::mint_admin_token`).
//!
//! For development only: anyone who can read the private key file is an admin.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuthError;

/// The private key file's name (PKCS#8 DER, mode 0600).
pub const PRIVATE_KEY_FILE: &str = "admin-idp-ed25519.pk8";
/// The JWKS file's name.
pub const JWKS_FILE: &str = "admin-idp-jwks.json";

/// The files of a dev identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevIdp {
    /// The private key (PKCS#8 DER, mode 0600).
    pub private_key_file: PathBuf,
    /// The JWKS holding the public key.
    pub jwks_file: PathBuf,
    /// The key's `kid`.
    pub kid: String,
}

/// Makes sure `dir` holds a dev identity provider: creates the directory (mode 0700) if
/// missing, generates the key pair if there is no private key yet (an existing one is
/// kept across restarts), and (re)writes the JWKS from the private key.
pub fn ensure(dir: &Path) -> Result<DevIdp, AuthError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuthError::Io { path, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let private_key_file = dir.join(PRIVATE_KEY_FILE);
    if !private_key_file.exists() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| mint_err("key generation failed"))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_key_file)
            .map_err(io(&private_key_file))?;
        file.write_all(pkcs8.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(io(&private_key_file))?;
    }
    let pair = read_key_pair(&private_key_file)?;
    let public = pair.public_key().as_ref();
    let kid = kid_of(public);
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(public),
    }]});
    let jwks_file = dir.join(JWKS_FILE);
    let tmp = dir.join(format!("{JWKS_FILE}.tmp"));
    std::fs::write(&tmp, jwks.to_string()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &jwks_file).map_err(io(&jwks_file))?;
    Ok(DevIdp {
        private_key_file,
        jwks_file,
        kid,
    })
}

/// The `kid` of a dev key: the first 8 bytes of SHA-256 of the public key, hex.
fn kid_of(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    format!(
        "dev-{}",
        base16ct::lower::encode_string(digest.get(..8).unwrap_or_default())
    )
}

fn mint_err(reason: impl Into<String>) -> AuthError {
    AuthError::Mint {
        reason: reason.into(),
    }
}

/// Reads the private key, refusing a file with group or other permission bits.
fn read_key_pair(path: &Path) -> Result<Ed25519KeyPair, AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(mint_err(format!(
            "{} has mode {mode:o}; group and other permission bits must be clear",
            path.display()
        )));
    }
    let der = Zeroizing::new(std::fs::read(path).map_err(io)?);
    Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| mint_err(format!("{} is not an Ed25519 PKCS#8 key", path.display())))
}
