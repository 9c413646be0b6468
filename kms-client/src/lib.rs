//! The thin async client of HYGO KMS (SPEC §4, §5) and the library behind `kms-cli`.
//!
//! # Layout
//!
//! - [`config`]: [`ClientConfig`] (endpoint, TLS, timeouts, retries, 8 MiB messages),
//!   validated into a tonic endpoint; plaintext `http://` only to loopback unless allowed.
//! - [`auth`]: the `authorization: Bearer` interceptors; [`TokenProvider`] for admin JWTs.
//! - [`KmsClient`] (`service.rs`): typed calls over `KeyService`.
//! - [`AdminClient`] (`admin.rs`): typed calls over `KeyAdmin`.
//! - [`retry`]: which [`Method`]s are retried (idempotent ones, only on UNAVAILABLE) and
//!   the exponential backoff with jitter.
//! - [`error`]: [`ClientError`], the one mapping from `tonic::Status` (code plus the
//!   `google.rpc.ErrorInfo` reason).
//! - [`dev`] (feature `dev`): admin tokens minted from `kms-server --dev`'s identity
//!   provider key.
//!
//! A call:
//!
//! ```text
//! KmsClient::unwrap -> call::Caller::unary (timeout, retry loop)
//!   -> KeyServiceClient + BearerInterceptor -> tonic Channel (rustls when https)
//!   <- UnwrapResponse: plaintext moved (std::mem::take) into Zeroizing<Vec<u8>>
//!   <- or Status -> ClientError { message, reason }
//! ```

pub mod admin;
pub mod auth;
mod call;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod error;
pub mod retry;
mod service;
pub mod types;

pub use admin::{AdminClient, RewrapProgressStream};
pub use auth::TokenProvider;
pub use config::{ClientConfig, ClientIdentity, TlsConfig};
pub use error::ClientError;
pub use retry::{Method, RetryPolicy};
pub use service::KmsClient;
pub use types::{
    Context, DataKey, PutSecretOptions, Secret, SecretMetadata, SecretPage, SecretRevision,
    TenantPage, UnwrapItem, Unwrapped, WrapItem, Wrapped,
};

/// The generated API (`hygo.kms.v1`), for the messages the admin calls return.
pub use kms_proto::v1 as proto;
pub use secrecy;
pub use zeroize;
