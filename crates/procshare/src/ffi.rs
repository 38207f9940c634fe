//! A hidden API for procshare's language bindings (the `procshare` Python module): a handle
//! becomes bytes plus the descriptors it needs, and back, the way `Process` arguments travel.
//!
//! Not part of the public contract (`#[doc(hidden)]`); a binding uses it to pass handles to a
//! child process that it starts itself (Python's `multiprocessing` spawn and forkserver, which
//! move the descriptors with `SCM_RIGHTS` or `DupFd`).

use crate::codec;
use crate::error::Result;
use crate::shared::handles;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::OsString;
use std::os::fd::OwnedFd;

/// Serializes `handle` (any procshare handle, or a value holding some) into bytes and the
/// descriptors those bytes refer to by index (fresh duplicates, owned by the caller).
pub fn export<H: Serialize + ?Sized>(handle: &H) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let (bytes, fds) = handles::export(|| codec::encode(handle));
    Ok((bytes?, fds))
}

/// Rebuilds a handle from what [`export`] produced in some process: `fds` must be the same
/// descriptors in the same order (each handle takes its own duplicate; `fds` are dropped).
///
/// Bytes from an untrusted source get a clear `Err`, as any decode does; the descriptors are
/// checked by each handle as when it arrives as a `Process` argument (a queue's memory must be
/// a sealed memfd of the size its header claims, and so on).
pub fn import<H: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<H> {
    handles::import(fds, || codec::decode(bytes))
}

/// Names the command that starts this process's tracker reaper (the helper that unlinks named
/// segments when their last user dies, SIGKILL included), for a binding whose processes cannot
/// re-run `/proc/self/exe` as one: in a Python process that is `python`. The command must end
/// up calling [`run_reaper`]. Call it before the first named queue or segment is made; false
/// if a command was named already (the first one stays).
pub fn set_reaper_command(program: OsString, args: Vec<OsString>) -> bool {
    crate::shm::tracker::set_reaper_command(program, args)
}

/// The reaper started by the command of [`set_reaper_command`]: if this process is one (the
/// environment names our live parent, or a dead process; stdin is a pipe; not set-user-ID),
/// it waits for that parent to die, sweeps and exits, never returning. Returns false at once,
/// having done nothing, if this process is no such reaper.
pub fn run_reaper() -> bool {
    crate::shm::tracker::reap_if_asked(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Queue};

    #[test]
    fn a_queue_round_trips_through_export_and_import() {
        let q: Queue<u32> = Queue::new().unwrap();
        let (bytes, fds) = export(&q).unwrap();
        assert!(!fds.is_empty());
        let back: Queue<u32> = import(&bytes, fds).unwrap();
        back.put(7).unwrap();
        assert_eq!(q.get().unwrap(), 7);
    }

    #[test]
    fn import_without_the_descriptors_is_an_error() {
        let q: Queue<u32> = Queue::new().unwrap();
        let (bytes, _fds) = export(&q).unwrap();
        assert!(matches!(import::<Queue<u32>>(&bytes, Vec::new()), Err(Error::Codec(_))));
        assert!(import::<Queue<u32>>(&bytes[..bytes.len() / 2], Vec::new()).is_err());
    }
}
