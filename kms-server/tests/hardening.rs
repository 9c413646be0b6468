//! THREATS 13: at start-up the process is non-dumpable and `RLIMIT_CORE` is 0. (Its own
//! test binary: hardening changes the whole process.)

#![allow(clippy::unwrap_used, reason = "test code")]

#[test]
fn start_up_hardening_disables_core_dumps() {
    assert!(!kms_server::hardening::is_hardened());
    kms_server::hardening::harden_process().unwrap();
    assert!(kms_server::hardening::is_hardened());
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(
        core.split_whitespace().skip(4).take(2).all(|v| v == "0"),
        "{core}"
    );
}
