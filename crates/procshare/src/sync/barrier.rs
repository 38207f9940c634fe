//! `Barrier` — an arrival count and a generation in one [`WaitWord`], plus a table of the
//! processes that use the barrier so that waiters can tell when a party has died.
//!
//! ```text
//!  0        8          12            16                       16 + 16*64
//!  +--------+----------+-------------+------------------------+
//!  | state  | parties  | reset_gen   | slots[64]: { pid, arrived, start } |
//!  +--------+----------+-------------+------------------------+
//!  state word: { broken:1 | generation:15 | count:16 }
//! ```
//!
//! A party arrives with one CAS (`count + 1`); the last one instead moves to the next
//! generation with `count = 0` and wakes everyone. Waiters sleep until the generation moves or
//! `broken` is set.
//!
//! **Which death breaks it.** A process that *dies* while it holds the barrier — killed, or
//! gone without dropping its handles — may be a party some round needs, and nothing can tell
//! otherwise; a process that is *done* with it drops its handles first. So each process that
//! received the barrier (or waited on it) has a slot `{ pid, start, arrived }` from then on,
//! and gives it back when its last handle is dropped (a child's arguments are dropped when its
//! target returns or panics). A slot of a dead process is a party that died: killed mid-wait
//! (`arrived = gen + 1`, the round counted it and cannot release it) or before it arrived (the
//! round waits for it in vain — where Python's barrier hangs forever). Waiters look at the
//! table every [`CHECK_EVERY`], and the last arrival looks once before it completes the round;
//! either breaks the barrier with a CAS that keeps the generation (it fails if the round
//! completed meanwhile), and every waiter, now and later, gets `Err(PeerDied)` (Python's
//! `BrokenBarrierError`). A process that did its waits and exited normally broke nothing:
//! rounds with other processes go on, and its slot serves the next process. `reset` forgets
//! the dead, so a reset barrier is usable again.
//!
//! The creator is registered at its first `wait` (a process that makes a barrier for its
//! children and never waits itself is no party). A process that exits without dropping its
//! handles (`std::process::exit` inside the target, a `mem::forget`) counts as dead.
//!
//! Crash table:
//! | killed ...                          | leaves                                  | repaired by            | point |
//! |-------------------------------------|-----------------------------------------|------------------------|-------|
//! | holding the barrier, before writing `arrived` | a slot of a dead process      | waiters' check or the last arrival: broken | `barrier.registered` |
//! | after writing `arrived`, before the arrival CAS | `arrived = gen + 1`, not counted | waiters' check or the last arrival: broken (the round needs it) | `barrier.arrived_written` |
//! | waiting (after the CAS)             | `arrived = gen + 1`, counted            | waiters' check or the last arrival: broken | `barrier.counted` |
//! | as the last arrival, before the wake | generation moved, sleepers asleep      | their next check sees the new generation | `barrier.last_arrived` |
//! | released, before clearing `arrived` | a slot of a dead process                | waiters' check or the last arrival: broken (it held the barrier) | `barrier.released` |
//! | dropping its last handle, after clearing `start` | a slot `start = 0`: never checked | a registrant that finds no slot free reuses it once that pid is gone | `barrier.start_cleared` |
//! | registering (slot `pid` set, `start` not yet) | a slot never checked           | a registrant that finds no slot free reuses it once that pid is gone | `barrier.claimed` |

