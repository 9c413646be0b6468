//! One unary call: per-attempt timeout (also sent as `grpc-timeout`), the status mapped
//! to [`ClientError`], retries per [`RetryPolicy`].

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::retry::{Method, RetryPolicy};

/// The per-call settings shared by both clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_encoding_message_size: usize,
}

impl Caller {
    pub(crate) fn new(config: &ClientConfig) -> Self {
        Self {
            request_timeout: config.request_timeout,
            retry: config.retry_policy(),
            max_encoding_message_size: config.max_encoding_message_size,
        }
    }

    /// A request carrying the call's deadline.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.request_timeout);
        request
    }

    pub(crate) fn deadline_exceeded(&self) -> ClientError {
        ClientError::DeadlineExceeded {
            message: format!("no response within {:?}", self.request_timeout),
            reason: None,
        }
    }

    /// Refuses a request message over the encoding limit before sending it. (tonic
    /// itself reports an over-size request as an opaque INTERNAL h2 error, tonic#1334.)
    pub(crate) fn check_size(&self, message: &impl prost::Message) -> Result<(), ClientError> {
        let len = message.encoded_len();
        if len > self.max_encoding_message_size {
            return Err(ClientError::ResourceExhausted {
                message: format!(
                    "request message of {len} bytes exceeds the limit of {} bytes",
                    self.max_encoding_message_size
                ),
                reason: None,
            });
        }
        Ok(())
    }

    /// Sends `message` (a clone per attempt, with the call's deadline) through `send`
    /// until it succeeds, fails with an error the policy does not retry for `method`, or
    /// the retries are used up.
    pub(crate) async fn unary<M, T, Fut>(
        &self,
        method: Method,
        message: &M,
        mut send: impl FnMut(tonic::Request<M>) -> Fut,
    ) -> Result<T, ClientError>
    where
        M: prost::Message + Clone,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.check_size(message)?;
        let mut retries = 0;
        loop {
            let attempt = send(self.request(message.clone()));
            let error = match tokio::time::timeout(self.request_timeout, attempt).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => ClientError::from(status),
                Err(_elapsed) => self.deadline_exceeded(),
            };
            if !self.retry.should_retry(method, retries, &error) {
                return Err(error);
            }
            tokio::time::sleep(self.retry.backoff(retries)).await;
            retries = retries.saturating_add(1);
        }
    }
}

/// Connects (eagerly) to the configured endpoint.
pub(crate) async fn connect(config: &ClientConfig) -> Result<Channel, ClientError> {
    Ok(config.endpoint()?.connect().await?)
}

/// A channel that connects on first use.
pub(crate) fn connect_lazy(config: &ClientConfig) -> Result<Channel, ClientError> {
    Ok(config.endpoint()?.connect_lazy())
}
