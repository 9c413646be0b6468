//! Process hardening at start-up (SPEC §8, THREATS 13): no core dumps, not dumpable
//! (no ptrace by same-uid processes, `/proc/<pid>/mem` closed), and memory locked where
//! the OS allows it, so key material does not reach swap. Uses `rustix`'s safe wrappers:
//! no `unsafe` here.

use rustix::mm::{MlockAllFlags, mlockall};
use rustix::process::{
    DumpableBehavior, Resource, Rlimit, dumpable_behavior, getrlimit, set_dumpable_behavior,
    setrlimit,
};

/// What [`harden_process`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    /// All memory is locked (only attempted when `RLIMIT_MEMLOCK` is unlimited, since a
    /// finite limit would make later allocations fail).
    pub memory_locked: bool,
}

/// A required hardening step failed: the server refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("process hardening failed: {step}: {source}")]
pub struct HardeningError {
    /// Which step.
    pub step: &'static str,
    /// The OS error.
    pub source: std::io::Error,
}

/// Disables core dumps (`RLIMIT_CORE = 0`), makes the process non-dumpable, and locks
/// memory if the memlock limit allows it. The first two are required.
pub fn harden_process() -> Result<Hardening, HardeningError> {
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| HardeningError {
        step: "setrlimit(RLIMIT_CORE, 0)",
        source: e.into(),
    })?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(|e| HardeningError {
        step: "prctl(PR_SET_DUMPABLE, 0)",
        source: e.into(),
    })?;
    let memlock = getrlimit(Resource::Memlock);
    let memory_locked = memlock.current.is_none()
        && mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE).is_ok();
    if !memory_locked {
        tracing::warn!(
            "memory not locked (RLIMIT_MEMLOCK is finite or mlockall was refused): keys could reach swap; disable swap or raise the limit"
        );
    }
    Ok(Hardening { memory_locked })
}

/// True when the process is non-dumpable and its core limit is 0 (for checks and tests).
pub fn is_hardened() -> bool {
    let core = getrlimit(Resource::Core);
    matches!(dumpable_behavior(), Ok(DumpableBehavior::NotDumpable))
        && core.current == Some(0)
        && core.maximum == Some(0)
}
