//! Tamper-evident audit events (SPEC §8).
//!
//! Events form one chain per tenant and one chain ([`AuditChain::Global`], stored as
//! `#global`, which is never a valid tenant id) for events without a tenant. Each event
//! carries the hash of the one before it and a MAC of its own hash under an
//! [`AuditKey`] derived from a root key, whose id it records, so whoever can write the
//! database but holds no root key cannot forge a valid chain:
//!
//! ```text
//! audit_key = HKDF-SHA256(salt = "", IKM = root_key, info = "hygo-kms/v1/audit-mac", L = 32)
//! hash      = SHA-256("hygo-kms/v1/audit-event" || prev_hash
//!                     || lp(chain) || u64be(seq) || i64be(at) || lp(actor) || lp(action)
//!                     || u32be(key_version, 0 for none) || lp(outcome) || lp(request_id)
//!                     || lp(detail) || lp(mac_root_key_id))
//! lp(s)     = u64be(len(s)) || s
//! mac       = HMAC-SHA256(audit_key, hash)
//! ```
//!
//! `prev_hash` of the first event (seq 1) is 32 zero bytes. Appends are serialised per
//! chain by the store ([`crate::store::Store::append_audit`]); [`verify_chain`] checks a
//! chain read back. Deleting the newest events is detected by comparing the head
//! ([`ChainHead`]) with one recorded elsewhere.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::envelope::kdf::hkdf_sha256;
use crate::envelope::labels;
use crate::keys::{KeyVersion, TenantId};
use crate::root::{RootKey, RootKeyId, RootKeyRing};

/// Length of event hashes, MACs and the audit key.
pub const HASH_LEN: usize = 32;
/// The stored chain id of events without a tenant. `#` is not allowed in tenant ids, so
/// it cannot collide with a tenant's chain.
pub const GLOBAL_CHAIN: &str = "#global";

/// The chain an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditChain {
    /// The chain of one tenant.
    Tenant(TenantId),
    /// The chain of events without a tenant.
    Global,
}

impl AuditChain {
    /// The chain id as stored (the `tenant_id` column).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tenant(t) => t.as_str(),
            Self::Global => GLOBAL_CHAIN,
        }
    }

    /// Parses a stored chain id; `None` if it is neither `#global` nor a valid tenant id.
    pub fn from_stored(s: &str) -> Option<Self> {
        if s == GLOBAL_CHAIN {
            Some(Self::Global)
        } else {
            TenantId::new(s).ok().map(Self::Tenant)
        }
    }
}

impl fmt::Display for AuditChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key that MACs audit events, derived from one root key. Boxed, zeroized on drop,
/// `Debug` shows the root key id only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AuditKey {
    #[zeroize(skip)]
    root_key_id: RootKeyId,
    key: Box<[u8; HASH_LEN]>,
}

impl AuditKey {
    /// `HKDF-SHA256(salt = "", IKM = root_key, info = "hygo-kms/v1/audit-mac", L = 32)`.
    pub fn derive(root: &RootKey) -> Self {
        let mut key = Box::new([0u8; HASH_LEN]);
        // 32 bytes is far below HKDF's limit; on error the key is zeroed, never partial.
        let _ = hkdf_sha256(
            root.expose(),
            &[],
            &[labels::AUDIT_MAC_KEY_INFO],
            key.as_mut_slice(),
        );
        Self {
            root_key_id: root.id().clone(),
            key,
        }
    }

    /// The id of the root key this key was derived from.
    pub fn root_key_id(&self) -> &RootKeyId {
        &self.root_key_id
    }

    /// `HMAC-SHA256(audit_key, hash)`.
    fn mac(&self, hash: &[u8; HASH_LEN]) -> [u8; HASH_LEN] {
        let mut out = [0u8; HASH_LEN];
        // HMAC accepts keys of any length: new_from_slice cannot fail here.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_slice()) {
            mac.update(hash);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("root_key_id", &self.root_key_id)
            .finish_non_exhaustive()
    }
}

/// An event to append; the store assigns its sequence number, time and links.
/// No field may hold a secret (they are stored and shown to auditors as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// The chain: the tenant concerned, or [`AuditChain::Global`].
    pub chain: AuditChain,
    /// Who acted (a service or admin principal name).
    pub actor: String,
    /// What was done, e.g. `rotate`, `destroy_version`, `unwrap_rejected`.
    pub action: String,
    /// The key version concerned, if any.
    pub key_version: Option<KeyVersion>,
    /// How it ended, e.g. `ok`, `denied`, `failed`.
    pub outcome: String,
    /// The request id, for correlation with logs.
    pub request_id: String,
    /// Further non-secret detail (may be empty).
    pub detail: String,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The chain.
    pub chain: AuditChain,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    /// See [`NewAuditEvent::actor`].
    pub actor: String,
    /// See [`NewAuditEvent::action`].
    pub action: String,
    /// See [`NewAuditEvent::key_version`].
    pub key_version: Option<KeyVersion>,
    /// See [`NewAuditEvent::outcome`].
    pub outcome: String,
    /// See [`NewAuditEvent::request_id`].
    pub request_id: String,
    /// See [`NewAuditEvent::detail`].
    pub detail: String,
    /// The hash of the event before (zeros for seq 1).
    pub prev_hash: [u8; HASH_LEN],
    /// This event's hash (module docs).
    pub hash: [u8; HASH_LEN],
    /// `HMAC-SHA256(audit_key, hash)`.
    pub mac: [u8; HASH_LEN],
    /// The root key the MAC key was derived from.
    pub mac_root_key_id: RootKeyId,
}

