//! Admin JWTs (SPEC §5, THREATS 16).
//!
//! `KeyAdmin` calls carry a JWT from the identity provider, verified against a JWKS
//! file that is reloaded when it changes (checked on every verification: `stat` is cheap
//! and admin calls are rare). Rules:
//!
//! - the header's `alg` is checked here, before and independently of the JWT library:
//!   only `RS256`, `ES256` and `EdDSA`, never `none` or `HS*`; a `crit` header is refused;
//! - `kid` is required and must name a key of the JWKS; the key fixes the algorithm
//!   (`RSA` ↔ `RS256`, `EC`/`P-256` ↔ `ES256`, `OKP`/`Ed25519` ↔ `EdDSA`); keys embedded in
//!   the token (`jwk`, `jku`, `x5c`, `x5u`) are ignored;
//! - `iss`, `aud`, `exp`, `sub`, `auth_time` and the role claim are required; `exp` and
//!   `nbf` are checked with the configured leeway (at most 60 s);
//! - `auth_time` in the future (beyond the leeway) is UNAUTHENTICATED; older than the
//!   maximum auth age (plus leeway, for clock skew) is PERMISSION_DENIED, as is a token
//!   whose role claim (a string or an array of strings) lacks the configured value.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AuthError;

/// Default maximum age of `auth_time`: 5 minutes (SPEC §5).
pub const DEFAULT_MAX_AUTH_AGE_SECS: u64 = 300;
/// Largest accepted `max_auth_age_secs`: admin actions require a recent login, so an
/// hour is the most this setting may allow (a decision where SPEC §5 is silent).
pub const MAX_MAX_AUTH_AGE_SECS: u64 = 3600;
/// Default clock leeway.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Largest accepted leeway (SPEC §5).
pub const MAX_LEEWAY_SECS: u64 = 60;
/// Longest admin token accepted, in bytes; longer ones are refused before parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS file read.
pub const MAX_JWKS_FILE_LEN: u64 = 1024 * 1024;

/// Registered claims the role claim may not be named after.
const REGISTERED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time"];

/// The `[admin]` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAuthConfig {
    /// The JWKS file (JSON `{"keys": [...]}`), reloaded when it changes.
    pub jwks_path: PathBuf,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (this KMS).
    pub audience: String,
    /// Name of the role claim, e.g. `roles` or `hygo_kms_role`.
    pub role_claim: String,
    /// The value the role claim must hold (equal, or an element of an array).
    pub role_value: String,
    /// Maximum age of `auth_time`, in seconds (default 300, at most 3600).
    #[serde(default = "default_max_auth_age")]
    pub max_auth_age_secs: u64,
    /// Clock leeway, in seconds (default 30, at most 60).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_max_auth_age() -> u64 {
    DEFAULT_MAX_AUTH_AGE_SECS
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECS
}

impl AdminAuthConfig {
    /// A configuration with the default max auth age and leeway.
    pub fn new(
        jwks_path: impl Into<PathBuf>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        role_claim: impl Into<String>,
        role_value: impl Into<String>,
    ) -> Self {
        Self {
            jwks_path: jwks_path.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            role_claim: role_claim.into(),
            role_value: role_value.into(),
            max_auth_age_secs: DEFAULT_MAX_AUTH_AGE_SECS,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }

    /// Checks every setting; errors name it (`admin.leeway_secs`, ...).
    pub fn validate(&self) -> Result<(), AuthError> {
        let non_empty = [
            ("admin.issuer", &self.issuer),
            ("admin.audience", &self.audience),
            ("admin.role_claim", &self.role_claim),
            ("admin.role_value", &self.role_value),
        ];
        for (setting, value) in non_empty {
            if value.is_empty() {
                return Err(AuthError::config(setting, "must not be empty"));
            }
        }
        if REGISTERED_CLAIMS.contains(&self.role_claim.as_str()) {
            return Err(AuthError::config(
                "admin.role_claim",
                format!("{:?} is a registered JWT claim", self.role_claim),
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthError::config(
                "admin.leeway_secs",
                format!("must be at most {MAX_LEEWAY_SECS}"),
            ));
        }
        if !(1..=MAX_MAX_AUTH_AGE_SECS).contains(&self.max_auth_age_secs) {
            return Err(AuthError::config(
                "admin.max_auth_age_secs",
                format!("must be 1..={MAX_MAX_AUTH_AGE_SECS}"),
            ));
        }
        Ok(())
    }
}

/// A verified admin, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// The token's `sub`.
    pub sub: String,
    /// The token's `jti`, if it has one.
    pub jti: Option<String>,
}

/// Verifies admin JWTs against a JWKS file. `Send + Sync`; share it behind an `Arc`.
pub struct AdminVerifier {
    config: AdminAuthConfig,
    cache: Mutex<JwksCache>,
}

impl fmt::Debug for AdminVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminVerifier")
            .field("jwks_path", &self.config.jwks_path)
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

/// What identifies one version of the JWKS file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

struct JwksCache {
    stamp: Option<FileStamp>,
    keys: Result<Arc<KeySet>, String>,
}

/// The usable keys of a JWKS, by `kid`.
struct KeySet(HashMap<String, VerifyKey>);

struct VerifyKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// Why a token was refused as UNAUTHENTICATED (kept for tests; the caller only ever
/// sees the one fixed message).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    TooLong,
    Malformed,
    Algorithm,
    Crit,
    MissingKid,
    UnknownKid,
    KeyMismatch,
    Jwt(String),
    MissingClaim(&'static str),
    FutureAuthTime,
}

enum Failure {
    Unauthenticated(
        #[cfg_attr(
            not(test),
            allow(dead_code, reason = "read by unit tests; callers see one fixed error")
        )]
        Rejection,
    ),
    Other(AuthError),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Self::Unauthenticated(r)
    }
}

