//! [`ClientConfig`]: endpoint, TLS, timeouts, retries, message limits; validated into a
//! tonic [`Endpoint`].

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretSlice};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::error::ClientError;
use crate::retry::RetryPolicy;

/// Request and response messages at most 8 MiB, as on the server (SPEC §4).
pub const MAX_MESSAGE_SIZE: usize = 8 * 1024 * 1024;
/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time for one attempt of a call (also sent as `grpc-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of retries of an idempotent call on UNAVAILABLE.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// How to reach the KMS. Build with [`ClientConfig::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:port`, or `http://` for a loopback address (or with
    /// [`ClientConfig::allow_insecure`]).
    pub endpoint: String,
    /// TLS settings; required for `https://`, refused for `http://`.
    pub tls: Option<TlsConfig>,
    /// Allows plaintext `http://` to a non-loopback host (e.g. behind a TLS-terminating
    /// tunnel). Off by default: the bearer credential would travel in clear.
    pub allow_insecure: bool,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for one attempt of a unary call (sent to the server as `grpc-timeout`); for
    /// the streaming `RewrapTenantSecrets`, the longest wait for the next message.
    pub request_timeout: Duration,
    /// Retries of idempotent calls on UNAVAILABLE, with exponential backoff and jitter.
    pub max_retries: u32,
    /// First backoff before a retry (doubled each retry, with jitter).
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Largest response message accepted.
    pub max_decoding_message_size: usize,
    /// Largest request message sent.
    pub max_encoding_message_size: usize,
}

impl ClientConfig {
    /// A configuration for `endpoint` with the defaults: no TLS, 5 s connect timeout, 10 s
    /// request timeout, 3 retries from 50 ms up to 2 s, 8 MiB messages.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            tls: None,
            allow_insecure: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff: RetryPolicy::DEFAULT_INITIAL_BACKOFF,
            max_backoff: RetryPolicy::DEFAULT_MAX_BACKOFF,
            max_decoding_message_size: MAX_MESSAGE_SIZE,
            max_encoding_message_size: MAX_MESSAGE_SIZE,
        }
    }

    /// The retry policy of this configuration.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }

    /// Checks the configuration and builds the tonic endpoint (nothing is connected).
    ///
    /// Refused: an endpoint that is not an `http://` or `https://` URI; `https://` without
    /// [`TlsConfig`]; `http://` with a [`TlsConfig`]; `http://` to a host that is not a
    /// loopback address (`127.0.0.0/8`, `::1`, `localhost`) unless
    /// [`ClientConfig::allow_insecure`]; zero timeouts or message sizes.
    pub fn endpoint(&self) -> Result<Endpoint, ClientError> {
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(ClientError::config("timeouts must be greater than zero"));
        }
        if self.max_decoding_message_size == 0 || self.max_encoding_message_size == 0 {
            return Err(ClientError::config(
                "message size limits must be greater than zero",
            ));
        }
        let endpoint = Endpoint::from_shared(self.endpoint.clone()).map_err(|e| {
            ClientError::config(format!(
                "endpoint {:?} is not a valid URI: {e}",
                self.endpoint
            ))
        })?;
        let uri = endpoint.uri();
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(ClientError::config(format!(
                "endpoint {:?} has no host",
                self.endpoint
            )));
        }
        let endpoint = match (uri.scheme_str(), &self.tls) {
            (Some("https"), Some(tls)) => endpoint
                .tls_config(tls.to_tonic())
                .map_err(|e| ClientError::config(format!("TLS configuration refused: {e}")))?,
            (Some("https"), None) => {
                return Err(ClientError::config(
                    "an https:// endpoint needs a TLS configuration (the CA certificate)",
                ));
            }
            (Some("http"), Some(_)) => {
                return Err(ClientError::config(
                    "a TLS configuration was given for a plaintext http:// endpoint; use https://",
                ));
            }
            (Some("http"), None) => {
                if !is_loopback(host) && !self.allow_insecure {
                    return Err(ClientError::config(format!(
                        "refusing plaintext http:// to non-loopback host {host}: the credential \
                         would travel in clear; use https:// with TLS, or set allow_insecure \
                         (--insecure-plaintext) only behind a TLS-terminating tunnel"
                    )));
                }
                endpoint
            }
            _ => {
                return Err(ClientError::config(format!(
                    "endpoint {:?} must start with https:// or http://",
                    self.endpoint
                )));
            }
        };
        endpoint
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("kms-client/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| ClientError::config(format!("user agent: {e}")))
    }
}

