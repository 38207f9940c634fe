//! `SharedMemoryManager`: creates segments and lists and unlinks them all at `shutdown` or drop
//! (Python's `multiprocessing.managers.SharedMemoryManager`, without its server process: the
//! tracker already guarantees cleanup after a crash, so the manager is plain bookkeeping in the
//! creating process).
//!
//! Crash table: the manager keeps no shared state; its segments' lifetimes are the tracker's.
//! | killed ...                                   | leaves                          | repaired by | point |
//! |----------------------------------------------|---------------------------------|-------------|-------|
//! | holding segments it made, before `shutdown`  | segments whose users all died   | the tracker (reaper or a later sweep) unlinks them | `manager.made` |

use crate::error::{Error, Result};
use crate::shm::{Item, ShareableList, SharedMemory};
use parking_lot::Mutex;

/// Makes segments and lists and unlinks every one of them at [`shutdown`](Self::shutdown) or
/// when dropped.
///
/// ```
/// use procshare::{Item, SharedMemoryManager};
///
/// let smm = SharedMemoryManager::new()?;
/// let shm = smm.shared_memory(128)?;
/// let sl = smm.shareable_list(&[Item::Int(1), Item::Str("a".into())])?;
/// let (a, b) = (shm.name().to_owned(), sl.name().to_owned());
/// smm.shutdown()?;
/// assert!(procshare::SharedMemory::open(&a).is_err());
/// assert!(procshare::SharedMemory::open(&b).is_err());
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct SharedMemoryManager {
    made: Mutex<Vec<SharedMemory>>,
}

impl SharedMemoryManager {
    /// A manager with nothing made yet.
    pub fn new() -> Result<Self> {
        Ok(Self::default())
    }

    /// A new segment of `size` bytes (Python's `smm.SharedMemory(size)`).
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory> {
        let shm = SharedMemory::create(size)?;
        self.made.lock().push(shm.clone());
        crate::crash::crash_point!("manager.made");
        Ok(shm)
    }

    /// A new list holding `items` (Python's `smm.ShareableList(seq)`).
    pub fn shareable_list(&self, items: &[Item]) -> Result<ShareableList> {
        let sl = ShareableList::new(items)?;
        self.made.lock().push(sl.shm().clone());
        Ok(sl)
    }

    /// Unlinks everything made so far (ones already unlinked elsewhere are skipped). Handles
    /// keep working; their names are gone. The manager stays usable.
    pub fn shutdown(&self) -> Result<()> {
        let made = std::mem::take(&mut *self.made.lock());
        let mut first_err = None;
        for shm in made {
            match shm.unlink() {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
