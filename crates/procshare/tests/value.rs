//! Value, Array, RawValue, RawArray between real processes: exact locked increments, values
//! written by a child, no torn reads of a multi-word value, a holder killed mid-update.

use procshare::{pipe, Array, Connection, Process, RawArray, RawValue, Value};

use std::time::Duration;

mod common;

const INCREMENTS: u64 = if cfg!(debug_assertions) { 5_000 } else { 50_000 };

#[test]
fn value_get_set_lock() {
    let v = Value::new(41i64).unwrap();
    assert_eq!(v.get(), 41);
    v.set(-3);
    *v.lock() += 10;
    assert_eq!(v.get(), 7);
    let g = v.lock();
    assert!(!g.previous_holder_died());
    assert_eq!(*g, 7);
}

#[test]
fn value_written_by_a_child_is_seen_by_the_parent() {
    let v = Value::new(3.625f64).unwrap();
    let q = Value::new(1u64 << 33).unwrap();
    let mut kid = Process::spawn((v.clone(), q.clone()), |(v, q): (Value<f64>, Value<u64>)| {
        assert_eq!(v.get(), 3.625);
        v.set(-4.25);
        q.set(1 << 34);
    })
    .unwrap();
    assert_eq!(kid.join().unwrap(), 0);
    assert_eq!(v.get(), -4.25);
    assert_eq!(q.get(), 1 << 34);
}

#[test]
fn array_basics_and_out_of_range() {
    let a = Array::<u32>::new(4).unwrap();
    assert_eq!(a.len(), 4);
    assert!(!a.is_empty());
    assert_eq!(a.to_vec(), vec![0; 4]);
    a.set(3, 9);
    assert_eq!(a.get(3), 9);
    assert!(a.try_get(4).is_err());
    assert!(a.try_set(4, 1).is_err());
    assert_eq!(a.try_get(3).unwrap(), 9);
    let r = std::panic::catch_unwind(|| a.get(4));
    assert!(r.is_err(), "get past the end panics, like slice indexing");
    // The lock was released by the unwinding guard.
    a.set(0, 1);
    let b = Array::from_slice(&[1.5f32, 2.5]).unwrap();
    assert_eq!(b.to_vec(), vec![1.5, 2.5]);
    let empty = Array::<u8>::new(0).unwrap();
    assert!(empty.is_empty());
    assert!(empty.to_vec().is_empty());
    assert!(Array::<u64>::new(usize::MAX / 4).is_err());
}

#[test]
fn array_cumulative_sum_in_a_child() {
    let a = Array::from_slice(&(0..10i32).collect::<Vec<_>>()).unwrap();
    let mut kid = Process::spawn(a.clone(), |a: Array<i32>| {
        let mut g = a.lock();
        for i in 1..g.len() {
            g[i] += g[i - 1];
        }
    })
    .unwrap();
    assert_eq!(kid.join().unwrap(), 0);
    assert_eq!(a.to_vec(), vec![0, 1, 3, 6, 10, 15, 21, 28, 36, 45]);
}

#[test]
fn four_processes_increment_an_array_exactly() {
    let a = Array::<u64>::new(3).unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| {
            Process::spawn(a.clone(), |a: Array<u64>| {
                for _ in 0..INCREMENTS {
                    let mut g = a.lock();
                    for x in g.iter_mut() {
                        *x += 1;
                    }
                }
            })
            .unwrap()
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert_eq!(a.to_vec(), vec![4 * INCREMENTS; 3]);
}

/// Four words that a writer keeps equal to each other.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quad {
    a: u64,
    b: u64,
    c: u64,
    d: u64,
}

#[test]
fn multi_word_value_is_never_torn() {
    let v = Value::new(Quad { a: 0, b: 0, c: 0, d: 0 }).unwrap();
    let stop = RawValue::new(0u32).unwrap();
    let mut writer =
        Process::spawn((v.clone(), stop.clone()), |(v, stop): (Value<Quad>, RawValue<u32>)| {
            let mut i = 0u64;
            while stop.get() == 0 {
                i += 1;
                v.set(Quad { a: i, b: i, c: i, d: i });
            }
        })
        .unwrap();
    // Start reading once the writer runs (spawning takes longer than the reads below).
    while v.get().a == 0 {
        std::thread::yield_now();
    }
    for _ in 0..200_000 {
        let q = v.get();
        assert!(q.a == q.b && q.b == q.c && q.c == q.d, "torn read: {q:?}");
    }
    stop.set(1);
    assert_eq!(writer.join().unwrap(), 0);
}

#[test]
fn holder_killed_mid_update_is_reported() {
    let v = Value::new(0u64).unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((v.clone(), theirs), |(v, conn): (Value<u64>, Connection)| {
        let mut g = v.lock();
        *g = 99; // half of some update
        conn.send(&true).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    assert!(mine.recv::<bool>().unwrap());
    kid.kill().unwrap();
    let g = v.lock();
    assert!(g.previous_holder_died());
    assert_eq!(*g, 99, "the data is as the dead holder left it");
    drop(g);
    assert_eq!(kid.join().unwrap(), -9);
}

#[test]
fn raw_kinds() {
    let v = RawValue::new([1u8, 2, 3]).unwrap();
    assert_eq!(v.get(), [1, 2, 3]);
    v.set([4, 5, 6]);
    let a = RawArray::from_slice(&[1u16, 2, 3]).unwrap();
    let mut kid =
        Process::spawn((v.clone(), a.clone()), |(v, a): (RawValue<[u8; 3]>, RawArray<u16>)| {
            assert_eq!(v.get(), [4, 5, 6]);
            a.set(1, 20);
        })
        .unwrap();
    assert_eq!(kid.join().unwrap(), 0);
    assert_eq!(a.to_vec(), vec![1, 20, 3]);
    assert!(a.try_get(3).is_err());
    assert!(a.try_set(3, 0).is_err());
}

#[test]
fn handles_are_send_sync_clone() {
    common::assert_send_sync_clone::<Value<u64>>();
    common::assert_send_sync_clone::<Array<f64>>();
    common::assert_send_sync_clone::<RawValue<u8>>();
    common::assert_send_sync_clone::<RawArray<i32>>();
}

#[test]
fn get_while_holding_the_guard_panics_instead_of_hanging() {
    let v = Value::new(1u32).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = v.lock();
        v.get()
    }));
    assert!(r.is_err());
    assert_eq!(v.get(), 1, "the guard was released while unwinding");
    let a = Array::<u8>::new(2).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = a.lock();
        a.set(0, 1)
    }));
    assert!(r.is_err());
    assert_eq!(a.to_vec(), vec![0, 0]);
}
