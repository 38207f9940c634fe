//! The task table: one line of shared memory per worker slot, naming the task its worker is
//! running. It is what makes "a dead worker costs one task" exact (see the crash table in
//! `pool/mod.rs`).
//!
//! ```text
//! Region (memfd, sealed), payload = slots × 64 bytes:
//!   slot i: | task: u64 (id + 1 of the task running or last run; 0 none) | started: u64 (ns, CLOCK_MONOTONIC) | pad |
//! ```
//! Written by the slot's worker only (the owner resets a slot before it starts that slot's next
//! worker); read by the owner: `task` after the worker died (nothing writes it any more), both
//! words by the reaper for `task_timeout`. A worker stores `started`, then `task` (Release);
//! the reaper loads `task` (Acquire), then `started`, so a task it sees comes with its own
//! start time or a later one (never an earlier task's).

use crate::error::Result;
use crate::shared::region::Region;
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: u64 = u64::from_le_bytes(*b"PSPOOLTB");
const LINE: usize = 64;

/// The pool's task table; clones share it (it travels to workers as a `Process` argument).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Table {
    #[serde(with = "region_handle")]
    region: Region,
}

/// A `Region` as a `Process` argument, checked to be a task table on arrival.
mod region_handle {
    use super::{Region, MAGIC};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub(super) fn serialize<S: Serializer>(r: &Region, s: S) -> Result<S::Ok, S::Error> {
        r.serialize(s)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Region, D::Error> {
        use serde::de::Error as _;
        Region::deserialize(d)?.expect(MAGIC).map_err(D::Error::custom)
    }
}

impl Table {
    pub(crate) fn create(slots: usize) -> Result<Table> {
        Ok(Table { region: Region::create(MAGIC, slots.max(1) * LINE, |_| {})? })
    }

    pub(crate) fn slots(&self) -> usize {
        self.region.payload_len() / LINE
    }

    fn word(&self, slot: usize, w: usize) -> Option<&AtomicU64> {
        (slot < self.slots()).then(|| self.region.at::<AtomicU64>(slot * LINE + w * 8))
    }

    /// The worker in `slot` starts task `id` (at `started`, or 0 when no one times tasks).
    pub(crate) fn record(&self, slot: usize, id: u64, started: u64) {
        if let (Some(s), Some(t)) = (self.word(slot, 1), self.word(slot, 0)) {
            s.store(started, Ordering::Relaxed);
            // Release: pairs with the reaper's Acquire in `running`; `started` is before it.
            t.store(id.wrapping_add(1), Ordering::Release);
        }
    }

    /// The task `slot`'s worker runs or ran last, and when it started it.
    pub(crate) fn running(&self, slot: usize) -> Option<(u64, u64)> {
        let t = self.word(slot, 0)?.load(Ordering::Acquire);
        let started = self.word(slot, 1)?.load(Ordering::Relaxed);
        (t != 0).then(|| (t - 1, started))
    }

    /// Empties `slot` for its next worker.
    pub(crate) fn reset(&self, slot: usize) {
        if let (Some(s), Some(t)) = (self.word(slot, 1), self.word(slot, 0)) {
            t.store(0, Ordering::Relaxed);
            s.store(0, Ordering::Relaxed);
        }
    }
}
