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
}

impl Caller {
    pub(crate) fn new(config: &ClientConfig) -> Self {
        Self {
            request_timeout: config.request_timeout,
            retry: config.retry_policy(),
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

    /// Runs `attempt` until it succeeds, fails with an error the policy does not retry
    /// for `method`, or the retries are used up.
    pub(crate) async fn unary<T, Fut>(
        &self,
        method: Method,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut retries = 0;
        loop {
            let error = match tokio::time::timeout(self.request_timeout, attempt()).await {
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
