//! The limits of SPEC §4, as named constants.
//!
//! Every limit here is enforced before any cryptography or database work. The
//! envelope format's own maxima (SPEC §3: every length ≤ 65535) are checked by
//! the encoder; no limit here exceeds them.

/// Smallest plaintext that may be wrapped (SPEC §4).
pub const MIN_PLAINTEXT_LEN: usize = 1;
/// Largest plaintext that may be wrapped: 64 KiB (SPEC §4).
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024;
/// Largest ciphertext accepted for opening: 64 KiB + the envelope overhead (SPEC §4).
pub const MAX_CIPHERTEXT_LEN: usize = MAX_PLAINTEXT_LEN + crate::envelope::OVERHEAD;
/// Longest tenant id, in bytes (SPEC §4: `[A-Za-z0-9._:-]{1,128}`).
pub const MAX_TENANT_ID_LEN: usize = 128;
/// Most context pairs a caller may send (SPEC §4).
pub const MAX_CONTEXT_PAIRS: usize = 16;
/// Longest context key, in bytes (SPEC §4: `[A-Za-z0-9._:-]{1,64}`).
pub const MAX_CONTEXT_KEY_LEN: usize = 64;
/// Longest context value, in bytes of UTF-8 (SPEC §4).
pub const MAX_CONTEXT_VALUE_LEN: usize = 512;
/// Context keys with this prefix are reserved for the KMS itself (SPEC §4).
pub const RESERVED_CONTEXT_PREFIX: &str = "kms.";
/// Longest root key id (SPEC §3: `[a-z0-9-]{1,32}`).
pub const MAX_ROOT_KEY_ID_LEN: usize = 32;

/// True for the characters SPEC §4 allows in tenant ids, context keys, vendor and
/// secret names: `[A-Za-z0-9._:-]`.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// Most items in one batch call (SPEC §4).
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Largest request message, in bytes (SPEC §4); server and client both use it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
