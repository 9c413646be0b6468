//! Which calls are retried ([`Method::is_retryable`]) and how long to wait
//! ([`RetryPolicy`]).

use std::time::Duration;

use rand_core::{OsRng, RngCore as _};

use crate::error::ClientError;

/// Every RPC of `KeyService` and `KeyAdmin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `KeyService.Wrap`.
    Wrap,
    /// `KeyService.Unwrap`.
    Unwrap,
    /// `KeyService.Rewrap`.
    Rewrap,
    /// `KeyService.BatchWrap`.
    BatchWrap,
    /// `KeyService.BatchUnwrap`.
    BatchUnwrap,
    /// `KeyService.GenerateDataKey`.
    GenerateDataKey,
    /// `KeyService.GenerateDataKeyWithoutPlaintext`.
    GenerateDataKeyWithoutPlaintext,
    /// `KeyService.PutSecret`.
    PutSecret,
    /// `KeyService.GetSecret`.
    GetSecret,
    /// `KeyService.ListSecrets`.
    ListSecrets,
    /// `KeyService.DeleteSecret`.
    DeleteSecret,
    /// `KeyAdmin.CreateTenantKey`.
    CreateTenantKey,
    /// `KeyAdmin.GetTenantKey`.
    GetTenantKey,
    /// `KeyAdmin.ListTenants`.
    ListTenants,
    /// `KeyAdmin.RotateTenantKey`.
    RotateTenantKey,
    /// `KeyAdmin.RewrapTenantSecrets`.
    RewrapTenantSecrets,
    /// `KeyAdmin.SetMinDecryptionVersion`.
    SetMinDecryptionVersion,
    /// `KeyAdmin.SetKeyVersionState`.
    SetKeyVersionState,
    /// `KeyAdmin.ScheduleTenantDestruction`.
    ScheduleTenantDestruction,
    /// `KeyAdmin.CancelTenantDestruction`.
    CancelTenantDestruction,
    /// `KeyAdmin.ListAuditEvents`.
    ListAuditEvents,
}

impl Method {
    /// Every method.
    pub const ALL: [Self; 21] = [
        Self::Wrap,
        Self::Unwrap,
        Self::Rewrap,
        Self::BatchWrap,
        Self::BatchUnwrap,
        Self::GenerateDataKey,
        Self::GenerateDataKeyWithoutPlaintext,
        Self::PutSecret,
        Self::GetSecret,
        Self::ListSecrets,
        Self::DeleteSecret,
        Self::CreateTenantKey,
        Self::GetTenantKey,
        Self::ListTenants,
        Self::RotateTenantKey,
        Self::RewrapTenantSecrets,
        Self::SetMinDecryptionVersion,
        Self::SetKeyVersionState,
        Self::ScheduleTenantDestruction,
        Self::CancelTenantDestruction,
        Self::ListAuditEvents,
    ];

    /// Whether a call may be sent again after UNAVAILABLE: reads, and the calls that
    /// change no server state (wrapping and data keys produce fresh envelopes; a repeat
    /// only wastes one). Never the calls that write: secret puts and deletes, rewraps,
    /// rotation, state changes (a lost response does not mean the write did not happen).
    pub const fn is_retryable(self) -> bool {
        match self {
            Self::Wrap
            | Self::Unwrap
            | Self::BatchWrap
            | Self::BatchUnwrap
            | Self::GenerateDataKey
            | Self::GenerateDataKeyWithoutPlaintext
            | Self::GetSecret
            | Self::ListSecrets
            | Self::GetTenantKey
            | Self::ListTenants
            | Self::ListAuditEvents => true,
            Self::Rewrap
            | Self::PutSecret
            | Self::DeleteSecret
            | Self::CreateTenantKey
            | Self::RotateTenantKey
            | Self::RewrapTenantSecrets
            | Self::SetMinDecryptionVersion
            | Self::SetKeyVersionState
            | Self::ScheduleTenantDestruction
            | Self::CancelTenantDestruction => false,
        }
    }
}

