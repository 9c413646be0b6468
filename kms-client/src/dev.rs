//! Admin tokens for `kms-server --dev` (SPEC §8), minted from the dev identity
//! provider's Ed25519 key, and the rest of a dev directory ([`DevEnvironment`]).
//!
//! The dev server generates the key (`idp/admin-idp-ed25519.pk8`, PKCS#8 DER, mode 0600)
//! and its JWKS (`idp/admin-idp-jwks.json`); this module only reads them. For development
//! only: anyone who can read the key file is an admin.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_core::{OsRng, RngCore as _};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::auth::TokenProvider;
use crate::error::ClientError;

/// The private key file's name, in [`IDP_DIR`].
pub const PRIVATE_KEY_FILE: &str = "admin-idp-ed25519.pk8";
/// The JWKS file's name, in [`IDP_DIR`].
pub const JWKS_FILE: &str = "admin-idp-jwks.json";
/// The identity provider's subdirectory of the dev directory.
pub const IDP_DIR: &str = "idp";
/// The file holding the dev server's endpoint (e.g. `http://127.0.0.1:7650`).
pub const ENDPOINT_FILE: &str = "endpoint";
/// The file holding the dev service credential.
pub const CREDENTIAL_FILE: &str = "service-credential";
/// The dev server's default directory.
pub const DEFAULT_DIR: &str = ".kms-dev";
/// `iss` of dev tokens.
pub const DEV_ISSUER: &str = "hygo-kms-dev";
/// `aud` of dev tokens.
pub const DEV_AUDIENCE: &str = "hygo-kms";
/// `sub` of dev tokens.
pub const DEV_SUBJECT: &str = "dev-admin";
/// The role claim's name.
pub const DEV_ROLE_CLAIM: &str = "roles";
/// The admin role.
pub const DEV_ROLE: &str = "kms-admin";
/// Lifetime of a dev token (the server wants `auth_time` under 5 minutes old anyway).
pub const DEV_TTL: Duration = Duration::from_secs(300);
/// Longest lifetime of a minted token.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Reading a dev directory or minting a token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content or mode was refused.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Signing failed, or the request was out of bounds.
    #[error("minting an admin token failed: {0}")]
    Mint(String),
}

impl From<DevError> for ClientError {
    fn from(error: DevError) -> Self {
        ClientError::Config {
            message: error.to_string(),
        }
    }
}

/// What to put in a minted admin token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTokenRequest<'a> {
    /// Header `kid`.
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

impl<'a> AdminTokenRequest<'a> {
    /// The dev server's expectations: issuer `hygo-kms-dev`, audience `hygo-kms`, subject
    /// `dev-admin`, `roles = kms-admin`, 5 minutes.
    pub fn dev(kid: &'a str) -> Self {
        Self {
            kid,
            issuer: DEV_ISSUER,
            audience: DEV_AUDIENCE,
            subject: DEV_SUBJECT,
            role_claim: DEV_ROLE_CLAIM,
            role_value: DEV_ROLE,
            ttl: DEV_TTL,
        }
    }
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> DevError {
    DevError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a secret file, refusing one with group or other permission bits.
fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, DevError> {
    let mode = std::fs::metadata(path)
        .map_err(io(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(
            path,
            format!("mode {mode:o}; group and other permission bits must be clear"),
        ));
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(io(path))?))
}

/// Mints a fresh EdDSA admin token with the Ed25519 PKCS#8 key in `private_key_file`
/// (which must not be group or world accessible): `iat` and `auth_time` are now, `exp`
/// is now + ttl, `jti` is 16 random bytes (base64url).
pub fn mint_admin_token(
    private_key_file: &Path,
    request: &AdminTokenRequest<'_>,
) -> Result<SecretString, DevError> {
    if request.ttl.as_secs() == 0 || request.ttl > MAX_TTL {
        return Err(DevError::Mint(format!(
            "ttl must be 1..={} s",
            MAX_TTL.as_secs()
        )));
    }
    let der = read_private(private_key_file)?;
    ring::signature::Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| bad(private_key_file, "not an Ed25519 PKCS#8 key"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| DevError::Mint("system clock is before 1970".into()))?
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
        .map_err(|e| DevError::Mint(format!("signing failed: {e}")))?;
    Ok(SecretString::from(token))
}

/// The `kid` of the first key in a JWKS file.
pub fn read_kid(jwks_file: &Path) -> Result<String, DevError> {
    let text = std::fs::read_to_string(jwks_file).map_err(io(jwks_file))?;
    let jwks: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(jwks_file, format!("not JSON: {e}")))?;
    jwks.get("keys")
        .and_then(|keys| keys.get(0))
        .and_then(|key| key.get("kid"))
        .and_then(serde_json::Value::as_str)
        .filter(|kid| !kid.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad(jwks_file, "no keys[0].kid"))
}

/// A `kms-server --dev` directory: endpoint, service credential, identity provider.
pub struct DevEnvironment {
    /// The directory.
    pub dir: PathBuf,
    /// The server's endpoint, from `DIR/endpoint`.
    pub endpoint: String,
}

