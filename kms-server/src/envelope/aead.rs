//! The AEAD layer the envelope calls: AES-256-GCM-SIV (RFC 8452) in place, with the
//! tag detached. RFC 8452 Appendix C.2 and Wycheproof vectors run through these two
//! functions, below the envelope's own limits (so empty plaintexts are covered here).

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Key, Nonce, Tag};

use super::format::{NONCE_LEN, TAG_LEN};

/// Length of an AES-256-GCM-SIV key.
pub const KEY_LEN: usize = 32;

/// The AEAD failed: the tag did not verify, or the input exceeds RFC 8452's limits.
/// Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD operation failed")]
pub struct AeadError;

/// Encrypts `buffer` in place and returns the tag.
pub fn encrypt_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadError> {
    let tag = cipher(key)
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer)
        .map_err(|_| AeadError)?;
    Ok(tag.into())
}

/// Decrypts `buffer` in place if `tag` verifies. On failure aes-gcm-siv re-encrypts
/// the buffer, so no plaintext is left in it.
pub fn decrypt_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadError> {
    cipher(key)
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
        .map_err(|_| AeadError)
}

/// The cipher zeroizes its key schedule on drop (the `aes` crate's `zeroize` feature).
fn cipher(key: &[u8; KEY_LEN]) -> Aes256GcmSiv {
    Aes256GcmSiv::new(Key::<Aes256GcmSiv>::from_slice(key))
}
