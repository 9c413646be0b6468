//! Service credentials and the per-service policy (SPEC §5, THREATS 11).
//!
//! A credential is `hkms_<id>_<secret>`: `id` matches `[a-z0-9-]{1,32}`, `secret` is 32
//! bytes from the OS CSPRNG as 43 characters of unpadded base64url. The policy stores only
//! SHA-256 of the whole credential string (a high-entropy token needs no slow hash), at
//! most two per service so credentials can be rotated. A request's credential is looked
//! up by id and its hash compared with every configured hash of that id in constant time.
//! A malformed credential, an unknown id and a wrong secret are one error,
//! [`AuthError::Unauthenticated`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use super::{AuthError, Permission};
use crate::keys::{Context, TenantId, is_valid_name};
use crate::limits::{MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_VALUE_LEN, RESERVED_CONTEXT_PREFIX};

/// Every service credential starts with this.
pub const CREDENTIAL_PREFIX: &str = "hkms_";
/// Longest service id (SPEC §5: `[a-z0-9-]{1,32}`).
pub const MAX_SERVICE_ID_LEN: usize = 32;
/// Random bytes in a credential's secret (SPEC §5).
pub const SECRET_LEN: usize = 32;
/// Characters of the secret: 32 bytes as unpadded base64url (SPEC §5).
pub const SECRET_ENCODED_LEN: usize = 43;
/// Hashes a service may have at once: the current credential and the one being rotated
/// in or out (SPEC §5).
pub const MAX_CREDENTIAL_HASHES: usize = 2;
/// The context key that secret-store calls are checked against (their `vendor` field).
pub const VENDOR_KEY: &str = "vendor";

/// A service id: `[a-z0-9-]{1,32}` (SPEC §5). Not secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId(String);