impl fmt::Debug for DevEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevEnvironment")
            .field("dir", &self.dir)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl DevEnvironment {
    /// Reads `DIR/endpoint`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, DevError> {
        let dir = dir.into();
        let path = dir.join(ENDPOINT_FILE);
        let endpoint = std::fs::read_to_string(&path)
            .map_err(io(&path))?
            .trim()
            .to_owned();
        if endpoint.is_empty() {
            return Err(bad(&path, "empty"));
        }
        Ok(Self { dir, endpoint })
    }

    /// The dev service credential, from `DIR/service-credential` (0600).
    pub fn service_credential(&self) -> Result<SecretString, DevError> {
        let path = self.dir.join(CREDENTIAL_FILE);
        let bytes = read_private(&path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad(&path, "not UTF-8"))?;
        Ok(SecretString::from(text.trim()))
    }

    /// A token provider minting a fresh dev admin token for every call.
    pub fn admin_tokens(&self) -> Result<impl TokenProvider, DevError> {
        let idp = self.dir.join(IDP_DIR);
        let kid = read_kid(&idp.join(JWKS_FILE))?;
        let key = idp.join(PRIVATE_KEY_FILE);
        Ok(move || Ok(mint_admin_token(&key, &AdminTokenRequest::dev(&kid))?))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    use jsonwebtoken::{DecodingKey, Validation};
    use ring::signature::KeyPair as _;
    use secrecy::ExposeSecret as _;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("kms-client-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a key the way the dev server does; returns its public key.
    fn write_key(path: &Path, mode: u32) -> Vec<u8> {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .unwrap();
        file.write_all(pkcs8.as_ref()).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        pair.public_key().as_ref().to_vec()
    }

    #[test]
    fn minted_token_verifies_and_has_the_claims() {
        let dir = temp_dir("mint");
        let key = dir.join(PRIVATE_KEY_FILE);
        let public = write_key(&key, 0o600);
        let token = mint_admin_token(&key, &AdminTokenRequest::dev("dev-abc")).unwrap();
        let header = jsonwebtoken::decode_header(token.expose_secret()).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some("dev-abc"));
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token.expose_secret(),
            &DecodingKey::from_ed_der(&public),
            &validation,
        )
        .unwrap()
        .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let auth_time = claims["auth_time"].as_u64().unwrap();
        assert!(auth_time <= now && now - auth_time < 60);
        assert_eq!(claims["exp"].as_u64().unwrap(), auth_time + 300);
        assert_eq!(claims["iat"].as_u64().unwrap(), auth_time);
        assert_eq!(claims["iss"], DEV_ISSUER);
        assert_eq!(claims["aud"], DEV_AUDIENCE);
        assert_eq!(claims["sub"], DEV_SUBJECT);
        assert_eq!(claims["roles"], DEV_ROLE);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(jti).unwrap().len(), 16);
        // A second token has a fresh jti.
        let again = mint_admin_token(&key, &AdminTokenRequest::dev("dev-abc")).unwrap();
        assert_ne!(again.expose_secret(), token.expose_secret());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_readable_keys_bad_ttl_and_garbage() {
        let dir = temp_dir("refuse");
        let key = dir.join(PRIVATE_KEY_FILE);
        write_key(&key, 0o640);
        assert!(matches!(
            mint_admin_token(&key, &AdminTokenRequest::dev("k")),
            Err(DevError::BadFile { .. })
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut request = AdminTokenRequest::dev("k");
        request.ttl = Duration::from_secs(7200);
        assert!(matches!(
            mint_admin_token(&key, &request),
            Err(DevError::Mint(_))
        ));
        let garbage = dir.join("garbage.pk8");
        std::fs::write(&garbage, b"not a key").unwrap();
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            mint_admin_token(&garbage, &AdminTokenRequest::dev("k")),
            Err(DevError::BadFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_environment_reads_its_files() {
        let dir = temp_dir("env");
        std::fs::write(dir.join(ENDPOINT_FILE), "http://127.0.0.1:7650\n").unwrap();
        let credential = dir.join(CREDENTIAL_FILE);
        std::fs::write(&credential, "hkms_dev_abc\n").unwrap();
        std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(dir.join(IDP_DIR)).unwrap();
        write_key(&dir.join(IDP_DIR).join(PRIVATE_KEY_FILE), 0o600);
        std::fs::write(
            dir.join(IDP_DIR).join(JWKS_FILE),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"dev-0123"}]}"#,
        )
        .unwrap();
        let env = DevEnvironment::open(&dir).unwrap();
        assert_eq!(env.endpoint, "http://127.0.0.1:7650");
        assert_eq!(
            env.service_credential().unwrap().expose_secret(),
            "hkms_dev_abc"
        );
        let token = env.admin_tokens().unwrap().token().unwrap();
        let header = jsonwebtoken::decode_header(token.expose_secret()).unwrap();
        assert_eq!(header.kid.as_deref(), Some("dev-0123"));
        std::fs::write(dir.join(IDP_DIR).join(JWKS_FILE), r#"{"keys":[]}"#).unwrap();
        assert!(env.admin_tokens().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
