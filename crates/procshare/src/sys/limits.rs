//! The per-process limits that creating a handle can run into, named in the error: a bare
//! `EMFILE` or `ENOMEM` says nothing of which limit was hit or how to raise it.
//!
//! One translation for every call that makes a descriptor or a mapping: `socketpair`,
//! `memfd_create` and `mmap` pass their errors through [`descriptor`] or [`mapping`], which
//! keep the error's kind (callers that match on it still can) and add the limit's name, its
//! value and what to do.

use std::io;

/// `getrlimit(resource)`: the soft limit (`None`: unlimited or unreadable).
///
/// # References
/// getrlimit(2)
pub fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid out-pointer to an `rlimit`.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

fn show(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}

/// An integer from a `/proc/sys` file (`None`: unreadable).
fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Names the descriptor limit in an error from a call that makes a descriptor (`what`: "a
/// pipe's socket", ...): `EMFILE` is `RLIMIT_NOFILE`, `ENFILE` the system's `fs.file-max`.
/// Other errors pass unchanged.
pub fn descriptor(e: io::Error, what: &str) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EMFILE) => io::Error::new(
            e.kind(),
            format!(
                "RLIMIT_NOFILE {} reached: no descriptor left for {what} (each queue holds 1, \
                 each pipe end 2; raise it with `ulimit -n` or setrlimit) ({e})",
                show(soft_limit(libc::RLIMIT_NOFILE))
            ),
        ),
        Some(libc::ENFILE) => io::Error::new(
            e.kind(),
            format!(
                "fs.file-max {} reached: the system has no descriptor left for {what} ({e})",
                show(sysctl("/proc/sys/fs/file-max"))
            ),
        ),
        _ => e,
    }
}

/// Names the address-space limits in an error from `mmap` of `len` bytes: `ENOMEM` is
/// `RLIMIT_AS` (the process's address space) or `vm.max_map_count` (its number of mappings).
/// Other errors pass unchanged.
pub fn mapping(e: io::Error, len: usize) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    let maps = std::fs::read("/proc/self/maps")
        .map(|m| m.iter().filter(|&&b| b == b'\n').count().to_string())
        .unwrap_or_else(|_| "?".into());
    io::Error::new(
        e.kind(),
        format!(
            "RLIMIT_AS {} / vm.max_map_count {} reached: cannot map {len} more bytes of shared \
             memory ({maps} mappings now; a queue maps 1 MiB plus what it holds, in at most 18 \
             mappings; raise `ulimit -v` or the sysctl) ({e})",
            show(soft_limit(libc::RLIMIT_AS)),
            show(sysctl("/proc/sys/vm/max_map_count")),
        ),
    )
}
