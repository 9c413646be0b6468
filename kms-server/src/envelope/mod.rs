//! Envelope v1: key-committing AES-256-GCM-SIV bound to a tenant and a context
//! (SPEC §3).
//!
//! ```text
//! header     = 0x01 || 0x01 || u32be(version) || tfp || nonce               (26 bytes)
//! commitment = HMAC-SHA256(commit_key, "hygo-kms/v1/commit" || header || ctx)
//! aad        = "hygo-kms/v1/aad" || header || commitment || ctx
//! envelope   = header || commitment || AES-256-GCM-SIV(enc_key, nonce, plaintext, aad)
//! ```
//!
//! Opening runs in the order of SPEC §3: size, [`format::parse`] (malformed),
//! [`check_tenant`] (cross-tenant), then — after the caller has found the keys of the
//! header's version — the commitment in constant time and the AEAD. Once the
//! commitment check starts, every failure is the one opaque
//! [`EnvelopeError::Authentication`].

pub mod format;
pub mod kdf;
pub mod labels;

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use secrecy::SecretSlice;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

pub use format::{Header, MalformedEnvelope, OVERHEAD, Parsed, parse};
pub use kdf::{Salt, TenantKeys};

use crate::keys::{Context, KeyVersion, TenantId};
use crate::limits::{MAX_CIPHERTEXT_LEN, MAX_PLAINTEXT_LEN, MIN_PLAINTEXT_LEN};
use format::{COMMITMENT_LEN, HEADER_LEN, NONCE_LEN, TAG_LEN};

/// A plaintext returned by [`open`]: zeroized on drop, `Debug` redacted.
pub type Plaintext = SecretSlice<u8>;

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The plaintext is empty or over 64 KiB.
    #[error("plaintext is {len} bytes; it must be {MIN_PLAINTEXT_LEN}..={MAX_PLAINTEXT_LEN}")]
    PlaintextLength {
        /// Its length.
        len: usize,
    },
    /// The ciphertext is larger than any envelope of a 64 KiB plaintext.
    #[error("ciphertext is {len} bytes; at most {MAX_CIPHERTEXT_LEN} are accepted")]
    CiphertextTooLong {
        /// Its length.
        len: usize,
    },
    /// Not an envelope v1.
    #[error("malformed ciphertext: {0}")]
    Malformed(#[from] MalformedEnvelope),
    /// The envelope names another tenant. Nothing was decrypted.
    #[error("ciphertext belongs to another tenant")]
    CrossTenant,
    /// The commitment or the AEAD tag did not verify. Deliberately says no more.
    #[error("ciphertext failed authentication")]
    Authentication,
    /// The context does not fit the format (unreachable for a validated [`Context`]).
    #[error("context cannot be encoded: {0}")]
    Context(#[from] format::ContextEncodingError),
}

/// Seals `plaintext` for `tenant` under the keys of `version`, with a nonce from the OS
/// CSPRNG.
pub fn seal(
    keys: &TenantKeys,
    tenant: &TenantId,
    version: KeyVersion,
    context: &Context,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    check_plaintext_len(plaintext)?;
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(keys, tenant, version, context, plaintext, nonce)
}

/// [`seal`] with a caller-chosen nonce. **Only for known-answer tests**: a repeated
/// nonce makes equal inputs give equal envelopes.
#[doc(hidden)]
pub fn seal_with_nonce(
    keys: &TenantKeys,
    tenant: &TenantId,
    version: KeyVersion,
    context: &Context,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, EnvelopeError> {
    check_plaintext_len(plaintext)?;
    let ctx = canonical_context(tenant, context)?;
    let header = Header {
        version: version.get(),
        tfp: format::tenant_fingerprint(tenant.as_str().as_bytes()),
        nonce,
    }
    .encode();
    let commitment = commitment(keys, &header, &ctx);
    let aad = aad(&header, &commitment, &ctx);

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&commitment);
    out.extend_from_slice(plaintext);
    let sealed = out
        .get_mut(HEADER_LEN + COMMITMENT_LEN..)
        .ok_or(EnvelopeError::Authentication)
        .and_then(|body| {
            cipher(keys)
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, body)
                .map_err(|_| EnvelopeError::Authentication)
        });
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(out)
        }
        Err(e) => {
            // Unreachable within the plaintext limit; never leave plaintext behind.
            out.zeroize();
            Err(e)
        }
    }
}

/// Opens `envelope` as `tenant` with `context`, using `keys` (those of the header's
/// version). Runs every step of SPEC §3's order; services that look keys up by version
/// use [`check_size`], [`parse`], [`check_tenant`] and [`open_parsed`] in turn.
pub fn open(
    keys: &TenantKeys,
    tenant: &TenantId,
    context: &Context,
    envelope: &[u8],
) -> Result<Plaintext, EnvelopeError> {
    check_size(envelope)?;
    let parsed = parse(envelope)?;
    check_tenant(&parsed, tenant)?;
    open_parsed(keys, tenant, context, &parsed)
}

