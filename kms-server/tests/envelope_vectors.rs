//! Known-answer vectors of envelope v1 (SPEC §3): `tests/vectors/envelope_v1.json` and
//! `tests/vectors/envelope_v1_invalid.json`.
//!
//! The files are frozen: the tests check that the code reproduces every valid envelope
//! byte for byte, opens it to its plaintext, and rejects every invalid one with the named
//! error. They were generated once from the case definitions below with
//!
//! ```text
//! HYGO_KMS_WRITE_VECTORS=1 cargo test -p kms-server --test envelope_vectors
//! ```
//!
//! and [`files_match_case_definitions`] fails if the definitions and the files drift apart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::PathBuf;

use kms_server::envelope::{self, EnvelopeError, Salt, TenantKeys};
use kms_server::keys::{Context, KeyVersion, TenantId};
use kms_server::root::{RootKey, RootKeyId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A JSON object of strings whose key order is kept as written (so a vector can show
/// pairs given out of order); duplicate keys are refused.
#[derive(Debug, Clone, PartialEq)]
struct Pairs(Vec<(String, String)>);

impl Serialize for Pairs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base16ct::lower::encode_string(b))
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        base16ct::lower::decode_vec(s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Valid {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    comment: Option<String>,
    #[serde(with = "hex_bytes")]
    root_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    tenant_id: String,
    key_version: u32,
    context: Pairs,
    #[serde(with = "hex_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "hex_bytes")]
    plaintext: Vec<u8>,
    #[serde(with = "hex_bytes")]
    envelope: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalid {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    comment: Option<String>,
    #[serde(with = "hex_bytes")]
    root_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    tenant_id: String,
    key_version: u32,
    context: Pairs,
    #[serde(with = "hex_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "hex_bytes")]
    plaintext: Vec<u8>,
    #[serde(with = "hex_bytes")]
    envelope: Vec<u8>,
    open_tenant_id: String,
    open_context: Pairs,
    error: String,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Deterministic test bytes: SHA-256 of a label, repeated to `len`.
fn bytes(label: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut block = Sha256::digest(label.as_bytes()).to_vec();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    out.truncate(len);
    out
}

fn keys_for(root: &[u8], salt: &[u8], tenant: &str, version: u32) -> TenantKeys {
    let root = RootKey::from_bytes(
        RootKeyId::new("vectors").unwrap(),
        root.try_into().expect("32-byte root key"),
    );
    TenantKeys::derive(
        &root,
        &Salt::from_slice(salt).expect("32-byte salt"),
        &TenantId::new(tenant).expect("tenant id"),
        KeyVersion::new(version).expect("version"),
    )
}

fn context(p: &Pairs) -> Context {
    // Vectors include `kms.` keys only where the KMS itself would use them.
    Context::internal(p.0.iter().cloned()).expect("vector context within limits")
}

fn pairs(p: &[(&str, &str)]) -> Pairs {
    Pairs(
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn seal(v: &Valid) -> Vec<u8> {
    let keys = keys_for(&v.root_key, &v.salt, &v.tenant_id, v.key_version);
    envelope::seal_with_nonce(
        &keys,
        &TenantId::new(v.tenant_id.as_str()).unwrap(),
        KeyVersion::new(v.key_version).unwrap(),
        &context(&v.context),
        &v.plaintext,
        v.nonce.as_slice().try_into().unwrap(),
    )
    .expect("seal")
}

fn valid_case(name: &str, tenant: &str, version: u32, ctx: Pairs, plaintext: Vec<u8>) -> Valid {
    let mut v = Valid {
        comment: Some(name.to_owned()),
        root_key: bytes(&format!("root key/{name}"), 32),
        salt: bytes(&format!("salt/{name}"), 32),
        tenant_id: tenant.to_owned(),
        key_version: version,
        context: ctx,
        nonce: bytes(&format!("nonce/{name}"), 12),
        plaintext,
        envelope: Vec::new(),
    };
    v.envelope = seal(&v);
    v
}

fn valid_cases() -> Vec<Valid> {
    let token = b"shpat_0123456789abcdef0123456789abcdef".to_vec();
    let sixteen: Vec<(String, String)> = (0..16)
        .map(|i| {
            (
                format!("key-{i:02}"),
                "v".repeat(511) + &format!("{}", i % 10),
            )
        })
        .rev()
        .collect();
    vec![
        valid_case("empty context", "acme", 1, pairs(&[]), token.clone()),
        valid_case(
            "several pairs given out of order",
            "acme",
            3,
            pairs(&[
                ("vendor", "shopify"),
                ("shop", "acme.myshopify.com"),
                ("env", "prod"),
            ]),
            token.clone(),
        ),
        valid_case(
            "keys differing only in case",
            "acme",
            1,
            pairs(&[("vendor", "amazon"), ("Vendor", "amazon")]),
            token.clone(),
        ),
        valid_case(
            "a key that is a proper prefix of another",
            "acme",
            1,
            pairs(&[("vendorx", "2"), ("vendor", "1")]),
            token.clone(),
        ),
        valid_case(
            "non-ASCII value, NFC",
            "acme",
            1,
            pairs(&[("shop", "Caf\u{e9} M\u{fc}ller")]),
            token.clone(),
        ),
        valid_case(
            "non-ASCII value, NFD of the same text",
            "acme",
            1,
            pairs(&[("shop", "Cafe\u{301} Mu\u{308}ller")]),
            token.clone(),
        ),
        valid_case(
            "16 pairs with 512-byte values",
            "acme",
            1,
            Pairs(sixteen),
            token.clone(),
        ),
        valid_case(
            "plaintext of 1 byte",
            "acme",
            1,
            pairs(&[("vendor", "ayrshare")]),
            vec![0x2a],
        ),
        valid_case(
            "plaintext of 1 KiB",
            "acme",
            1,
            pairs(&[("vendor", "ayrshare")]),
            bytes("plaintext 1 KiB", 1024),
        ),
        valid_case(
            "plaintext of 64 KiB",
            "acme",
            1,
            pairs(&[("vendor", "ayrshare")]),
            bytes("plaintext 64 KiB", 64 * 1024),
        ),
        valid_case(
            "key version 65536",
            "acme",
            65536,
            pairs(&[("vendor", "shopify")]),
            token.clone(),
        ),
        valid_case(
            "key version 4294967295",
            "acme",
            u32::MAX,
            pairs(&[("vendor", "shopify")]),
            token.clone(),
        ),
        valid_case(
            "128-byte tenant id",
            &"t0123456789abcdef".repeat(8)[..128],
            1,
            pairs(&[("vendor", "shopify")]),
            token.clone(),
        ),
        valid_case(
            "context {ab: c}",
            "acme",
            1,
            pairs(&[("ab", "c")]),
            token.clone(),
        ),
        valid_case(
            "context {a: bc}",
            "acme",
            1,
            pairs(&[("a", "bc")]),
            token.clone(),
        ),
        valid_case(
            "stored secret context",
            "acme",
            2,
            pairs(&[("kms.vendor", "shopify"), ("kms.name", "admin-token")]),
            token,
        ),
    ]
}

fn invalid_case(
    name: &str,
    base: &Valid,
    error: &str,
    mutate: impl FnOnce(&mut Invalid),
) -> Invalid {
    let mut case = Invalid {
        comment: Some(name.to_owned()),
        root_key: base.root_key.clone(),
        salt: base.salt.clone(),
        tenant_id: base.tenant_id.clone(),
        key_version: base.key_version,
        context: base.context.clone(),
        nonce: base.nonce.clone(),
        plaintext: base.plaintext.clone(),
        envelope: base.envelope.clone(),
        open_tenant_id: base.tenant_id.clone(),
        open_context: base.context.clone(),
        error: error.to_owned(),
    };
    mutate(&mut case);
    case
}

fn invalid_cases() -> Vec<Invalid> {
    let base = valid_case(
        "base",
        "acme",
        2,
        pairs(&[("vendor", "shopify")]),
        b"shpat_0123456789abcdef0123456789abcdef".to_vec(),
    );
    vec![
        invalid_case("flipped commitment bit", &base, "authentication", |c| {
            c.envelope[26] ^= 0x01
        }),
        invalid_case("flipped body bit", &base, "authentication", |c| {
            c.envelope[58] ^= 0x80
        }),
        invalid_case("flipped tag bit", &base, "authentication", |c| {
            let last = c.envelope.len() - 1;
            c.envelope[last] ^= 0x01
        }),
        invalid_case("wrong tenant fingerprint", &base, "cross_tenant", |c| {
            c.envelope[6] ^= 0x01
        }),
        invalid_case("opened as another tenant", &base, "cross_tenant", |c| {
            c.open_tenant_id = "globex".to_owned()
        }),
        invalid_case("wrong context value", &base, "authentication", |c| {
            c.open_context = pairs(&[("vendor", "amazon")])
        }),
        invalid_case("context with an extra pair", &base, "authentication", |c| {
            c.open_context = pairs(&[("vendor", "shopify"), ("env", "prod")])
        }),
        invalid_case(
            "context differing only in key case",
            &base,
            "authentication",
            |c| c.open_context = pairs(&[("Vendor", "shopify")]),
        ),
        invalid_case(
            "header version changed, opened with that version's keys",
            &base,
            "authentication",
            |c| {
                c.envelope[5] = 3;
                c.key_version = 3
            },
        ),
        invalid_case("unknown algorithm byte", &base, "malformed", |c| {
            c.envelope[1] = 0x02
        }),
        invalid_case("unknown format byte", &base, "malformed", |c| {
            c.envelope[0] = 0x02
        }),
        invalid_case("key version 0", &base, "malformed", |c| {
            c.envelope[2..6].fill(0)
        }),
        invalid_case("truncated to 73 bytes", &base, "malformed", |c| {
            c.envelope.truncate(73)
        }),
        invalid_case("truncated by one byte", &base, "authentication", |c| {
            c.envelope.pop();
        }),
        invalid_case("empty", &base, "malformed", |c| c.envelope.clear()),
    ]
}

fn open_error(c: &Invalid) -> String {
    let keys = keys_for(&c.root_key, &c.salt, &c.open_tenant_id, c.key_version);
    let r = envelope::open(
        &keys,
        &TenantId::new(c.open_tenant_id.as_str()).unwrap(),
        &context(&c.open_context),
        &c.envelope,
    );
    match r {
        Ok(_) => "opened".to_owned(),
        Err(EnvelopeError::Malformed(_)) => "malformed".to_owned(),
        Err(EnvelopeError::CrossTenant) => "cross_tenant".to_owned(),
        Err(EnvelopeError::Authentication) => "authentication".to_owned(),
        Err(other) => format!("unexpected: {other}"),
    }
}

fn load<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).expect("vector file");
    serde_json::from_str(&text).expect("vector file parses")
}

#[test]
fn files_match_case_definitions() {
    let valid = valid_cases();
    let invalid = invalid_cases();
    if std::env::var_os("HYGO_KMS_WRITE_VECTORS").is_some() {
        let write = |name: &str, json: String| {
            std::fs::write(vectors_dir().join(name), json + "\n").unwrap();
        };
        write(
            "envelope_v1.json",
            serde_json::to_string_pretty(&valid).unwrap(),
        );
        write(
            "envelope_v1_invalid.json",
            serde_json::to_string_pretty(&invalid).unwrap(),
        );
    }
    assert_eq!(load::<Valid>("envelope_v1.json"), valid);
    assert_eq!(load::<Invalid>("envelope_v1_invalid.json"), invalid);
}

#[test]
fn valid_vectors_reproduce_and_open() {
    let cases: Vec<Valid> = load("envelope_v1.json");
    assert!(cases.len() >= 12);
    for v in &cases {
        assert_eq!(seal(v), v.envelope, "{:?}", v.comment);
        let keys = keys_for(&v.root_key, &v.salt, &v.tenant_id, v.key_version);
        let opened = envelope::open(
            &keys,
            &TenantId::new(v.tenant_id.as_str()).unwrap(),
            &context(&v.context),
            &v.envelope,
        )
        .unwrap_or_else(|e| panic!("{:?}: {e}", v.comment));
        assert_eq!(opened.expose_secret(), &v.plaintext[..], "{:?}", v.comment);
        assert_eq!(v.envelope.len(), v.plaintext.len() + envelope::OVERHEAD);
    }
}

#[test]
fn valid_vectors_cover_spec_cases() {
    let cases: Vec<Valid> = load("envelope_v1.json");
    let has = |f: &dyn Fn(&Valid) -> bool| cases.iter().any(f);
    assert!(has(&|v| v.context.0.is_empty()));
    assert!(has(&|v| {
        let keys: Vec<_> = v.context.0.iter().map(|(k, _)| k).collect();
        keys.len() >= 3 && !keys.is_sorted()
    }));
    assert!(has(&|v| v.context.0.iter().any(|(k, _)| {
        v.context
            .0
            .iter()
            .any(|(o, _)| o != k && o.eq_ignore_ascii_case(k))
    })));
    assert!(has(&|v| v.context.0.iter().any(|(k, _)| {
        v.context
            .0
            .iter()
            .any(|(o, _)| o.len() > k.len() && o.starts_with(k.as_str()))
    })));
    assert!(has(&|v| v
        .context
        .0
        .iter()
        .any(|(_, x)| x.contains('\u{e9}'))));
    assert!(has(&|v| v
        .context
        .0
        .iter()
        .any(|(_, x)| x.contains("e\u{301}"))));
    assert!(has(
        &|v| v.context.0.len() == 16 && v.context.0.iter().all(|(_, x)| x.len() == 512)
    ));
    for len in [1, 1024, 64 * 1024] {
        assert!(has(&|v| v.plaintext.len() == len), "plaintext of {len} B");
    }
    assert!(has(&|v| v.key_version == 65536));
    assert!(has(&|v| v.key_version == u32::MAX));
    assert!(has(&|v| v.tenant_id.len() == 128));
}

#[test]
fn invalid_vectors_are_rejected_with_the_named_error() {
    let cases: Vec<Invalid> = load("envelope_v1_invalid.json");
    assert!(cases.len() >= 6);
    for c in &cases {
        assert!(
            ["malformed", "cross_tenant", "authentication"].contains(&c.error.as_str()),
            "{:?}",
            c.comment
        );
        assert_eq!(open_error(c), c.error, "{:?}", c.comment);
    }
    for error in ["malformed", "cross_tenant", "authentication"] {
        assert!(cases.iter().any(|c| c.error == error));
    }
}
