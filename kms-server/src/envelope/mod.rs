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

pub mod aead;
pub mod format;
pub mod kdf;
pub mod labels;

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
    let sealed = match out.get_mut(HEADER_LEN + COMMITMENT_LEN..) {
        Some(body) => aead::encrypt_in_place(keys.enc_key(), &nonce, &aad, body),
        None => Err(aead::AeadError),
    };
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(out)
        }
        Err(aead::AeadError) => {
            // Unreachable within the plaintext limit; never leave plaintext behind.
            out.zeroize();
            Err(EnvelopeError::Authentication)
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
    // `parse` guarantees the body holds at least the tag.
    let (ciphertext, tag) = parsed
        .body
        .split_last_chunk::<TAG_LEN>()
        .ok_or(OpenFailure::Aead)?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    // On a tag mismatch the buffer is re-encrypted, and Zeroizing wipes it regardless.
    aead::decrypt_in_place(keys.enc_key(), &parsed.header.nonce, &aad, &mut buffer, tag)
        .map_err(|_| OpenFailure::Aead)?;
    Ok(Plaintext::from(std::mem::take(&mut *buffer)))
}

/// Refuses a plaintext outside 1 B ..= 64 KiB before any other work.
pub fn check_plaintext_len(plaintext: &[u8]) -> Result<(), EnvelopeError> {
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

#[cfg(test)]
mod test {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::root::{RootKey, RootKeyId};

    fn tenant(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn keys(root: u8, salt: u8, t: &str, v: u32) -> TenantKeys {
        let root = RootKey::from_bytes(RootKeyId::new("r").unwrap(), [root; 32]);
        let salt = Salt::from_slice(&[salt; 32]).unwrap();
        TenantKeys::derive(&root, &salt, &tenant(t), KeyVersion::new(v).unwrap())
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::from_caller(pairs.iter().copied()).unwrap()
    }

    fn sealed() -> Vec<u8> {
        let k = keys(1, 2, "acme", 1);
        seal(
            &k,
            &tenant("acme"),
            KeyVersion::FIRST,
            &ctx(&[("vendor", "shopify")]),
            b"tok",
        )
        .unwrap()
    }

    fn checked(k: &TenantKeys, t: &str, c: &Context, env: &[u8]) -> Result<Vec<u8>, OpenFailure> {
        let parsed = parse(env).unwrap();
        open_checked(k, &tenant(t), c, &parsed).map(|p| p.expose_secret().to_vec())
    }

    /// A wrong key or context fails at the commitment, before the AEAD is tried; only a
    /// body that passes the commitment reaches the AEAD.
    #[test]
    fn commitment_fails_before_the_aead() {
        let env = sealed();
        let shopify = ctx(&[("vendor", "shopify")]);
        assert_eq!(
            checked(&keys(1, 2, "acme", 1), "acme", &shopify, &env).unwrap(),
            b"tok"
        );
        // Another version's keys, same tenant, same header.
        let other_version = keys(1, 2, "acme", 2);
        assert_eq!(
            checked(&other_version, "acme", &shopify, &env),
            Err(OpenFailure::Commitment)
        );
        // Another salt's keys.
        assert_eq!(
            checked(&keys(1, 3, "acme", 1), "acme", &shopify, &env),
            Err(OpenFailure::Commitment)
        );
        // Another root key.
        assert_eq!(
            checked(&keys(9, 2, "acme", 1), "acme", &shopify, &env),
            Err(OpenFailure::Commitment)
        );
        // A different context.
        assert_eq!(
            checked(
                &keys(1, 2, "acme", 1),
                "acme",
                &ctx(&[("vendor", "amazon")]),
                &env
            ),
            Err(OpenFailure::Commitment)
        );
        assert_eq!(
            checked(&keys(1, 2, "acme", 1), "acme", &Context::empty(), &env),
            Err(OpenFailure::Commitment)
        );
        // A flipped body bit passes the commitment and fails in the AEAD.
        let mut tampered = env.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            checked(&keys(1, 2, "acme", 1), "acme", &shopify, &tampered),
            Err(OpenFailure::Aead)
        );
        // Both are one opaque error to callers.
        let parsed = parse(&tampered).unwrap();
        assert_eq!(
            open_parsed(&keys(1, 2, "acme", 1), &tenant("acme"), &shopify, &parsed).map(|_| ()),
            Err(EnvelopeError::Authentication)
        );
        let parsed = parse(&env).unwrap();
        assert_eq!(
            open_parsed(&other_version, &tenant("acme"), &shopify, &parsed).map(|_| ()),
            Err(EnvelopeError::Authentication)
        );
    }

    #[test]
    fn size_limits_are_checked_before_crypto() {
        let k = keys(1, 2, "acme", 1);
        let t = tenant("acme");
        let c = Context::empty();
        assert_eq!(
            seal(&k, &t, KeyVersion::FIRST, &c, b""),
            Err(EnvelopeError::PlaintextLength { len: 0 })
        );
        let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            seal(&k, &t, KeyVersion::FIRST, &c, &big),
            Err(EnvelopeError::PlaintextLength { len: big.len() })
        );
        assert!(seal(&k, &t, KeyVersion::FIRST, &c, &big[1..]).is_ok());
        let huge = vec![1u8; MAX_CIPHERTEXT_LEN + 1];
        assert_eq!(
            open(&k, &t, &c, &huge).map(|_| ()),
            Err(EnvelopeError::CiphertextTooLong { len: huge.len() })
        );
    }

    #[test]
    fn debug_of_key_material_is_redacted() {
        let root = RootKey::from_bytes(RootKeyId::new("prod-1").unwrap(), [0xab; 32]);
        let salt = Salt::from_slice(&[0xcd; 32]).unwrap();
        let k = TenantKeys::derive(&root, &salt, &tenant("acme"), KeyVersion::FIRST);
        let plaintext: Plaintext = vec![0xef; 8].into();
        for (dbg, name) in [
            (format!("{root:?}"), "RootKey"),
            (format!("{salt:?}"), "Salt"),
            (format!("{k:?}"), "TenantKeys"),
            (format!("{plaintext:?}"), "SecretBox"),
        ] {
            assert!(dbg.contains(name), "{dbg}");
            for needle in ["ab", "AB", "171", "cd", "205", "ef", "239"] {
                assert!(!dbg.to_lowercase().contains(needle), "{dbg} leaks {needle}");
            }
        }
        assert_eq!(
            format!("{root:?}"),
            r#"RootKey { id: RootKeyId("prod-1"), .. }"#
        );
        assert_eq!(format!("{k:?}"), "TenantKeys { .. }");
        assert_eq!(format!("{salt:?}"), "Salt { .. }");
        assert_eq!(format!("{plaintext:?}"), "SecretBox<[u8]>([REDACTED])");
    }
}
