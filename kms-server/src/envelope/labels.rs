//! Domain-separation labels of SPEC §3, in one place. Each is ASCII with no terminator.
//! They are part of the format: changing one needs a new format version.

/// HKDF-Expand info prefix for tenant data keys.
pub const TENANT_KEY_INFO: &[u8] = b"hygo-kms/v1/tenant-key";
/// Prefix hashed with the tenant id to make the envelope's tenant fingerprint.
pub const TENANT_FINGERPRINT: &[u8] = b"hygo-kms/v1/tenant-id";
/// Prefix of the commitment MAC input.
pub const COMMITMENT: &[u8] = b"hygo-kms/v1/commit";
/// Prefix of the AEAD associated data.
pub const AAD: &[u8] = b"hygo-kms/v1/aad";
/// Message of the root key check value.
pub const ROOT_KEY_CHECK: &[u8] = b"hygo-kms/v1/root-key-check";
/// HKDF-Expand info of the audit MAC key derived from a root key (SPEC §8).
pub const AUDIT_MAC_KEY_INFO: &[u8] = b"hygo-kms/v1/audit-mac";
/// Prefix of the hash of an audit event (SPEC §8).
pub const AUDIT_EVENT: &[u8] = b"hygo-kms/v1/audit-event";
