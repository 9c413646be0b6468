//! Bearer credentials on every call: interceptors for the service credential and for
//! admin tokens ([`TokenProvider`]).

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use zeroize::Zeroizing;

use crate::error::ClientError;

/// Supplies the admin JWT, asked once per call: admin tokens are short-lived (their
/// `auth_time` must be under 5 minutes old, SPEC §5), so a provider may mint or fetch a
/// fresh one each time.
///
/// Implemented for [`SecretString`] (one fixed token) and for closures returning
/// `Result<SecretString, ClientError>`.
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to send on the next call.
    fn token(&self) -> Result<SecretString, ClientError>;
}

impl TokenProvider for SecretString {
    fn token(&self) -> Result<SecretString, ClientError> {
        Ok(self.clone())
    }
}

impl<F> TokenProvider for F
where
    F: Fn() -> Result<SecretString, ClientError> + Send + Sync + 'static,
{
    fn token(&self) -> Result<SecretString, ClientError> {
        self()
    }
}

/// `Bearer <token>` as a sensitive header value.
pub(crate) fn bearer_value(token: &SecretString) -> Result<AsciiMetadataValue, ClientError> {
    let header = Zeroizing::new(format!("Bearer {}", token.expose_secret()));
    let mut value = MetadataValue::try_from(header.as_str()).map_err(|_| {
        ClientError::config("the credential contains characters not allowed in a header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Adds a fixed `authorization: Bearer <credential>` to every call.
#[derive(Clone)]
pub struct BearerInterceptor(AsciiMetadataValue);

impl BearerInterceptor {
    pub(crate) fn new(credential: &SecretString) -> Result<Self, ClientError> {
        bearer_value(credential).map(Self)
    }
}

impl fmt::Debug for BearerInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerInterceptor").finish_non_exhaustive()
    }
}

impl Interceptor for BearerInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Adds `authorization: Bearer <token>` from a [`TokenProvider`] to every call.
#[derive(Clone)]
pub struct AdminInterceptor(Arc<dyn TokenProvider>);

impl AdminInterceptor {
    pub(crate) fn new(provider: impl TokenProvider) -> Self {
        Self(Arc::new(provider))
    }
}

impl fmt::Debug for AdminInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminInterceptor").finish_non_exhaustive()
    }
}

impl Interceptor for AdminInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = self
            .0
            .token()
            .and_then(|token| bearer_value(&token))
            .map_err(|e| tonic::Status::unauthenticated(format!("no admin token: {e}")))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_sensitive_and_redacted() {
        let mut interceptor =
            BearerInterceptor::new(&SecretString::from("hkms_dev_s3cr3t")).unwrap();
        assert!(!format!("{interceptor:?}").contains("s3cr3t"));
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        let value = request.metadata().get("authorization").unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer hkms_dev_s3cr3t");
        assert!(!format!("{value:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_credential_is_a_config_error_without_the_credential() {
        let error = BearerInterceptor::new(&SecretString::from("bad\nsecret")).unwrap_err();
        assert!(matches!(error, ClientError::Config { .. }));
        assert!(!error.to_string().contains("secret"));
    }

    #[test]
    fn admin_tokens_are_fetched_per_call() {
        let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = Arc::clone(&counter);
        let mut interceptor = AdminInterceptor::new(move || {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(SecretString::from(format!("jwt-{n}")))
        });
        for n in 0..2 {
            let request = interceptor.call(tonic::Request::new(())).unwrap();
            let value = request.metadata().get("authorization").unwrap();
            assert_eq!(value.to_str().unwrap(), format!("Bearer jwt-{n}"));
        }
        let mut failing = AdminInterceptor::new(|| Err(ClientError::config("no key")));
        let status = failing.call(tonic::Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
