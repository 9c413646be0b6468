//! Root keys and the namespaces they are loaded from (SPEC §3).
//!
//! A root key is 32 random bytes with an id `[a-z0-9-]{1,32}`. Root keys live only in a
//! secret namespace kept apart from the database and configuration: a directory of
//! `<id>.key` files ([`DirSource`]) or `HYGO_KMS_ROOT_KEY_<ID>` environment variables
//! ([`EnvSource`]). Both hold the key as 64 lowercase hex characters with an optional
//! final LF. Every error names the file or variable, never the key.

mod dir;
mod env;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use dir::{DirSource, write_new_key_file};
pub use env::{ENV_PREFIX, EnvSource};

use crate::envelope::labels;
use crate::limits::MAX_ROOT_KEY_ID_LEN;

/// Length of a root key.
pub const ROOT_KEY_LEN: usize = 32;
/// Length of a root key check value (SPEC §3).
pub const KCV_LEN: usize = 16;

/// The id of a root key: `[a-z0-9-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootKeyId(String);

impl RootKeyId {
    /// Validates a root key id.
    pub fn new(id: impl Into<String>) -> Result<Self, RootKeyError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_ROOT_KEY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(id))
        } else {
            Err(RootKeyError::InvalidId { id })
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RootKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A root key: boxed so moves leave no copies, zeroized on drop, `Debug` shows the id
/// only. Deliberately not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootKey {
    #[zeroize(skip)]
    id: RootKeyId,
    key: Box<[u8; ROOT_KEY_LEN]>,
}

impl RootKey {
    /// A new root key from the OS CSPRNG.
    pub fn generate(id: RootKeyId) -> Self {
        let mut key = Box::new([0u8; ROOT_KEY_LEN]);
        OsRng.fill_bytes(key.as_mut_slice());
        Self { id, key }
    }

    /// Parses the namespace encoding: exactly 64 lowercase hex characters, optionally
    /// followed by one LF. `origin` (a file or variable name) is used in errors.
    pub fn from_hex(id: RootKeyId, text: &[u8], origin: &str) -> Result<Self, RootKeyError> {
        let hex = text.strip_suffix(b"\n").unwrap_or(text);
        let mut key = Box::new([0u8; ROOT_KEY_LEN]);
        if hex.len() != 2 * ROOT_KEY_LEN {
            return Err(RootKeyError::Malformed {
                origin: origin.to_owned(),
                reason: "expected 64 lowercase hex characters and an optional final newline",
            });
        }
        // base16ct decodes in constant time and accepts lowercase only.
        if base16ct::lower::decode(hex, key.as_mut_slice()).is_err() {
            key.zeroize();
            return Err(RootKeyError::Malformed {
                origin: origin.to_owned(),
                reason: "not lowercase hex",
            });
        }
        Ok(Self { id, key })
    }

