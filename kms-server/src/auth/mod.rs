//! Authentication and authorization (SPEC §5).
//!
//! - [`service`]: service credentials `hkms_<id>_<secret>`, the per-service policy
//!   (permissions, tenants, context constraints) and [`service::ServicePrincipal`].
//! - [`admin`]: admin JWTs verified against a JWKS file ([`admin::AdminVerifier`]).
//! - [`dev_idp`]: the development identity provider of `kms-server --dev` / `kms-cli`.
//!
//! Nothing here knows about gRPC: failures are [`AuthError`]s, and the one mapping to
//! `tonic::Status` lives with the service (`Unauthenticated` → UNAUTHENTICATED,
//! `PermissionDenied` → PERMISSION_DENIED, the rest are server-side faults).
//!
//! Messages never contain a token, a credential, a key or a context value.

pub mod admin;
pub mod dev_idp;
pub mod service;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use admin::{AdminAuthConfig, AdminPrincipal, AdminVerifier};
pub use service::{
    CredentialHash, ServiceCredential, ServiceId, ServicePolicy, ServicePolicyConfig,
    ServicePrincipal,
};

/// The fixed message of [`AuthError::Unauthenticated`]: the same for every cause, so it
/// is no oracle and never echoes what was sent.
pub const UNAUTHENTICATED_MESSAGE: &str = "missing or invalid credential";

/// Why a request was not authenticated or not authorized, or why auth configuration was
/// refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential, or one that is malformed, unknown, wrong, expired or fails
    /// verification (UNAUTHENTICATED). One fixed message for every cause.
    #[error("missing or invalid credential")]
    Unauthenticated,
    /// The caller is authenticated but the policy does not allow the call
    /// (PERMISSION_DENIED). `reason` names the rule, never a context value or token.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// The rule that denied the call.
        reason: String,
    },
    /// An auth setting is invalid; refused at start-up (or on reload).
    #[error("invalid auth configuration: {setting}: {reason}")]
    Config {
        /// The setting, e.g. `services[2].credential_sha256`.
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The admin JWKS file could not be read or holds no usable key (a server-side
    /// fault: admin calls fail closed until it is fixed).
    #[error("admin key set {path} unavailable: {reason}")]
    KeySetUnavailable {
        /// The JWKS file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file of the dev identity provider could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Minting a dev admin token failed (bad private key file, signing error).
    #[error("cannot mint admin token: {reason}")]
    Mint {
        /// What went wrong.
        reason: String,
    },
}

impl AuthError {
    pub(crate) fn denied(reason: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: reason.into(),
        }
    }

    pub(crate) fn config(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

/// A data-plane right a service may hold (SPEC §4 `KeyService` methods). Configured as
/// snake_case strings (`"wrap"`, `"generate_data_key"`, ...).
///
/// `BatchWrap`/`BatchUnwrap` need `Wrap`/`Unwrap` for every item; `Rewrap` needs both;
/// `GenerateDataKeyWithoutPlaintext` needs `GenerateDataKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `Wrap`, `BatchWrap`, and the wrap half of `Rewrap`.
    Wrap,
    /// `Unwrap`, `BatchUnwrap`, and the unwrap half of `Rewrap`.
    Unwrap,
    /// `GenerateDataKey` and `GenerateDataKeyWithoutPlaintext`.
    GenerateDataKey,
    /// Secret store: `PutSecret`.
    PutSecret,
    /// Secret store: `GetSecret`.
    GetSecret,
    /// Secret store: `ListSecrets`.
    ListSecrets,
    /// Secret store: `DeleteSecret`.
    DeleteSecret,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 7] = [
        Self::Wrap,
        Self::Unwrap,
        Self::GenerateDataKey,
        Self::PutSecret,
        Self::GetSecret,
        Self::ListSecrets,
        Self::DeleteSecret,
    ];

    /// True for the secret-store permissions (checked with
    /// [`ServicePrincipal::authorize_secret`]).
    pub fn is_secret_store(self) -> bool {
        matches!(
            self,
            Self::PutSecret | Self::GetSecret | Self::ListSecrets | Self::DeleteSecret
        )
    }

    /// The configuration name (`"wrap"`, `"generate_data_key"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::GenerateDataKey => "generate_data_key",
            Self::PutSecret => "put_secret",
            Self::GetSecret => "get_secret",
            Self::ListSecrets => "list_secrets",
            Self::DeleteSecret => "delete_secret",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extracts the token of an `authorization: Bearer <token>` header value (RFC 6750; the
/// scheme is case-insensitive). Anything else is [`AuthError::Unauthenticated`].
pub fn bearer_token(header_value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header_value
        .split_once(' ')
        .ok_or(AuthError::Unauthenticated)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Unauthenticated);
    }
    Ok(token)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn bearer() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        for bad in ["", "abc", "Basic abc", "Bearer ", "Bearer a b", "Bearerabc"] {
            assert!(
                matches!(bearer_token(bad), Err(AuthError::Unauthenticated)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn permission_names_match_serde() {
        for p in Permission::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            let back: Permission = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn unauthenticated_message_is_fixed() {
        assert_eq!(
            AuthError::Unauthenticated.to_string(),
            UNAUTHENTICATED_MESSAGE
        );
    }
}
