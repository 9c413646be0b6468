//! [`KmsClient`]: the data plane (`KeyService`).

use std::fmt;
use std::mem;

use kms_proto::v1 as pb;
use pb::key_service_client::KeyServiceClient;
use secrecy::SecretString;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use zeroize::{Zeroize as _, Zeroizing};

use crate::auth::BearerInterceptor;
use crate::call::{self, Caller};
use crate::config::ClientConfig;
use crate::error::{ClientError, item_error};
use crate::retry::Method;
use crate::types::{
    Context, DataKey, PutSecretOptions, Secret, SecretPage, SecretRevision, UnwrapItem, Unwrapped,
    WrapItem, Wrapped,
};

type Inner = KeyServiceClient<InterceptedService<Channel, BearerInterceptor>>;

/// A client of the KMS data plane (`KeyService`), authenticated with a service
/// credential (`hkms_<id>_<secret>`) sent as `authorization: Bearer` on every call.
///
/// Cheap to clone; clones share one HTTP/2 connection. Each call has the configured
/// timeout; idempotent calls are retried on UNAVAILABLE (see [`Method::is_retryable`]).
///
/// Plaintext results are moved (not copied) into zeroizing buffers ([`Zeroizing`]).
/// Request plaintext is copied into a protobuf message, zeroized after the call; the
/// clone of it that tonic encodes (one per attempt) and the transport's buffers are not.
///
/// # Examples
///
/// ```no_run
/// use kms_client::{ClientConfig, Context, KmsClient};
/// use secrecy::SecretString;
///
/// # async fn example() -> Result<(), kms_client::ClientError> {
/// let config = ClientConfig::new("http://127.0.0.1:7650");
/// let credential = SecretString::from(std::env::var("HYGO_KMS_CREDENTIAL").unwrap_or_default());
/// let kms = KmsClient::connect(config, credential).await?;
///
/// let context = Context::from([("vendor", "shopify")]);
/// let wrapped = kms.wrap("tenant-42", &context, b"shpat_example").await?;
/// // Store `wrapped.ciphertext`; later:
/// let opened = kms.unwrap("tenant-42", &context, &wrapped.ciphertext).await?;
/// assert_eq!(opened.plaintext.as_slice(), b"shpat_example");
/// # Ok(())
/// # }
/// ```
///
/// Branching on an error's stable reason:
///
/// ```no_run
/// # async fn example(kms: kms_client::KmsClient, ct: Vec<u8>) {
/// use kms_client::{ClientError, Context};
/// match kms.unwrap("tenant-42", &Context::new(), &ct).await {
///     Ok(opened) => { /* use opened.plaintext */ }
///     Err(e @ ClientError::FailedPrecondition { .. }) if e.reason() == Some("KEY_VERSION_RETIRED") => {
///         /* the envelope is under a retired version */
///     }
///     Err(e) => eprintln!("unwrap failed: {e}"),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct KmsClient {
    inner: Inner,
    caller: Caller,
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl KmsClient {
    /// Validates `config`, connects, and returns a client sending `credential`.
    pub async fn connect(
        config: ClientConfig,
        credential: SecretString,
    ) -> Result<Self, ClientError> {
        let interceptor = BearerInterceptor::new(&credential)?;
        let channel = call::connect(&config).await?;
        Ok(Self::from_channel(channel, &config, interceptor))
    }

    /// As [`KmsClient::connect`], but connects on the first call (connection failures
    /// then surface as UNAVAILABLE, retried for idempotent calls).
    pub fn connect_lazy(
        config: ClientConfig,
        credential: SecretString,
    ) -> Result<Self, ClientError> {
        let interceptor = BearerInterceptor::new(&credential)?;
        let channel = call::connect_lazy(&config)?;
        Ok(Self::from_channel(channel, &config, interceptor))
    }

    fn from_channel(
        channel: Channel,
        config: &ClientConfig,
        interceptor: BearerInterceptor,
    ) -> Self {
        let inner = KeyServiceClient::with_interceptor(channel, interceptor)
            .max_decoding_message_size(config.max_decoding_message_size)
            .max_encoding_message_size(config.max_encoding_message_size);
        Self {
            inner,
            caller: Caller::new(config),
        }
    }

    /// Seals `plaintext` (1 B .. 64 KiB) under the tenant's primary key version, bound to
    /// `context`. Retried on UNAVAILABLE (a repeat only produces another envelope).
    pub async fn wrap(
        &self,
        tenant: &str,
        context: &Context,
        plaintext: &[u8],
    ) -> Result<Wrapped, ClientError> {
        let mut message = pb::WrapRequest {
            tenant_id: tenant.to_owned(),
            context: context.to_proto(),
            plaintext: plaintext.to_vec(),
        };
        let result = self
            .caller
            .unary(Method::Wrap, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.wrap(request).await }
            })
            .await;
        message.plaintext.zeroize();
        let response = result?;
        Ok(Wrapped {
            ciphertext: response.ciphertext,
            key_version: response.key_version,
        })
    }

    /// Opens an envelope; `context` must equal the one used to wrap.
    pub async fn unwrap(
        &self,
        tenant: &str,
        context: &Context,
        ciphertext: &[u8],
    ) -> Result<Unwrapped, ClientError> {
        let message = pb::UnwrapRequest {
            tenant_id: tenant.to_owned(),
            context: context.to_proto(),
            ciphertext: ciphertext.to_vec(),
        };
        let mut response = self
            .caller
            .unary(Method::Unwrap, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.unwrap(request).await }
            })
            .await?;
        Ok(unwrapped(&mut response))
    }

    /// Re-seals an envelope under the primary version without the plaintext leaving the
    /// server; one already under the primary version comes back byte-identical. Not
    /// retried.
    pub async fn rewrap(
        &self,
        tenant: &str,
        context: &Context,
        ciphertext: &[u8],
    ) -> Result<Wrapped, ClientError> {
        let message = pb::RewrapRequest {
            tenant_id: tenant.to_owned(),
            context: context.to_proto(),
            ciphertext: ciphertext.to_vec(),
        };
        let response = self
            .caller
            .unary(Method::Rewrap, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.rewrap(request).await }
            })
            .await?;
        Ok(Wrapped {
            ciphertext: response.ciphertext,
            key_version: response.key_version,
        })
    }

    /// Wraps many items (at most 1000); one result per item, in order: a bad item fails
    /// only itself. The outer error is for the whole call.
    pub async fn batch_wrap(
        &self,
        items: &[WrapItem<'_>],
    ) -> Result<Vec<Result<Wrapped, ClientError>>, ClientError> {
        let mut message = pb::BatchWrapRequest {
            items: items
                .iter()
                .map(|item| pb::WrapRequest {
                    tenant_id: item.tenant.to_owned(),
                    context: item.context.to_proto(),
                    plaintext: item.plaintext.to_vec(),
                })
                .collect(),
        };
        let result = self
            .caller
            .unary(Method::BatchWrap, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.batch_wrap(request).await }
            })
            .await;
        for item in &mut message.items {
            item.plaintext.zeroize();
        }
        let response = result?;
        check_count(items.len(), response.results.len())?;
        Ok(response
            .results
            .into_iter()
            .map(|result| match result.result {
                Some(pb::batch_wrap_result::Result::Ok(ok)) => Ok(Wrapped {
                    ciphertext: ok.ciphertext,
                    key_version: ok.key_version,
                }),
                Some(pb::batch_wrap_result::Result::Error(e)) => Err(item_error(e)),
                None => Err(empty_item()),
            })
            .collect())
    }

    /// Unwraps many items (at most 1000); one result per item, in order.
    pub async fn batch_unwrap(
        &self,
        items: &[UnwrapItem<'_>],
    ) -> Result<Vec<Result<Unwrapped, ClientError>>, ClientError> {
        let message = pb::BatchUnwrapRequest {
            items: items
                .iter()
                .map(|item| pb::UnwrapRequest {
                    tenant_id: item.tenant.to_owned(),
                    context: item.context.to_proto(),
                    ciphertext: item.ciphertext.to_vec(),
                })
                .collect(),
        };
        let response = self
            .caller
            .unary(Method::BatchUnwrap, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.batch_unwrap(request).await }
            })
            .await?;
        // Take every plaintext out before anything can return early.
        let results: Vec<Result<Unwrapped, ClientError>> = response
            .results
            .into_iter()
            .map(|result| match result.result {
                Some(pb::batch_unwrap_result::Result::Ok(mut ok)) => Ok(unwrapped(&mut ok)),
                Some(pb::batch_unwrap_result::Result::Error(e)) => Err(item_error(e)),
                None => Err(empty_item()),
            })
            .collect();
        check_count(items.len(), results.len())?;
        Ok(results)
    }

    /// A fresh data key of `length` bytes (16..64; 0 means 32), in the clear and wrapped
    /// under the tenant's key bound to `context`.
    pub async fn generate_data_key(
        &self,
        tenant: &str,
        context: &Context,
        length: u32,
    ) -> Result<DataKey, ClientError> {
        let message = pb::GenerateDataKeyRequest {
            tenant_id: tenant.to_owned(),
            context: context.to_proto(),
            length,
        };
        let mut response = self
            .caller
            .unary(Method::GenerateDataKey, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.generate_data_key(request).await }
            })
            .await?;
        Ok(DataKey {
            plaintext_key: Zeroizing::new(mem::take(&mut response.plaintext_key)),
            ciphertext: mem::take(&mut response.ciphertext),
            key_version: response.key_version,
        })
    }

    /// As [`KmsClient::generate_data_key`], returning only the wrapped key.
    pub async fn generate_data_key_without_plaintext(
        &self,
        tenant: &str,
        context: &Context,
        length: u32,
    ) -> Result<Wrapped, ClientError> {
        let message = pb::GenerateDataKeyRequest {
            tenant_id: tenant.to_owned(),
            context: context.to_proto(),
            length,
        };
        let response = self
            .caller
            .unary(
                Method::GenerateDataKeyWithoutPlaintext,
                &message,
                |request| {
                    let mut client = self.inner.clone();
                    async move { client.generate_data_key_without_plaintext(request).await }
                },
            )
            .await?;
        Ok(Wrapped {
            ciphertext: response.ciphertext,
            key_version: response.key_version,
        })
    }

    /// Creates or overwrites a stored secret (value 1 B .. 64 KiB); with
    /// [`PutSecretOptions::expected_revision`], a compare-and-swap. Not retried.
    pub async fn put_secret(
        &self,
        tenant: &str,
        vendor: &str,
        name: &str,
        value: &[u8],
        options: &PutSecretOptions,
    ) -> Result<SecretRevision, ClientError> {
        let mut message = pb::PutSecretRequest {
            tenant_id: tenant.to_owned(),
            vendor: vendor.to_owned(),
            name: name.to_owned(),
            value: value.to_vec(),
            labels: options
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            expected_revision: options.expected_revision,
        };
        let result = self
            .caller
            .unary(Method::PutSecret, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.put_secret(request).await }
            })
            .await;
        message.value.zeroize();
        let response = result?;
        Ok(SecretRevision {
            revision: response.revision,
            key_version: response.key_version,
        })
    }

    /// A stored secret's value and metadata.
    pub async fn get_secret(
        &self,
        tenant: &str,
        vendor: &str,
        name: &str,
    ) -> Result<Secret, ClientError> {
        let message = pb::GetSecretRequest {
            tenant_id: tenant.to_owned(),
            vendor: vendor.to_owned(),
            name: name.to_owned(),
        };
        let mut response = self
            .caller
            .unary(Method::GetSecret, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.get_secret(request).await }
            })
            .await?;
        let value = Zeroizing::new(mem::take(&mut response.value));
        Ok(Secret {
            value,
            metadata: response.metadata.map(Into::into).unwrap_or_default(),
        })
    }

    /// One page of a tenant's stored secrets' metadata, optionally of one vendor.
    /// `page_size` 1..1000 (0: the server's default, 100); `page_token` from the previous
    /// page.
    pub async fn list_secrets(
        &self,
        tenant: &str,
        vendor: Option<&str>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<SecretPage, ClientError> {
        let message = pb::ListSecretsRequest {
            tenant_id: tenant.to_owned(),
            vendor: vendor.unwrap_or_default().to_owned(),
            page_size,
            page_token: page_token.unwrap_or_default().to_owned(),
        };
        let response = self
            .caller
            .unary(Method::ListSecrets, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.list_secrets(request).await }
            })
            .await?;
        Ok(SecretPage {
            secrets: response.secrets.into_iter().map(Into::into).collect(),
            next_page_token: crate::types::page_token(response.next_page_token),
        })
    }

    /// Deletes a stored secret; `false` when there was nothing to delete. Not retried.
    pub async fn delete_secret(
        &self,
        tenant: &str,
        vendor: &str,
        name: &str,
    ) -> Result<bool, ClientError> {
        let message = pb::DeleteSecretRequest {
            tenant_id: tenant.to_owned(),
            vendor: vendor.to_owned(),
            name: name.to_owned(),
        };
        let response = self
            .caller
            .unary(Method::DeleteSecret, &message, |request| {
                let mut client = self.inner.clone();
                async move { client.delete_secret(request).await }
            })
            .await?;
        Ok(response.deleted)
    }
}

/// Moves the plaintext out of a response into a zeroizing buffer (no copy).
fn unwrapped(response: &mut pb::UnwrapResponse) -> Unwrapped {
    Unwrapped {
        plaintext: Zeroizing::new(mem::take(&mut response.plaintext)),
        key_version: response.key_version,
    }
}

fn check_count(sent: usize, received: usize) -> Result<(), ClientError> {
    if sent == received {
        Ok(())
    } else {
        Err(ClientError::Internal {
            message: format!("the server returned {received} results for {sent} items"),
            reason: None,
        })
    }
}

fn empty_item() -> ClientError {
    ClientError::Internal {
        message: "the server returned an empty batch result".into(),
        reason: None,
    }
}
