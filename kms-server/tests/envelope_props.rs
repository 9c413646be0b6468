//! Property tests of envelope v1 (THREATS 1-3, 5, 7-9). Case counts are bounded so the
//! suite stays fast on two cores.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use kms_server::envelope::{self, EnvelopeError, OVERHEAD, Salt, TenantKeys, kdf::hkdf_sha256};
use kms_server::keys::{Context, KeyVersion, TenantId};
use kms_server::root::{RootKey, RootKeyId};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use secrecy::ExposeSecret;

fn keys(root: [u8; 32], salt: [u8; 32], tenant: &TenantId, v: KeyVersion) -> TenantKeys {
    let root = RootKey::from_bytes(RootKeyId::new("p").unwrap(), root);
    TenantKeys::derive(&root, &Salt::from_slice(&salt).unwrap(), tenant, v)
}

fn tenant_id() -> impl Strategy<Value = TenantId> {
    "[A-Za-z0-9._:-]{1,128}".prop_map(|s| TenantId::new(s).unwrap())
}

fn context() -> impl Strategy<Value = Context> {
    btree_map("[A-Za-z0-9._:-]{1,64}", "\\PC{0,40}", 0..=16)
        .prop_filter("no reserved keys", |m| {
            m.keys().all(|k| !k.starts_with("kms."))
        })
        .prop_map(|m| Context::from_caller(m).unwrap())
}

fn version() -> impl Strategy<Value = KeyVersion> {
    (1u32..=u32::MAX).prop_map(|v| KeyVersion::new(v).unwrap())
}

