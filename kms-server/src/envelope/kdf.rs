//! Tenant key derivation (SPEC §3): HKDF-SHA256 from a root key and a per-version salt.

use std::fmt;

use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::labels;
use crate::keys::{KeyVersion, TenantId};
use crate::root::RootKey;

/// Length of a tenant key version's salt (SPEC §3: exactly 32 bytes).
pub const SALT_LEN: usize = 32;
/// Length of the AES-256-GCM-SIV key.
pub const ENC_KEY_LEN: usize = 32;
/// Length of the HMAC-SHA256 commitment key.
pub const COMMIT_KEY_LEN: usize = 32;

/// The salt of one tenant key version: a key share, 32 bytes from the OS CSPRNG.
/// Never returned by an RPC, logged or exported; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Salt(Box<[u8; SALT_LEN]>);

/// A salt read back with the wrong length: the store is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("salt is {0} bytes, expected 32: key material is corrupt")]
pub struct SaltLengthError(pub usize);

impl Salt {
    /// A fresh salt from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut salt = Box::new([0u8; SALT_LEN]);
        OsRng.fill_bytes(salt.as_mut_slice());
        Self(salt)
    }

    /// A salt read back from storage; any length but 32 is corruption.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SaltLengthError> {
        let mut salt = Box::new([0u8; SALT_LEN]);
        if bytes.len() != SALT_LEN {
            return Err(SaltLengthError(bytes.len()));
        }
        salt.copy_from_slice(bytes);
        Ok(Self(salt))
    }

    /// The salt's bytes, for storing. Callers must not log or return them.
    pub fn expose(&self) -> &[u8; SALT_LEN] {
        &self.0
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Salt").finish_non_exhaustive()
    }
}

/// The two keys of one tenant key version: `enc_key` (AES-256-GCM-SIV) and `commit_key`
/// (HMAC-SHA256). Boxed so moves leave no copies; zeroized on drop; `Debug` redacted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TenantKeys(Box<[u8; ENC_KEY_LEN + COMMIT_KEY_LEN]>);

impl TenantKeys {
    /// Derives the keys of `tenant`'s `version` (SPEC §3):
    ///
    /// ```text
    /// prk = HKDF-Extract(salt, root_key)
    /// okm = HKDF-Expand(prk, "hygo-kms/v1/tenant-key" || u16be(len(tenant)) || tenant
    ///                        || u32be(version), 64)
    /// ```
    pub fn derive(root: &RootKey, salt: &Salt, tenant: &TenantId, version: KeyVersion) -> Self {
        let tenant = tenant.as_str().as_bytes();
        // A TenantId is at most 128 bytes, so the length always fits a u16.
        let tenant_len = u16::try_from(tenant.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes();
        let version = version.get().to_be_bytes();
        let mut okm = Box::new([0u8; ENC_KEY_LEN + COMMIT_KEY_LEN]);
        expand(
            root.expose(),
            salt.expose(),
            &[labels::TENANT_KEY_INFO, &tenant_len, tenant, &version],
            okm.as_mut_slice(),
        );
        Self(okm)
    }

    /// The AES-256-GCM-SIV key.
    pub(crate) fn enc_key(&self) -> &[u8] {
        self.0.get(..ENC_KEY_LEN).unwrap_or_default()
    }

    /// The HMAC-SHA256 commitment key.
    pub(crate) fn commit_key(&self) -> &[u8] {
        self.0.get(ENC_KEY_LEN..).unwrap_or_default()
    }

    /// Keys from raw bytes, for known-answer tests of the layers above.
    #[cfg(test)]
    #[allow(
        dead_code,
        reason = "for the service layer's tests, not yet on this branch"
    )]
    pub(crate) fn from_okm(okm: [u8; 64]) -> Self {
        Self(Box::new(okm))
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys").finish_non_exhaustive()
    }
}

/// The generic HKDF-SHA256 layer the derivation uses: Extract with `salt`, then Expand
/// with the concatenation of `info` parts into `okm`. Panics never: `okm` is at most
/// 255 * 32 bytes for every caller (checked by the tests against RFC 5869 and
/// Wycheproof through [`hkdf_sha256`]).
fn expand(ikm: &[u8], salt: &[u8], info: &[&[u8]], okm: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    if hk.expand_multi_info(info, okm).is_err() {
        // Unreachable for the fixed 64-byte output; never hand out partial output.
        okm.zeroize();
    }
}

/// HKDF-SHA256 (RFC 5869) as the derivation uses it, exposed for the conformance tests.
/// Returns `None` when `len` exceeds 255 * 32. The output is zeroized on drop.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], len: usize) -> Option<Zeroizing<Vec<u8>>> {
    let mut okm = Zeroizing::new(vec![0u8; len]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .ok()?;
    Some(okm)
}
