//! `kms-cli` against the real `kms-server --dev`, started from an empty directory: the
//! README's tour, as a user drives it. `cargo test --workspace` builds both binaries into
//! one target directory; this test finds `kms-server` beside `kms-cli`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct DevServer {
    child: Child,
    dir: PathBuf,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server_binary() -> PathBuf {
    let cli = Path::new(env!("CARGO_BIN_EXE_kms-cli"));
    let server = cli.with_file_name("kms-server");
    assert!(
        server.exists(),
        "{} not built: run `cargo test --workspace` (or `cargo build -p kms-server`)",
        server.display()
    );
    server
}

fn start() -> DevServer {
    let dir = std::env::temp_dir().join(format!(
        "kms-cli-dev-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(server_binary())
        .args(["--dev", "--dev-listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = DevServer { child, dir };
    let endpoint = server.dir.join(".kms-dev/endpoint");
    for _ in 0..200 {
        if endpoint.exists() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("kms-server --dev did not start");
}

fn cli(server: &DevServer, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms-cli"))
        .arg(format!("--dev={}", server.dir.join(".kms-dev").display()))
        .args(args)
        .current_dir(&server.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_readme_tour_against_kms_server_dev() {
    let server = start();
    let shop = ["--tenant", "acme", "--context", "vendor=shopify"];
    let ct = ok(&cli(
        &server,
        &[&["wrap"], &shop[..]].concat(),
        b"shpat_0123456789abcdef",
    ));
    let ct_file = server.dir.join("token.b64");
    std::fs::write(&ct_file, &ct).unwrap();
    let ct_path = ct_file.to_str().unwrap();
    let pt = ok(&cli(
        &server,
        &[&["unwrap"], &shop[..], &["--in", ct_path]].concat(),
        b"",
    ));
    assert_eq!(pt, "shpat_0123456789abcdef");

    // Wrong context: refused (exit 4); another tenant: denied (exit 3).
    let out = cli(
        &server,
        &[
            "unwrap",
            "--tenant",
            "acme",
            "--context",
            "vendor=amazon",
            "--in",
            ct_path,
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &server,
        &[
            "unwrap",
            "--tenant",
            "globex",
            "--context",
            "vendor=shopify",
            "--in",
            ct_path,
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("shpat_"));

    // The secret store.
    let secret = [
        "--tenant", "acme", "--vendor", "amazon", "--name", "refresh",
    ];
    ok(&cli(
        &server,
        &[&["put-secret"], &secret[..]].concat(),
        b"amzn-refresh-token",
    ));
    let value = ok(&cli(&server, &[&["get-secret"], &secret[..]].concat(), b""));
    assert!(value.starts_with("amzn-refresh-token"), "{value}");
    let listed = ok(&cli(&server, &["list-secrets", "--tenant", "acme"], b""));
    assert!(
        listed.contains("refresh") && !listed.contains("amzn-refresh-token"),
        "{listed}"
    );

    // Admin: tenant info, rotation with rewrap of the stored secret, rewrap of a token.
    let info = ok(&cli(&server, &["tenant-info", "--tenant", "acme"], b""));
    assert!(info.contains("acme"), "{info}");
    let rotated = cli(&server, &["rotate-tenant-key", "--tenant", "acme"], b"");
    ok(&rotated);
    let info = ok(&cli(&server, &["tenant-info", "--tenant", "acme"], b""));
    assert!(info.contains('2'), "{info}");
    let v2 = ok(&cli(
        &server,
        &[&["rewrap"], &shop[..], &["--in", ct_path]].concat(),
        b"",
    ));
    assert_ne!(v2.trim(), ct.trim());
    let audit = ok(&cli(&server, &["audit", "--tenant", "acme"], b""));
    assert!(audit.contains("rotate_tenant_key"), "{audit}");
}
