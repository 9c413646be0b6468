//! Admin JWT verification (SPEC §5; THREATS 16 stale admin authentication).
//!
//! Keys are generated with ring in each test; the JWKS is built from their public keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kms_server::auth::{AdminAuthConfig, AdminPrincipal, AdminVerifier, AuthError};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const ISS: &str = "https://idp.example";
const AUD: &str = "hygo-kms";
const ROLE_CLAIM: &str = "roles";
const ROLE: &str = "kms-admin";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kms-auth-admin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    public_raw: Vec<u8>,
    jwk: Value,
}

fn ed_key(kid: &str) -> Key {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    Key {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(doc.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&public)}),
        public_raw: public,
    }
}

fn ec_key(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(doc.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        public_raw: point,
    }
}

/// The committed test-only RSA key (ring cannot generate RSA keys).
fn rsa_key(kid: &str) -> Key {
    let hex = include_str!("vectors/rsa2048_pkcs1_test_only.hex").trim();
    let der = base16ct::lower::decode_vec(hex).unwrap();
    let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let ring::rsa::PublicKeyComponents { n, e } =
        ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&der),
        jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64(&n), "e": b64(&e)}),
        public_raw: n,
    }
}

fn write_jwks(path: &Path, keys: &[&Key]) {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    // Replace atomically, as an operator (or a secret volume) would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn claims() -> Value {
    let now = now();
    json!({"iss": ISS, "aud": AUD, "sub": "alice@hygo", "exp": now + 300, "iat": now,
        "auth_time": now - 10, "jti": "jti-1", ROLE_CLAIM: [ "viewer", ROLE ]})
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// A token with any header, signed (or not) by hand.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

struct Fixture {
    _dir: TempDir,
    jwks: PathBuf,
    ed: Key,
    ec: Key,
    verifier: AdminVerifier,
}

fn fixture(tag: &str) -> Fixture {
    let dir = TempDir::new(tag);
    let jwks = dir.0.join("jwks.json");
    let (ed, ec) = (ed_key("ed-1"), ec_key("ec-1"));
    write_jwks(&jwks, &[&ed, &ec]);
    let verifier =
        AdminVerifier::new(AdminAuthConfig::new(&jwks, ISS, AUD, ROLE_CLAIM, ROLE)).unwrap();
    Fixture {
        _dir: dir,
        jwks,
        ed,
        ec,
        verifier,
    }
}

fn assert_unauthenticated(f: &Fixture, token: &str, what: &str) {
    match f.verifier.verify(token) {
        Err(e @ AuthError::Unauthenticated) => {
            assert_eq!(e.to_string(), kms_server::auth::UNAUTHENTICATED_MESSAGE);
            if token.len() > 8 {
                assert!(!format!("{e:?}").contains(token));
            }
        }
        other => panic!("{what}: expected Unauthenticated, got {other:?}"),
    }
}

fn assert_denied(f: &Fixture, token: &str, what: &str) -> String {
    match f.verifier.verify(token) {
        Err(AuthError::PermissionDenied { reason }) => {
            assert!(!reason.contains(token));
            reason
        }
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

#[test]
fn valid_eddsa_and_es256_tokens_are_accepted() {
    let f = fixture("valid");
    for key in [&f.ed, &f.ec] {
        let p = f.verifier.verify(&sign(key, &claims())).unwrap();
        assert_eq!(
            p,
            AdminPrincipal {
                sub: "alice@hygo".into(),
                jti: Some("jti-1".into())
            }
        );
    }
    // The role claim may be a plain string; jti is optional; aud may be an array.
    let c = with(|c| {
        c[ROLE_CLAIM] = ROLE.into();
        c.as_object_mut().unwrap().remove("jti");
        c["aud"] = json!(["other", AUD]);
    });
    let p = f.verifier.verify(&sign(&f.ed, &c)).unwrap();
    assert_eq!(p.jti, None);
}

#[test]
fn bad_signature() {
    let f = fixture("badsig");
    let token = sign(&f.ed, &claims());
    let (msg, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[0] ^= 1;
    assert_unauthenticated(&f, &format!("{msg}.{}", b64(&sig)), "flipped signature bit");
    // Claims changed after signing.
    let other = sign(&f.ed, &with(|c| c["sub"] = "mallory".into()));
    let (_, forged_payload_sig) = token.split_once('.').unwrap();
    let (_, sig) = forged_payload_sig.split_once('.').unwrap();
    let (head_payload, _) = other.rsplit_once('.').unwrap();
    assert_unauthenticated(&f, &format!("{head_payload}.{sig}"), "swapped payload");
    // Signed by a key that is not in the JWKS, under a kid that is.
    let stranger = ed_key("ed-1");
    assert_unauthenticated(&f, &sign(&stranger, &claims()), "foreign key, known kid");
    // Not a JWT at all.
    for junk in ["", "x", "a.b", "a.b.c", "...", "a.b.c.d"] {
        assert_unauthenticated(&f, junk, junk);
    }
}

#[test]
fn alg_none_is_refused() {
    let f = fixture("none");
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": "ed-1", "typ": "JWT"});
        let token = raw_token(&header, &claims(), b"");
        assert_unauthenticated(&f, &token, alg);
        // With the trailing dot only.
        let token = format!("{}.", token.trim_end_matches('.'));
        assert_unauthenticated(&f, &token, alg);
        // With garbage as signature.
        assert_unauthenticated(&f, &raw_token(&header, &claims(), b"sig"), alg);
    }
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() {
    let f = fixture("hs256");
    let jwks_text = std::fs::read(&f.jwks).unwrap();
    for secret in [
        f.ed.public_raw.as_slice(),
        f.ec.public_raw.as_slice(),
        jwks_text.as_slice(),
        f.ed.jwk["x"].as_str().unwrap().as_bytes(),
    ] {
        for (alg, kid) in [
            (Algorithm::HS256, "ed-1"),
            (Algorithm::HS256, "ec-1"),
            (Algorithm::HS384, "ed-1"),
            (Algorithm::HS512, "ec-1"),
        ] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.into());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            assert_unauthenticated(&f, &token, "HMAC confusion");
        }
    }
}

#[test]
fn alg_must_match_the_key_type() {
    let f = fixture("mismatch");
    // RS256 header with the kid of an EC key.
    let token = raw_token(
        &json!({"alg": "RS256", "kid": "ec-1"}),
        &claims(),
        &[7u8; 256],
    );
    assert_unauthenticated(&f, &token, "RS256 on EC key");
    // ES256 signature presented as EdDSA on the EC key's kid, and vice versa.
    let es = sign(&f.ec, &claims());
    let (_, rest) = es.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        b64(json!({"alg": "EdDSA", "kid": "ec-1"})
            .to_string()
            .as_bytes())
    );
    assert_unauthenticated(&f, &relabelled, "EdDSA on EC key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ec-1".into());
    let ed_signed_ec_kid = jsonwebtoken::encode(&header, &claims(), &f.ed.encoding).unwrap();
    assert_unauthenticated(&f, &ed_signed_ec_kid, "EdDSA token naming EC kid");
    // Other allow-listed-looking algorithms.
    for alg in ["ES384", "ES512", "RS512", "PS256", "Ed25519"] {
        let token = raw_token(&json!({"alg": alg, "kid": "ec-1"}), &claims(), b"sig");
        assert_unauthenticated(&f, &token, alg);
    }
}

#[test]
fn kid_required_and_known() {
    let f = fixture("kid");
    let header = Header::new(Algorithm::EdDSA);
    let no_kid = jsonwebtoken::encode(&header, &claims(), &f.ed.encoding).unwrap();
    assert_unauthenticated(&f, &no_kid, "missing kid");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-2".into());
    let unknown = jsonwebtoken::encode(&header, &claims(), &f.ed.encoding).unwrap();
    assert_unauthenticated(&f, &unknown, "unknown kid");
    // A key embedded in the header is ignored: the JWKS decides.
    let stranger = ed_key("x");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    header.jwk = Some(serde_json::from_value(stranger.jwk.clone()).unwrap());
    let embedded = jsonwebtoken::encode(&header, &claims(), &stranger.encoding).unwrap();
    assert_unauthenticated(&f, &embedded, "embedded jwk");
}

#[test]
fn wrong_audience_and_issuer() {
    let f = fixture("audiss");
    for c in [
        with(|c| c["aud"] = "other-service".into()),
        with(|c| c["aud"] = json!(["a", "b"])),
        with(|c| c["iss"] = "https://evil.example".into()),
        with(|c| c["iss"] = format!("{ISS}/").into()),
    ] {
        assert_unauthenticated(&f, &sign(&f.ed, &c), &c.to_string());
    }
}

#[test]
fn expired_and_not_yet_valid() {
    let f = fixture("exp");
    let now = now();
    assert_unauthenticated(
        &f,
        &sign(&f.ed, &with(|c| c["exp"] = (now - 31).into())),
        "exp",
    );
    // Within the 30 s leeway.
    assert!(
        f.verifier
            .verify(&sign(&f.ed, &with(|c| c["exp"] = (now - 5).into())))
            .is_ok()
    );
    assert_unauthenticated(
        &f,
        &sign(&f.ed, &with(|c| c["nbf"] = (now + 120).into())),
        "nbf",
    );
}

#[test]
fn missing_required_claims_are_unauthenticated() {
    let f = fixture("missing");
    for claim in ["iss", "aud", "exp", "sub", "auth_time"] {
        let c = with(|c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert_unauthenticated(&f, &sign(&f.ed, &c), claim);
    }
    for (claim, v) in [
        ("sub", json!("")),
        ("sub", json!(42)),
        ("auth_time", json!("1700000000")),
        ("exp", json!("soon")),
    ] {
        let c = with(|c| c[claim] = v.clone());
        assert_unauthenticated(&f, &sign(&f.ed, &c), claim);
    }
}

#[test]
fn missing_or_wrong_role_is_permission_denied() {
    let f = fixture("role");
    let missing = with(|c| {
        c.as_object_mut().unwrap().remove(ROLE_CLAIM);
    });
    let reason = assert_denied(&f, &sign(&f.ed, &missing), "missing role");
    assert!(reason.contains("role"), "{reason}");
    for v in [
        json!("viewer"),
        json!(["viewer"]),
        json!([]),
        json!("KMS-ADMIN"),
        json!({"kms-admin": true}),
        json!(true),
    ] {
        assert_denied(
            &f,
            &sign(&f.ec, &with(|c| c[ROLE_CLAIM] = v.clone())),
            "wrong role",
        );
    }
}

#[test]
fn auth_time_must_be_recent_and_not_in_the_future() {
    let f = fixture("authtime");
    let now = now();
    // Stale (default max age 300 s, leeway 30 s).
    let reason = assert_denied(
        &f,
        &sign(&f.ed, &with(|c| c["auth_time"] = (now - 400).into())),
        "stale",
    );
    assert!(reason.contains("auth_time"), "{reason}");
    assert!(
        f.verifier
            .verify(&sign(&f.ed, &with(|c| c["auth_time"] = (now - 290).into())))
            .is_ok()
    );
    // Future beyond the leeway.
    assert_unauthenticated(
        &f,
        &sign(&f.ed, &with(|c| c["auth_time"] = (now + 120).into())),
        "future",
    );
    // A fractional NumericDate is accepted.
    assert!(
        f.verifier
            .verify(&sign(
                &f.ed,
                &with(|c| c["auth_time"] = json!(now as f64 - 1.5))
            ))
            .is_ok()
    );
}

#[test]
fn configured_max_auth_age_and_leeway() {
    let f = fixture("maxage");
    let mut config = AdminAuthConfig::new(&f.jwks, ISS, AUD, ROLE_CLAIM, ROLE);
    config.max_auth_age_secs = 60;
    config.leeway_secs = 0;
    let strict = AdminVerifier::new(config.clone()).unwrap();
    let now = now();
    let t = |age: i64| sign(&f.ed, &with(|c| c["auth_time"] = (now - age).into()));
    assert!(strict.verify(&t(50)).is_ok());
    assert!(matches!(
        strict.verify(&t(90)),
        Err(AuthError::PermissionDenied { .. })
    ));
    config.leeway_secs = 61;
    assert!(matches!(
        AdminVerifier::new(config),
        Err(AuthError::Config { setting, .. }) if setting == "admin.leeway_secs"
    ));
}

#[test]
fn config_deserializes_with_defaults() {
    let c: AdminAuthConfig = serde_json::from_value(json!({
        "jwks_path": "/etc/hygo-kms/jwks.json", "issuer": ISS, "audience": AUD,
        "role_claim": ROLE_CLAIM, "role_value": ROLE
    }))
    .unwrap();
    assert_eq!((c.max_auth_age_secs, c.leeway_secs), (300, 30));
    assert!(
        serde_json::from_value::<AdminAuthConfig>(json!({
            "jwks_path": "x", "issuer": ISS, "audience": AUD,
            "role_claim": ROLE_CLAIM, "role_value": ROLE, "leeway": 5
        }))
        .is_err()
    );
}

#[test]
fn jwks_reload() {
    let f = fixture("reload");
    let token_ed1 = sign(&f.ed, &claims());
    assert!(f.verifier.verify(&token_ed1).is_ok());

    // Rotate: new key ed-2 added, ed-1 removed.
    let ed2 = ed_key("ed-2");
    let token_ed2 = sign(&ed2, &claims());
    assert_unauthenticated(&f, &token_ed2, "not yet in the JWKS");
    write_jwks(&f.jwks, &[&ed2, &f.ec]);
    assert!(f.verifier.verify(&token_ed2).is_ok(), "new key accepted");
    assert_unauthenticated(&f, &token_ed1, "removed key refused");
    assert!(f.verifier.verify(&sign(&f.ec, &claims())).is_ok());

    // Rewritten in place (same inode) rather than renamed.
    let doc = json!({"keys": [f.ed.jwk.clone()]});
    std::fs::write(&f.jwks, doc.to_string()).unwrap();
    assert!(f.verifier.verify(&token_ed1).is_ok());
    assert_unauthenticated(&f, &token_ed2, "removed again");

    // A broken or missing file fails closed, and recovers when fixed.
    std::fs::write(&f.jwks, "{not json").unwrap();
    assert!(matches!(
        f.verifier.verify(&token_ed1),
        Err(AuthError::KeySetUnavailable { .. })
    ));
    std::fs::remove_file(&f.jwks).unwrap();
    assert!(matches!(
        f.verifier.verify(&token_ed1),
        Err(AuthError::KeySetUnavailable { .. })
    ));
    write_jwks(&f.jwks, &[&f.ed]);
    assert!(f.verifier.verify(&token_ed1).is_ok());
}

#[test]
fn jwks_keys_are_filtered_by_type_curve_and_alg() {
    let dir = TempDir::new("filter");
    let path = dir.0.join("jwks.json");
    let ed = ed_key("ed");
    let mut wrong_alg = ec_key("ec-wrong-alg");
    wrong_alg.jwk["alg"] = "ES384".into();
    let mut enc = ed_key("ed-enc");
    enc.jwk["use"] = "enc".into();
    let mut p384 = ec_key("ec-p384");
    p384.jwk["crv"] = "P-384".into();
    let mut x448 = ed_key("ed-x448");
    x448.jwk["crv"] = "Ed448".into();
    let hmac_jwk = json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")});
    let doc = json!({"keys": [ed.jwk, wrong_alg.jwk, enc.jwk, p384.jwk, x448.jwk, hmac_jwk,
        {"kty": "OKP", "crv": "Ed25519", "x": ed.jwk["x"]}]});
    std::fs::write(&path, doc.to_string()).unwrap();
    let f = Fixture {
        verifier: AdminVerifier::new(AdminAuthConfig::new(&path, ISS, AUD, ROLE_CLAIM, ROLE))
            .unwrap(),
        jwks: path,
        ed: ed_key("unused"),
        ec: ec_key("unused"),
        _dir: dir,
    };
    assert!(f.verifier.verify(&sign(&ed, &claims())).is_ok());
    for key in [&wrong_alg, &enc, &p384, &x448] {
        assert_unauthenticated(&f, &sign(key, &claims()), &key.kid);
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let hs =
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"secret")).unwrap();
    assert_unauthenticated(&f, &hs, "oct key");

    // A duplicate kid, or no usable key at all, is refused at start-up.
    let dup = json!({"keys": [ed.jwk, ed.jwk]});
    std::fs::write(&f.jwks, dup.to_string()).unwrap();
    assert!(matches!(
        AdminVerifier::new(AdminAuthConfig::new(&f.jwks, ISS, AUD, ROLE_CLAIM, ROLE)),
        Err(AuthError::Config { .. })
    ));
    std::fs::write(&f.jwks, r#"{"keys": []}"#).unwrap();
    assert!(matches!(
        AdminVerifier::new(AdminAuthConfig::new(&f.jwks, ISS, AUD, ROLE_CLAIM, ROLE)),
        Err(AuthError::Config { .. })
    ));
}

#[test]
fn rs256_token_is_accepted_and_bound_to_its_key_type() {
    let dir = TempDir::new("rsa");
    let path = dir.0.join("jwks.json");
    let (rsa, ec) = (rsa_key("rsa-1"), ec_key("ec-1"));
    write_jwks(&path, &[&rsa, &ec]);
    let f = Fixture {
        verifier: AdminVerifier::new(AdminAuthConfig::new(&path, ISS, AUD, ROLE_CLAIM, ROLE))
            .unwrap(),
        jwks: path,
        ed: ed_key("unused"),
        ec,
        _dir: dir,
    };
    assert_eq!(
        f.verifier.verify(&sign(&rsa, &claims())).unwrap().sub,
        "alice@hygo"
    );
    // The RSA key's kid under ES256 / EdDSA, signed by an EC key.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-1".into());
    let token = jsonwebtoken::encode(&header, &claims(), &f.ec.encoding).unwrap();
    assert_unauthenticated(&f, &token, "ES256 on RSA key");
    // RS256 signed with the RSA key but naming the EC key's kid.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ec-1".into());
    let token = jsonwebtoken::encode(&header, &claims(), &rsa.encoding).unwrap();
    assert_unauthenticated(&f, &token, "RS256 on EC key");
    // HS256 keyed with the RSA modulus.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(&rsa.public_raw),
    )
    .unwrap();
    assert_unauthenticated(&f, &token, "HS256 keyed with the modulus");
}