/// Retries with exponential backoff and jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub max_retries: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Longest backoff (before jitter).
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Default [`RetryPolicy::initial_backoff`].
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
    /// Default [`RetryPolicy::max_backoff`].
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);

    /// Whether to retry `method` after it failed with `error`, `retries` retries in:
    /// only retryable methods, only on UNAVAILABLE, at most `max_retries` times.
    pub fn should_retry(&self, method: Method, retries: u32, error: &ClientError) -> bool {
        method.is_retryable()
            && retries < self.max_retries
            && matches!(error, ClientError::Unavailable { .. })
    }

    /// The backoff ceiling before retry number `retry` (0-based):
    /// `min(max_backoff, initial_backoff * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The backoff before retry number `retry` with the given jitter in `0..=u32::MAX`
    /// ("equal jitter"): between half the [`RetryPolicy::ceiling`] and the ceiling.
    pub fn backoff_with_jitter(&self, retry: u32, jitter: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let span = ceiling.saturating_sub(half);
        let extra = span.mul_f64(f64::from(jitter) / f64::from(u32::MAX));
        half.saturating_add(extra).min(ceiling)
    }

    /// The backoff before retry number `retry`, with random jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_with_jitter(retry, OsRng.next_u32())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: crate::config::DEFAULT_MAX_RETRIES,
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> ClientError {
        ClientError::Unavailable {
            message: "down".into(),
            reason: None,
        }
    }

    #[test]
    fn retryable_methods_are_exactly_the_brief() {
        let retryable: Vec<Method> = Method::ALL
            .into_iter()
            .filter(|m| m.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                Method::Wrap,
                Method::Unwrap,
                Method::BatchWrap,
                Method::BatchUnwrap,
                Method::GenerateDataKey,
                Method::GenerateDataKeyWithoutPlaintext,
                Method::GetSecret,
                Method::ListSecrets,
                Method::GetTenantKey,
                Method::ListTenants,
                Method::ListAuditEvents,
            ]
        );
        for method in [
            Method::PutSecret,
            Method::DeleteSecret,
            Method::Rewrap,
            Method::RewrapTenantSecrets,
            Method::RotateTenantKey,
            Method::SetKeyVersionState,
            Method::SetMinDecryptionVersion,
            Method::CreateTenantKey,
            Method::ScheduleTenantDestruction,
            Method::CancelTenantDestruction,
        ] {
            assert!(!method.is_retryable(), "{method:?}");
        }
    }

    #[test]
    fn retries_only_unavailable_and_at_most_max() {
        let policy = RetryPolicy::default();
        assert!(policy.should_retry(Method::Unwrap, 0, &unavailable()));
        assert!(policy.should_retry(Method::Unwrap, 2, &unavailable()));
        assert!(!policy.should_retry(Method::Unwrap, 3, &unavailable()));
        assert!(!policy.should_retry(Method::PutSecret, 0, &unavailable()));
        for error in [
            ClientError::DeadlineExceeded {
                message: String::new(),
                reason: None,
            },
            ClientError::Internal {
                message: String::new(),
                reason: None,
            },
            ClientError::Transport {
                message: String::new(),
            },
        ] {
            assert!(!policy.should_retry(Method::Unwrap, 0, &error), "{error:?}");
        }
        let never = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert!(!never.should_retry(Method::Unwrap, 0, &unavailable()));
    }

    #[test]
    fn backoff_grows_exponentially_within_bounds() {
        let policy = RetryPolicy::default();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(policy.ceiling(0)), 50);
        assert_eq!(ms(policy.ceiling(1)), 100);
        assert_eq!(ms(policy.ceiling(5)), 1600);
        assert_eq!(ms(policy.ceiling(6)), 2000);
        assert_eq!(ms(policy.ceiling(40)), 2000);
        assert_eq!(ms(policy.ceiling(u32::MAX)), 2000);
        for retry in [0, 1, 3, 6, 100] {
            let ceiling = policy.ceiling(retry);
            assert_eq!(policy.backoff_with_jitter(retry, 0), ceiling / 2);
            assert_eq!(policy.backoff_with_jitter(retry, u32::MAX), ceiling);
            for _ in 0..100 {
                let backoff = policy.backoff(retry);
                assert!(backoff >= ceiling / 2 && backoff <= ceiling, "{backoff:?}");
            }
        }
    }
}
