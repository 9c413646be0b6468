//! Typed domain values: tenant ids, key versions and encryption contexts.
//!
//! Each type validates its SPEC §4 limits on construction, so a value of the type is
//! proof that the limit was checked before any cryptography or storage work.

use std::collections::BTreeMap;
use std::fmt;

use crate::limits::{
    MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_PAIRS, MAX_CONTEXT_VALUE_LEN, MAX_TENANT_ID_LEN,
    RESERVED_CONTEXT_PREFIX, is_name_byte,
};

/// Why a tenant id, key version or context was refused. Messages name the field and the
/// rule, never the value of a context entry (values may be sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The tenant id is empty, longer than 128 bytes or has a character outside
    /// `[A-Za-z0-9._:-]`.
    #[error("tenant_id must be 1..=128 characters of [A-Za-z0-9._:-]")]
    TenantId,
    /// Key versions start at 1.
    #[error("key version must be at least 1")]
    KeyVersion,
    /// More context pairs than allowed.
    #[error("context has {count} pairs; at most {max} are allowed")]
    TooManyPairs {
        /// Pairs sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A context key is empty, too long or has a character outside `[A-Za-z0-9._:-]`.
    #[error("context key must be 1..=64 characters of [A-Za-z0-9._:-]")]
    ContextKey,
    /// A context key uses the reserved `kms.` prefix.
    #[error("context key {key:?} uses the reserved prefix \"kms.\"")]
    ReservedContextKey {
        /// The offending key (keys are names, not secrets).
        key: String,
    },
    /// A context value is longer than allowed.
    #[error("context value for key {key:?} is {len} bytes; at most {max} are allowed")]
    ContextValueTooLong {
        /// The key whose value is too long.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The same context key was given twice.
    #[error("context key {key:?} appears more than once")]
    DuplicateContextKey {
        /// The repeated key.
        key: String,
    },
}

/// A tenant (merchant) id: `[A-Za-z0-9._:-]{1,128}` (SPEC §4).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if is_valid_name(&id, MAX_TENANT_ID_LEN) {
            Ok(Self(id))
        } else {
            Err(InvalidInput::TenantId)
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TenantId").field(&self.0).finish()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// True when `s` is 1..=`max` bytes of `[A-Za-z0-9._:-]`.
pub(crate) fn is_valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(is_name_byte)
}

/// A tenant key version: 1, 2, ... up to `u32::MAX` (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(u32);

impl KeyVersion {
    /// The first version of every tenant.
    pub const FIRST: Self = Self(1);

    /// Validates a version number (≥ 1).
    pub fn new(v: u32) -> Result<Self, InvalidInput> {
        if v >= 1 {
            Ok(Self(v))
        } else {
            Err(InvalidInput::KeyVersion)
        }
    }

    /// The version number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The version after this one, or `None` past `u32::MAX`.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An encryption context: string pairs bound into every envelope (SPEC §3, §4).
///
/// Keys are unique and kept in memcmp order (Rust's `String` ordering is bytewise), which
/// is exactly the canonical order of SPEC §3. Strings are kept byte-exact: no Unicode
/// normalisation, case folding or trimming.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Context(BTreeMap<String, String>);

impl Context {
    /// The empty context.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates a context sent by a caller: at most 16 pairs, keys
    /// `[A-Za-z0-9._:-]{1,64}` without the reserved `kms.` prefix, values at most 512
    /// bytes, no key twice.
    pub fn from_caller<I, K, V>(pairs: I) -> Result<Self, InvalidInput>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::build(pairs, false)
    }

    /// Builds a context the KMS itself uses (e.g. `kms.vendor`, `kms.name` for stored
    /// secrets): the same limits as [`Context::from_caller`], but `kms.` keys allowed.
    pub fn internal<I, K, V>(pairs: I) -> Result<Self, InvalidInput>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::build(pairs, true)
    }

    fn build<I, K, V>(pairs: I, allow_reserved: bool) -> Result<Self, InvalidInput>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (count, (k, v)) in pairs.into_iter().enumerate() {
            if count >= MAX_CONTEXT_PAIRS {
                return Err(InvalidInput::TooManyPairs {
                    count: count + 1,
                    max: MAX_CONTEXT_PAIRS,
                });
            }
            let (k, v) = (k.into(), v.into());
            if !is_valid_name(&k, MAX_CONTEXT_KEY_LEN) {
                return Err(InvalidInput::ContextKey);
            }
            if !allow_reserved && k.starts_with(RESERVED_CONTEXT_PREFIX) {
                return Err(InvalidInput::ReservedContextKey { key: k });
            }
            if v.len() > MAX_CONTEXT_VALUE_LEN {
                return Err(InvalidInput::ContextValueTooLong {
                    key: k,
                    len: v.len(),
                    max: MAX_CONTEXT_VALUE_LEN,
                });
            }
            if map.contains_key(&k) {
                return Err(InvalidInput::DuplicateContextKey { key: k });
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// The pairs in canonical (memcmp) order of keys.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty context.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Context values may carry business data: `Debug` shows keys only.
impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(TenantId::new("acme-shop.eu:1_x").is_ok());
        assert!(TenantId::new("a".repeat(128)).is_ok());
        for bad in ["", "a b", "ä", "a/b", "x\0"] {
            assert_eq!(TenantId::new(bad), Err(InvalidInput::TenantId), "{bad:?}");
        }
        assert_eq!(TenantId::new("a".repeat(129)), Err(InvalidInput::TenantId));
    }

    #[test]
    fn key_versions() {
        assert_eq!(KeyVersion::new(0), Err(InvalidInput::KeyVersion));
        assert_eq!(KeyVersion::new(u32::MAX).map(KeyVersion::next), Ok(None));
        assert_eq!(KeyVersion::FIRST.next(), KeyVersion::new(2).ok());
    }

    #[test]
    fn context_limits() {
        let pairs = |n: usize| (0..n).map(|i| (format!("k{i}"), String::new()));
        assert!(Context::from_caller(pairs(16)).is_ok());
        assert_eq!(
            Context::from_caller(pairs(17)),
            Err(InvalidInput::TooManyPairs { count: 17, max: 16 })
        );
        assert!(Context::from_caller([("k".repeat(64), "")]).is_ok());
        assert_eq!(
            Context::from_caller([("k".repeat(65), "")]),
            Err(InvalidInput::ContextKey)
        );
        assert_eq!(
            Context::from_caller([("", "")]),
            Err(InvalidInput::ContextKey)
        );
        assert_eq!(
            Context::from_caller([("vendor name", "")]),
            Err(InvalidInput::ContextKey)
        );
        assert!(Context::from_caller([("k", "é".repeat(256))]).is_ok());
        assert!(matches!(
            Context::from_caller([("k", "v".repeat(513))]),
            Err(InvalidInput::ContextValueTooLong { len: 513, .. })
        ));
        assert!(matches!(
            Context::from_caller([("kms.vendor", "x")]),
            Err(InvalidInput::ReservedContextKey { .. })
        ));
        assert!(Context::internal([("kms.vendor", "x")]).is_ok());
        assert!(matches!(
            Context::from_caller([("a", "1"), ("a", "2")]),
            Err(InvalidInput::DuplicateContextKey { .. })
        ));
    }

    #[test]
    fn context_debug_hides_values() {
        let c = Context::from_caller([("vendor", "s3cr3t-value")]).unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("vendor") && !dbg.contains("s3cr3t"), "{dbg}");
    }
}