fn open_err(k: &TenantKeys, t: &TenantId, c: &Context, env: &[u8]) -> Option<EnvelopeError> {
    envelope::open(k, t, c, env).err()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trip(
        root in any::<[u8; 32]>(), salt in any::<[u8; 32]>(), t in tenant_id(),
        v in version(), c in context(), pt in vec(any::<u8>(), 1..=2048),
    ) {
        let k = keys(root, salt, &t, v);
        let env = envelope::seal(&k, &t, v, &c, &pt).unwrap();
        prop_assert_eq!(env.len(), pt.len() + OVERHEAD);
        prop_assert_eq!(envelope::parse(&env).unwrap().header.version, v.get());
        let opened = envelope::open(&k, &t, &c, &env).unwrap();
        prop_assert_eq!(opened.expose_secret(), &pt[..]);
        // Two seals of one input differ (fresh nonces).
        prop_assert_ne!(env, envelope::seal(&k, &t, v, &c, &pt).unwrap());
    }

    #[test]
    fn wrong_tenant_is_cross_tenant(
        root in any::<[u8; 32]>(), salt in any::<[u8; 32]>(), a in tenant_id(), b in tenant_id(),
        c in context(),
    ) {
        prop_assume!(a != b);
        let k = keys(root, salt, &a, KeyVersion::FIRST);
        let env = envelope::seal(&k, &a, KeyVersion::FIRST, &c, b"token").unwrap();
        // Even with B's own keys, nothing is decrypted.
        let kb = keys(root, salt, &b, KeyVersion::FIRST);
        prop_assert_eq!(open_err(&kb, &b, &c, &env), Some(EnvelopeError::CrossTenant));
        prop_assert_eq!(open_err(&k, &b, &c, &env), Some(EnvelopeError::CrossTenant));
    }

    #[test]
    fn wrong_context_version_or_keys_fail_authentication(
        root in any::<[u8; 32]>(), salt in any::<[u8; 32]>(), other in any::<[u8; 32]>(),
        t in tenant_id(), v in 1u32..u32::MAX, c in context(), d in context(),
    ) {
        prop_assume!(c != d && root != other && salt != other);
        let v = KeyVersion::new(v).unwrap();
        let k = keys(root, salt, &t, v);
        let env = envelope::seal(&k, &t, v, &c, b"token").unwrap();
        let auth = Some(EnvelopeError::Authentication);
        prop_assert_eq!(open_err(&k, &t, &d, &env), auth.clone());
        let next = v.next().unwrap();
        prop_assert_eq!(open_err(&keys(root, salt, &t, next), &t, &c, &env), auth.clone());
        prop_assert_eq!(open_err(&keys(root, other, &t, v), &t, &c, &env), auth.clone());
        prop_assert_eq!(open_err(&keys(other, salt, &t, v), &t, &c, &env), auth);
    }

    #[test]
    fn any_bit_flip_or_truncation_is_rejected(
        pt in vec(any::<u8>(), 1..=64), bit in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let t = TenantId::new("acme").unwrap();
        let c = Context::from_caller([("vendor", "shopify")]).unwrap();
        let k = keys([1; 32], [2; 32], &t, KeyVersion::FIRST);
        let env = envelope::seal(&k, &t, KeyVersion::FIRST, &c, &pt).unwrap();
        let mut flipped = env.clone();
        let i = bit.index(env.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert!(envelope::open(&k, &t, &c, &flipped).is_err());
        let cut = cut.index(env.len());
        prop_assert!(envelope::open(&k, &t, &c, &env[..cut]).is_err());
    }

    #[test]
    fn context_order_does_not_matter(
        m in btree_map("[a-z]{1,8}", "[a-z]{0,8}", 0..=16), t in tenant_id(),
    ) {
        let sorted = Context::from_caller(m.clone()).unwrap();
        let reversed = Context::from_caller(m.into_iter().rev()).unwrap();
        prop_assert_eq!(
            envelope::canonical_context(&t, &sorted).unwrap(),
            envelope::canonical_context(&t, &reversed).unwrap()
        );
    }

    #[test]
    fn derivation_separates_inputs(
        root in any::<[u8; 32]>(), salt in any::<[u8; 32]>(), t in tenant_id(), v in version(),
        other_root in any::<[u8; 32]>(), other_salt in any::<[u8; 32]>(), other_t in tenant_id(),
        other_v in version(),
    ) {
        // Keys are compared through what they do: an envelope of one opens under no other.
        let c = Context::empty();
        let base = keys(root, salt, &t, v);
        let env = envelope::seal(&base, &t, v, &c, b"x").unwrap();
        let parsed = envelope::parse(&env).unwrap();
        let differs = |k: &TenantKeys| envelope::open_parsed(k, &t, &c, &parsed).is_err();
        if other_root != root { prop_assert!(differs(&keys(other_root, salt, &t, v))); }
        if other_salt != salt { prop_assert!(differs(&keys(root, other_salt, &t, v))); }
        if other_v != v { prop_assert!(differs(&keys(root, salt, &t, other_v))); }
        if other_t != t { prop_assert!(differs(&keys(root, salt, &other_t, v))); }
    }
}

/// Every single-bit flip and every truncation of one envelope, exhaustively.
#[test]
fn every_bit_flip_and_truncation_is_rejected() {
    let t = TenantId::new("acme").unwrap();
    let c = Context::from_caller([("vendor", "shopify")]).unwrap();
    let k = keys([1; 32], [2; 32], &t, KeyVersion::FIRST);
    let env = envelope::seal(&k, &t, KeyVersion::FIRST, &c, b"shpat_token").unwrap();
    for i in 0..env.len() * 8 {
        let mut flipped = env.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        let err = envelope::open(&k, &t, &c, &flipped).err();
        let expected = match i / 8 {
            0 | 1 => "malformed",
            2..=5 if flipped[2..6] == [0; 4] => "malformed", // version 0
            2..=5 => "authentication", // another version: the commitment fails
            6..=13 => "cross_tenant",
            _ => "authentication",
        };
        let got = match err {
            Some(EnvelopeError::Malformed(_)) => "malformed",
            Some(EnvelopeError::CrossTenant) => "cross_tenant",
            Some(EnvelopeError::Authentication) => "authentication",
            other => panic!("bit {i}: {other:?}"),
        };
        assert_eq!(got, expected, "bit {i}");
    }
    for len in 0..env.len() {
        let err = envelope::open(&k, &t, &c, &env[..len]).err().unwrap();
        let expected_malformed = len < OVERHEAD;
        assert_eq!(
            matches!(err, EnvelopeError::Malformed(_)),
            expected_malformed,
            "len {len}"
        );
    }
}

/// With a fixed nonce, equal inputs give equal envelopes and any change gives an
/// unrelated one (THREATS 1: GCM-SIV's nonce-misuse resistance).
#[test]
fn nonce_reuse_only_reveals_equality() {
    let t = TenantId::new("acme").unwrap();
    let c = Context::from_caller([("vendor", "shopify")]).unwrap();
    let d = Context::from_caller([("vendor", "amazon")]).unwrap();
    let k = keys([1; 32], [2; 32], &t, KeyVersion::FIRST);
    let seal = |c: &Context, pt: &[u8]| {
        envelope::seal_with_nonce(&k, &t, KeyVersion::FIRST, c, pt, [7; 12]).unwrap()
    };
    assert_eq!(seal(&c, b"token-one"), seal(&c, b"token-one"));
    let a = seal(&c, b"token-one");
    for other in [seal(&c, b"token-two"), seal(&d, b"token-one")] {
        let body = |e: &[u8]| e[58..].to_vec();
        let same = body(&a)
            .iter()
            .zip(body(&other))
            .filter(|(x, y)| **x == *y)
            .count();
        assert!(same <= 4, "bodies of different inputs share {same} bytes");
    }
}

/// `{"ab":"c"}` and `{"a":"bc"}` encode differently; so do NFC and NFD of one text;
/// length-prefixed info keeps tenant "ab"+"c" apart from "a"+"bc".
#[test]
fn encodings_are_unambiguous() {
    let t = TenantId::new("acme").unwrap();
    let enc = |c: Context| envelope::canonical_context(&t, &c).unwrap();
    assert_ne!(
        enc(Context::from_caller([("ab", "c")]).unwrap()),
        enc(Context::from_caller([("a", "bc")]).unwrap())
    );
    assert_ne!(
        enc(Context::from_caller([("shop", "Caf\u{e9}")]).unwrap()),
        enc(Context::from_caller([("shop", "Cafe\u{301}")]).unwrap())
    );
    // The derivation's info is length-prefixed: no two (tenant, version) share it.
    let info = |tenant: &[u8], v: u32| {
        let mut out = [0u8; 32];
        let len = (tenant.len() as u16).to_be_bytes();
        hkdf_sha256(
            &[1; 32],
            &[2; 32],
            &[b"l", &len, tenant, &v.to_be_bytes()],
            &mut out,
        )
        .unwrap();
        out
    };
    assert_ne!(info(b"ab", 0x6300_0001), info(b"a", 0x6263_0000));
}

/// A failed open returns nothing: the error type carries no bytes.
#[test]
fn failed_open_returns_no_plaintext() {
    let t = TenantId::new("acme").unwrap();
    let c = Context::empty();
    let k = keys([1; 32], [2; 32], &t, KeyVersion::FIRST);
    let mut env = envelope::seal(&k, &t, KeyVersion::FIRST, &c, b"canary-plaintext").unwrap();
    *env.last_mut().unwrap() ^= 1;
    let err = envelope::open(&k, &t, &c, &env).err().unwrap();
    assert_eq!(err, EnvelopeError::Authentication);
    assert_eq!(err.to_string(), "ciphertext failed authentication");
    assert!(!format!("{err:?}").contains("canary"));
}
