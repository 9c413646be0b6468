//! [`KmsError`]: every failure of a request, and the one mapping to `tonic::Status`.
//!
//! Each status carries a `google.rpc.ErrorInfo` detail (domain [`ERROR_DOMAIN`]) with a
//! stable machine-readable reason (docs/API.md lists them), so callers branch on reasons,
//! never on message text. Messages say what was wrong and never contain key material,
//! plaintext, tokens or driver messages.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::AuthError;
use crate::envelope::EnvelopeError;
use crate::keys::InvalidInput;
use crate::store::StoreError;

/// The `ErrorInfo.domain` of every KMS error.
pub const ERROR_DOMAIN: &str = "kms.hygo.shop";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// A field outside its limits or malformed (INVALID_ARGUMENT).
    #[error("{message}")]
    InvalidArgument {
        /// Stable reason, e.g. `INVALID_TENANT_ID`, `LIMIT_PLAINTEXT`.
        reason: &'static str,
        /// What was wrong (never a secret).
        message: String,
    },
    /// A batch or message over its limit (RESOURCE_EXHAUSTED).
    #[error("{message}")]
    ResourceExhausted {
        /// Stable reason, e.g. `LIMIT_BATCH`.
        reason: &'static str,
        /// What was over the limit.
        message: String,
    },
    /// No or bad credential (UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Policy denial, stale admin token, service credential on the admin plane
    /// (PERMISSION_DENIED).
    #[error("{message}")]
    PermissionDenied {
        /// Stable reason.
        reason: &'static str,
        /// The rule that denied the call.
        message: String,
    },
    /// The envelope names another tenant (PERMISSION_DENIED). Nothing was decrypted.
    #[error("ciphertext belongs to another tenant")]
    CrossTenant,
    /// Commitment or AEAD failed (INVALID_ARGUMENT): one opaque error.
    #[error("ciphertext failed authentication")]
    Authentication,
    /// The tenant or secret does not exist (NOT_FOUND).
    #[error("{message}")]
    NotFound {
        /// Stable reason: `TENANT_NOT_FOUND`, `SECRET_NOT_FOUND`.
        reason: &'static str,
        /// What was not found.
        message: String,
    },
    /// The thing to create exists already (ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// Key state forbids the call (FAILED_PRECONDITION).
    #[error("{message}")]
    FailedPrecondition {
        /// Stable reason, e.g. `KEY_VERSION_RETIRED`, `TENANT_PENDING_DESTRUCTION`.
        reason: &'static str,
        /// The state, naming the version.
        message: String,
    },
    /// Storage is down and the key is not cached (UNAVAILABLE).
    #[error("{0}")]
    Unavailable(&'static str),
    /// A server-side fault (INTERNAL); details are logged, not returned.
    #[error("internal error")]
    Internal(&'static str),
}

impl KmsError {
    /// An INVALID_ARGUMENT with `reason`.
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason,
            message: message.into(),
        }
    }

    /// A FAILED_PRECONDITION with `reason`.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// The gRPC code and stable reason.
    pub fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Self::InvalidArgument { reason, .. } => (Code::InvalidArgument, reason),
            Self::ResourceExhausted { reason, .. } => (Code::ResourceExhausted, reason),
            Self::Unauthenticated(_) => (Code::Unauthenticated, "UNAUTHENTICATED"),
            Self::PermissionDenied { reason, .. } => (Code::PermissionDenied, reason),
            Self::CrossTenant => (Code::PermissionDenied, "CROSS_TENANT"),
            Self::Authentication => (Code::InvalidArgument, "CIPHERTEXT_AUTHENTICATION"),
            Self::NotFound { reason, .. } => (Code::NotFound, reason),
            Self::AlreadyExists(_) => (Code::AlreadyExists, "ALREADY_EXISTS"),
            Self::FailedPrecondition { reason, .. } => (Code::FailedPrecondition, reason),
            Self::Unavailable(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE"),
            Self::Internal(_) => (Code::Internal, "INTERNAL"),
        }
    }
}

/// The one mapping from [`KmsError`] to a gRPC status with `ErrorInfo`.
impl From<KmsError> for Status {
    fn from(e: KmsError) -> Self {
        let (code, reason) = e.code_and_reason();
        let details = ErrorDetails::with_error_info(
            reason,
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        Status::with_error_details(code, e.to_string(), details)
    }
}

impl From<InvalidInput> for KmsError {
    fn from(e: InvalidInput) -> Self {
        let reason = match e {
            InvalidInput::TenantId => "INVALID_TENANT_ID",
            InvalidInput::KeyVersion => "INVALID_KEY_VERSION",
            InvalidInput::TooManyPairs { .. } => "LIMIT_CONTEXT_PAIRS",
            InvalidInput::ContextValueTooLong { .. } => "LIMIT_CONTEXT_VALUE",
            InvalidInput::ReservedContextKey { .. } => "RESERVED_CONTEXT_KEY",
            _ => "INVALID_CONTEXT",
        };
        Self::invalid(reason, e.to_string())
    }
}

impl From<EnvelopeError> for KmsError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::PlaintextLength { .. } => {
                Self::invalid("LIMIT_PLAINTEXT", e.to_string())
            }
            EnvelopeError::CiphertextTooLong { .. } => {
                Self::invalid("LIMIT_CIPHERTEXT", e.to_string())
            }
            EnvelopeError::Malformed(_) => Self::invalid("MALFORMED_CIPHERTEXT", e.to_string()),
            EnvelopeError::CrossTenant => Self::CrossTenant,
            EnvelopeError::Authentication => Self::Authentication,
            EnvelopeError::Context(_) => Self::invalid("INVALID_CONTEXT", e.to_string()),
        }
    }
}

impl From<crate::envelope::MalformedEnvelope> for KmsError {
    fn from(e: crate::envelope::MalformedEnvelope) -> Self {
        EnvelopeError::Malformed(e).into()
    }
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable => Self::Unavailable("the key store is unavailable"),
            StoreError::NotFound { what } => Self::NotFound {
                reason: "NOT_FOUND",
                message: format!("{what} not found"),
            },
            StoreError::RevisionMismatch { .. } => {
                Self::precondition("REVISION_MISMATCH", e.to_string())
            }
            StoreError::Conflict => Self::precondition("CONFLICT", e.to_string()),
            StoreError::Refused { reason } => Self::precondition("REFUSED", reason),
            _ => {
                tracing::error!(error = %e, "store error");
                Self::Internal("store error")
            }
        }
    }
}

impl From<AuthError> for KmsError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => {
                Self::Unauthenticated(crate::auth::UNAUTHENTICATED_MESSAGE)
            }
            AuthError::PermissionDenied { reason } => Self::PermissionDenied {
                reason: "PERMISSION_DENIED",
                message: reason,
            },
            AuthError::KeySetUnavailable { .. } => {
                tracing::error!(error = %e, "admin key set unavailable");
                Self::Unavailable("admin authentication is unavailable")
            }
            _ => {
                tracing::error!(error = %e, "auth error");
                Self::Internal("auth error")
            }
        }
    }
}
