//! Conformance of the primitives, through the layers the envelope calls:
//! AES-256-GCM-SIV ([`kms_server::envelope::aead`]) against RFC 8452 Appendix C.2 and
//! Wycheproof, HKDF-SHA256 ([`kms_server::envelope::kdf::hkdf_sha256`]) against RFC 5869
//! and Wycheproof.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use kms_server::envelope::aead;
use kms_server::envelope::kdf::hkdf_sha256;
use serde::Deserialize;

fn hex(s: &str) -> Vec<u8> {
    base16ct::mixed::decode_vec(s.replace(char::is_whitespace, "")).expect("hex")
}

#[derive(Deserialize)]
struct Rfc8452 {
    key: String,
    nonce: String,
    aad: String,
    plaintext: String,
    ciphertext_and_tag: String,
}

/// Encrypts and decrypts one case; checks a tampered tag and a tampered body fail.
fn check_aead(key: &[u8], nonce: &[u8], aad: &[u8], pt: &[u8], ct: &[u8], tag: &[u8]) {
    let key: &[u8; 32] = key.try_into().unwrap();
    let nonce: &[u8; 12] = nonce.try_into().unwrap();
    let tag: &[u8; 16] = tag.try_into().unwrap();
    let mut buf = pt.to_vec();
    assert_eq!(
        &aead::encrypt_in_place(key, nonce, aad, &mut buf).unwrap(),
        tag
    );
    assert_eq!(buf, ct);
    aead::decrypt_in_place(key, nonce, aad, &mut buf, tag).unwrap();
    assert_eq!(buf, pt);

    let mut bad_tag = *tag;
    bad_tag[0] ^= 1;
    let mut buf = ct.to_vec();
    assert_eq!(
        aead::decrypt_in_place(key, nonce, aad, &mut buf, &bad_tag),
        Err(aead::AeadError)
    );
    assert_eq!(buf, ct, "a failed open leaves no plaintext in the buffer");
    if !ct.is_empty() {
        let mut buf = ct.to_vec();
        buf[0] ^= 1;
        assert!(aead::decrypt_in_place(key, nonce, aad, &mut buf, tag).is_err());
    }
}

#[test]
fn rfc8452_appendix_c2() {
    let text = include_str!("vectors/rfc8452_c2_aes256gcmsiv.json");
    let cases: Vec<Rfc8452> = serde_json::from_str(text).unwrap();
    assert!(cases.len() >= 17);
    for c in cases {
        let ct_tag = hex(&c.ciphertext_and_tag);
        let (ct, tag) = ct_tag.split_at(ct_tag.len() - 16);
        check_aead(
            &hex(&c.key),
            &hex(&c.nonce),
            &hex(&c.aad),
            &hex(&c.plaintext),
            ct,
            tag,
        );
    }
}

#[test]
fn wycheproof_aes_gcm_siv_256() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcmSiv).unwrap();
    let mut run = 0;
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for t in group.tests {
            let key: &[u8; 32] = t.key.as_slice().try_into().unwrap();
            let nonce: &[u8; 12] = t.nonce.as_slice().try_into().unwrap();
            let tag: &[u8; 16] = t.tag.as_slice().try_into().unwrap();
            let mut buf = t.ct.to_vec();
            let opened = aead::decrypt_in_place(key, nonce, &t.aad, &mut buf, tag);
            if t.result.must_fail() {
                assert!(opened.is_err(), "tc {} must fail", t.tc_id);
            } else {
                opened.unwrap_or_else(|_| panic!("tc {} must open", t.tc_id));
                assert_eq!(buf, t.pt.to_vec(), "tc {}", t.tc_id);
                let mut buf = t.pt.to_vec();
                let got = aead::encrypt_in_place(key, nonce, &t.aad, &mut buf).unwrap();
                assert_eq!(
                    (&buf[..], &got[..]),
                    (&t.ct[..], &t.tag[..]),
                    "tc {}",
                    t.tc_id
                );
            }
            run += 1;
        }
    }
    assert!(run > 50, "only {run} Wycheproof cases ran");
}

#[test]
fn rfc5869_sha256() {
    // RFC 5869 Appendix A, test cases 1-3 (SHA-256).
    let cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
             202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
             404142434445464748494a4b4c4d4e4f",
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\
             808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
             a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf\
             d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef\
             f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
             59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
             cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "",
            "",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (ikm, salt, info, okm) in cases {
        let expected = hex(okm);
        let mut out = vec![0u8; expected.len()];
        hkdf_sha256(&hex(ikm), &hex(salt), &[&hex(info)], &mut out).unwrap();
        assert_eq!(out, expected);
        // Info given in parts is the concatenation (the derivation passes four parts).
        let info = hex(info);
        let (a, b) = info.split_at(info.len() / 2);
        let mut parts = vec![0u8; expected.len()];
        hkdf_sha256(&hex(ikm), &hex(salt), &[a, b], &mut parts).unwrap();
        assert_eq!(parts, expected);
    }
}

#[test]
fn wycheproof_hkdf_sha256() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).unwrap();
    let mut run = 0;
    for group in set.test_groups {
        for t in group.tests {
            let mut out = vec![0u8; t.size];
            let r = hkdf_sha256(&t.ikm, &t.salt, &[&t.info], &mut out);
            if t.result.must_fail() {
                assert!(r.is_err(), "tc {} must fail", t.tc_id);
                assert!(
                    out.iter().all(|&b| b == 0),
                    "tc {}: no partial output",
                    t.tc_id
                );
            } else {
                r.unwrap();
                assert_eq!(out, t.okm.to_vec(), "tc {}", t.tc_id);
            }
            run += 1;
        }
    }
    assert!(run > 50, "only {run} Wycheproof cases ran");
}