impl AdminVerifier {
    /// Validates the configuration and loads the JWKS (which must hold at least one
    /// usable key).
    pub fn new(config: AdminAuthConfig) -> Result<Self, AuthError> {
        config.validate()?;
        let path = &config.jwks_path;
        let stamp = FileStamp::of(path).map_err(|e| {
            AuthError::config("admin.jwks_path", format!("{}: {e}", path.display()))
        })?;
        let keys = load_jwks(path).map_err(|e| {
            AuthError::config("admin.jwks_path", format!("{}: {e}", path.display()))
        })?;
        Ok(Self {
            config,
            cache: Mutex::new(JwksCache {
                stamp: Some(stamp),
                keys: Ok(Arc::new(keys)),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AdminAuthConfig {
        &self.config
    }

    /// Verifies an admin token (the bearer token of a `KeyAdmin` call).
    ///
    /// [`AuthError::Unauthenticated`] for a token that fails verification, lacks a
    /// required claim or has a future `auth_time`; [`AuthError::PermissionDenied`] for a
    /// valid token without the role or with a stale `auth_time`;
    /// [`AuthError::KeySetUnavailable`] when the JWKS file cannot be used (fail closed).
    pub fn verify(&self, token: &str) -> Result<AdminPrincipal, AuthError> {
        self.verify_at(token, unix_now())
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<AdminPrincipal, AuthError> {
        match self.check(token, now) {
            Ok(p) => Ok(p),
            Err(Failure::Unauthenticated(_)) => Err(AuthError::Unauthenticated),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    fn check(&self, token: &str, now: i64) -> Result<AdminPrincipal, Failure> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::TooLong.into());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed.into());
        };
        if signature.is_empty() {
            return Err(Rejection::Malformed.into());
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
            .ok_or(Rejection::Malformed)?;
        // Our own allow-list, before the library sees the token.
        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some("EdDSA") => Algorithm::EdDSA,
            _ => return Err(Rejection::Algorithm.into()),
        };
        if header.contains_key("crit") {
            return Err(Rejection::Crit.into());
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(Rejection::MissingKid)?;

        let keys = self.keys().map_err(Failure::Other)?;
        let key = keys.0.get(kid).ok_or(Rejection::UnknownKid)?;
        if key.alg != alg {
            return Err(Rejection::KeyMismatch.into());
        }

        let leeway = self.config.leeway_secs;
        let mut validation = Validation::new(alg);
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| Rejection::Jwt(format!("{:?}", e.kind())))?
            .claims;

        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(Rejection::MissingClaim("sub").into()),
        };
        let jti = match claims.get("jti") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Rejection::MissingClaim("jti").into()),
        };
        let auth_time = claims
            .get("auth_time")
            .and_then(numeric_date)
            .ok_or(Rejection::MissingClaim("auth_time"))?;
        let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
        if auth_time > now.saturating_add(leeway) {
            return Err(Rejection::FutureAuthTime.into());
        }

        if !has_role(claims.get(&self.config.role_claim), &self.config.role_value) {
            return Err(Failure::Other(AuthError::denied(format!(
                "admin role required: claim {:?} does not grant it",
                self.config.role_claim
            ))));
        }
        let max_age = i64::try_from(self.config.max_auth_age_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(auth_time) > max_age.saturating_add(leeway) {
            return Err(Failure::Other(AuthError::denied(format!(
                "authentication is older than {} s (auth_time): sign in again",
                self.config.max_auth_age_secs
            ))));
        }
        Ok(AdminPrincipal { sub, jti })
    }

    /// The current key set, reloading the file if it changed since the last look. A file
    /// that cannot be read or parsed fails closed until it is fixed.
    fn keys(&self) -> Result<Arc<KeySet>, AuthError> {
        let path = &self.config.jwks_path;
        let unavailable = |reason: String| AuthError::KeySetUnavailable {
            path: path.clone(),
            reason,
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let before = FileStamp::of(path).map_err(|e| unavailable(e.to_string()))?;
        if cache.stamp != Some(before) {
            let loaded = load_jwks(path).map(Arc::new);
            // Only trust the stamp if the file did not change while it was read.
            let after = FileStamp::of(path).ok();
            cache.stamp = (after == Some(before)).then_some(before);
            cache.keys = loaded;
        }
        cache.keys.clone().map_err(unavailable)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A JWT NumericDate: a JSON number of seconds, possibly fractional (truncated).
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "finite and range-checked just before"
    )]
    (f.is_finite() && f.abs() < 1e15).then(|| f.trunc() as i64)
}

fn has_role(claim: Option<&Value>, required: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == required,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(required)),
        _ => false,
    }
}

