//! The lock word: a futex in shared memory that knows its owner (parking_lot's `RawMutex`
//! layer, made process-shared and robust to a dead holder).
//!
//! ```text
//!  RawLock (16 bytes, #[repr(C)], all-zero = unlocked)
//!  +---------------------------------------------+------------+--------------------------------+
//!  | state: u32 { W:1 | H:1 | S:1 | 0:7 | T:22 } | depth: u32 | owner: u64 { T:24 | start:40 } |
//!  +---------------------------------------------+------------+--------------------------------+
//! ```
//! `W` = waiters (bit 31), `H` = handoff (bit 30), `S` = starving (bit 29), `T` = the holder's
//! thread id (Linux thread ids are below `PID_MAX_LIMIT` = 2^22), `start` = the holder's start
//! time. The same letters name the states below, the field docs and every CAS site.
//!
//! State table (`state`):
//!
//! | state        | meaning                                   | who moves it, how                       |
//! |--------------|-------------------------------------------|-----------------------------------------|
//! | `0`          | free, nobody asleep                       | locker: CAS `0 -> T`                    |
//! | `T`          | held by thread `T`, nobody asleep         | holder: swap `-> 0`, no syscall         |
//! | `W\|T`       | held by `T`, someone may be asleep        | holder: swap `-> 0`, then `FUTEX_WAKE 1`; waiter: sets `W` before it sleeps |
//! | `S\|W\|T`    | as `W\|T`, and a sleeper has waited > [`FAIR_AFTER`] | holder: swap `-> 0`, CAS `0 -> H\|W`, `FUTEX_WAKE 1` (if it woke nobody: CAS back to `0`) |
//! | `H\|W`       | free, but reserved for a thread that has slept | a waiter that has slept: CAS `-> W\|me`; lockers that have not slept may not take it |
//! | `W\|0`       | never stored (release stores `0` or `H\|W`) | —                                     |
//! | `T` dead     | holder died                               | a waiter that finds `T` dead: CAS `-> W\|me` (take-over) |
//!
//! A woken waiter takes the lock as `W|me` (others may still sleep), so its release wakes the
//! next one: the `W` bit is never lost, only sometimes set when nobody sleeps (one idle
//! `FUTEX_WAKE`). Lockers barge (a releasing thread may take the lock again at once: fast), and
//! `S`/`H` bound the unfairness as parking_lot's eventual fairness does: a waiter that has
//! waited [`FAIR_AFTER`] gets the next release handed to the sleepers.
//!
//! **Owner identity.** The thread id is part of the word, so taking the lock and naming the owner
//! are one CAS. Thread ids are reused, so `owner` also records the holder's start time (from
//! `/proc/TID/stat`). A waiter that has slept [`FIRST_CHECK`] (then every [`CHECK_EVERY`])
//! without getting the lock checks the holder — and so does, once, a waiter whose deadline
//! passes before that (a `_nowait` poll), or it would never get a dead holder's lock: no
//! thread `T`, a zombie, or a thread `T` that started at another time than `owner` says means
//! the holder died. If `/proc` cannot answer, the holder is assumed alive (a wrong "dead" would
//! break mutual exclusion; a wrong "alive" only delays). "Do I hold it" (`RLock` re-entry, the `Value` guard's check) compares the
//! whole `(tid, start)` too: a live thread that reuses a dead holder's tid is not the holder.
//!
//! Crash table (a SIGKILL of the holder between steps):
//! | killed ...                                 | leaves                       | repaired by                 | point |
//! |--------------------------------------------|------------------------------|-----------------------------|-------|
//! | before the CAS                             | nothing                      | —                           | `raw.before_cas` |
//! | after the CAS, before `owner` is written   | `state = T`, `owner` 0       | next waiter: no thread `T` -> take-over (if `T` were reused at once by a live thread, recovery waits until that thread exits) | `raw.cas_won` |
//! | while holding                              | `state = T` or `W\|T`        | next waiter, within ~`FIRST_CHECK`..`CHECK_EVERY` of waiting: take-over, told `owner_died` | `raw.locked` |
//! | releasing: after clearing `owner`, before the swap | `state = T`, `owner` 0 | next waiter: no thread `T` -> take-over | `raw.owner_cleared` |
//! | after the release swap, before `FUTEX_WAKE`| `state = 0` or `H\|W`, sleepers asleep | sleepers wake at their next check and take it (every waiter has slept by then) | `raw.released` |
//!
//! A woken sleeper killed before it takes a handed-off lock leaves `H|W`: the others take it at
//! their next check, as above.
//!
//! What recovery means: the lock is usable again and the next holder is told. It does not mean
//! the data the lock protected is consistent: the dead holder may have stopped half way through
//! an update, and the new holder must check or repair it.
#![allow(unsafe_code)]
//! # Safety
//! [`RawLock::at`] is safe: `RawLock` is a [`shared_struct!`] of atomics, so `Region::at` may
//! view a peer-written word as one. The only `unsafe` here is [`LockedData`], the `&mut [T]`
//! that `Value`/`Array` guards hand out while holding the lock (see its doc).

