//! `hygo.kms.v1.KeyService`: the data plane.

use kms_proto::v1 as pb;
use kms_proto::v1::key_service_server::KeyService;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::{Call, Shared, context, tenant};
use crate::auth::{Permission, ServicePrincipal};
use crate::error::KmsError;
use crate::keys::Context;
use crate::limits::MAX_BATCH_ITEMS;
use crate::service::SecretName;
use crate::store::{Labels, SecretMeta};

/// The `KeyService` implementation.
#[derive(Debug, Clone)]
pub struct KeyServiceApi(pub Shared);

fn item_error(e: KmsError) -> pb::ItemError {
    let (code, reason) = e.code_and_reason();
    pb::ItemError {
        code: code as i32,
        message: e.to_string(),
        reason: reason.to_owned(),
    }
}

fn check_batch(n: usize) -> Result<(), KmsError> {
    if n > MAX_BATCH_ITEMS {
        return Err(KmsError::ResourceExhausted {
            reason: "LIMIT_BATCH",
            message: format!("batch has {n} items; at most {MAX_BATCH_ITEMS} are allowed"),
        });
    }
    Ok(())
}

fn meta(m: SecretMeta) -> pb::SecretMetadata {
    pb::SecretMetadata {
        vendor: m.vendor,
        name: m.name,
        revision: m.revision,
        key_version: m.key_version.get(),
        labels: m.labels.into_iter().collect(),
        created_at_ms: m.created_at,
        updated_at_ms: m.updated_at,
    }
}

