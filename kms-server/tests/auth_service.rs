//! Service credentials and policy (SPEC §5; THREATS 11 vendor scope, 12 no secrets in
//! errors).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::BTreeMap;

use kms_server::auth::service::{CREDENTIAL_PREFIX, SECRET_ENCODED_LEN};
use kms_server::auth::{
    AuthError, CredentialHash, Permission, ServiceCredential, ServiceId, ServicePolicy,
    ServicePolicyConfig, UNAUTHENTICATED_MESSAGE,
};
use kms_server::keys::{Context, TenantId};
use secrecy::{ExposeSecret, SecretString};

fn generate(id: &str) -> (SecretString, CredentialHash) {
    ServiceCredential::generate(&ServiceId::new(id).unwrap())
}

fn config(id: &str, hashes: &[&CredentialHash], perms: &[Permission]) -> ServicePolicyConfig {
    ServicePolicyConfig {
        id: id.into(),
        credential_sha256: hashes.iter().map(|h| h.to_hex()).collect(),
        permissions: perms.to_vec(),
        tenants: None,
        context: BTreeMap::new(),
    }
}

fn assert_unauthenticated(policy: &ServicePolicy, token: &str) {
    match policy.authenticate(token) {
        Err(e @ AuthError::Unauthenticated) => {
            let (msg, dbg) = (e.to_string(), format!("{e:?}"));
            assert_eq!(msg, UNAUTHENTICATED_MESSAGE);
            if token.len() > 4 {
                assert!(!msg.contains(token) && !dbg.contains(token));
            }
        }
        other => panic!("{token:?}: expected Unauthenticated, got {other:?}"),
    }
}

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

fn ctx(pairs: &[(&str, &str)]) -> Context {
    Context::from_caller(pairs.iter().copied()).unwrap()
}