/// Refuses a ciphertext over [`MAX_CIPHERTEXT_LEN`] before any other work.
pub fn check_size(envelope: &[u8]) -> Result<(), EnvelopeError> {
    if envelope.len() > MAX_CIPHERTEXT_LEN {
        return Err(EnvelopeError::CiphertextTooLong {
            len: envelope.len(),
        });
    }
    Ok(())
}

/// Refuses an envelope whose tenant fingerprint is not `tenant`'s: a cross-tenant
/// ciphertext, reported before any key is looked up or anything decrypted.
pub fn check_tenant(parsed: &Parsed<'_>, tenant: &TenantId) -> Result<(), EnvelopeError> {
    // The fingerprint is public; a plain comparison leaks nothing.
    if parsed.header.tfp == format::tenant_fingerprint(tenant.as_str().as_bytes()) {
        Ok(())
    } else {
        Err(EnvelopeError::CrossTenant)
    }
}

/// Verifies the commitment, then opens the AEAD. Both failures are
/// [`EnvelopeError::Authentication`].
pub fn open_parsed(
    keys: &TenantKeys,
    tenant: &TenantId,
    context: &Context,
    parsed: &Parsed<'_>,
) -> Result<Plaintext, EnvelopeError> {
    open_checked(keys, tenant, context, parsed).map_err(|failure| match failure {
        OpenFailure::Context(e) => EnvelopeError::Context(e),
        OpenFailure::Commitment | OpenFailure::Aead => EnvelopeError::Authentication,
    })
}

/// Which step of [`open_parsed`] failed: visible to this crate's tests only, so the
/// commitment test can show that a wrong key or context never reaches the AEAD.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    Context(format::ContextEncodingError),
    Commitment,
    Aead,
}

pub(crate) fn open_checked(
    keys: &TenantKeys,
    tenant: &TenantId,
    context: &Context,
    parsed: &Parsed<'_>,
) -> Result<Plaintext, OpenFailure> {
    let ctx = canonical_context(tenant, context).map_err(OpenFailure::Context)?;
    let expected = commitment(keys, parsed.header_bytes, &ctx);
    if !bool::from(expected.ct_eq(parsed.commitment)) {
        return Err(OpenFailure::Commitment);
    }
    let aad = aad(parsed.header_bytes, parsed.commitment, &ctx);
    let split = parsed.body.len().saturating_sub(TAG_LEN);
    let (ciphertext, tag) = parsed.body.split_at(split);
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    // On a tag mismatch aes-gcm-siv re-encrypts the buffer; Zeroizing wipes it anyway.
    cipher(keys)
        .decrypt_in_place_detached(
            Nonce::from_slice(&parsed.header.nonce),
            &aad,
            &mut buffer,
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenFailure::Aead)?;
    Ok(Plaintext::from(std::mem::take(&mut *buffer)))
}

fn check_plaintext_len(plaintext: &[u8]) -> Result<(), EnvelopeError> {
    if (MIN_PLAINTEXT_LEN..=MAX_PLAINTEXT_LEN).contains(&plaintext.len()) {
        Ok(())
    } else {
        Err(EnvelopeError::PlaintextLength {
            len: plaintext.len(),
        })
    }
}

/// The canonical context bytes for `tenant` and `context`.
pub fn canonical_context(
    tenant: &TenantId,
    context: &Context,
) -> Result<Vec<u8>, format::ContextEncodingError> {
    format::encode_context(
        tenant.as_str().as_bytes(),
        context.pairs().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    )
}

fn cipher(keys: &TenantKeys) -> Aes256GcmSiv {
    Aes256GcmSiv::new(aes_gcm_siv::Key::<Aes256GcmSiv>::from_slice(keys.enc_key()))
}

fn commitment(keys: &TenantKeys, header: &[u8; HEADER_LEN], ctx: &[u8]) -> [u8; COMMITMENT_LEN] {
    let mut out = [0u8; COMMITMENT_LEN];
    // HMAC takes keys of any length: this cannot fail for the 32-byte commit key.
    if let Ok(mac) = <Hmac<Sha256> as Mac>::new_from_slice(keys.commit_key()) {
        let tag = mac
            .chain_update(labels::COMMITMENT)
            .chain_update(header)
            .chain_update(ctx)
            .finalize()
            .into_bytes();
        out.copy_from_slice(&tag);
    }
    out
}

fn aad(header: &[u8; HEADER_LEN], commitment: &[u8; COMMITMENT_LEN], ctx: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(labels::AAD.len() + HEADER_LEN + COMMITMENT_LEN + ctx.len());
    aad.extend_from_slice(labels::AAD);
    aad.extend_from_slice(header);
    aad.extend_from_slice(commitment);
    aad.extend_from_slice(ctx);
    aad
}