/// Whether `host` (as in a URI: IPv6 in brackets) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// TLS (rustls with the *ring* provider) towards the KMS; mutual when a client identity
/// is given (SPEC §5: an extra binding, never a substitute for the bearer credential).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM of the CA certificate(s) that sign the server's certificate. The system roots
    /// are not used: the KMS is reached through a private CA.
    pub ca_cert_pem: Vec<u8>,
    /// The name to verify in the server's certificate, when it is not the endpoint's host.
    pub domain_name: Option<String>,
    /// A client certificate and key for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
}

impl TlsConfig {
    fn to_tonic(&self) -> ClientTlsConfig {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_cert_pem));
        if let Some(domain) = &self.domain_name {
            tls = tls.domain_name(domain.clone());
        }
        if let Some(identity) = &self.client_identity {
            tls = tls.identity(Identity::from_pem(
                &identity.cert_pem,
                identity.key_pem.expose_secret(),
            ));
        }
        tls
    }
}

/// A client certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key, PEM (kept in a zeroizing secret).
    pub key_pem: SecretSlice<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: &ClientConfig) -> String {
        match config.endpoint() {
            Err(ClientError::Config { message }) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "kms.internal",
            "[::2]",
            "0.0.0.0",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn plaintext_to_loopback_is_allowed() {
        for endpoint in [
            "http://127.0.0.1:7650",
            "http://[::1]:7650",
            "http://localhost:1",
        ] {
            assert!(ClientConfig::new(endpoint).endpoint().is_ok(), "{endpoint}");
        }
    }

    #[test]
    fn plaintext_to_remote_host_is_refused_unless_allowed() {
        let mut config = ClientConfig::new("http://kms.internal:7650");
        assert!(refused(&config).contains("refusing plaintext"));
        config.allow_insecure = true;
        assert!(config.endpoint().is_ok());
        let config = ClientConfig::new("http://10.1.2.3:7650");
        assert!(refused(&config).contains("non-loopback host 10.1.2.3"));
    }

    #[test]
    fn https_needs_tls_and_http_refuses_it() {
        assert!(refused(&ClientConfig::new("https://kms.internal")).contains("needs a TLS"));
        let mut config = ClientConfig::new("http://127.0.0.1:1");
        config.tls = Some(TlsConfig {
            ca_cert_pem: Vec::new(),
            domain_name: None,
            client_identity: None,
        });
        assert!(refused(&config).contains("use https://"));
        config.endpoint = "https://kms.internal:443".into();
        assert!(config.endpoint().is_ok());
    }

    #[test]
    fn bad_endpoints_and_limits() {
        for endpoint in ["", "kms.internal:7650", "ftp://127.0.0.1", "not a uri"] {
            refused(&ClientConfig::new(endpoint));
        }
        let mut config = ClientConfig::new("http://127.0.0.1:1");
        config.request_timeout = Duration::ZERO;
        refused(&config);
        let mut config = ClientConfig::new("http://127.0.0.1:1");
        config.max_decoding_message_size = 0;
        refused(&config);
    }

    #[test]
    fn defaults() {
        let config = ClientConfig::new("http://127.0.0.1:1");
        assert_eq!(config.max_decoding_message_size, 8 << 20);
        assert_eq!(config.max_encoding_message_size, 8 << 20);
        assert!(!config.allow_insecure);
    }
}
