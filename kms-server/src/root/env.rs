//! Root keys in environment variables `HYGO_KMS_ROOT_KEY_<ID>`.

use std::ffi::OsString;

use zeroize::Zeroizing;

use super::{RootKey, RootKeyError, RootKeyId, RootKeySource};

/// Prefix of root key variables; the rest of the name is the id upper-cased, `-` as `_`.
pub const ENV_PREFIX: &str = "HYGO_KMS_ROOT_KEY_";

/// Root keys from environment variables.
///
/// By default the process environment is read; [`EnvSource::from_vars`] takes the
/// variables explicitly (tests, or a supervisor that passes a filtered environment).
#[derive(Clone, Default)]
pub struct EnvSource {
    vars: Option<Vec<(OsString, Zeroizing<Vec<u8>>)>>,
}

impl std::fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSource").finish_non_exhaustive()
    }
}

impl EnvSource {
    /// Reads `HYGO_KMS_ROOT_KEY_*` from the process environment on `load`.
    pub fn process() -> Self {
        Self::default()
    }

    /// Reads keys from the given variables instead of the process environment.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<Vec<u8>>,
    {
        Self {
            vars: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), Zeroizing::new(v.into())))
                    .collect(),
            ),
        }
    }
}

impl RootKeySource for EnvSource {
    fn load(&self) -> Result<Vec<RootKey>, RootKeyError> {
        let vars: Vec<(OsString, Zeroizing<Vec<u8>>)> = match &self.vars {
            Some(vars) => vars.clone(),
            None => std::env::vars_os()
                .map(|(k, v)| (k, Zeroizing::new(v.into_encoded_bytes())))
                .collect(),
        };
        let mut keys = Vec::new();
        for (name, value) in &vars {
            let Some(suffix) = name.to_str().and_then(|n| n.strip_prefix(ENV_PREFIX)) else {
                continue;
            };
            let origin = format!("{ENV_PREFIX}{suffix}");
            let canonical = suffix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !canonical {
                return Err(RootKeyError::Malformed {
                    origin,
                    reason: "the id part of the variable name must be [A-Z0-9_]",
                });
            }
            let id = RootKeyId::new(suffix.to_ascii_lowercase().replace('_', "-"))?;
            keys.push(RootKey::from_hex(id, value, &origin)?);
        }
        if keys.is_empty() {
            return Err(RootKeyError::Empty {
                origin: format!("environment variables {ENV_PREFIX}*"),
            });
        }
        Ok(keys)
    }
}