use super::raw::CHECK_EVERY;
use super::wait::WaitWord;
use super::{check_region, magic};
use crate::error::{Error, Result};
use crate::shared::region::{shared_struct, Region};
use crate::sys::deadline::Deadline;
use crate::sys::{owner, proc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

const BROKEN: u32 = 1 << 31;
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u32 = 0x7fff;
const COUNT_MASK: u32 = 0xffff;
/// Processes whose death a barrier can detect.
pub(crate) const SLOTS: usize = 64;

shared_struct! {
    struct BarrierWords {
        /// `{ broken:1 | generation:15 | count:16 }`; AcqRel CAS by arrivals.
        state: WaitWord,
        parties: AtomicU32,
        /// `generation + 1` of the generation last ended by `reset` (0: none), written while
        /// the state is broken (so no arrival can complete that generation) and before the
        /// Release store of the next generation; waiters read it after seeing the generation
        /// move.
        reset_gen: AtomicU32,
    }
}

shared_struct! {
    struct Slot {
        /// The process, 0 = free slot; claimed by CAS.
        pid: AtomicU32,
        /// `generation + 1` while this process is in a `wait` of that generation (0: not
        /// waiting); stored Release before the arrival CAS, read Acquire by the liveness checks.
        arrived: AtomicU32,
        /// The process's start time (0 until written: the slot is not checked).
        start: AtomicU64,
    }
}

const SLOTS_AT: usize = std::mem::size_of::<BarrierWords>();

/// Slot `i` (below [`SLOTS`]) of a barrier's region.
fn slot(region: &Region, i: usize) -> &Slot {
    debug_assert!(i < SLOTS);
    region.at::<Slot>(SLOTS_AT + i * std::mem::size_of::<Slot>())
}
const SIZE: usize = SLOTS_AT + SLOTS * std::mem::size_of::<Slot>();

fn generation(s: u32) -> u32 {
    (s >> GEN_SHIFT) & GEN_MASK
}

/// A meeting point for a fixed number of parties (`multiprocessing.Barrier`): each
/// [`wait`](Barrier::wait) blocks until `parties` threads or processes have called it, then all
/// go on; the barrier can be used again.
///
/// If a process dies while it holds the barrier (killed while it waits or before it arrives),
/// the others are not left waiting on a round that cannot complete: the barrier breaks, and
/// `wait` returns `Err(PeerDied)` to everyone (now and later; [`reset`](Barrier::reset) makes
/// it usable again). A process that finished its waits and exited normally (its handles
/// dropped) breaks nothing: later rounds may be met by other processes, as in Python. At most
/// 64 processes at a time are watched.
///
/// ```no_run
/// use procshare::{Barrier, Process};
/// procshare::init();
/// let barrier = Barrier::new(3)?;
/// let mut kids: Vec<Process> = (0..2)
///     .map(|_| Process::spawn(barrier.clone(), |b| { b.wait().unwrap(); }))
///     .collect::<procshare::Result<_>>()?;
/// let index = barrier.wait()?; // 0, 1 or 2: the order of arrival
/// assert!(index < 3);
/// for k in &mut kids { k.join()?; }
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    region: Region,
    /// This process's slot, shared by clones; given back when the last clone is dropped.
    registered: Arc<Registration>,
}

/// `(pid << 32) | slot + 1` of this process's slot (0: none).
#[derive(Debug)]
struct Registration {
    region: Region,
    word: AtomicU64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let r = self.word.load(Ordering::Relaxed);
        let pid = proc::current_pid();
        // A forked child inherits the parent's registration: not its slot to give back.
        if r == 0 || (r >> 32) as u32 != pid {
            return;
        }
        let s = slot(&self.region, (r & 0xffff_ffff) as usize - 1);
        s.arrived.store(0, Ordering::Relaxed);
        // A checker that still sees our pid then reads `start = 0`: "not known", never dead.
        s.start.store(0, Ordering::Relaxed);
        crate::crash::crash_point!("barrier.start_cleared");
        // Release: pairs with the Acquire of a claimer's CAS.
        let _ = s.pid.compare_exchange(pid, 0, Ordering::Release, Ordering::Relaxed);
    }
}

impl Registration {
    fn none(region: &Region) -> Registration {
        Registration { region: region.clone(), word: AtomicU64::new(0) }
    }
}

impl Barrier {
    /// A barrier for `parties` parties (1 to 65535, else `InvalidArgument`).
    pub fn new(parties: usize) -> Result<Barrier> {
        if parties == 0 || parties > COUNT_MASK as usize {
            return Err(Error::invalid(format!(
                "a barrier needs 1 to {COUNT_MASK} parties, not {parties}"
            )));
        }
        let region = Region::create(magic::BARRIER, SIZE, |_| {})?;
        let b = Barrier { registered: Arc::new(Registration::none(&region)), region };
        b.words().parties.store(parties as u32, Ordering::Relaxed);
        Ok(b)
    }

    fn words(&self) -> &BarrierWords {
        self.region.at::<BarrierWords>(0)
    }