fn labels(map: &std::collections::HashMap<String, String>) -> Result<Labels, KmsError> {
    // Labels follow the rules of context pairs (SPEC §4), `kms.` included.
    let checked = Context::from_caller(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| KmsError::invalid("INVALID_LABELS", format!("labels: {e}")))?;
    Ok(checked
        .pairs()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

impl KeyServiceApi {
    async fn wrap_one(
        &self,
        call: &Call,
        p: &ServicePrincipal,
        req: &mut pb::WrapRequest,
    ) -> Result<pb::WrapResponse, KmsError> {
        let plaintext = Zeroizing::new(std::mem::take(&mut req.plaintext));
        let t = tenant(&req.tenant_id)?;
        let c = context(&req.context)?;
        if let Err(e) = p.authorize(Permission::Wrap, &t, &c) {
            return Err(self.0.denied(call, &t, e).await);
        }
        let (ciphertext, v) = self.0.kms.wrap(&t, &c, &plaintext).await?;
        Ok(pb::WrapResponse {
            ciphertext,
            key_version: v.get(),
        })
    }

    async fn unwrap_one(
        &self,
        call: &Call,
        p: &ServicePrincipal,
        req: &pb::UnwrapRequest,
    ) -> Result<pb::UnwrapResponse, KmsError> {
        let t = tenant(&req.tenant_id)?;
        let c = context(&req.context)?;
        if let Err(e) = p.authorize(Permission::Unwrap, &t, &c) {
            return Err(self.0.denied(call, &t, e).await);
        }
        let (plaintext, v) = self
            .0
            .kms
            .unwrap(&call.caller, &t, &c, &req.ciphertext)
            .await?;
        Ok(pb::UnwrapResponse {
            plaintext: plaintext.expose_secret().to_vec(),
            key_version: v.get(),
        })
    }

    async fn gdk(
        &self,
        call: &Call,
        p: &ServicePrincipal,
        req: &pb::GenerateDataKeyRequest,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, u32), KmsError> {
        let t = tenant(&req.tenant_id)?;
        let c = context(&req.context)?;
        if let Err(e) = p.authorize(Permission::GenerateDataKey, &t, &c) {
            return Err(self.0.denied(call, &t, e).await);
        }
        let (key, ct, v) = self.0.kms.generate_data_key(&t, &c, req.length).await?;
        Ok((key, ct, v.get()))
    }

    async fn secret_call(
        &self,
        call: &Call,
        p: &ServicePrincipal,
        perm: Permission,
        tenant_id: &str,
        vendor: &str,
        name: &str,
    ) -> Result<(crate::keys::TenantId, SecretName), KmsError> {
        let t = tenant(tenant_id)?;
        let s = SecretName::new(vendor, name)?;
        if let Err(e) = p.authorize_secret(perm, &t, vendor) {
            return Err(self.0.denied(call, &t, e).await);
        }
        Ok((t, s))
    }
}

#[tonic::async_trait]
impl KeyService for KeyServiceApi {
    async fn wrap(
        &self,
        request: Request<pb::WrapRequest>,
    ) -> Result<Response<pb::WrapResponse>, Status> {
        self.0
            .data_call(request, "Wrap", async |call, p, mut req| {
                self.wrap_one(call, p, &mut req).await
            })
            .await
    }

    async fn unwrap(
        &self,
        request: Request<pb::UnwrapRequest>,
    ) -> Result<Response<pb::UnwrapResponse>, Status> {
        self.0
            .data_call(request, "Unwrap", async |call, p, req| {
                self.unwrap_one(call, p, &req).await
            })
            .await
    }

    async fn rewrap(
        &self,
        request: Request<pb::RewrapRequest>,
    ) -> Result<Response<pb::RewrapResponse>, Status> {
        self.0
            .data_call(request, "Rewrap", async |call, p, req| {
                let t = tenant(&req.tenant_id)?;
                let c = context(&req.context)?;
                if let Err(e) = p.authorize_rewrap(&t, &c) {
                    return Err(self.0.denied(call, &t, e).await);
                }
                let (ciphertext, v) = self
                    .0
                    .kms
                    .rewrap(&call.caller, &t, &c, &req.ciphertext)
                    .await?;
                Ok(pb::RewrapResponse {
                    ciphertext,
                    key_version: v.get(),
                })
            })
            .await
    }

    async fn batch_wrap(
        &self,
        request: Request<pb::BatchWrapRequest>,
    ) -> Result<Response<pb::BatchWrapResponse>, Status> {
        self.0
            .data_call(request, "BatchWrap", async |call, p, mut req| {
                check_batch(req.items.len())?;
                let mut results = Vec::with_capacity(req.items.len());
                for item in &mut req.items {
                    let result = match self.wrap_one(call, p, item).await {
                        Ok(ok) => pb::batch_wrap_result::Result::Ok(ok),
                        Err(e) => pb::batch_wrap_result::Result::Error(item_error(e)),
                    };
                    results.push(pb::BatchWrapResult {
                        result: Some(result),
                    });
                }
                Ok(pb::BatchWrapResponse { results })
            })
            .await
    }

    async fn batch_unwrap(
        &self,
        request: Request<pb::BatchUnwrapRequest>,
    ) -> Result<Response<pb::BatchUnwrapResponse>, Status> {
        self.0
            .data_call(request, "BatchUnwrap", async |call, p, req| {
                check_batch(req.items.len())?;
                let mut results = Vec::with_capacity(req.items.len());
                for item in &req.items {
                    let result = match self.unwrap_one(call, p, item).await {
                        Ok(ok) => pb::batch_unwrap_result::Result::Ok(ok),
                        Err(e) => pb::batch_unwrap_result::Result::Error(item_error(e)),
                    };
                    results.push(pb::BatchUnwrapResult {
                        result: Some(result),
                    });
                }
                Ok(pb::BatchUnwrapResponse { results })
            })
            .await
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        self.0
            .data_call(request, "GenerateDataKey", async |call, p, req| {
                let (key, ciphertext, key_version) = self.gdk(call, p, &req).await?;
                Ok(pb::GenerateDataKeyResponse {
                    plaintext_key: key.to_vec(),
                    ciphertext,
                    key_version,
                })
            })
            .await
    }

    async fn generate_data_key_without_plaintext(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyWithoutPlaintextResponse>, Status> {
        self.0
            .data_call(
                request,
                "GenerateDataKeyWithoutPlaintext",
                async |call, p, req| {
                    let (_key, ciphertext, key_version) = self.gdk(call, p, &req).await?;
                    Ok(pb::GenerateDataKeyWithoutPlaintextResponse {
                        ciphertext,
                        key_version,
                    })
                },
            )
            .await
    }

    async fn put_secret(
        &self,
        request: Request<pb::PutSecretRequest>,
    ) -> Result<Response<pb::PutSecretResponse>, Status> {
        self.0
            .data_call(request, "PutSecret", async |call, p, mut req| {
                let value = Zeroizing::new(std::mem::take(&mut req.value));
                let labels = labels(&req.labels)?;
                let (t, s) = self
                    .secret_call(
                        call,
                        p,
                        Permission::PutSecret,
                        &req.tenant_id,
                        &req.vendor,
                        &req.name,
                    )
                    .await?;
                let (revision, v) = self
                    .0
                    .kms
                    .put_secret(&t, &s, &value, &labels, req.expected_revision)
                    .await?;
                Ok(pb::PutSecretResponse {
                    revision,
                    key_version: v.get(),
                })
            })
            .await
    }

    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        self.0
            .data_call(request, "GetSecret", async |call, p, req| {
                let (t, s) = self
                    .secret_call(
                        call,
                        p,
                        Permission::GetSecret,
                        &req.tenant_id,
                        &req.vendor,
                        &req.name,
                    )
                    .await?;
                let (value, m) = self.0.kms.get_secret(&call.caller, &t, &s).await?;
                Ok(pb::GetSecretResponse {
                    value: value.expose_secret().to_vec(),
                    metadata: Some(meta(m)),
                })
            })
            .await
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        self.0
            .data_call(request, "ListSecrets", async |call, p, req| {
                let t = tenant(&req.tenant_id)?;
                let vendor = (!req.vendor.is_empty()).then_some(req.vendor.as_str());
                if let Some(v) = vendor {
                    SecretName::check_vendor(v)?;
                }
                if let Err(e) =
                    p.authorize_secret(Permission::ListSecrets, &t, vendor.unwrap_or(""))
                {
                    return Err(self.0.denied(call, &t, e).await);
                }
                let (page, next_page_token) = self
                    .0
                    .kms
                    .list_secrets(&t, vendor, req.page_size, &req.page_token)
                    .await?;
                Ok(pb::ListSecretsResponse {
                    secrets: page.into_iter().map(meta).collect(),
                    next_page_token,
                })
            })
            .await
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeleteSecretResponse>, Status> {
        self.0
            .data_call(request, "DeleteSecret", async |call, p, req| {
                let (t, s) = self
                    .secret_call(
                        call,
                        p,
                        Permission::DeleteSecret,
                        &req.tenant_id,
                        &req.vendor,
                        &req.name,
                    )
                    .await?;
                let deleted = self.0.kms.delete_secret(&t, &s).await?;
                Ok(pb::DeleteSecretResponse { deleted })
            })
            .await
    }
}
