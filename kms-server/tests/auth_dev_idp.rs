//! The dev identity provider: files, modes, and minted tokens that verify.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use kms_client::dev::{AdminTokenRequest, mint_admin_token};
use kms_server::auth::dev_idp::{self, JWKS_FILE, PRIVATE_KEY_FILE};
use kms_server::auth::{AdminAuthConfig, AdminVerifier, AuthError};
use secrecy::ExposeSecret;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kms-auth-devidp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn request(kid: &str) -> AdminTokenRequest<'_> {
    AdminTokenRequest {
        kid,
        issuer: "hygo-kms-dev",
        audience: "hygo-kms",
        subject: "dev-admin",
        role_claim: "role",
        role_value: "kms-admin",
        ttl: Duration::from_secs(300),
    }
}

#[test]
fn files_and_modes() {
    let dir = TempDir::new("files");
    let idp = dev_idp::ensure(&dir.0.join("idp")).unwrap();
    assert_eq!(
        idp.private_key_file,
        dir.0.join("idp").join(PRIVATE_KEY_FILE)
    );
    assert_eq!(idp.jwks_file, dir.0.join("idp").join(JWKS_FILE));
    assert_eq!(mode(&idp.private_key_file), 0o600);
    assert_eq!(mode(&dir.0.join("idp")), 0o700);
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idp.jwks_file).unwrap()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["kid"], idp.kid.as_str());
    assert!(key.get("d").is_none(), "no private part in the JWKS");

    // Kept across restarts: same key, same kid.
    let again = dev_idp::ensure(&dir.0.join("idp")).unwrap();
    assert_eq!(again, idp);
}

#[test]
fn minted_token_verifies() {
    let dir = TempDir::new("mint");
    let idp = dev_idp::ensure(&dir.0).unwrap();
    let verifier = AdminVerifier::new(AdminAuthConfig::new(
        &idp.jwks_file,
        "hygo-kms-dev",
        "hygo-kms",
        "role",
        "kms-admin",
    ))
    .unwrap();
    let token = mint_admin_token(&idp.private_key_file, &request(&idp.kid)).unwrap();
    let admin = verifier.verify(token.expose_secret()).unwrap();
    assert_eq!(admin.sub, "dev-admin");
    let jti = admin.jti.unwrap();
    assert!(jti.len() >= 16);
    // A fresh jti each time.
    let token2 = mint_admin_token(&idp.private_key_file, &request(&idp.kid)).unwrap();
    assert_ne!(
        verifier
            .verify(token2.expose_secret())
            .unwrap()
            .jti
            .unwrap(),
        jti
    );
    assert!(!format!("{token:?}").contains(token.expose_secret()));

    // Wrong role value → PermissionDenied; wrong kid → Unauthenticated.
    let mut wrong_role = request(&idp.kid);
    wrong_role.role_value = "viewer";
    let t = mint_admin_token(&idp.private_key_file, &wrong_role).unwrap();
    assert!(matches!(
        verifier.verify(t.expose_secret()),
        Err(AuthError::PermissionDenied { .. })
    ));
    let t = mint_admin_token(&idp.private_key_file, &request("other")).unwrap();
    assert!(matches!(
        verifier.verify(t.expose_secret()),
        Err(AuthError::Unauthenticated)
    ));
}

#[test]
fn refuses_bad_ttl_and_readable_key() {
    let dir = TempDir::new("refuse");
    let idp = dev_idp::ensure(&dir.0).unwrap();
    let mut r = request(&idp.kid);
    r.ttl = Duration::ZERO;
    assert!(mint_admin_token(&idp.private_key_file, &r).is_err());
    r.ttl = Duration::from_secs(24 * 3600);
    assert!(mint_admin_token(&idp.private_key_file, &r).is_err());
    std::fs::set_permissions(
        &idp.private_key_file,
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(matches!(
        mint_admin_token(&idp.private_key_file, &request(&idp.kid)),
        Err(kms_client::dev::DevError::BadFile { .. } | kms_client::dev::DevError::Mint(_))
    ));
}

/// The server's dev constants and the client's agree (kms-cli --dev mints what
/// kms-server --dev accepts).
#[test]
fn dev_constants_match_the_client() {
    let r = AdminTokenRequest::dev("k");
    assert_eq!(r.issuer, kms_server::dev::DEV_ISSUER);
    assert_eq!(r.audience, kms_server::dev::DEV_AUDIENCE);
    assert_eq!(r.role_claim, kms_server::dev::DEV_ROLE_CLAIM);
    assert_eq!(r.role_value, kms_server::dev::DEV_ROLE);
}