use super::backoff::Backoff;
use crate::shared::region::{shared_struct, Region};
use crate::sys::deadline::Deadline;
use crate::sys::futex::{self, Wake};
use crate::sys::{owner, proc};
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const WAITERS: u32 = 1 << 31;
const HANDOFF: u32 = 1 << 30;
const STARVING: u32 = 1 << 29;
const TID_MASK: u32 = (1 << 22) - 1;
const START_BITS: u32 = 40;
const START_MASK: u64 = (1 << START_BITS) - 1;

/// A waiter checks the holder's liveness after sleeping this long ...
pub(crate) const FIRST_CHECK: Duration = Duration::from_millis(10);
/// ... and then at this interval.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(50);
/// A sleeper that has waited this long asks for the next release to be handed to a sleeper.
pub(crate) const FAIR_AFTER: Duration = Duration::from_millis(1);

shared_struct! {
    /// The process-shared lock word. See the module doc for its state table.
    #[derive(Debug, Default)]
    pub(crate) struct RawLock {
        /// `{ W:1 | H:1 | S:1 | 0:7 | T:22 }` (waiters, handoff, starving, holder tid). Acquire
        /// on every successful lock CAS pairs with the Release swap in `unlock`.
        state: AtomicU32,
        /// Re-entry depth for `RLock`; only the holder reads or writes it (ordered by `state`).
        depth: AtomicU32,
        /// `{ T:24 | start:40 }` of the holder, written right after the CAS and cleared (0)
        /// just before the release swap; a reader that sees a record for another tid ignores
        /// it.
        owner: AtomicU64,
    }
}

/// A successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquired {
    /// The lock was taken over from a holder that died holding it.
    pub(crate) owner_died: bool,
}

thread_local! {
    /// `(pid, tid, start)` of this thread, valid while `pid` is the current process (a forked
    /// child has another pid, and its thread another tid).
    static ME: Cell<(u32, u32, u64)> = const { Cell::new((0, 0, 0)) };
}

/// This thread's `(tid, start time)`; the start time is 0 if `/proc` could not tell.
#[inline]
fn me() -> (u32, u64) {
    let pid = proc::current_pid();
    let (p, t, s) = ME.with(Cell::get);
    if p == pid {
        return (t, s);
    }
    me_slow(pid)
}

#[cold]
fn me_slow(pid: u32) -> (u32, u64) {
    let tid = proc::current_tid();
    let s = owner::thread_start_time(tid).ok().flatten().unwrap_or(0);
    ME.with(|c| c.set((pid, tid & TID_MASK, s)));
    (tid & TID_MASK, s)
}

/// The `owner` word of thread `(tid, start)`: `{ tid:24 | start:40 }`.
#[inline]
fn owner_record(tid: u32, start: u64) -> u64 {
    ((tid as u64) << START_BITS) | (start & START_MASK)
}

/// The atomic operations the lock's algorithm does on its `state` word: std's `AtomicU32` in
/// shared memory here, loom's in the model (`raw/model.rs`), so that one body of code is both
/// the lock and what the model checks.
pub(crate) trait StateWord {
    fn load(&self, order: Ordering) -> u32;
    fn swap(&self, v: u32, order: Ordering) -> u32;
    fn compare_exchange(&self, cur: u32, new: u32, ok: Ordering, err: Ordering)
        -> Result<u32, u32>;
    fn compare_exchange_weak(
        &self,
        cur: u32,
        new: u32,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u32, u32>;
}

/// The operations on the `owner` word (see [`StateWord`]).
pub(crate) trait OwnerWord {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, v: u64, order: Ordering);
}

