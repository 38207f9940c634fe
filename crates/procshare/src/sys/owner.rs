//! Thread identity and liveness, for lock owners (`sync::raw`).
//!
//! A thread is named by `(tid, start time)`: the tid is unique among running threads of the
//! machine (one pid namespace), the start time (field 22 of `/proc/TID/stat`, clock ticks since
//! boot) tells a later thread that reuses the tid from the one that died.

use std::io;

/// Reads the start time of thread `tid` from `/proc/TID/stat`.
///
/// `Ok(None)`: no such thread, or it has exited and waits to be reaped (a zombie holds nothing).
/// `Err`: the answer is unknown (e.g. out of file descriptors); callers must then assume the
/// thread lives, since declaring a live owner dead would break mutual exclusion.
///
/// # References
/// proc(5) (`/proc/pid/stat`)
pub fn thread_start_time(tid: u32) -> io::Result<Option<u64>> {
    if tid == 0 || tid > i32::MAX as u32 {
        return Ok(None);
    }
    let stat = match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(s) => s,
        // ENOENT: no such task; ESRCH: it went away between open and read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/TID/stat format");
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().ok_or_else(bad)?;
    if state == "Z" || state == "X" || state == "x" {
        return Ok(None);
    }
    // `rest` starts at field 3 (state); starttime is field 22.
    let start = fields.nth(18).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    Ok(Some(start))
}
