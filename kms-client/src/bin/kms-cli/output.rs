//! One-line JSON renderings of results (binary fields in base64).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kms_client::proto::{AuditEvent, KeyVersionInfo, KeyVersionState, TenantKeyInfo};
use kms_client::{SecretMetadata, SecretPage, SecretRevision, TenantPage};
use serde_json::{Value, json};

pub(crate) fn revision(stored: &SecretRevision) -> String {
    json!({ "revision": stored.revision, "key_version": stored.key_version }).to_string()
}

pub(crate) fn secret_metadata(m: &SecretMetadata) -> Value {
    json!({
        "vendor": m.vendor,
        "name": m.name,
        "revision": m.revision,
        "key_version": m.key_version,
        "labels": m.labels,
        "created_at_ms": m.created_at_ms,
        "updated_at_ms": m.updated_at_ms,
    })
}

pub(crate) fn secret_page(page: &SecretPage) -> String {
    let secrets: Vec<Value> = page.secrets.iter().map(secret_metadata).collect();
    json!({ "secrets": secrets, "next_page_token": page.next_page_token }).to_string()
}

fn state_name(state: i32) -> String {
    KeyVersionState::try_from(state).map_or_else(
        |_| state.to_string(),
        |s| {
            s.as_str_name()
                .trim_start_matches("KEY_VERSION_STATE_")
                .to_owned()
        },
    )
}

fn version(v: &KeyVersionInfo) -> Value {
    json!({
        "version": v.version,
        "state": state_name(v.state),
        "root_key_id": v.root_key_id,
        "created_at_ms": v.created_at_ms,
        "secret_count": v.secret_count,
    })
}

pub(crate) fn tenant_key_info(info: &TenantKeyInfo) -> Value {
    let versions: Vec<Value> = info.versions.iter().map(version).collect();
    json!({
        "tenant_id": info.tenant_id,
        "primary_version": info.primary_version,
        "min_decryption_version": info.min_decryption_version,
        "versions": versions,
        "destroy_after_ms": info.destroy_after_ms,
        "shredded_at_ms": info.shredded_at_ms,
    })
}

pub(crate) fn tenant_page(page: &TenantPage) -> String {
    let tenants: Vec<Value> = page
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenant_id": t.tenant_id,
                "created_at_ms": t.created_at_ms,
                "destroy_after_ms": t.destroy_after_ms,
                "shredded_at_ms": t.shredded_at_ms,
            })
        })
        .collect();
    json!({ "tenants": tenants, "next_page_token": page.next_page_token }).to_string()
}

pub(crate) fn audit_event(e: &AuditEvent) -> Value {
    json!({
        "chain": e.chain,
        "seq": e.seq,
        "at_ms": e.at_ms,
        "actor": e.actor,
        "action": e.action,
        "key_version": e.key_version,
        "outcome": e.outcome,
        "request_id": e.request_id,
        "prev_hash": STANDARD.encode(&e.prev_hash),
        "hash": STANDARD.encode(&e.hash),
        "mac": STANDARD.encode(&e.mac),
        "mac_root_key_id": e.mac_root_key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_info_json_names_states() {
        let info = TenantKeyInfo {
            tenant_id: "t1".into(),
            primary_version: 2,
            versions: vec![KeyVersionInfo {
                version: 2,
                state: KeyVersionState::Active.into(),
                ..KeyVersionInfo::default()
            }],
            ..TenantKeyInfo::default()
        };
        let text = tenant_key_info(&info).to_string();
        assert!(text.contains(r#""state":"ACTIVE""#), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(state_name(99), "99");
    }
}
