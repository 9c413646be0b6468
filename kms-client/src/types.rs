//! The request and result types of [`crate::KmsClient`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use zeroize::Zeroizing;

/// An encryption context: `key=value` pairs bound to an envelope (e.g. `vendor=shopify`);
/// unwrapping needs the same pairs. Not secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(BTreeMap<String, String>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair (builder style), replacing an earlier value of the same key.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Adds a pair; returns the previous value of the key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// The pairs, ordered by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub(crate) fn to_proto(&self) -> HashMap<String, String> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Context {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Context {
    fn from(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }
}

/// An envelope and the key version that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The envelope (docs/ENVELOPE.md); safe to store.
    pub ciphertext: Vec<u8>,
    /// The tenant key version that sealed it.
    pub key_version: u32,
}

/// An opened envelope. The plaintext is zeroized on drop; `Debug` redacts it.
pub struct Unwrapped {
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key version that had sealed it.
    pub key_version: u32,
}

impl fmt::Debug for Unwrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unwrapped")
            .field(
                "plaintext",
                &format_args!("[{} bytes redacted]", self.plaintext.len()),
            )
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// A fresh data key: in the clear (zeroized on drop) and wrapped.
pub struct DataKey {
    /// The key, for local encryption. `Debug` redacts it.
    pub plaintext_key: Zeroizing<Vec<u8>>,
    /// The key wrapped under the tenant's key; `Unwrap` with the same context opens it.
    pub ciphertext: Vec<u8>,
    /// The tenant key version.
    pub key_version: u32,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field(
                "plaintext_key",
                &format_args!("[{} bytes redacted]", self.plaintext_key.len()),
            )
            .field("ciphertext_len", &self.ciphertext.len())
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// One item of [`crate::KmsClient::batch_wrap`]. `Debug` redacts the plaintext.
#[derive(Clone, Copy)]
pub struct WrapItem<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The context.
    pub context: &'a Context,
    /// The plaintext.
    pub plaintext: &'a [u8],
}

impl fmt::Debug for WrapItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapItem")
            .field("tenant", &self.tenant)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// One item of [`crate::KmsClient::batch_unwrap`].
#[derive(Debug, Clone, Copy)]
pub struct UnwrapItem<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The context used to wrap.
    pub context: &'a Context,
    /// The envelope.
    pub ciphertext: &'a [u8],
}

/// Options of [`crate::KmsClient::put_secret`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutSecretOptions {
    /// Non-secret labels (at most 16 pairs, like context pairs).
    pub labels: BTreeMap<String, String>,
    /// Compare-and-swap: FAILED_PRECONDITION unless the current revision is this one
    /// (0: the secret must not exist yet).
    pub expected_revision: Option<u64>,
}

/// What [`crate::KmsClient::put_secret`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRevision {
    /// The new revision.
    pub revision: u64,
    /// The key version that sealed the value.
    pub key_version: u32,
}

/// A stored secret's metadata (never its value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMetadata {
    /// The vendor.
    pub vendor: String,
    /// The name.
    pub name: String,
    /// The revision.
    pub revision: u64,
    /// The key version that sealed the value.
    pub key_version: u32,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub updated_at_ms: i64,
}

impl From<kms_proto::v1::SecretMetadata> for SecretMetadata {
    fn from(m: kms_proto::v1::SecretMetadata) -> Self {
        Self {
            vendor: m.vendor,
            name: m.name,
            revision: m.revision,
            key_version: m.key_version,
            labels: m.labels.into_iter().collect(),
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.updated_at_ms,
        }
    }
}

/// A stored secret: its value (zeroized on drop, redacted in `Debug`) and metadata.
pub struct Secret {
    /// The value.
    pub value: Zeroizing<Vec<u8>>,
    /// The metadata.
    pub metadata: SecretMetadata,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field(
                "value",
                &format_args!("[{} bytes redacted]", self.value.len()),
            )
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// One page of [`crate::KmsClient::list_secrets`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPage {
    /// The secrets' metadata.
    pub secrets: Vec<SecretMetadata>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// One page of [`crate::AdminClient::list_tenants`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantPage {
    /// The tenants.
    pub tenants: Vec<kms_proto::v1::TenantSummary>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

pub(crate) fn page_token(token: String) -> Option<String> {
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_plaintext() {
        let unwrapped = Unwrapped {
            plaintext: Zeroizing::new(b"shpat_secret".to_vec()),
            key_version: 2,
        };
        let text = format!("{unwrapped:?}");
        assert!(!text.contains("115") && !text.contains("shpat"), "{text}");
        assert!(text.contains("12 bytes redacted"));
        let key = DataKey {
            plaintext_key: Zeroizing::new(vec![7; 32]),
            ciphertext: vec![1, 2],
            key_version: 1,
        };
        assert!(!format!("{key:?}").contains("7, 7"));
        let context = Context::from([("vendor", "shopify")]);
        let item = WrapItem {
            tenant: "t1",
            context: &context,
            plaintext: b"shpat_secret",
        };
        assert!(!format!("{item:?}").contains("shpat"));
        let secret = Secret {
            value: Zeroizing::new(b"shpat_secret".to_vec()),
            metadata: SecretMetadata::default(),
        };
        assert!(!format!("{secret:?}").contains("shpat"));
    }

    #[test]
    fn context_builders() {
        let a = Context::new().with("vendor", "shopify").with("shop", "x");
        let b: Context = [("shop", "x"), ("vendor", "shopify")].into();
        assert_eq!(a, b);
        assert_eq!(a.to_proto().len(), 2);
    }
}
