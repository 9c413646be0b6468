#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! `kms-cli` against the in-process fake through a `--dev` directory: input from stdin
//! and files (never argv), base64 and raw outputs, 0600 output files, minted admin
//! tokens, rewrap progress on stderr, and the exit codes.

mod common;

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::Ed25519KeyPair;

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kms-cli-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_private(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

/// A `kms-server --dev`-like directory pointing at `endpoint`.
fn dev_dir(name: &str, endpoint: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("endpoint"), format!("{endpoint}\n")).unwrap();
    write_private(
        &dir.join("service-credential"),
        format!("{}\n", common::CREDENTIAL).as_bytes(),
    );
    let idp = dir.join("idp");
    std::fs::create_dir(&idp).unwrap();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    write_private(&idp.join("admin-idp-ed25519.pk8"), pkcs8.as_ref());
    std::fs::write(
        idp.join("admin-idp-jwks.json"),
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"dev-test-kid"}]}"#,
    )
    .unwrap();
    dir
}

/// Runs kms-cli with `args` and `stdin`, without inheriting the HYGO_KMS_* variables.
async fn cli(args: Vec<String>, stdin: &[u8]) -> Output {
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kms-cli"));
        for (key, _) in std::env::vars() {
            if key.starts_with("HYGO_KMS_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may exit (e.g. on a usage error) before reading its input.
        if let Err(error) = child.stdin.take().unwrap().write_all(&stdin) {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn args(dir: &Path, rest: &[&str]) -> Vec<String> {
    std::iter::once(format!("--dev={}", dir.display()))
        .chain(rest.iter().map(|s| (*s).to_owned()))
        .collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrap_from_stdin_unwrap_to_a_0600_file() {
    let (fake, endpoint) = common::serve(0).await;
    let dir = dev_dir("wrap", &endpoint);
    let wrap = cli(
        args(
            &dir,
            &["wrap", "--tenant", "t1", "--context", "vendor=shopify"],
        ),
        b"shpat_abc",
    )
    .await;
    assert_eq!(wrap.status.code(), Some(0), "{}", stderr(&wrap));
    let line = stdout(&wrap);
    assert_eq!(
        STANDARD.decode(line.trim()).unwrap(),
        common::fake_seal("t1", b"shpat_abc")
    );

    let envelope = dir.join("ct.b64");
    std::fs::write(&envelope, &line).unwrap();
    let out = dir.join("plain.bin");
    let unwrap = cli(
        args(
            &dir,
            &[
                "unwrap",
                "--tenant",
                "t1",
                "--context",
                "vendor=shopify",
                "--in",
                envelope.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ),
        b"",
    )
    .await;
    assert_eq!(unwrap.status.code(), Some(0), "{}", stderr(&unwrap));
    assert!(unwrap.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), b"shpat_abc");
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Raw plaintext on stdout when there is no --out.
    let unwrap = cli(
        args(
            &dir,
            &["unwrap", "--tenant", "t1", "--context", "vendor=shopify"],
        ),
        line.as_bytes(),
    )
    .await;
    assert_eq!(unwrap.stdout, b"shpat_abc");
    let bearer = format!("Bearer {}", common::CREDENTIAL);
    assert!(
        fake.authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| *a == bearer)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_the_status() {
    let (_fake, endpoint) = common::serve(0).await;
    let dir = dev_dir("codes", &endpoint);
    let foreign = STANDARD.encode(common::fake_seal("t2", b"x"));
    let denied = cli(
        args(
            &dir,
            &["unwrap", "--tenant", "t1", "--context", "vendor=shopify"],
        ),
        foreign.as_bytes(),
    )
    .await;
    assert_eq!(denied.status.code(), Some(3));
    assert!(
        stderr(&denied).contains("CROSS_TENANT"),
        "{}",
        stderr(&denied)
    );

    let refused = cli(
        args(
            &dir,
            &[
                "put-secret",
                "--tenant",
                "t1",
                "--vendor",
                "shopify",
                "--name",
                "n",
                "--expected-revision",
                "7",
            ],
        ),
        b"value",
    )
    .await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));

    let stored = cli(
        args(
            &dir,
            &[
                "put-secret",
                "--tenant",
                "t1",
                "--vendor",
                "shopify",
                "--name",
                "n",
                "--label",
                "env=prod",
            ],
        ),
        b"value",
    )
    .await;
    assert_eq!(stored.status.code(), Some(0), "{}", stderr(&stored));
    assert_eq!(stdout(&stored).trim(), r#"{"key_version":1,"revision":1}"#);

    let usage = cli(
        args(&dir, &["wrap", "--tenant", "t1", "shpat_in_argv"]),
        b"",
    )
    .await;
    assert_eq!(usage.status.code(), Some(2));
    let duplicate = cli(
        args(
            &dir,
            &[
                "wrap",
                "--tenant",
                "t1",
                "--context",
                "a=1",
                "--context",
                "a=2",
            ],
        ),
        b"x",
    )
    .await;
    assert_eq!(duplicate.status.code(), Some(2));
    let remote = cli(
        vec![
            "--endpoint".into(),
            "http://10.0.0.1:7650".into(),
            "list-tenants".into(),
        ],
        b"",
    )
    .await;
    assert_eq!(remote.status.code(), Some(2));
    assert!(
        stderr(&remote).contains("refusing plaintext"),
        "{}",
        stderr(&remote)
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let down = dev_dir("down", &closed);
    let unavailable = cli(
        args(
            &down,
            &[
                "--timeout",
                "2",
                "get-secret",
                "--tenant",
                "t",
                "--vendor",
                "v",
                "--name",
                "n",
            ],
        ),
        b"",
    )
    .await;
    assert_eq!(
        unavailable.status.code(),
        Some(5),
        "{}",
        stderr(&unavailable)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&down).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_mints_dev_admin_tokens_and_shows_progress() {
    let (fake, endpoint) = common::serve(0).await;
    let dir = dev_dir("rotate", &endpoint);
    let rotate = cli(args(&dir, &["rotate-tenant-key", "--tenant", "t1"]), b"").await;
    assert_eq!(rotate.status.code(), Some(0), "{}", stderr(&rotate));
    let progress = stderr(&rotate);
    assert!(
        progress.contains("rewrap: 150 rewrapped, 0 remaining (primary v2), done"),
        "{progress}"
    );
    let info: serde_json::Value = serde_json::from_str(stdout(&rotate).trim()).unwrap();
    assert_eq!(info["primary_version"], 2);
    assert_eq!(info["tenant_id"], "t1");

    let authorizations = fake.authorizations.lock().unwrap().clone();
    assert_eq!(authorizations.len(), 3, "rotate, rewrap, get");
    for authorization in &authorizations {
        let token = authorization.strip_prefix("Bearer ").unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("dev-test-kid"));
    }
    assert_ne!(
        authorizations[0], authorizations[1],
        "a fresh token per call"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
