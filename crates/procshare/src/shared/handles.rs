//! How procshare handles carry their file descriptors into another process.
//!
//! A handle (`Connection`, `Lock`, `Queue`, ...) serializes its descriptor as an index into a
//! side table of descriptors. [`export`] runs a serialization with a fresh table and returns it;
//! the caller moves those descriptors into the child (inherited across `exec` at process start).
//! [`import`] runs the matching deserialization with the received table installed, and each
//! handle takes its own duplicate from it. Serializing a handle anywhere else (into a queue, say)
//! is a clear `Codec` error rather than a dangling descriptor number.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

thread_local! {
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static INCOMING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
}

/// Runs `f` (a serialization) collecting the descriptors of the handles it serializes.
pub(crate) fn export<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let saved = OUTGOING.with(|o| o.borrow_mut().replace(Vec::new()));
    let r = f();
    let fds = OUTGOING.with(|o| std::mem::replace(&mut *o.borrow_mut(), saved)).unwrap_or_default();
    (r, fds)
}

/// Runs `f` (a deserialization) with `fds` as the table handles take their descriptors from.
pub(crate) fn import<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    let saved = INCOMING.with(|i| i.borrow_mut().replace(fds));
    let r = f();
    INCOMING.with(|i| *i.borrow_mut() = saved);
    r
}

/// A descriptor being serialized: written as an index into the current [`export`] table
/// (duplicates are shared). Serializing it outside `export` is a clear `Codec` error.
pub(crate) struct SendFd<'a>(pub BorrowedFd<'a>);

impl Serialize for SendFd<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd = self.0;
        let index = OUTGOING.with(|o| -> Result<u32, String> {
            let mut o = o.borrow_mut();
            let table = o.as_mut().ok_or_else(|| {
                "procshare handles can only be sent as Process arguments".to_string()
            })?;
            if let Some(i) = table.iter().position(|t| t.as_raw_fd() == fd.as_raw_fd()) {
                return Ok(i as u32);
            }
            let dup = fd.try_clone_to_owned().map_err(|e| e.to_string())?;
            table.push(dup);
            Ok(table.len() as u32 - 1)
        });
        FdIndex(index.map_err(S::Error::custom)?).serialize(s)
    }
}

/// A descriptor written by [`SendFd`], deserialized as a fresh duplicate from the [`import`]
/// table.
pub(crate) struct RecvFd(pub OwnedFd);

impl<'de> Deserialize<'de> for RecvFd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RecvFd, D::Error> {
        let FdIndex(index) = FdIndex::deserialize(d)?;
        INCOMING.with(|i| {
            let i = i.borrow();
            let table = i.as_ref().ok_or_else(|| {
                D::Error::custom("procshare handles can only be received as Process arguments")
            })?;
            let fd = table.get(index as usize).ok_or_else(|| {
                D::Error::custom(format!("no descriptor number {index} was passed"))
            })?;
            fd.try_clone().map(RecvFd).map_err(D::Error::custom)
        })
    }
}

#[derive(Serialize, Deserialize)]
struct FdIndex(u32);

/// The raw numbers of `fds`, for the child's start-up record.
pub(crate) fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(|f| f.as_raw_fd()).collect()
}
