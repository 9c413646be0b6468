//! [`ClientError`] and the one mapping from a gRPC [`tonic::Status`] to it.

use std::fmt;

use tonic::Code;
use tonic_types::StatusExt as _;

/// The `google.rpc.ErrorInfo` domain of the KMS's error reasons (SPEC §4).
pub const ERROR_DOMAIN: &str = "kms.hygo.shop";

/// A failed call, or a client that could not be built.
///
/// Status variants carry the server's message (which never contains key material,
/// plaintext or tokens: SPEC §4) and the stable machine-readable `reason` of the status's
/// `google.rpc.ErrorInfo` in the [`ERROR_DOMAIN`] (`None` when the status carried none,
/// e.g. one produced by a proxy or by tonic itself). Branch on [`ClientError::reason`],
/// never on message text. Nothing here ever holds request plaintext or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// UNAUTHENTICATED: no credential, or a bad one (or the admin token provider failed).
    #[error("unauthenticated: {}", Details(.message, .reason))]
    Unauthenticated {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// PERMISSION_DENIED: policy, cross-tenant access, stale admin token.
    #[error("permission denied: {}", Details(.message, .reason))]
    PermissionDenied {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// INVALID_ARGUMENT: malformed input, or a ciphertext that failed to authenticate.
    #[error("invalid argument: {}", Details(.message, .reason))]
    InvalidArgument {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// NOT_FOUND: e.g. a tenant without keys, a missing secret.
    #[error("not found: {}", Details(.message, .reason))]
    NotFound {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// ALREADY_EXISTS.
    #[error("already exists: {}", Details(.message, .reason))]
    AlreadyExists {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// FAILED_PRECONDITION: key state (retired, disabled, destroyed, pending destruction),
    /// a compare-and-swap revision mismatch.
    #[error("failed precondition: {}", Details(.message, .reason))]
    FailedPrecondition {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// RESOURCE_EXHAUSTED (a limit), or OUT_OF_RANGE (tonic's over-size message).
    #[error("resource exhausted: {}", Details(.message, .reason))]
    ResourceExhausted {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// UNAVAILABLE: the server (or its storage) is unreachable; retried for idempotent calls.
    #[error("unavailable: {}", Details(.message, .reason))]
    Unavailable {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// DEADLINE_EXCEEDED: the call's timeout passed (on either side).
    #[error("deadline exceeded: {}", Details(.message, .reason))]
    DeadlineExceeded {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// INTERNAL, UNKNOWN or DATA_LOSS.
    #[error("internal error: {}", Details(.message, .reason))]
    Internal {
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// Any other status code (CANCELLED, ABORTED, UNIMPLEMENTED, ...).
    #[error("{code:?}: {}", Details(.message, .reason))]
    Other {
        /// The status code.
        code: Code,
        /// The status message.
        message: String,
        /// The ErrorInfo reason.
        reason: Option<String>,
    },
    /// The connection could not be established (before any call was made).
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
    },
    /// The client configuration (or a local input, e.g. a credential that is not a valid
    /// header value) was refused before anything was sent.
    #[error("configuration error: {message}")]
    Config {
        /// What was wrong.
        message: String,
    },
}

/// Formats "message (reason R)".
struct Details<'a>(&'a String, &'a Option<String>);

impl fmt::Display for Details<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        if let Some(reason) = self.1 {
            write!(f, " (reason {reason})")?;
        }
        Ok(())
    }
}

impl ClientError {
    /// Builds the error for a status code, message and reason: the whole code mapping.
    pub fn from_parts(code: Code, message: String, reason: Option<String>) -> Self {
        match code {
            Code::Unauthenticated => Self::Unauthenticated { message, reason },
            Code::PermissionDenied => Self::PermissionDenied { message, reason },
            Code::InvalidArgument => Self::InvalidArgument { message, reason },
            Code::NotFound => Self::NotFound { message, reason },
            Code::AlreadyExists => Self::AlreadyExists { message, reason },
            Code::FailedPrecondition => Self::FailedPrecondition { message, reason },
            Code::ResourceExhausted | Code::OutOfRange => {
                Self::ResourceExhausted { message, reason }
            }
            Code::Unavailable => Self::Unavailable { message, reason },
            Code::DeadlineExceeded => Self::DeadlineExceeded { message, reason },
            Code::Internal | Code::Unknown | Code::DataLoss => Self::Internal { message, reason },
            Code::Ok | Code::Cancelled | Code::Aborted | Code::Unimplemented => Self::Other {
                code,
                message,
                reason,
            },
        }
    }

    /// The ErrorInfo reason of the status (e.g. `CROSS_TENANT`), if it carried one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Unauthenticated { reason, .. }
            | Self::PermissionDenied { reason, .. }
            | Self::InvalidArgument { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::AlreadyExists { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::ResourceExhausted { reason, .. }
            | Self::Unavailable { reason, .. }
            | Self::DeadlineExceeded { reason, .. }
            | Self::Internal { reason, .. }
            | Self::Other { reason, .. } => reason.as_deref(),
            Self::Transport { .. } | Self::Config { .. } => None,
        }
    }

    /// The gRPC status code: the variant's code (INTERNAL for UNKNOWN and DATA_LOSS,
    /// RESOURCE_EXHAUSTED for OUT_OF_RANGE); UNAVAILABLE for [`ClientError::Transport`];
    /// `None` for [`ClientError::Config`], which never reached the network.
    pub fn code(&self) -> Option<Code> {
        Some(match self {
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } | Self::Transport { .. } => Code::Unavailable,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::Internal { .. } => Code::Internal,
            Self::Other { code, .. } => *code,
            Self::Config { .. } => return None,
        })
    }

    /// The status message, or the local error's description.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated { message, .. }
            | Self::PermissionDenied { message, .. }
            | Self::InvalidArgument { message, .. }
            | Self::NotFound { message, .. }
            | Self::AlreadyExists { message, .. }
            | Self::FailedPrecondition { message, .. }
            | Self::ResourceExhausted { message, .. }
            | Self::Unavailable { message, .. }
            | Self::DeadlineExceeded { message, .. }
            | Self::Internal { message, .. }
            | Self::Other { message, .. }
            | Self::Transport { message }
            | Self::Config { message } => message,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for ClientError {
    /// Maps a status; the reason is taken from the first `google.rpc.ErrorInfo` detail
    /// whose domain is [`ERROR_DOMAIN`]. tonic's own client-side deadline (a CANCELLED
    /// status caused by `TimeoutExpired`) becomes [`ClientError::DeadlineExceeded`].
    fn from(status: tonic::Status) -> Self {
        if status.code() == Code::Cancelled && caused_by_timeout(&status) {
            return Self::DeadlineExceeded {
                message: status.message().to_owned(),
                reason: None,
            };
        }
        let reason = status
            .get_details_error_info()
            .filter(|info| info.domain == ERROR_DOMAIN && !info.reason.is_empty())
            .map(|info| info.reason);
        Self::from_parts(status.code(), status.message().to_owned(), reason)
    }
}

/// Whether tonic's `grpc-timeout` enforcement produced this status.
fn caused_by_timeout(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<tonic::transport::Error> for ClientError {
    fn from(error: tonic::transport::Error) -> Self {
        // The Display of a transport error is terse ("transport error"); add its sources.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport { message }
    }
}

/// The error of one batch item (`ItemError` in the API), as a [`ClientError`].
pub(crate) fn item_error(item: kms_proto::v1::ItemError) -> ClientError {
    let reason = (!item.reason.is_empty()).then_some(item.reason);
    ClientError::from_parts(Code::from_i32(item.code), item.message, reason)
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt as _};

    use super::*;

    fn status(code: Code, reason: &str, domain: &str) -> tonic::Status {
        tonic::Status::with_error_details(
            code,
            "tenant mismatch",
            ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new()),
        )
    }

    #[test]
    fn maps_every_code_with_reason() {
        let cases = [
            (Code::Unauthenticated, "unauthenticated"),
            (Code::PermissionDenied, "permission denied"),
            (Code::InvalidArgument, "invalid argument"),
            (Code::NotFound, "not found"),
            (Code::AlreadyExists, "already exists"),
            (Code::FailedPrecondition, "failed precondition"),
            (Code::ResourceExhausted, "resource exhausted"),
            (Code::Unavailable, "unavailable"),
            (Code::DeadlineExceeded, "deadline exceeded"),
            (Code::Internal, "internal error"),
        ];
        for (code, prefix) in cases {
            let error = ClientError::from(status(code, "CROSS_TENANT", ERROR_DOMAIN));
            assert_eq!(error.code(), Some(code));
            assert_eq!(error.reason(), Some("CROSS_TENANT"));
            assert_eq!(error.message(), "tenant mismatch");
            assert_eq!(
                error.to_string(),
                format!("{prefix}: tenant mismatch (reason CROSS_TENANT)")
            );
        }
    }

    #[test]
    fn permission_denied_variant() {
        let error = ClientError::from(status(Code::PermissionDenied, "CROSS_TENANT", ERROR_DOMAIN));
        assert_eq!(
            error,
            ClientError::PermissionDenied {
                message: "tenant mismatch".into(),
                reason: Some("CROSS_TENANT".into()),
            }
        );
    }

    #[test]
    fn foreign_domain_or_missing_details_give_no_reason() {
        let error = ClientError::from(status(Code::NotFound, "NOPE", "proxy.example"));
        assert_eq!(error.reason(), None);
        let error = ClientError::from(tonic::Status::unavailable("down"));
        assert!(matches!(
            error,
            ClientError::Unavailable { reason: None, .. }
        ));
        assert_eq!(error.to_string(), "unavailable: down");
    }

    #[test]
    fn folded_codes() {
        let oor = ClientError::from(tonic::Status::out_of_range("message too large"));
        assert_eq!(oor.code(), Some(Code::ResourceExhausted));
        let unknown = ClientError::from(tonic::Status::unknown("?"));
        assert!(matches!(unknown, ClientError::Internal { .. }));
        let aborted = ClientError::from(tonic::Status::aborted("x"));
        assert_eq!(aborted.code(), Some(Code::Aborted));
        assert_eq!(ClientError::config("bad").code(), None);
    }

    #[test]
    fn local_timeout_is_deadline_exceeded() {
        let status = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(status.code(), Code::Cancelled);
        let error = ClientError::from(status);
        assert_eq!(error.code(), Some(Code::DeadlineExceeded));
        let cancelled = ClientError::from(tonic::Status::cancelled("by peer"));
        assert_eq!(cancelled.code(), Some(Code::Cancelled));
    }

    #[test]
    fn batch_item_error() {
        let error = item_error(kms_proto::v1::ItemError {
            code: 3,
            message: "bad context".into(),
            reason: "LIMIT_CONTEXT".into(),
        });
        assert_eq!(error.code(), Some(Code::InvalidArgument));
        assert_eq!(error.reason(), Some("LIMIT_CONTEXT"));
        let error = item_error(kms_proto::v1::ItemError {
            code: 5,
            message: String::new(),
            reason: String::new(),
        });
        assert_eq!(error.reason(), None);
    }
}
