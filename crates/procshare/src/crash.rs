//! Crash points: named step boundaries at which a test can make this process die by SIGKILL.
//!
//! `crash_point!("ring.tail_stored")` marks the boundary between two steps of a shared-memory
//! protocol, where a crash table in a module doc says what a kill leaves. Without the cargo
//! feature `crash-points` the macro expands to nothing. With it, a process that was *armed* for a
//! name kills itself with SIGKILL at the Nth pass of that point — a deterministic stand-in for a
//! kill landing exactly there, so every row of a crash table can have its own test.
//!
//! A process is armed either by [`arm`] (in a child's target function) or by the environment
//! variable `PROCSHARE_CRASH_POINT=<name>:<n>` (read once, at the first pass of any point). Only
//! one point is armed at a time; `n` counts from 1.
//!
//! The environment is the way to arm a process before any of its own code runs: a handle that
//! acts while it is received (a `Barrier` claims its slot as a `Process` argument is decoded)
//! passes its points before the target could call [`arm`].
//!
//! Not API: tests and the torture command use it; the names are the crash tables' vocabulary.
//! Every crash table in a module doc has a `point` column naming the points at each row's step
//! boundary; `tests/crash_tables.rs` fails on a row without one, on a name with no
//! `crash_point!` in the code, and on a point no test in `tests/crash_points.rs` arms, which has
//! one test per row (a child armed there must die by SIGKILL, then the row's promise is checked).
//! With the feature off nothing is compiled in: the macro's expansion is `cfg`'d out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Marks a step boundary named in a crash table. Expands to nothing unless the crate is built
/// with the `crash-points` feature.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "crash-points")]
        $crate::crash::point($name);
    };
}
pub(crate) use crash_point;

struct Armed {
    name: String,
    at: u64,
}

fn armed() -> &'static Mutex<Option<Armed>> {
    static ARMED: OnceLock<Mutex<Option<Armed>>> = OnceLock::new();
    ARMED.get_or_init(|| Mutex::new(from_env()))
}

/// How many times the armed point has been passed.
static PASSES: AtomicU64 = AtomicU64::new(0);

fn from_env() -> Option<Armed> {
    let spec = std::env::var("PROCSHARE_CRASH_POINT").ok()?;
    let (name, n) = spec.rsplit_once(':').unwrap_or((spec.as_str(), "1"));
    let at = n.parse().ok().filter(|&n| n > 0)?;
    Some(Armed { name: name.to_owned(), at })
}

/// Arms this process: it SIGKILLs itself at the `nth` pass (counting from 1) of the crash point
/// `name`. Replaces any earlier arming and restarts the count.
pub fn arm(name: &str, nth: u64) {
    let mut armed = armed().lock().unwrap_or_else(|e| e.into_inner());
    PASSES.store(0, Ordering::Relaxed);
    *armed = Some(Armed { name: name.to_owned(), at: nth.max(1) });
}

/// Disarms this process.
pub fn disarm() {
    *armed().lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// One pass of the crash point `name`: dies here if this is the armed pass.
#[doc(hidden)]
pub fn point(name: &'static str) {
    let armed = armed().lock().unwrap_or_else(|e| e.into_inner());
    let Some(a) = armed.as_ref() else { return };
    if a.name != name {
        return;
    }
    if PASSES.fetch_add(1, Ordering::Relaxed) + 1 == a.at {
        // The kill must land before any other step: no unwinding, no destructors, no flush.
        let _ = crate::sys::proc::kill(crate::sys::proc::current_pid(), libc::SIGKILL);
        // SIGKILL to ourselves is delivered before kill(2) returns; should it not be, stop anyway.
        std::process::abort();
    }
}