/// Reads a JWKS file. Keys without a `kid`, not for signatures, of another type or curve,
/// or whose `alg` is not the one its type implies are skipped; a duplicate `kid` or a set
/// without any usable key is an error.
fn load_jwks(path: &Path) -> Result<KeySet, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_JWKS_FILE_LEN {
        return Err(format!("larger than {MAX_JWKS_FILE_LEN} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(list) = doc.get("keys").and_then(Value::as_array) else {
        return Err("no \"keys\" array".to_owned());
    };
    let mut keys = HashMap::new();
    for jwk in list {
        let Some((kid, key)) = usable_key(jwk) else {
            continue;
        };
        if keys.insert(kid.to_owned(), key).is_some() {
            return Err(format!("kid {kid:?} appears more than once"));
        }
    }
    if keys.is_empty() {
        return Err(
            "no usable signing key (RSA/RS256, EC P-256/ES256, OKP Ed25519/EdDSA with a kid)"
                .to_owned(),
        );
    }
    Ok(KeySet(keys))
}

fn usable_key(jwk: &Value) -> Option<(&str, VerifyKey)> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kid = field("kid").filter(|k| !k.is_empty())?;
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let decoded_len = |name: &str| {
        field(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .map(|b| b.len())
    };
    let (alg, key) = match (field("kty")?, field("crv")) {
        ("RSA", _) => {
            let key = DecodingKey::from_rsa_components(field("n")?, field("e")?).ok()?;
            (Algorithm::RS256, key)
        }
        ("EC", Some("P-256")) => {
            if decoded_len("x")? != 32 || decoded_len("y")? != 32 {
                return None;
            }
            let key = DecodingKey::from_ec_components(field("x")?, field("y")?).ok()?;
            (Algorithm::ES256, key)
        }
        ("OKP", Some("Ed25519")) => {
            if decoded_len("x")? != 32 {
                return None;
            }
            (
                Algorithm::EdDSA,
                DecodingKey::from_ed_components(field("x")?).ok()?,
            )
        }
        _ => return None,
    };
    let alg_name = match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "EdDSA",
    };
    if field("alg").is_some_and(|a| a != alg_name) {
        return None;
    }
    Some((kid, VerifyKey { alg, key }))
}

