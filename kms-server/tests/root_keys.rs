//! Root key namespaces (SPEC §3): directory and environment formats, and every way a
//! namespace is refused. Errors name the file or variable, never the key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use hmac::{Hmac, Mac};
use kms_server::root::{
    DirSource, EnvSource, RootKey, RootKeyError, RootKeyId, RootKeyRing, RootKeySource,
    write_new_key_file,
};
use sha2::Sha256;

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn tempdir() -> tempfile_lite::TempDir {
    tempfile_lite::TempDir::new()
}

/// A tiny self-cleaning temporary directory (std only).
mod tempfile_lite {
    use std::path::{Path, PathBuf};

    pub(super) struct TempDir(PathBuf);

    impl TempDir {
        pub(super) fn new() -> Self {
            let mut bytes = [0u8; 8];
            getrandom(&mut bytes);
            let dir = std::env::temp_dir().join(format!(
                "kms-root-test-{}",
                base16ct::lower::encode_string(&bytes)
            ));
            std::fs::create_dir(&dir).unwrap();
            Self(dir)
        }
        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    fn getrandom(buf: &mut [u8]) {
        use rand_core::RngCore;
        rand_core::OsRng.fill_bytes(buf);
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn write(dir: &Path, name: &str, content: &str, mode: u32) {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn load_err(dir: &Path) -> (RootKeyError, String) {
    let err = DirSource::new(dir).load().unwrap_err();
    let msg = err.to_string();
    for secret in [KEY_A, KEY_B, &KEY_A[..20], &KEY_A.to_uppercase()[..20]] {
        assert!(!msg.contains(secret), "error leaks the key: {msg}");
        assert!(
            !format!("{err:?}").contains(secret),
            "Debug leaks the key: {err:?}"
        );
    }
    (err, msg)
}

#[test]
fn directory_with_keys_loads_and_check_values_match_the_spec() {
    let d = tempdir();
    write(d.path(), "prod-1.key", &format!("{KEY_A}\n"), 0o600);
    write(d.path(), "prod-2.key", KEY_B, 0o400);
    let keys = DirSource::new(d.path()).load().unwrap();
    let ids: Vec<_> = keys.iter().map(|k| k.id().as_str().to_owned()).collect();
    assert_eq!(ids, ["prod-1", "prod-2"]);
    // kcv = HMAC-SHA256(root_key, "hygo-kms/v1/root-key-check")[0..16]
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&base16ct::lower::decode_vec(KEY_A).unwrap())
            .unwrap();
    mac.update(b"hygo-kms/v1/root-key-check");
    let expected = mac.finalize().into_bytes();
    assert_eq!(keys[0].check_value(), expected[..16]);
    assert_ne!(keys[0].check_value(), keys[1].check_value());

    let ring = RootKeyRing::new(keys, Some(RootKeyId::new("prod-2").unwrap())).unwrap();
    assert_eq!(ring.primary().id().as_str(), "prod-2");
    assert!(ring.get(&RootKeyId::new("prod-1").unwrap()).is_some());
    assert_eq!(ring.iter().count(), 2);
}

#[test]
fn missing_or_empty_namespace_is_refused() {
    let d = tempdir();
    let (err, msg) = load_err(&d.path().join("nope"));
    assert!(matches!(err, RootKeyError::Unreadable { .. }), "{err:?}");
    assert!(msg.contains("nope"), "{msg}");
    let (err, _) = load_err(d.path());
    assert!(matches!(err, RootKeyError::Empty { .. }), "{err:?}");
    // Hidden entries (Kubernetes' ..data) are not keys.
    fs::create_dir(d.path().join("..data")).unwrap();
    write(d.path(), ".hidden.key", KEY_A, 0o600);
    assert!(matches!(load_err(d.path()).0, RootKeyError::Empty { .. }));
}

#[test]
fn malformed_key_files_are_refused_naming_the_file() {
    let bad = [
        ("short", &KEY_A[..62]),
        (
            "uppercase",
            "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF",
        ),
        (
            "not-hex",
            "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
        (
            "crlf",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\r\n",
        ),
        (
            "two-lf",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n",
        ),
        (
            "space",
            " 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
        (
            "long",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00",
        ),
        ("empty", ""),
    ];
    for (name, content) in bad {
        let d = tempdir();
        write(d.path(), &format!("{name}.key"), content, 0o600);
        let (err, msg) = load_err(d.path());
        assert!(
            matches!(err, RootKeyError::Malformed { .. }),
            "{name}: {err:?}"
        );
        assert!(msg.contains(&format!("{name}.key")), "{name}: {msg}");
    }
}

#[test]
fn badly_named_entries_are_refused() {
    let d = tempdir();
    write(d.path(), "Prod.key", KEY_A, 0o600);
    assert!(matches!(
        load_err(d.path()).0,
        RootKeyError::InvalidId { .. }
    ));
    let d = tempdir();
    write(d.path(), "prod.txt", KEY_A, 0o600);
    let (err, msg) = load_err(d.path());
    assert!(matches!(err, RootKeyError::Malformed { .. }) && msg.contains("prod.txt"));
    let d = tempdir();
    fs::create_dir(d.path().join("dir.key")).unwrap();
    assert!(matches!(
        load_err(d.path()).0,
        RootKeyError::Malformed { .. }
    ));
    let long = "a".repeat(33);
    let d = tempdir();
    write(d.path(), &format!("{long}.key"), KEY_A, 0o600);
    assert!(matches!(
        load_err(d.path()).0,
        RootKeyError::InvalidId { .. }
    ));
}

#[test]
fn group_or_world_permission_bits_are_refused() {
    for mode in [0o640, 0o604, 0o660, 0o644, 0o610, 0o601] {
        let d = tempdir();
        write(d.path(), "prod.key", KEY_A, mode);
        let (err, msg) = load_err(d.path());
        assert!(
            matches!(err, RootKeyError::Permissions { mode: m, .. } if m == mode),
            "{mode:o}: {err:?}"
        );
        assert!(msg.contains("prod.key"), "{msg}");
    }
}

#[test]
fn symlinks_are_judged_by_their_target() {
    // As in a Kubernetes secret volume: prod.key -> ..data/prod.key
    let d = tempdir();
    fs::create_dir(d.path().join("..data")).unwrap();
    write(&d.path().join("..data"), "prod.key", KEY_A, 0o400);
    symlink("..data/prod.key", d.path().join("prod.key")).unwrap();
    let keys = DirSource::new(d.path()).load().unwrap();
    assert_eq!(keys.len(), 1);
    fs::set_permissions(
        d.path().join("..data/prod.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(matches!(
        load_err(d.path()).0,
        RootKeyError::Permissions { .. }
    ));
    // A dangling link is unreadable, not skipped.
    let d = tempdir();
    symlink("missing", d.path().join("prod.key")).unwrap();
    assert!(matches!(
        load_err(d.path()).0,
        RootKeyError::Unreadable { .. }
    ));
}

#[test]
fn environment_namespace() {
    let keys = EnvSource::from_vars([
        ("HYGO_KMS_ROOT_KEY_PROD_2026", format!("{KEY_A}\n")),
        ("HYGO_KMS_ROOT_KEY_OLD", KEY_B.to_owned()),
        ("PATH", "/usr/bin".to_owned()),
    ])
    .load()
    .unwrap();
    let mut ids: Vec<_> = keys.iter().map(|k| k.id().as_str().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["old", "prod-2026"]);

    let err = |vars: Vec<(&str, &str)>| {
        let e = EnvSource::from_vars(vars).load().unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains(KEY_A) && !msg.contains(&KEY_A[..16]), "{msg}");
        (e, msg)
    };
    let (e, _) = err(vec![("PATH", "/usr/bin")]);
    assert!(matches!(e, RootKeyError::Empty { .. }));
    let (e, msg) = err(vec![("HYGO_KMS_ROOT_KEY_PROD", &KEY_A[1..])]);
    assert!(matches!(e, RootKeyError::Malformed { .. }) && msg.contains("HYGO_KMS_ROOT_KEY_PROD"));
    let (e, msg) = err(vec![("HYGO_KMS_ROOT_KEY_prod", KEY_A)]);
    assert!(matches!(e, RootKeyError::Malformed { .. }) && msg.contains("HYGO_KMS_ROOT_KEY_prod"));
    let (e, _) = err(vec![("HYGO_KMS_ROOT_KEY_", KEY_A)]);
    assert!(matches!(e, RootKeyError::InvalidId { .. }));
    let long = format!("HYGO_KMS_ROOT_KEY_{}", "A".repeat(33));
    let (e, _) = err(vec![(&long, KEY_A)]);
    assert!(matches!(e, RootKeyError::InvalidId { .. }));
    assert_eq!(
        format!(
            "{:?}",
            EnvSource::from_vars([("HYGO_KMS_ROOT_KEY_X", KEY_A)])
        ),
        "EnvSource { .. }"
    );
}

#[test]
fn ring_rules() {
    let key = |id: &str, hex: &str| {
        RootKey::from_hex(RootKeyId::new(id).unwrap(), hex.as_bytes(), "test").unwrap()
    };
    let id = |s: &str| RootKeyId::new(s).unwrap();
    assert!(matches!(
        RootKeyRing::new(vec![], None),
        Err(RootKeyError::Empty { .. })
    ));
    let ring = RootKeyRing::new(vec![key("only", KEY_A)], None).unwrap();
    assert_eq!(ring.primary().id().as_str(), "only");
    assert!(matches!(
        RootKeyRing::new(vec![key("a", KEY_A), key("b", KEY_B)], None),
        Err(RootKeyError::PrimaryRequired { count: 2 })
    ));
    assert!(matches!(
        RootKeyRing::new(vec![key("a", KEY_A), key("b", KEY_B)], Some(id("c"))),
        Err(RootKeyError::PrimaryMissing { .. })
    ));
    assert!(matches!(
        RootKeyRing::new(vec![key("a", KEY_A), key("a", KEY_B)], Some(id("a"))),
        Err(RootKeyError::DuplicateId { .. })
    ));
    let d = tempdir();
    write(d.path(), "a.key", KEY_A, 0o600);
    let env = EnvSource::from_vars([("HYGO_KMS_ROOT_KEY_A", KEY_B)]);
    let mut both = DirSource::new(d.path()).load().unwrap();
    both.extend(env.load().unwrap());
    assert!(matches!(
        RootKeyRing::new(both, Some(id("a"))),
        Err(RootKeyError::DuplicateId { .. })
    ));
}

#[test]
fn generated_key_files_round_trip() {
    let d = tempdir();
    let key = RootKey::generate(RootKeyId::new("gen").unwrap());
    let other = RootKey::generate(RootKeyId::new("gen2").unwrap());
    assert_ne!(
        key.check_value(),
        other.check_value(),
        "keys come from the OS CSPRNG"
    );
    let path = write_new_key_file(d.path(), &key).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    let loaded = DirSource::new(d.path()).load().unwrap();
    assert_eq!(loaded[0].check_value(), key.check_value());
    assert!(matches!(
        write_new_key_file(d.path(), &key),
        Err(RootKeyError::Exists { .. })
    ));
}