impl ServiceId {
    /// Validates a service id.
    pub fn new(id: impl Into<String>) -> Result<Self, AuthError> {
        let id = id.into();
        if is_service_id(&id) {
            Ok(Self(id))
        } else {
            Err(AuthError::config(
                "id",
                "service id must be 1..=32 characters of [a-z0-9-]",
            ))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServiceId").field(&self.0).finish()
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_service_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SERVICE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// SHA-256 of a whole credential string: what the policy stores (lowercase hex in the
/// configuration). Compared only in constant time.
#[derive(Clone)]
pub struct CredentialHash([u8; 32]);

impl CredentialHash {
    /// SHA-256 of `credential`.
    pub fn of(credential: &str) -> Self {
        Self(Sha256::digest(credential.as_bytes()).into())
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        match base16ct::lower::decode(text, &mut out) {
            Ok(decoded) if decoded.len() == 32 => Some(Self(out)),
            _ => None,
        }
    }

    /// The lowercase hex form used in the configuration.
    pub fn to_hex(&self) -> String {
        base16ct::lower::encode_string(&self.0)
    }

    /// Constant-time equality.
    pub fn ct_matches(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

/// The hash of a high-entropy credential is not secret, but there is no reason to print
/// it either.
impl fmt::Debug for CredentialHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialHash(..)")
    }
}

/// A syntactically valid service credential. Holds the token as a [`SecretString`];
/// `Debug` shows the id only.
pub struct ServiceCredential {
    id: ServiceId,
    token: SecretString,
}

impl ServiceCredential {
    /// Generates a credential for `id` from the OS CSPRNG. Returns the credential (shown
    /// once to the operator, never stored by the KMS) and its hash (for the policy).
    pub fn generate(id: &ServiceId) -> (SecretString, CredentialHash) {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        OsRng.fill_bytes(secret.as_mut());
        let mut token = String::with_capacity(
            CREDENTIAL_PREFIX.len() + id.as_str().len() + 1 + SECRET_ENCODED_LEN,
        );
        token.push_str(CREDENTIAL_PREFIX);
        token.push_str(id.as_str());
        token.push('_');
        URL_SAFE_NO_PAD.encode_string(secret.as_ref(), &mut token);
        let hash = CredentialHash::of(&token);
        (SecretString::from(token), hash)
    }

    /// Parses a credential. Any deviation from the form is
    /// [`AuthError::Unauthenticated`] (the message never echoes the token).
    pub fn parse(token: &str) -> Result<Self, AuthError> {
        let id = split_credential(token).ok_or(AuthError::Unauthenticated)?;
        Ok(Self {
            id: ServiceId(id.to_owned()),
            token: SecretString::from(token.to_owned()),
        })
    }

    /// True when `token` claims to be a service credential (has the `hkms_` prefix),
    /// e.g. to answer PERMISSION_DENIED for a service credential sent to `KeyAdmin`.
    pub fn looks_like(token: &str) -> bool {
        token.starts_with(CREDENTIAL_PREFIX)
    }

    /// The service id.
    pub fn id(&self) -> &ServiceId {
        &self.id
    }

    /// SHA-256 of the whole credential.
    pub fn hash(&self) -> CredentialHash {
        CredentialHash::of(self.token.expose_secret())
    }

    /// The credential itself, e.g. for a client's `authorization` header.
    pub fn expose(&self) -> &str {
        self.token.expose_secret()
    }
}

impl fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCredential")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Checks the form `hkms_<id>_<secret>` and returns the id. The id cannot contain `_`,
/// so the split at the first `_` after the prefix is unambiguous; the secret may contain
/// `_` and `-`.
fn split_credential(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(CREDENTIAL_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if !is_service_id(id) || secret.len() != SECRET_ENCODED_LEN {
        return None;
    }
    // Strict: unpadded base64url alphabet, canonical trailing bits, exactly 32 bytes.
    let mut decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
    let ok = decoded.len() == SECRET_LEN;
    decoded.zeroize();
    ok.then_some(id)
}

/// One service's entry of the configuration file (a TOML `[[services]]` table):
///
/// ```toml
/// [[services]]
/// id = "shopify-adapter"
/// credential_sha256 = ["<64 lowercase hex>"]          # one or two (rotation)
/// permissions = ["wrap", "unwrap", "get_secret", "put_secret"]
/// tenants = ["acme", "globex"]                        # optional; omitted = all tenants
/// context = { vendor = ["shopify"] }                  # optional constraints
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicyConfig {
    /// The service id (`[a-z0-9-]{1,32}`), the `<id>` of its credential.
    pub id: String,
    /// SHA-256 of the whole credential, 64 lowercase hex characters; one, or two while a
    /// credential is rotated.
    pub credential_sha256: Vec<String>,
    /// The methods the service may call.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// The tenants it may act for; `None` (omitted) means all tenants.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// Context constraints: for each key, the values a request must use. A request
    /// without a constrained key is denied. Secret-store calls are checked on their
    /// `vendor` field and denied if any other key is constrained.
    #[serde(default)]
    pub context: BTreeMap<String, Vec<String>>,
}

/// An authenticated service and its policy.
pub struct ServicePrincipal {
    id: ServiceId,
    hashes: Vec<CredentialHash>,
    permissions: BTreeSet<Permission>,
    tenants: Option<BTreeSet<TenantId>>,
    context: BTreeMap<String, BTreeSet<String>>,
}

impl fmt::Debug for ServicePrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePrincipal")
            .field("id", &self.id)
            .field("permissions", &self.permissions)
            .field("tenants", &self.tenants)
            .field("context_keys", &self.context.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ServicePrincipal {
    /// Validates one service's configuration. `setting` prefixes the names in errors
    /// (e.g. `services[2]`).
    pub fn from_config(config: &ServicePolicyConfig, setting: &str) -> Result<Self, AuthError> {
        let id = ServiceId::new(config.id.as_str())
            .map_err(|_| field_err(setting, "id", "must be 1..=32 characters of [a-z0-9-]"))?;
        let count = config.credential_sha256.len();
        if !(1..=MAX_CREDENTIAL_HASHES).contains(&count) {
            return Err(field_err(
                setting,
                "credential_sha256",
                format!("must list 1 or 2 SHA-256 values, not {count}"),
            ));
        }
        let mut hashes = Vec::with_capacity(count);
        for (i, text) in config.credential_sha256.iter().enumerate() {
            let parsed = CredentialHash::from_hex(text).ok_or_else(|| {
                field_err(
                    setting,
                    &format!("credential_sha256[{i}]"),
                    "must be 64 lowercase hex characters",
                )
            })?;
            hashes.push(parsed);
        }
        let permissions = config.permissions.iter().copied().collect();
        let tenants = match &config.tenants {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(field_err(
                    setting,
                    "tenants",
                    "is empty; omit it to allow every tenant",
                ));
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        TenantId::new(t.as_str()).map_err(|e| {
                            field_err(setting, &format!("tenants[{i}]"), e.to_string())
                        })
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?,
            ),
        };
        let mut context = BTreeMap::new();
        for (key, values) in &config.context {
            if !is_valid_name(key, MAX_CONTEXT_KEY_LEN) || key.starts_with(RESERVED_CONTEXT_PREFIX)
            {
                return Err(field_err(
                    setting,
                    "context",
                    format!(
                        "key {key:?} must be 1..=64 characters of [A-Za-z0-9._:-] without the \"kms.\" prefix"
                    ),
                ));
            }
            if values.is_empty() {
                return Err(field_err(
                    setting,
                    &format!("context.{key}"),
                    "lists no value; remove the permission instead of denying every value",
                ));
            }
            if values.iter().any(|v| v.len() > MAX_CONTEXT_VALUE_LEN) {
                return Err(field_err(
                    setting,
                    &format!("context.{key}"),
                    format!("values must be at most {MAX_CONTEXT_VALUE_LEN} bytes"),
                ));
            }
            context.insert(key.clone(), values.iter().cloned().collect());
        }
        Ok(Self {
            id,
            hashes,
            permissions,
            tenants,
            context,
        })
    }

    /// The service id (for logs and the audit).
    pub fn id(&self) -> &ServiceId {
        &self.id
    }

    /// Authorizes a data-plane call (`Wrap`, `Unwrap`, `GenerateDataKey`) on `tenant` with
    /// `context`. Callers apply it to every batch item, to both halves of `Rewrap` (see
    /// [`ServicePrincipal::authorize_rewrap`]) and to `GenerateDataKey*`.
    ///
    /// Every constrained context key must be present with an allowed value (absence is
    /// denied). Secret-store permissions are refused here: use
    /// [`ServicePrincipal::authorize_secret`].
    pub fn authorize(
        &self,
        perm: Permission,
        tenant: &TenantId,
        context: &Context,
    ) -> Result<(), AuthError> {
        if perm.is_secret_store() {
            return Err(AuthError::denied(format!(
                "{perm} is a secret-store permission, checked on the vendor field"
            )));
        }
        self.check_method_and_tenant(perm, tenant)?;
        for (key, allowed) in &self.context {
            match context.get(key) {
                None => {
                    return Err(AuthError::denied(format!(
                        "context key {key:?} is required for this service and missing"
                    )));
                }
                Some(value) if !allowed.contains(value) => {
                    return Err(value_not_allowed(key));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Authorizes `Rewrap`: both `Unwrap` and `Wrap` on the (kept) context.
    pub fn authorize_rewrap(&self, tenant: &TenantId, context: &Context) -> Result<(), AuthError> {
        self.authorize(Permission::Unwrap, tenant, context)?;
        self.authorize(Permission::Wrap, tenant, context)
    }

    /// Authorizes a secret-store call on `tenant` for `vendor` (pass `""` when a
    /// `ListSecrets` request names no vendor: a vendor-constrained service is then denied).
    ///
    /// Allowed when the service has no context constraint, or when its only constraint
    /// is on `vendor` and lists `vendor`; a constraint on any other key denies every
    /// secret-store call. Data-plane permissions are refused here.
    pub fn authorize_secret(
        &self,
        perm: Permission,
        tenant: &TenantId,
        vendor: &str,
    ) -> Result<(), AuthError> {
        if !perm.is_secret_store() {
            return Err(AuthError::denied(format!(
                "{perm} is not a secret-store permission"
            )));
        }
        self.check_method_and_tenant(perm, tenant)?;
        if let Some(other) = self.context.keys().find(|k| k.as_str() != VENDOR_KEY) {
            return Err(AuthError::denied(format!(
                "context key {other:?} is constrained for this service, which denies secret-store calls"
            )));
        }
        match self.context.get(VENDOR_KEY) {
            Some(allowed) if !allowed.contains(vendor) => Err(value_not_allowed(VENDOR_KEY)),
            _ => Ok(()),
        }
    }

    fn check_method_and_tenant(
        &self,
        perm: Permission,
        tenant: &TenantId,
    ) -> Result<(), AuthError> {
        if !self.permissions.contains(&perm) {
            return Err(AuthError::denied(format!(
                "method not allowed: service {:?} lacks permission {perm}",
                self.id.as_str()
            )));
        }
        if let Some(tenants) = &self.tenants {
            if !tenants.contains(tenant) {
                return Err(AuthError::denied(format!(
                    "tenant not allowed for service {:?}",
                    self.id.as_str()
                )));
            }
        }
        Ok(())
    }

    /// True when `presented` matches one of the configured hashes. Every configured hash
    /// is compared, in constant time, with no early exit.
    fn matches(&self, presented: &CredentialHash) -> bool {
        let mut found = Choice::from(0);
        for configured in &self.hashes {
            found |= configured.0.ct_eq(&presented.0);
        }
        bool::from(found)
    }
}

fn value_not_allowed(key: &str) -> AuthError {
    AuthError::denied(format!(
        "value not allowed for context key {key:?} by this service's policy"
    ))
}

fn field_err(prefix: &str, field: &str, reason: impl Into<String>) -> AuthError {
    let setting = if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    };
    AuthError::config(setting, reason)
}

/// All services of the configuration, looked up by id.
#[derive(Debug, Default)]
pub struct ServicePolicy {
    services: HashMap<ServiceId, Arc<ServicePrincipal>>,
}

impl ServicePolicy {
    /// Validates the `[[services]]` entries; errors name the setting
    /// (`services[i].field`). Duplicate ids are refused.
    pub fn from_config(configs: &[ServicePolicyConfig]) -> Result<Self, AuthError> {
        let mut services = HashMap::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let setting = format!("services[{i}]");
            let principal = ServicePrincipal::from_config(config, &setting)?;
            let id = principal.id.clone();
            if services.insert(id, Arc::new(principal)).is_some() {
                return Err(field_err(
                    &setting,
                    "id",
                    format!("duplicate service id {:?}", config.id),
                ));
            }
        }
        Ok(Self { services })
    }

    /// Authenticates a bearer token as a service credential. A malformed credential, an
    /// unknown id and a wrong secret are the same [`AuthError::Unauthenticated`].
    pub fn authenticate(&self, token: &str) -> Result<Arc<ServicePrincipal>, AuthError> {
        // Hash first, so the work does not depend on whether the id exists.
        let presented = CredentialHash::of(token);
        let id = split_credential(token).ok_or(AuthError::Unauthenticated)?;
        let principal = self
            .services
            .get(&ServiceId(id.to_owned()))
            .ok_or(AuthError::Unauthenticated)?;
        if principal.matches(&presented) {
            Ok(Arc::clone(principal))
        } else {
            Err(AuthError::Unauthenticated)
        }
    }

    /// The service with this id, if configured.
    pub fn get(&self, id: &ServiceId) -> Option<&Arc<ServicePrincipal>> {
        self.services.get(id)
    }

    /// Number of configured services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service is configured.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn generated_credentials_parse() {
        let id = ServiceId::new("shopify-adapter").unwrap();
        for _ in 0..64 {
            let (cred, hash) = ServiceCredential::generate(&id);
            let parsed = ServiceCredential::parse(cred.expose_secret()).unwrap();
            assert_eq!(parsed.id(), &id);
            assert!(parsed.hash().ct_matches(&hash));
            assert_eq!(
                cred.expose_secret().len(),
                CREDENTIAL_PREFIX.len() + id.as_str().len() + 1 + SECRET_ENCODED_LEN
            );
            assert_eq!(CredentialHash::from_hex(&hash.to_hex()).unwrap().0, hash.0);
        }
    }

    #[test]
    fn hex_is_strict() {
        assert!(CredentialHash::from_hex(&"ab".repeat(32)).is_some());
        assert!(CredentialHash::from_hex(&"AB".repeat(32)).is_none());
        assert!(CredentialHash::from_hex(&"ab".repeat(31)).is_none());
        assert!(CredentialHash::from_hex(&"ab".repeat(33)).is_none());
        assert!(CredentialHash::from_hex(&"zz".repeat(32)).is_none());
    }
}
