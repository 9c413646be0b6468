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
pub struct TenantKeys {
    enc: Box<[u8; ENC_KEY_LEN]>,
    commit: Box<[u8; COMMIT_KEY_LEN]>,
}

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
        let mut okm = Zeroizing::new([0u8; ENC_KEY_LEN + COMMIT_KEY_LEN]);
        let info: [&[u8]; 4] = [labels::TENANT_KEY_INFO, &tenant_len, tenant, &version];
        // 64 bytes is far below HKDF's limit: this cannot fail (and zeroes okm if it did).
        let _ = hkdf_sha256(root.expose(), salt.expose(), &info, okm.as_mut_slice());
        Self::from_okm(&okm)
    }

    /// Splits the 64 bytes of HKDF output: `enc_key = okm[0..32]`,
    /// `commit_key = okm[32..64]`.
    fn from_okm(okm: &[u8; ENC_KEY_LEN + COMMIT_KEY_LEN]) -> Self {
        let (enc_bytes, commit_bytes) = okm.split_at(ENC_KEY_LEN);
        let mut keys = Self {
            enc: Box::new([0u8; ENC_KEY_LEN]),
            commit: Box::new([0u8; COMMIT_KEY_LEN]),
        };
        keys.enc.copy_from_slice(enc_bytes);
        keys.commit.copy_from_slice(commit_bytes);
        keys
    }

    /// The AES-256-GCM-SIV key.
    pub(crate) fn enc_key(&self) -> &[u8; ENC_KEY_LEN] {
        &self.enc
    }

    /// The HMAC-SHA256 commitment key.
    pub(crate) fn commit_key(&self) -> &[u8; COMMIT_KEY_LEN] {
        &self.commit
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys").finish_non_exhaustive()
    }
}

/// HKDF-SHA256 (RFC 5869): Extract with `salt` and `ikm`, then Expand with the
/// concatenation of the `info` parts into `okm`. The one HKDF layer the derivation
/// uses; RFC 5869 and Wycheproof vectors run through it. On error (`okm` longer than
/// 255 * 32 bytes) `okm` is zeroed, never partially filled.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[&[u8]],
    okm: &mut [u8],
) -> Result<(), OutputTooLong> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand_multi_info(info, okm).map_err(|_| {
        okm.zeroize();
        OutputTooLong(okm.len())
    })
}

/// HKDF-SHA256 cannot produce more than 255 * 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HKDF-SHA256 output of {0} bytes exceeds 8160")]
pub struct OutputTooLong(pub usize);