#[cfg(test)]
mod test {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Setup {
        _dir: tempdir::Dir,
        verifier: AdminVerifier,
    }

    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        pub(super) fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "kms-admin-unit-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    fn setup(tag: &str) -> (Setup, Ed25519KeyPair, EcdsaKeyPair) {
        let rng = SystemRandom::new();
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref()).unwrap();
        let ec_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_doc.as_ref(), &rng)
            .unwrap();
        let point = ec.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        ]});
        let dir = tempdir::new(tag);
        let path = dir.0.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let verifier = AdminVerifier::new(AdminAuthConfig::new(
            &path,
            "iss",
            "kms",
            "roles",
            "kms-admin",
        ))
        .unwrap();
        (
            Setup {
                _dir: dir,
                verifier,
            },
            ed,
            ec,
        )
    }

    fn unsigned(header: &Value, claims: &Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes()),
            b64(sig)
        )
    }

    fn good_claims() -> Value {
        let now = unix_now();
        serde_json::json!({"iss": "iss", "aud": "kms", "sub": "alice", "exp": now + 60,
            "auth_time": now, "roles": ["kms-admin"]})
    }

    fn rejection(s: &Setup, token: &str) -> Rejection {
        match s.verifier.check(token, unix_now()) {
            Err(Failure::Unauthenticated(r)) => r,
            Err(Failure::Other(e)) => panic!("expected a rejection, got {e}"),
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    #[test]
    fn own_checks_fire_before_the_library() {
        let (s, ed, _ec) = setup("own");
        let claims = good_claims();
        let none = unsigned(
            &serde_json::json!({"alg": "none", "kid": "ed"}),
            &claims,
            b"x",
        );
        assert_eq!(rejection(&s, &none), Rejection::Algorithm);
        let hs = unsigned(
            &serde_json::json!({"alg": "HS256", "kid": "ed"}),
            &claims,
            b"x",
        );
        assert_eq!(rejection(&s, &hs), Rejection::Algorithm);
        let rs_on_ec = unsigned(
            &serde_json::json!({"alg": "RS256", "kid": "ec"}),
            &claims,
            b"x",
        );
        assert_eq!(rejection(&s, &rs_on_ec), Rejection::KeyMismatch);
        let es_on_ed = unsigned(
            &serde_json::json!({"alg": "ES256", "kid": "ed"}),
            &claims,
            b"x",
        );
        assert_eq!(rejection(&s, &es_on_ed), Rejection::KeyMismatch);
        let no_kid = unsigned(&serde_json::json!({"alg": "EdDSA"}), &claims, b"x");
        assert_eq!(rejection(&s, &no_kid), Rejection::MissingKid);
        let crit = unsigned(
            &serde_json::json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"]}),
            &claims,
            b"x",
        );
        assert_eq!(rejection(&s, &crit), Rejection::Crit);
        assert_eq!(rejection(&s, "a.b"), Rejection::Malformed);
        assert_eq!(rejection(&s, "a.b.c.d"), Rejection::Malformed);
        assert_eq!(
            rejection(&s, &"a".repeat(MAX_TOKEN_LEN + 1)),
            Rejection::TooLong
        );

        // A correctly signed EdDSA token passes.
        let header = serde_json::json!({"alg": "EdDSA", "kid": "ed"});
        let msg = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let token = format!("{msg}.{}", b64(ed.sign(msg.as_bytes()).as_ref()));
        assert_eq!(s.verifier.verify(&token).unwrap().sub, "alice");
    }

    #[test]
    fn auth_time_bounds_use_leeway() {
        let (s, ed, _ec) = setup("leeway");
        let now = unix_now();
        let sign = |auth_time: i64| {
            let mut claims = good_claims();
            claims["auth_time"] = auth_time.into();
            let header = serde_json::json!({"alg": "EdDSA", "kid": "ed"});
            let msg = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            format!("{msg}.{}", b64(ed.sign(msg.as_bytes()).as_ref()))
        };
        assert!(s.verifier.verify_at(&sign(now + 30), now).is_ok());
        assert_eq!(
            rejection(&s, &sign(now + 31 + 5)),
            Rejection::FutureAuthTime
        );
        assert!(s.verifier.verify_at(&sign(now - 330), now).is_ok());
        assert!(matches!(
            s.verifier.verify_at(&sign(now - 331), now),
            Err(AuthError::PermissionDenied { .. })
        ));
    }

    #[test]
    fn config_validation() {
        let base = AdminAuthConfig::new("/nonexistent", "iss", "kms", "roles", "admin");
        assert!(base.validate().is_ok());
        let mut c = base.clone();
        c.leeway_secs = 61;
        assert!(
            matches!(c.validate(), Err(AuthError::Config { setting, .. }) if setting == "admin.leeway_secs")
        );
        let mut c = base.clone();
        c.max_auth_age_secs = 0;
        assert!(
            matches!(c.validate(), Err(AuthError::Config { setting, .. }) if setting == "admin.max_auth_age_secs")
        );
        let mut c = base.clone();
        c.role_claim = "sub".into();
        assert!(
            matches!(c.validate(), Err(AuthError::Config { setting, .. }) if setting == "admin.role_claim")
        );
        let mut c = base;
        c.audience = String::new();
        assert!(c.validate().is_err());
        assert!(matches!(
            AdminVerifier::new(AdminAuthConfig::new("/nonexistent", "i", "a", "r", "v")),
            Err(AuthError::Config { .. })
        ));
    }
}