fn denied_reason(r: Result<(), AuthError>) -> String {
    match r {
        Err(AuthError::PermissionDenied { reason }) => reason,
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[test]
fn credential_form() {
    let (cred, _) = generate("shopify-adapter");
    let token = cred.expose_secret();
    assert!(token.starts_with("hkms_shopify-adapter_"));
    let secret = &token["hkms_shopify-adapter_".len()..];
    assert_eq!(secret.len(), SECRET_ENCODED_LEN);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let parsed = ServiceCredential::parse(token).unwrap();
    assert_eq!(parsed.id().as_str(), "shopify-adapter");
    assert_eq!(parsed.expose(), token);
    assert!(ServiceCredential::looks_like(token));
    assert!(!ServiceCredential::looks_like("eyJhbGciOi.x.y"));
}

#[test]
fn secrets_containing_underscores_and_dashes_parse() {
    // 32 bytes whose base64url is full of '_' and '-'.
    let secret = "_-_-".repeat(10) + "_-A";
    let token = format!("{CREDENTIAL_PREFIX}svc_{secret}");
    assert_eq!(
        ServiceCredential::parse(&token).unwrap().id().as_str(),
        "svc"
    );
    let policy =
        ServicePolicy::from_config(&[config("svc", &[&CredentialHash::of(&token)], &[])]).unwrap();
    assert_eq!(policy.authenticate(&token).unwrap().id().as_str(), "svc");
}

#[test]
fn malformed_credentials_are_unauthenticated() {
    let (cred, hash) = generate("svc-1");
    let good = cred.expose_secret().to_owned();
    let secret = good["hkms_svc-1_".len()..].to_owned();
    let policy = ServicePolicy::from_config(&[config("svc-1", &[&hash], &[])]).unwrap();
    assert!(policy.authenticate(&good).is_ok());

    let long_id = "a".repeat(33);
    let padded = format!("hkms_svc-1_{secret}=");
    let bad: Vec<String> = vec![
        String::new(),
        format!("hkm_svc-1_{secret}"),
        format!("HKMS_svc-1_{secret}"),
        format!("Bearer {good}"),
        format!("xhkms_svc-1_{secret}"),
        format!("hkms__{secret}"),
        format!("hkms_Svc-1_{secret}"),
        format!("hkms_svc.1_{secret}"),
        format!("hkms_{long_id}_{secret}"),
        "hkms_svc-1".to_owned(),
        "hkms_svc-1_".to_owned(),
        format!("hkms_svc-1_{}", &secret[..42]),
        format!("hkms_svc-1_{secret}A"),
        padded,
        format!("hkms_svc-1_{}", secret.replacen(|_: char| true, "+", 1)),
        format!("hkms_svc-1_{}/", &secret[..42]),
        format!("hkms_svc-1_{}", "A".repeat(42) + "B"), // non-canonical trailing bits
        format!("{good} "),
    ];
    for token in &bad {
        assert!(ServiceCredential::parse(token).is_err(), "{token:?}");
        assert_unauthenticated(&policy, token);
    }
}

#[test]
fn unknown_id_and_wrong_secret_are_the_same_error() {
    let (cred_a, hash_a) = generate("svc-a");
    let (cred_b, _) = generate("svc-b");
    let (cred_a2, _) = generate("svc-a");
    let policy = ServicePolicy::from_config(&[config("svc-a", &[&hash_a], &[])]).unwrap();
    assert!(policy.authenticate(cred_a.expose_secret()).is_ok());
    assert_unauthenticated(&policy, cred_b.expose_secret()); // unknown id
    assert_unauthenticated(&policy, cred_a2.expose_secret()); // wrong secret
}

#[test]
fn rotation_hash_works() {
    let (old, old_hash) = generate("svc");
    let (new, new_hash) = generate("svc");
    let (third, _) = generate("svc");
    let policy =
        ServicePolicy::from_config(&[config("svc", &[&old_hash, &new_hash], &[])]).unwrap();
    assert!(policy.authenticate(old.expose_secret()).is_ok());
    assert!(policy.authenticate(new.expose_secret()).is_ok());
    assert_unauthenticated(&policy, third.expose_secret());
}

#[test]
fn debug_never_shows_the_token() {
    let (cred, hash) = generate("svc");
    let token = cred.expose_secret();
    let secret = &token["hkms_svc_".len()..];
    let parsed = ServiceCredential::parse(token).unwrap();
    for dbg in [
        format!("{cred:?}"),
        format!("{parsed:?}"),
        format!("{hash:?}"),
        format!(
            "{:?}",
            ServicePolicy::from_config(&[config("svc", &[&hash], &[])]).unwrap()
        ),
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
        assert!(!dbg.contains(&hash.to_hex()), "{dbg}");
    }
}

#[test]
fn config_validation_names_the_setting() {
    let (_, h) = generate("svc");
    let ok = config("svc", &[&h], &[Permission::Wrap]);
    assert!(ServicePolicy::from_config(std::slice::from_ref(&ok)).is_ok());

    let setting_of = |configs: &[ServicePolicyConfig]| match ServicePolicy::from_config(configs) {
        Err(AuthError::Config { setting, .. }) => setting,
        other => panic!("expected a config error, got {other:?}"),
    };
    let with = |f: &dyn Fn(&mut ServicePolicyConfig)| {
        let mut c = ok.clone();
        f(&mut c);
        vec![ok_other(), c]
    };
    fn ok_other() -> ServicePolicyConfig {
        config("other", &[&CredentialHash::of("x")], &[])
    }

    assert_eq!(
        setting_of(&with(&|c| c.id = "Bad_Id".into())),
        "services[1].id"
    );
    assert_eq!(
        setting_of(&with(&|c| c.id = "a".repeat(33))),
        "services[1].id"
    );
    assert_eq!(
        setting_of(&with(&|c| c.id = "other".into())),
        "services[1].id"
    );
    assert_eq!(
        setting_of(&with(&|c| c.credential_sha256.clear())),
        "services[1].credential_sha256"
    );
    assert_eq!(
        setting_of(&with(&|c| c.credential_sha256 = vec![h.to_hex(); 3])),
        "services[1].credential_sha256"
    );
    assert_eq!(
        setting_of(&with(
            &|c| c.credential_sha256 = vec![h.to_hex(), "ab".repeat(31)]
        )),
        "services[1].credential_sha256[1]"
    );
    assert_eq!(
        setting_of(&with(
            &|c| c.credential_sha256 = vec![h.to_hex().to_uppercase()]
        )),
        "services[1].credential_sha256[0]"
    );
    assert_eq!(
        setting_of(&with(&|c| c.tenants = Some(vec![]))),
        "services[1].tenants"
    );
    assert_eq!(
        setting_of(&with(
            &|c| c.tenants = Some(vec!["ok".into(), "not ok".into()])
        )),
        "services[1].tenants[1]"
    );
    assert_eq!(
        setting_of(&with(&|c| {
            c.context.insert("vendor".into(), vec![]);
        })),
        "services[1].context.vendor"
    );
    assert_eq!(
        setting_of(&with(&|c| {
            c.context.insert("kms.vendor".into(), vec!["x".into()]);
        })),
        "services[1].context"
    );
}

#[test]
fn config_deserializes_from_toml_shaped_json() {
    // The file format is TOML; these structs use only TOML-representable shapes.
    let json = serde_json::json!({
        "id": "shopify-adapter",
        "credential_sha256": ["ab".repeat(32)],
        "permissions": ["wrap", "unwrap", "generate_data_key", "get_secret"],
        "tenants": ["acme"],
        "context": {"vendor": ["shopify"]}
    });
    let c: ServicePolicyConfig = serde_json::from_value(json).unwrap();
    assert_eq!(c.permissions.len(), 4);
    let minimal: ServicePolicyConfig =
        serde_json::from_value(serde_json::json!({"id": "x", "credential_sha256": []})).unwrap();
    assert!(minimal.tenants.is_none() && minimal.context.is_empty());
    // A typo must not silently widen the policy (e.g. `tenant` instead of `tenants`).
    let typo = serde_json::json!({"id": "x", "credential_sha256": [], "tenant": ["a"]});
    assert!(serde_json::from_value::<ServicePolicyConfig>(typo).is_err());
    let bad_perm = serde_json::json!({"id": "x", "credential_sha256": [], "permissions": ["Wrap"]});
    assert!(serde_json::from_value::<ServicePolicyConfig>(bad_perm).is_err());
}

fn principal(
    perms: &[Permission],
    tenants: Option<&[&str]>,
    context: &[(&str, &[&str])],
) -> std::sync::Arc<kms_server::auth::ServicePrincipal> {
    let (cred, hash) = generate("svc");
    let mut c = config("svc", &[&hash], perms);
    c.tenants = tenants.map(|t| t.iter().map(|s| (*s).to_owned()).collect());
    c.context = context
        .iter()
        .map(|(k, vs)| {
            (
                (*k).to_owned(),
                vs.iter().map(|v| (*v).to_owned()).collect(),
            )
        })
        .collect();
    ServicePolicy::from_config(&[c])
        .unwrap()
        .authenticate(cred.expose_secret())
        .unwrap()
}

const ALL_DATA: &[Permission] = &[
    Permission::Wrap,
    Permission::Unwrap,
    Permission::GenerateDataKey,
];
const ALL_SECRET: &[Permission] = &[
    Permission::PutSecret,
    Permission::GetSecret,
    Permission::ListSecrets,
    Permission::DeleteSecret,
];

#[test]
fn method_not_allowed() {
    let p = principal(&[Permission::Wrap, Permission::GetSecret], None, &[]);
    let t = tenant("acme");
    assert!(p.authorize(Permission::Wrap, &t, &Context::empty()).is_ok());
    let reason = denied_reason(p.authorize(Permission::Unwrap, &t, &Context::empty()));
    assert!(
        reason.contains("method not allowed") && reason.contains("unwrap"),
        "{reason}"
    );
    denied_reason(p.authorize(Permission::GenerateDataKey, &t, &Context::empty()));
    assert!(
        p.authorize_secret(Permission::GetSecret, &t, "shopify")
            .is_ok()
    );
    denied_reason(p.authorize_secret(Permission::PutSecret, &t, "shopify"));
    // Rewrap needs both.
    denied_reason(p.authorize_rewrap(&t, &Context::empty()));
    let both = principal(&[Permission::Wrap, Permission::Unwrap], None, &[]);
    assert!(both.authorize_rewrap(&t, &Context::empty()).is_ok());
    // Each check function refuses the other family's permissions.
    let all = principal(&[ALL_DATA, ALL_SECRET].concat(), None, &[]);
    for &perm in ALL_SECRET {
        denied_reason(all.authorize(perm, &t, &Context::empty()));
    }
    for &perm in ALL_DATA {
        denied_reason(all.authorize_secret(perm, &t, "shopify"));
    }
}

#[test]
fn tenant_outside_the_list() {
    let p = principal(ALL_DATA, Some(&["acme", "globex"]), &[]);
    assert!(
        p.authorize(Permission::Wrap, &tenant("acme"), &Context::empty())
            .is_ok()
    );
    assert!(
        p.authorize(Permission::Wrap, &tenant("globex"), &Context::empty())
            .is_ok()
    );
    let reason =
        denied_reason(p.authorize(Permission::Wrap, &tenant("initech"), &Context::empty()));
    assert!(reason.contains("tenant not allowed"), "{reason}");
    // Exact bytes: no case folding.
    denied_reason(p.authorize(Permission::Wrap, &tenant("ACME"), &Context::empty()));
    let s = principal(ALL_SECRET, Some(&["acme"]), &[]);
    denied_reason(s.authorize_secret(Permission::GetSecret, &tenant("initech"), "shopify"));
}

#[test]
fn vendor_constrained_data_plane() {
    let p = principal(ALL_DATA, None, &[("vendor", &["shopify"])]);
    let t = tenant("acme");
    for &perm in ALL_DATA {
        assert!(
            p.authorize(perm, &t, &ctx(&[("vendor", "shopify")]))
                .is_ok()
        );
        assert!(
            p.authorize(perm, &t, &ctx(&[("vendor", "shopify"), ("shop", "x")]))
                .is_ok()
        );
        let reason = denied_reason(p.authorize(perm, &t, &ctx(&[("vendor", "amazon")])));
        assert!(
            reason.contains("value not allowed") && reason.contains("vendor"),
            "{reason}"
        );
        assert!(!reason.contains("amazon"), "echoes the value: {reason}");
        let reason = denied_reason(p.authorize(perm, &t, &Context::empty()));
        assert!(
            reason.contains("vendor") && reason.contains("missing"),
            "{reason}"
        );
        denied_reason(p.authorize(perm, &t, &ctx(&[("Vendor", "shopify")])));
        denied_reason(p.authorize(perm, &t, &ctx(&[("vendor", "Shopify")])));
        denied_reason(p.authorize(perm, &t, &ctx(&[("vendor", "shopify ")])));
    }
    denied_reason(p.authorize_rewrap(&t, &ctx(&[("vendor", "amazon")])));
    denied_reason(p.authorize_rewrap(&t, &Context::empty()));
}

#[test]
fn batch_items_are_each_checked() {
    // What a batch handler does: one decision per item, one bad item fails only itself.
    let p = principal(ALL_DATA, None, &[("vendor", &["shopify"])]);
    let t = tenant("acme");
    let items = [
        ctx(&[("vendor", "shopify")]),
        ctx(&[("vendor", "amazon")]),
        Context::empty(),
        ctx(&[("vendor", "shopify")]),
    ];
    let ok: Vec<bool> = items
        .iter()
        .map(|c| p.authorize(Permission::Unwrap, &t, c).is_ok())
        .collect();
    assert_eq!(ok, [true, false, false, true]);
}

#[test]
fn several_constraints_all_apply() {
    let p = principal(
        ALL_DATA,
        None,
        &[("vendor", &["shopify", "amazon"]), ("region", &["eu"])],
    );
    let t = tenant("acme");
    assert!(
        p.authorize(
            Permission::Wrap,
            &t,
            &ctx(&[("vendor", "amazon"), ("region", "eu")])
        )
        .is_ok()
    );
    let reason = denied_reason(p.authorize(Permission::Wrap, &t, &ctx(&[("vendor", "amazon")])));
    assert!(
        reason.contains("region") && reason.contains("missing"),
        "{reason}"
    );
    denied_reason(p.authorize(
        Permission::Wrap,
        &t,
        &ctx(&[("vendor", "ebay"), ("region", "eu")]),
    ));
}

#[test]
fn secret_store_vendor_rule() {
    let t = tenant("acme");
    // Vendor-constrained: only the allowed vendor, and an absent vendor is denied.
    let p = principal(ALL_SECRET, None, &[("vendor", &["shopify"])]);
    for &perm in ALL_SECRET {
        assert!(p.authorize_secret(perm, &t, "shopify").is_ok());
        let reason = denied_reason(p.authorize_secret(perm, &t, "amazon"));
        assert!(
            reason.contains("vendor") && !reason.contains("amazon"),
            "{reason}"
        );
        denied_reason(p.authorize_secret(perm, &t, ""));
    }
    // A constraint on another key denies every secret-store call.
    let q = principal(
        ALL_SECRET,
        None,
        &[("vendor", &["shopify"]), ("region", &["eu"])],
    );
    let r = principal(ALL_SECRET, None, &[("region", &["eu"])]);
    for &perm in ALL_SECRET {
        let reason = denied_reason(q.authorize_secret(perm, &t, "shopify"));
        assert!(reason.contains("region"), "{reason}");
        denied_reason(r.authorize_secret(perm, &t, "shopify"));
    }
    // Unconstrained: any vendor.
    let u = principal(ALL_SECRET, None, &[]);
    for &perm in ALL_SECRET {
        assert!(u.authorize_secret(perm, &t, "amazon").is_ok());
        assert!(u.authorize_secret(perm, &t, "").is_ok());
    }
}

#[test]
fn unconstrained_service_is_allowed() {
    let p = principal(&[ALL_DATA, ALL_SECRET].concat(), None, &[]);
    for t in ["acme", "globex"] {
        for &perm in ALL_DATA {
            assert!(p.authorize(perm, &tenant(t), &Context::empty()).is_ok());
            assert!(
                p.authorize(perm, &tenant(t), &ctx(&[("vendor", "anything")]))
                    .is_ok()
            );
        }
        for &perm in ALL_SECRET {
            assert!(p.authorize_secret(perm, &tenant(t), "amazon").is_ok());
        }
    }
}