/// [`StateWord`] and [`OwnerWord`] for a pair of atomic types with std's methods: std's here,
/// loom's in the model.
macro_rules! forward_words {
    ($u32:ty, $u64:ty) => {
        forward_words!(@ $u32, $u64, compare_exchange, compare_exchange_weak);
    };
    (@ $u32:ty, $u64:ty, $($cas:ident),*) => {
        impl StateWord for $u32 {
            #[inline]
            fn load(&self, order: Ordering) -> u32 {
                <$u32>::load(self, order)
            }
            #[inline]
            fn swap(&self, v: u32, order: Ordering) -> u32 {
                <$u32>::swap(self, v, order)
            }
            $(
                #[inline]
                fn $cas(
                    &self,
                    cur: u32,
                    new: u32,
                    ok: Ordering,
                    err: Ordering,
                ) -> Result<u32, u32> {
                    <$u32>::$cas(self, cur, new, ok, err)
                }
            )*
        }

        impl OwnerWord for $u64 {
            #[inline]
            fn load(&self, order: Ordering) -> u64 {
                <$u64>::load(self, order)
            }
            #[inline]
            fn store(&self, v: u64, order: Ordering) {
                <$u64>::store(self, v, order)
            }
        }
    };
}

forward_words!(AtomicU32, AtomicU64);

#[cfg(all(test, loom))]
mod model;

/// A waiter's spinning schedule before it sleeps ([`Backoff`] here).
pub(crate) trait Spin {
    fn is_completed(&self) -> bool;
    fn spin(&self);
}

impl Spin for Backoff {
    #[inline]
    fn is_completed(&self) -> bool {
        Backoff::is_completed(self)
    }
    #[inline]
    fn spin(&self) {
        Backoff::spin(self)
    }
}

/// Everything the lock's algorithm needs besides its two words: the clock, the futex, the
/// spinning schedule and the liveness check. [`Os`] is the real one; the model's stands in
/// for the kernel.
pub(crate) trait World {
    type State: StateWord;
    type Owner: OwnerWord;
    type Spin: Spin;
    /// `CLOCK_MONOTONIC` ([`futex::now`]).
    fn now(&self) -> Duration;
    fn spinner(&self) -> Self::Spin;
    /// `FUTEX_WAIT` on `word` while it holds `expected`, until `deadline` at most; may return
    /// early for any reason (the caller looks at the word again).
    fn wait(&self, word: &Self::State, expected: u32, deadline: Deadline);
    /// `FUTEX_WAKE` of one sleeper on `word`: how many were woken (0 or 1).
    fn wake_one(&self, word: &Self::State) -> usize;
    /// The start time of thread `tid`: `Ok(None)` if there is no such (live) thread.
    fn thread_start_time(&self, tid: u32) -> std::io::Result<Option<u64>>;
}

/// The real world: the kernel's futex, `CLOCK_MONOTONIC` and `/proc`.
pub(crate) struct Os;

impl World for Os {
    type State = AtomicU32;
    type Owner = AtomicU64;
    type Spin = Backoff;
    #[inline]
    fn now(&self) -> Duration {
        futex::now()
    }
    #[inline]
    fn spinner(&self) -> Backoff {
        Backoff::new()
    }
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Deadline) {
        match futex::wait(word, expected, deadline) {
            Ok(Wake::Woken) | Ok(Wake::TimedOut) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    #[inline]
    fn wake_one(&self, word: &AtomicU32) -> usize {
        futex::wake(word, 1)
    }
    #[inline]
    fn thread_start_time(&self, tid: u32) -> std::io::Result<Option<u64>> {
        owner::thread_start_time(tid)
    }
}

/// The lock's algorithm on its `state` and `owner` words in world `W` (the whole state table;
/// `RawLock` adds the words' place in shared memory, the caller's identity and the depth).
pub(crate) struct Words<'a, W: World> {
    pub(crate) state: &'a W::State,
    pub(crate) owner: &'a W::Owner,
    pub(crate) world: &'a W,
}

