//! The development identity provider of `kms-server --dev` and `kms-cli` (SPEC §8).
//!
//! [`ensure`] keeps an Ed25519 key pair in a directory: the private key as PKCS#8 DER in
//! [`PRIVATE_KEY_FILE`] (mode 0600, never overwritten) and the public key as a one-key
//! JWKS in [`JWKS_FILE`] (OKP/Ed25519, `alg` EdDSA, `kid` derived from the public key),
//! which the dev server's [`super::AdminVerifier`] reads. [`mint_admin_token`] signs a
//! fresh admin token with `auth_time = iat = now`.
//!
//! For development only: anyone who can read the private key file is an admin.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_core::{OsRng, RngCore};
use ring::signature::{Ed25519KeyPair, KeyPair};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuthError;

/// The private key file's name (PKCS#8 DER, mode 0600).
pub const PRIVATE_KEY_FILE: &str = "admin-idp-ed25519.pk8";
/// The JWKS file's name.
pub const JWKS_FILE: &str = "admin-idp-jwks.json";
/// Longest lifetime of a minted token.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

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

fn mint_err(reason: impl Into<String>) -> AuthError {
    AuthError::Mint {
        reason: reason.into(),
    }
}

/// What to put in a minted admin token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTokenRequest<'a> {
    /// Header `kid` (see [`DevIdp::kid`]).
    pub kid: &'a str,
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// `sub`.
    pub subject: &'a str,
    /// Name of the role claim.
    pub role_claim: &'a str,
    /// Its value (a string claim).
    pub role_value: &'a str,
    /// Lifetime: `exp = now + ttl` (1 s ..= [`MAX_TTL`]).
    pub ttl: Duration,
}

impl fmt::Debug for AdminTokenRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTokenRequest")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("subject", &self.subject)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Mints a fresh EdDSA admin token with the key in `private_key_file`: `iat` and
/// `auth_time` are now, `exp` is now + ttl, `jti` is 16 random bytes (base64url).
pub fn mint_admin_token(
    private_key_file: &Path,
    request: &AdminTokenRequest<'_>,
) -> Result<SecretString, AuthError> {
    if request.ttl.is_zero() || request.ttl > MAX_TTL {
        return Err(mint_err(format!("ttl must be 1..={} s", MAX_TTL.as_secs())));
    }
    // Validates the key (and its file mode) before signing.
    read_key_pair(private_key_file)?;
    let der = Zeroizing::new(
        std::fs::read(private_key_file).map_err(|source| AuthError::Io {
            path: private_key_file.to_path_buf(),
            source,
        })?,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| mint_err("system clock is before 1970"))?
        .as_secs();
    let mut jti = [0u8; 16];
    OsRng.fill_bytes(&mut jti);
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), request.issuer.into());
    claims.insert("aud".into(), request.audience.into());
    claims.insert("sub".into(), request.subject.into());
    claims.insert("iat".into(), now.into());
    claims.insert("auth_time".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(request.ttl.as_secs()).into(),
    );
    claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(jti).into());
    claims.insert(request.role_claim.into(), request.role_value.into());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(request.kid.to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))
        .map_err(|e| mint_err(format!("signing failed: {e}")))?;
    Ok(SecretString::from(token))
}