    fn slot(&self, i: usize) -> &Slot {
        slot(&self.region, i)
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        // Untrusted: a peer could write anything; clamp to the valid range.
        self.words().parties.load(Ordering::Relaxed).clamp(1, COUNT_MASK) as usize
    }

    /// How many parties wait right now (a snapshot).
    pub fn n_waiting(&self) -> usize {
        (self.words().state.word().load(Ordering::Relaxed) & COUNT_MASK) as usize
    }

    /// Whether the barrier is broken (a party died, or [`abort`](Barrier::abort) was called).
    pub fn broken(&self) -> bool {
        self.words().state.word().load(Ordering::Acquire) & BROKEN != 0
    }

    /// Breaks the barrier: current and later waiters get `Err(PeerDied)` (Python's `abort`).
    pub fn abort(&self) {
        self.words().state.word().fetch_or(BROKEN, Ordering::AcqRel);
        self.words().state.wake_all();
    }

    /// Returns the barrier to its empty state (Python's `reset`): parties waiting now get
    /// `Err(PeerDied)`, later waits start a new round. Makes a broken barrier usable again.
    pub fn reset(&self) {
        let w = self.words().state.word();
        // First break it, so that no arrival can complete the current generation meanwhile.
        let s = w.fetch_or(BROKEN, Ordering::AcqRel);
        let gen = generation(s);
        self.forget_the_dead();
        self.words().reset_gen.store(gen + 1, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of the waiters; makes `reset_gen` visible.
        w.store(((gen + 1) & GEN_MASK) << GEN_SHIFT, Ordering::Release);
        self.words().state.wake_all();
    }

    /// Records this process in the slot table (once per process): a free slot, or one of a
    /// process that is dead and not in the current round.
    fn register(&self) -> Option<usize> {
        let pid = proc::current_pid();
        let r = self.registered.word.load(Ordering::Relaxed);
        if r != 0 && (r >> 32) as u32 == pid {
            return Some((r & 0xffff_ffff) as usize - 1);
        }
        let start = owner::thread_start_time(pid).ok().flatten().unwrap_or(0);
        let found = self.claim(pid, start, false).or_else(|| self.claim(pid, start, true));
        if let Some(i) = found {
            self.registered.word.store(((pid as u64) << 32) | (i as u64 + 1), Ordering::Relaxed);
        }
        found
    }

    /// Finds our slot or claims a free one; with `reuse`, also takes over a dead process's slot.
    fn claim(&self, pid: u32, start: u64, reuse: bool) -> Option<usize> {
        for i in 0..SLOTS {
            let s = self.slot(i);
            let p = s.pid.load(Ordering::Acquire);
            if !reuse && p == pid && (s.start.load(Ordering::Relaxed) == start || start == 0) {
                return Some(i);
            }
            let claimable = if reuse {
                let gen = generation(self.words().state.word().load(Ordering::Acquire));
                let start = s.start.load(Ordering::Acquire);
                // A dead party of the current round must stay visible to the checks. A slot
                // whose owner died before writing its start is free once that pid is gone.
                p != 0
                    && s.arrived.load(Ordering::Acquire) != gen + 1
                    && if start == 0 {
                        matches!(owner::thread_start_time(p), Ok(None))
                    } else {
                        self.is_dead(p, start)
                    }
            } else {
                p == 0
            };
            if claimable
                && s.pid.compare_exchange(p, pid, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                crate::crash::crash_point!("barrier.claimed");
                s.arrived.store(0, Ordering::Relaxed);
                // Release: pairs with the Acquire in `party_died`; a slot is checked only once
                // its start is there.
                s.start.store(start, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    /// Whether the process `(pid, start)` is known to be dead (`start` 0: not known yet, so no).
    fn is_dead(&self, pid: u32, start: u64) -> bool {
        if start == 0 {
            return false;
        }
        match owner::thread_start_time(pid) {
            Ok(None) => true,
            Ok(Some(t)) => t != start,
            Err(_) => false, // unknown: assume alive
        }
    }

    /// Whether a process other than `me` died holding the barrier.
    fn party_died(&self, me: Option<usize>) -> bool {
        (0..SLOTS).any(|i| {
            if Some(i) == me {
                return false;
            }
            let s = self.slot(i);
            let pid = s.pid.load(Ordering::Acquire);
            pid != 0 && self.is_dead(pid, s.start.load(Ordering::Acquire))
        })
    }

    /// Frees the slots of dead processes (for `reset`: the dead are forgotten).
    fn forget_the_dead(&self) {
        for i in 0..SLOTS {
            let s = self.slot(i);
            let pid = s.pid.load(Ordering::Acquire);
            if pid != 0 && self.is_dead(pid, s.start.load(Ordering::Acquire)) {
                s.start.store(0, Ordering::Relaxed);
                s.arrived.store(0, Ordering::Relaxed);
                let _ = s.pid.compare_exchange(pid, 0, Ordering::Release, Ordering::Relaxed);
            }
        }
    }

    /// Breaks the barrier if its state is still `s` (the round has not moved on).
    fn break_from(&self, s: u32) -> bool {
        let w = self.words().state.word();
        if w.compare_exchange(s, s | BROKEN, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.words().state.wake_all();
            return true;
        }
        false
    }

    /// Waits until all parties have arrived; returns this party's arrival index (0 for the
    /// first, `parties - 1` for the last). `Err(PeerDied)` if the barrier is or becomes broken.
    pub fn wait(&self) -> Result<usize> {
        let slot = self.register();
        crate::crash::crash_point!("barrier.registered");
        let r = self.wait_in(slot);
        crate::crash::crash_point!("barrier.released");
        if let Some(i) = slot {
            // Left the wait: this process's death no longer concerns any round.
            self.slot(i).arrived.store(0, Ordering::Release);
        }
        r
    }

    fn wait_in(&self, slot: Option<usize>) -> Result<usize> {
        let parties = self.parties() as u32;
        let w = self.words().state.word();
        let mut s = w.load(Ordering::Acquire);
        let (gen, index) = loop {
            if s & BROKEN != 0 {
                return Err(Error::PeerDied);
            }
            let gen = generation(s);
            let count = s & COUNT_MASK;
            if let Some(i) = slot {
                // Before the CAS: from here on, dying means the round needs us and we are gone.
                self.slot(i).arrived.store(gen + 1, Ordering::Release);
                crate::crash::crash_point!("barrier.arrived_written");
            }
            let last = count + 1 >= parties;
            if last && self.party_died(slot) {
                if self.break_from(s) {
                    return Err(Error::PeerDied);
                }
                s = w.load(Ordering::Acquire);
                continue;
            }
            let next = if last { ((gen + 1) & GEN_MASK) << GEN_SHIFT } else { s + 1 };
            match w.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break (gen, count),
                Err(now) => s = now,
            }
        };
        crate::crash::crash_point!("barrier.counted");
        if index + 1 >= parties {
            crate::crash::crash_point!("barrier.last_arrived");
            self.words().state.wake_all();
            return Ok(index as usize);
        }
        let ended = self.words().state.wait_sliced(
            Deadline::NEVER,
            CHECK_EVERY,
            |v| v & BROKEN != 0 || generation(v) != gen,
            |ran_out| {
                let s = w.load(Ordering::Acquire);
                if generation(s) != gen {
                    if self.words().reset_gen.load(Ordering::Relaxed) == gen + 1 {
                        return Some(Err(Error::PeerDied)); // ended by `reset`, not completed
                    }
                    return Some(Ok(index as usize));
                }
                if s & BROKEN != 0 {
                    return Some(Err(Error::PeerDied));
                }
                // Only after a slice ran out: a dead party cannot wake us, and `/proc` is slow.
                if ran_out && self.party_died(slot) && self.break_from(s) {
                    return Some(Err(Error::PeerDied));
                }
                None
            },
        );
        // A wait without a deadline ends only through `attempt`.
        ended.unwrap_or(Err(Error::PeerDied))
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let region = Region::deserialize(d)?;
        let region =
            check_region(region, magic::BARRIER, SIZE).map_err(serde::de::Error::custom)?;
        let b = Barrier { registered: Arc::new(Registration::none(&region)), region };
        // Claim a slot now: from here on, our death concerns every round.
        b.register();
        Ok(b)
    }
}