impl<W: World> Words<'_, W> {
    #[inline]
    fn record_owner(&self, tid: u32, start: u64) {
        crate::crash::crash_point!("raw.cas_won");
        self.owner.store(owner_record(tid, start), Ordering::Relaxed);
        crate::crash::crash_point!("raw.locked");
    }

    /// Takes the lock if it is free; if `check_owner`, also takes it over from a dead holder.
    pub(crate) fn try_lock(&self, tid: u32, start: u64, check_owner: bool) -> Option<Acquired> {
        let w = self.state.load(Ordering::Relaxed);
        if w & (TID_MASK | HANDOFF) == 0 {
            // `0 -> T` or `W|0 -> W|T`.
            if self
                .state
                .compare_exchange(w, tid | (w & WAITERS), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.record_owner(tid, start);
                return Some(Acquired { owner_died: false });
            }
            return None;
        }
        if check_owner {
            return self.take_over_if_dead(w, tid, start);
        }
        None
    }

    /// Takes the lock, waiting at most until `deadline`. `None` back means the deadline passed.
    #[inline]
    pub(crate) fn lock(&self, tid: u32, start: u64, deadline: Deadline) -> Option<Acquired> {
        crate::crash::crash_point!("raw.before_cas");
        // `0 -> T`.
        if self.state.compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.record_owner(tid, start);
            return Some(Acquired { owner_died: false });
        }
        self.lock_slow(tid, start, deadline)
    }

    #[cold]
    fn lock_slow(&self, tid: u32, start: u64, deadline: Deadline) -> Option<Acquired> {
        // Spin only while nobody sleeps (a sleeper means a long holder), and take only a plainly
        // free lock (a handed-off one is for the sleepers).
        // Exponential backoff between looks: a waiter polling the word steals its cache line
        // from a holder that re-locks at once, which costs both.
        let backoff = self.world.spinner();
        while !backoff.is_completed() {
            let w = self.state.load(Ordering::Relaxed);
            if w == 0 {
                // `0 -> T`.
                if self
                    .state
                    .compare_exchange_weak(0, tid, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.record_owner(tid, start);
                    return Some(Acquired { owner_died: false });
                }
            } else if w & WAITERS != 0 {
                break;
            }
            backoff.spin();
        }
        let began = self.world.now();
        let mut next_check = began.saturating_add(FIRST_CHECK);
        let mut slept = false;
        loop {
            let w = self.state.load(Ordering::Relaxed);
            if w & TID_MASK == 0 && (w & HANDOFF == 0 || slept) {
                // We may have slept, so others may sleep too: keep the waiters bit.
                // `0`, `W|0`, or (once slept) `H|W` `-> W|T`.
                if self
                    .state
                    .compare_exchange(w, tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.record_owner(tid, start);
                    return Some(Acquired { owner_died: false });
                }
                continue;
            }
            let now = self.world.now();
            let mut want = w | WAITERS;
            if slept && w & TID_MASK != 0 && now.saturating_sub(began) >= FAIR_AFTER {
                want |= STARVING;
            }
            // `T -> W|T`, or `W|T -> S|W|T` once we have starved.
            if want != w
                && self
                    .state
                    .compare_exchange(w, want, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let w = want;
            if deadline.expired_at(now) {
                // A caller that never waits as long as FIRST_CHECK (a `_nowait` or short-timeout
                // loop) must still get a dead holder's lock: one look before giving up (only
                // after the spin above, so a live holder's short hold costs no /proc read).
                return self.take_over_if_dead(w, tid, start);
            }
            if now >= next_check {
                // Every waiter counts as having slept from its first check on: a handed-off
                // lock whose sleeper died is taken here.
                slept = true;
                if let Some(a) = self.take_over_if_dead(w, tid, start) {
                    return Some(a);
                }
                next_check = now.saturating_add(CHECK_EVERY);
                continue;
            }
            self.world.wait(self.state, w, deadline.min(Deadline::at(next_check)));
            slept = true;
        }
    }

    /// If the holder named in `w` is dead, takes the lock over (CAS from exactly `w`).
    fn take_over_if_dead(&self, w: u32, tid: u32, start: u64) -> Option<Acquired> {
        if !self.holder_is_dead(w) {
            return None;
        }
        // Keep the waiters bit: others may sleep on the dead holder too.
        // `T (dead) -> me` or `W|T (dead) -> W|me` (`S` dropped: the starving waiter asks again).
        self.state
            .compare_exchange(w, tid | (w & WAITERS), Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.record_owner(tid, start);
        Some(Acquired { owner_died: true })
    }

    /// Whether the holder named in state word `w` is known to be dead.
    fn holder_is_dead(&self, w: u32) -> bool {
        let holder = w & TID_MASK;
        if holder == 0 {
            return false;
        }
        // Acquire: if `w` was written by a CAS after some unlock, that unlock's clearing of
        // `owner` (sequenced before its Release swap) is visible below, so a stale record of an
        // earlier holder with the same tid is never compared with the new holder's start.
        if self.state.load(Ordering::Acquire) != w {
            return false;
        }
        let actual = match self.world.thread_start_time(holder) {
            Ok(Some(a)) => a,
            Ok(None) => return true,
            Err(_) => return false,
        };
        let rec = self.owner.load(Ordering::Relaxed);
        if rec >> START_BITS != holder as u64 {
            // The holder has not written its record yet (or died first): it exists, so wait.
            return false;
        }
        let recorded = rec & START_MASK;
        recorded != 0 && recorded != (actual & START_MASK)
    }

    /// Releases the lock (whoever holds it) and wakes one sleeper if any may sleep.
    #[inline]
    pub(crate) fn unlock(&self) {
        // No record while free: see `holder_is_dead`.
        self.owner.store(0, Ordering::Relaxed);
        crate::crash::crash_point!("raw.owner_cleared");
        // Release: pairs with the Acquire of the next locker's CAS (and of `holder_is_dead`);
        // the hand-off CAS below continues its release sequence.
        // `T`, `W|T` or `S|W|T` `-> 0`.
        let old = self.state.swap(0, Ordering::Release);
        crate::crash::crash_point!("raw.released");
        if old & STARVING != 0 {
            self.hand_off();
        } else if old & WAITERS != 0 {
            self.world.wake_one(self.state);
        }
    }

    /// Reserves the just-released lock for a sleeper and wakes one (see the state table). If
    /// a barging locker took it first, the starving waiter asks again.
    #[cold]
    fn hand_off(&self) {
        let reserved = HANDOFF | WAITERS;
        // `0 -> H|W`.
        if self.state.compare_exchange(0, reserved, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        if self.world.wake_one(self.state) == 0 {
            // Nobody asleep to take it (the waiter is between its checks, or died): free it.
            // `H|W -> 0`.
            let _ = self.state.compare_exchange(reserved, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The thread id of the holder (0: free).
    #[inline]
    pub(crate) fn holder(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & TID_MASK
    }
}

impl RawLock {
    /// Frees the lock whatever its words say (fuzzing only: the harness stands for a peer that
    /// wrote garbage but does not hold the lock; a peer that really holds it blocks lockers as
    /// any live holder does, which is the lock's promise, not a decoder's bug).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn fuzz_free(&self) {
        self.state.store(0, Ordering::Relaxed);
        self.depth.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
    }

    /// Bytes a `RawLock` takes in a region.
    pub(crate) const SIZE: usize = std::mem::size_of::<RawLock>();

    /// The lock at `offset` (8-aligned) of `region`'s payload. A zeroed region holds an unlocked
    /// lock. Panics if `offset` is out of bounds or misaligned (a bug in the caller's layout).
    #[inline]
    pub(crate) fn at(region: &Region, offset: usize) -> &RawLock {
        region.at::<RawLock>(offset)
    }

    /// The algorithm on this lock's words, in the real world.
    #[inline]
    fn words(&self) -> Words<'_, Os> {
        Words { state: &self.state, owner: &self.owner, world: &Os }
    }

    /// Takes the lock if it is free; if `check_owner`, also takes it over from a dead holder.
    pub(crate) fn try_lock(&self, check_owner: bool) -> Option<Acquired> {
        let (tid, start) = me();
        self.words().try_lock(tid, start, check_owner)
    }

    /// Takes the lock, waiting at most until `deadline`. `None` back means the deadline passed.
    #[inline]
    pub(crate) fn lock(&self, deadline: Deadline) -> Option<Acquired> {
        let (tid, start) = me();
        self.words().lock(tid, start, deadline)
    }

    /// Releases the lock (whoever holds it) and wakes one sleeper if any may sleep.
    #[inline]
    pub(crate) fn unlock(&self) {
        self.words().unlock()
    }

    /// The thread id of the holder (0: free).
    #[inline]
    pub(crate) fn holder(&self) -> u32 {
        self.words().holder()
    }

    /// Whether the calling thread holds the lock: the word names our tid *and* the owner record
    /// names our start time. A tid alone is not enough: a dead thread whose tid we reuse may
    /// still be named by the word, and its depth and guard are not ours.
    #[inline]
    pub(crate) fn held_by_me(&self) -> bool {
        let (tid, start) = me();
        // Relaxed suffices: if we hold the lock, we wrote the record ourselves (sequenced
        // before); if a dead thread with our tid holds it, its record names another start.
        self.holder() == tid && self.owner.load(Ordering::Relaxed) == owner_record(tid, start)
    }

    /// Makes the word say that thread `(tid, start)` holds the lock, as a holder that then died
    /// would leave it.
    #[cfg(test)]
    pub(crate) fn forge_holder(&self, tid: u32, start: u64) {
        self.state.store(tid & TID_MASK, Ordering::Relaxed);
        self.depth.store(7, Ordering::Relaxed);
        self.owner.store(owner_record(tid, start), Ordering::Relaxed);
    }

    /// This thread's `(tid, start time)`, for tests that forge a dead holder with our tid.
    #[cfg(test)]
    pub(crate) fn me() -> (u32, u64) {
        me()
    }

    /// Whether anyone holds the lock.
    pub(crate) fn is_locked(&self) -> bool {
        self.holder() != 0
    }

    /// The re-entry depth (meaningful to the holder only).
    pub(crate) fn depth(&self) -> u32 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Sets the re-entry depth (holder only).
    pub(crate) fn set_depth(&self, d: u32) {
        self.depth.store(d, Ordering::Relaxed);
    }
}

/// The data half of a `Value`/`Array` guard: `len` plain-data `T`s at `data_at` of a region
/// whose lock word sits at offset 0, reachable only through this guard, which holds that lock
/// and releases it on drop. The one place the crate turns shared memory into `&mut [T]`.
///
/// Sound because every in-crate user of such a region (the `Value`/`Array` kinds, told apart
/// from the lock-free `Raw` kinds by their region's magic) touches the data only through this
/// guard, so it aliases no other reference: other threads and processes wait on the lock, and
/// this thread cannot take it twice (a second `lock` by the holder would wait, never alias).
/// Not `Send` (the raw pointer): the lock names its holder thread.
pub(crate) struct LockedData<'a, T> {
    lock: &'a RawLock,
    data: *mut T,
    len: usize,
    _t: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T: bytemuck::Pod> LockedData<'a, T> {
    /// Takes the lock at offset 0 of `region` (no deadline) and returns the guard and whether
    /// the lock was taken over from a holder that died. Panics if `len` elements at `data_at`
    /// do not fit the payload or are misaligned for `T` (the caller's layout, checked against
    /// the region when it was created or received).
    pub(crate) fn lock(region: &'a Region, data_at: usize, len: usize) -> (Self, bool) {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).and_then(|b| b.checked_add(data_at));
        assert!(bytes.is_some_and(|b| b <= region.mapped_len()), "LockedData out of bounds");
        let data = region.payload().wrapping_add(data_at) as *mut T;
        assert!(data as usize % std::mem::align_of::<T>() == 0, "LockedData misaligned");
        let lock = RawLock::at(region, 0);
        // No deadline: always `Some`.
        let died = lock.lock(Deadline::NEVER).is_some_and(|a| a.owner_died);
        (LockedData { lock, data, len, _t: std::marker::PhantomData }, died)
    }
}

impl<T> LockedData<'_, T> {
    /// The data, shared.
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `data` is non-null, aligned for `T` and `len` elements long inside the
        // mapping (asserted in `lock`), which the borrowed region keeps alive for `'a`; `T: Pod`
        // makes any bytes there valid `T`s; and while this guard holds the lock no other
        // reference to them exists (type doc), nor can one be made from this guard while the
        // returned borrow lives.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    /// The data, exclusively.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference made from this
        // guard while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T> Drop for LockedData<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}