impl AuditRecord {
    /// Links `event` after `prev_hash` as number `seq` at time `at`, hashing and MACing
    /// it with `key`. Stores call this inside the transaction that appends.
    pub fn seal(
        event: &NewAuditEvent,
        seq: u64,
        at: i64,
        prev_hash: [u8; HASH_LEN],
        key: &AuditKey,
    ) -> Self {
        let mut record = Self {
            chain: event.chain.clone(),
            seq,
            at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            key_version: event.key_version,
            outcome: event.outcome.clone(),
            request_id: event.request_id.clone(),
            detail: event.detail.clone(),
            prev_hash,
            hash: [0; HASH_LEN],
            mac: [0; HASH_LEN],
            mac_root_key_id: key.root_key_id().clone(),
        };
        record.hash = record.compute_hash();
        record.mac = key.mac(&record.hash);
        record
    }

    /// The hash of this event's fields and `prev_hash` (module docs).
    pub fn compute_hash(&self) -> [u8; HASH_LEN] {
        fn lp(h: &mut Sha256, s: &str) {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        let mut h = Sha256::new();
        h.update(labels::AUDIT_EVENT);
        h.update(self.prev_hash);
        lp(&mut h, self.chain.as_str());
        h.update(self.seq.to_be_bytes());
        h.update(self.at.to_be_bytes());
        lp(&mut h, &self.actor);
        lp(&mut h, &self.action);
        h.update(self.key_version.map_or(0, KeyVersion::get).to_be_bytes());
        lp(&mut h, &self.outcome);
        lp(&mut h, &self.request_id);
        lp(&mut h, &self.detail);
        lp(&mut h, self.mac_root_key_id.as_str());
        h.finalize().into()
    }
}

/// The newest event of a verified chain: record it elsewhere to detect deletion of the
/// newest events later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; HASH_LEN],
}

/// Why a chain failed verification. Each variant names the sequence number at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditVerifyError {
    /// Events are missing, repeated or out of order.
    #[error("audit chain {chain}: expected event {expected}, found {found}")]
    Sequence {
        /// The chain.
        chain: String,
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// An event of another chain.
    #[error("audit chain {chain}: event {seq} belongs to another chain")]
    WrongChain {
        /// The chain verified.
        chain: String,
        /// The event.
        seq: u64,
    },
    /// `prev_hash` is not the hash of the event before.
    #[error("audit chain {chain}: event {seq} does not link to the event before it")]
    BrokenLink {
        /// The chain.
        chain: String,
        /// The event.
        seq: u64,
    },
    /// The stored hash is not the hash of the event's fields.
    #[error("audit chain {chain}: event {seq} was altered (hash mismatch)")]
    BadHash {
        /// The chain.
        chain: String,
        /// The event.
        seq: u64,
    },
    /// The MAC does not verify under the named root key's audit key.
    #[error("audit chain {chain}: event {seq} has an invalid MAC")]
    BadMac {
        /// The chain.
        chain: String,
        /// The event.
        seq: u64,
    },
    /// The MAC's root key is not loaded.
    #[error("audit chain {chain}: event {seq} is MACed under root key {id}, which is not loaded")]
    UnknownKey {
        /// The chain.
        chain: String,
        /// The event.
        seq: u64,
        /// The root key id recorded in the event.
        id: RootKeyId,
    },
}