    /// The namespace encoding: 64 lowercase hex characters and a LF. Zeroized on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(base16ct::lower::encode_string(self.key.as_slice()));
        out.push('\n');
        out
    }

    /// The key's id.
    pub fn id(&self) -> &RootKeyId {
        &self.id
    }

    /// The check value stored in the database to refuse a wrong or swapped key:
    /// `HMAC-SHA256(root_key, "hygo-kms/v1/root-key-check")[0..16]`.
    pub fn check_value(&self) -> [u8; KCV_LEN] {
        let mac = self.mac(labels::ROOT_KEY_CHECK);
        let mut kcv = [0u8; KCV_LEN];
        kcv.copy_from_slice(mac.get(..KCV_LEN).unwrap_or_default());
        kcv
    }

    /// `HMAC-SHA256(root_key, msg)`.
    fn mac(&self, msg: &[u8]) -> Zeroizing<[u8; 32]> {
        // HMAC accepts keys of any length: new_from_slice cannot fail here.
        let mut out = Zeroizing::new([0u8; 32]);
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_slice()) {
            mac.update(msg);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// The raw key, for derivation. Never log, return or store it.
    pub(crate) fn expose(&self) -> &[u8; ROOT_KEY_LEN] {
        &self.key
    }

    /// A root key from raw bytes (known-answer tests).
    #[doc(hidden)]
    pub fn from_bytes(id: RootKeyId, bytes: [u8; ROOT_KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = Box::new(bytes);
        bytes.zeroize();
        Self { id, key }
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why root keys could not be loaded. Every variant names the file, variable or id at
/// fault and never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootKeyError {
    /// An id outside `[a-z0-9-]{1,32}`.
    #[error("invalid root key id {id:?}: expected 1..=32 characters of [a-z0-9-]")]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// The namespace does not exist or cannot be read.
    #[error("root key namespace {origin}: {source}")]
    Unreadable {
        /// The directory or file.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The namespace holds no key.
    #[error("root key namespace {origin} holds no root key")]
    Empty {
        /// The directory, or the environment prefix.
        origin: String,
    },
    /// A key file or variable is not in the namespace format.
    #[error("root key {origin} is malformed: {reason}")]
    Malformed {
        /// The file or variable.
        origin: String,
        /// What is wrong (never the content).
        reason: &'static str,
    },
    /// A key file is readable or writable by group or others.
    #[error(
        "root key file {path} has mode {mode:o}; group and other permission bits must be clear (chmod 0600 or 0400)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits (of the symlink's target).
        mode: u32,
    },
    /// Two keys with one id.
    #[error("root key id {id} appears more than once in the namespace")]
    DuplicateId {
        /// The repeated id.
        id: RootKeyId,
    },
    /// More than one key and no primary configured.
    #[error("the root key namespace holds {count} keys: the configuration must name the primary")]
    PrimaryRequired {
        /// Keys found.
        count: usize,
    },
    /// The configured primary is not in the namespace.
    #[error("the configured primary root key {id} is not in the namespace")]
    PrimaryMissing {
        /// The configured id.
        id: RootKeyId,
    },
    /// A key file to be generated already exists.
    #[error("root key file {path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

/// A namespace of root keys. Implementations read their keys on `load` and keep no copy.
pub trait RootKeySource: Send + Sync + fmt::Debug {
    /// Loads every root key of the namespace, refusing a missing, empty or malformed one.
    fn load(&self) -> Result<Vec<RootKey>, RootKeyError>;
}

/// The loaded root keys, one of them primary.
#[derive(Debug)]
pub struct RootKeyRing {
    primary: RootKey,
    others: BTreeMap<RootKeyId, RootKey>,
}

impl RootKeyRing {
    /// Checks the keys of a namespace: at least one, unique ids, and a primary — the
    /// configured one, which must be present, or the only key.
    pub fn new(keys: Vec<RootKey>, primary: Option<RootKeyId>) -> Result<Self, RootKeyError> {
        let count = keys.len();
        let mut others = BTreeMap::new();
        for key in keys {
            if others.contains_key(key.id()) {
                return Err(RootKeyError::DuplicateId {
                    id: key.id().clone(),
                });
            }
            others.insert(key.id().clone(), key);
        }
        let primary_id = match primary {
            Some(id) => id,
            None if count > 1 => return Err(RootKeyError::PrimaryRequired { count }),
            None => match others.keys().next() {
                Some(only) => only.clone(),
                None => {
                    return Err(RootKeyError::Empty {
                        origin: "the root key namespace".to_owned(),
                    });
                }
            },
        };
        let Some(primary) = others.remove(&primary_id) else {
            return Err(RootKeyError::PrimaryMissing { id: primary_id });
        };
        Ok(Self { primary, others })
    }

    /// Loads `source` and builds the ring.
    pub fn load(
        source: &dyn RootKeySource,
        primary: Option<RootKeyId>,
    ) -> Result<Self, RootKeyError> {
        Self::new(source.load()?, primary)
    }

    /// The primary root key: new tenant key versions are derived from it.
    pub fn primary(&self) -> &RootKey {
        &self.primary
    }

    /// The root key with `id`, if loaded.
    pub fn get(&self, id: &RootKeyId) -> Option<&RootKey> {
        if self.primary.id() == id {
            Some(&self.primary)
        } else {
            self.others.get(id)
        }
    }

    /// Every loaded key, the primary first.
    pub fn iter(&self) -> impl Iterator<Item = &RootKey> {
        std::iter::once(&self.primary).chain(self.others.values())
    }
}