/// Verifies a whole chain, given from its first event (seq 1) in order: sequence
/// continuity, links, hashes and MACs (all compared in constant time). Returns the head,
/// or `None` for an empty chain.
pub fn verify_chain(
    chain: &AuditChain,
    events: &[AuditRecord],
    ring: &RootKeyRing,
) -> Result<Option<ChainHead>, AuditVerifyError> {
    let name = || chain.as_str().to_owned();
    let mut keys: BTreeMap<RootKeyId, AuditKey> = BTreeMap::new();
    let mut prev = [0u8; HASH_LEN];
    let mut head = None;
    for (expected, event) in (1u64..).zip(events) {
        if event.seq != expected {
            return Err(AuditVerifyError::Sequence {
                chain: name(),
                expected,
                found: event.seq,
            });
        }
        if &event.chain != chain {
            return Err(AuditVerifyError::WrongChain {
                chain: name(),
                seq: event.seq,
            });
        }
        if !bool::from(event.prev_hash.ct_eq(&prev)) {
            return Err(AuditVerifyError::BrokenLink {
                chain: name(),
                seq: event.seq,
            });
        }
        if !bool::from(event.compute_hash().ct_eq(&event.hash)) {
            return Err(AuditVerifyError::BadHash {
                chain: name(),
                seq: event.seq,
            });
        }
        let key = match keys.get(&event.mac_root_key_id) {
            Some(key) => key,
            None => {
                let Some(root) = ring.get(&event.mac_root_key_id) else {
                    return Err(AuditVerifyError::UnknownKey {
                        chain: name(),
                        seq: event.seq,
                        id: event.mac_root_key_id.clone(),
                    });
                };
                keys.entry(event.mac_root_key_id.clone())
                    .or_insert_with(|| AuditKey::derive(root))
            }
        };
        if !bool::from(key.mac(&event.hash).ct_eq(&event.mac)) {
            return Err(AuditVerifyError::BadMac {
                chain: name(),
                seq: event.seq,
            });
        }
        prev = event.hash;
        head = Some(ChainHead {
            seq: event.seq,
            hash: event.hash,
        });
    }
    Ok(head)
}

#[cfg(test)]
mod test {
    use super::*;

    fn ring() -> RootKeyRing {
        let id = RootKeyId::new("r1").unwrap();
        RootKeyRing::new(vec![RootKey::from_bytes(id, [7; 32])], None).unwrap()
    }

    fn chain_of(n: u64, key: &AuditKey) -> Vec<AuditRecord> {
        let chain = AuditChain::Tenant(TenantId::new("t1").unwrap());
        let mut prev = [0; HASH_LEN];
        (1..=n)
            .map(|seq| {
                let event = NewAuditEvent {
                    chain: chain.clone(),
                    actor: "admin".into(),
                    action: "rotate".into(),
                    key_version: KeyVersion::new(u32::try_from(seq).unwrap()).ok(),
                    outcome: "ok".into(),
                    request_id: format!("r{seq}"),
                    detail: String::new(),
                };
                let r =
                    AuditRecord::seal(&event, seq, 1_000 + i64::try_from(seq).unwrap(), prev, key);
                prev = r.hash;
                r
            })
            .collect()
    }

    #[test]
    fn verifies_and_detects_tampering() {
        let ring = ring();
        let key = AuditKey::derive(ring.primary());
        let chain = AuditChain::Tenant(TenantId::new("t1").unwrap());
        let events = chain_of(4, &key);
        let head = verify_chain(&chain, &events, &ring).unwrap().unwrap();
        assert_eq!(head.seq, 4);
        assert_eq!(verify_chain(&chain, &[], &ring), Ok(None));

        let mut altered = events.clone();
        altered[1].outcome = "denied".into();
        assert!(matches!(
            verify_chain(&chain, &altered, &ring),
            Err(AuditVerifyError::BadHash { seq: 2, .. })
        ));

        // Rehashing without the key is caught by the MAC.
        altered[1].hash = altered[1].compute_hash();
        assert!(matches!(
            verify_chain(&chain, &altered, &ring),
            Err(AuditVerifyError::BadMac { seq: 2, .. })
        ));

        let mut gap = events.clone();
        gap.remove(1);
        assert!(matches!(
            verify_chain(&chain, &gap, &ring),
            Err(AuditVerifyError::Sequence {
                expected: 2,
                found: 3,
                ..
            })
        ));

        let other = AuditChain::Global;
        assert!(matches!(
            verify_chain(&other, &events, &ring),
            Err(AuditVerifyError::WrongChain { seq: 1, .. })
        ));

        let other_ring = RootKeyRing::new(
            vec![RootKey::from_bytes(RootKeyId::new("r2").unwrap(), [8; 32])],
            None,
        )
        .unwrap();
        assert!(matches!(
            verify_chain(&chain, &events, &other_ring),
            Err(AuditVerifyError::UnknownKey { seq: 1, .. })
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let ring = ring();
        let key = AuditKey::derive(ring.primary());
        assert_eq!(
            format!("{key:?}"),
            "AuditKey { root_key_id: RootKeyId(\"r1\"), .. }"
        );
    }

    #[test]
    fn global_chain_is_not_a_tenant() {
        assert!(TenantId::new(GLOBAL_CHAIN).is_err());
        assert_eq!(
            AuditChain::from_stored(GLOBAL_CHAIN),
            Some(AuditChain::Global)
        );
        assert_eq!(AuditChain::from_stored("#x"), None);
    }
}
