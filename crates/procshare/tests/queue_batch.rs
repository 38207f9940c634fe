//! `Queue::put_bytes_many` / `get_bytes_many` (issue 12, for the Python module's `put_many` and
//! `get_many`): several raw records per ring operation, in order, whole, between processes.
//! (A producer killed in the middle of a batch: `crash_points.rs`, `ring_batch_committed`.)

mod common;

use common::{pattern, within};
use procshare::{codec, Error, Process, Queue};
use std::time::Duration;

fn slices(items: &[Vec<u8>]) -> Vec<&[u8]> {
    items.iter().map(|i| i.as_slice()).collect()
}

/// Sizes that cover an empty record, small ones copied under the lock, and records that span
/// segments (256 KiB each).
fn mixed() -> Vec<Vec<u8>> {
    [0, 1, 7, 64, 2047, 2049, 70_000, 300_000, 600_000, 3]
        .into_iter()
        .enumerate()
        .map(|(i, len)| pattern(len, i as u8))
        .collect()
}

#[test]
fn a_batch_comes_out_whole_and_in_order() {
    let q = Queue::<()>::new().unwrap();
    let items = mixed();
    q.put_bytes_many(&slices(&items)).unwrap();
    assert_eq!(q.qsize(), items.len());
    let mut got = q.get_bytes_many(3).unwrap();
    assert_eq!(got.len(), 3, "get_bytes_many took more than max");
    while got.len() < items.len() {
        got.extend(q.get_bytes_many(1000).unwrap());
    }
    assert_eq!(got, items);
    assert!(q.empty());
}

#[test]
fn batches_mix_with_single_puts_and_typed_items() {
    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    let enc: Vec<Vec<u8>> = [2u32, 3, 4].iter().map(|v| codec::encode(v).unwrap()).collect();
    q.put_bytes_many(&slices(&enc)).unwrap();
    q.put(5).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get_bytes_many(2).unwrap(), enc[..2]);
    assert_eq!(q.get_many(10).unwrap(), [4, 5]);
}

#[test]
fn edges_empty_batch_zero_max_nothing_ready() {
    let q = Queue::<()>::new().unwrap();
    q.put_bytes_many(&[]).unwrap();
    assert_eq!(q.put_bytes_many_timeout(&[], Duration::ZERO).unwrap(), 0);
    assert!(q.empty());
    assert!(q.get_bytes_many(0).unwrap().is_empty());
    assert!(matches!(q.get_bytes_many_timeout(5, Duration::ZERO), Err(Error::Empty)));
    assert!(matches!(q.get_bytes_many_timeout(5, Duration::from_millis(20)), Err(Error::Empty)));
    q.put_bytes(b"x").unwrap();
    assert_eq!(q.get_bytes_many_timeout(5, Duration::ZERO).unwrap(), [b"x"]);
}

#[test]
fn a_bounded_queue_takes_what_fits_then_reports_the_count() {
    let q = Queue::<()>::bounded(3).unwrap();
    let items: Vec<Vec<u8>> = (0..5).map(|i| pattern(10, i)).collect();
    assert_eq!(q.put_bytes_many_timeout(&slices(&items), Duration::ZERO).unwrap(), 3);
    assert_eq!(
        q.put_bytes_many_timeout(&slices(&items[3..]), Duration::from_millis(20)).unwrap(),
        0
    );
    assert_eq!(q.get_bytes_many(10).unwrap(), items[..3]);
    assert_eq!(q.put_bytes_many_timeout(&slices(&items[3..]), Duration::ZERO).unwrap(), 2);
    assert_eq!(q.get_bytes_many(10).unwrap(), items[3..]);
}

#[test]
fn refusals_put_nothing() {
    let q = Queue::<()>::new().unwrap();
    // Zeroed and never written: the pages are not touched, the length is refused first.
    let huge = vec![0u8; q.max_message_size() + 1];
    let err = q.put_bytes_many(&[b"a", &huge]).unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err:?}");
    assert!(q.empty(), "part of a refused batch was put");
    drop(huge);

    let closed = q.clone();
    closed.close();
    assert!(matches!(closed.put_bytes_many(&[b"a"]), Err(Error::Closed)));

    q.put_bytes_many(&[b"a"]).unwrap();
    q.shutdown(false);
    assert!(matches!(q.put_bytes_many(&[b"b"]), Err(Error::ShutDown)));
    assert_eq!(q.get_bytes_many(10).unwrap(), [b"a"]);
    assert!(matches!(q.get_bytes_many(10), Err(Error::ShutDown)));
}

fn batch_producer((q, rounds): (Queue<()>, usize)) {
    for r in 0..rounds {
        let items: Vec<Vec<u8>> = (0..50).map(|i| pattern(1 + (i * 37) % 5000, r as u8)).collect();
        q.put_bytes_many(&slices(&items)).unwrap();
    }
}

#[test]
fn a_producer_process_blocked_on_a_bounded_queue_gets_everything_through() {
    let q = Queue::<()>::bounded(16).unwrap();
    let rounds = 20;
    let mut child = Process::spawn((q.clone(), rounds), batch_producer).unwrap();
    let q2 = q.clone();
    let got = within("drain the producer's batches", move || {
        let mut got = Vec::new();
        while got.len() < rounds * 50 {
            let batch = q2.get_bytes_many(64).unwrap();
            got.extend(batch);
        }
        got
    });
    for (n, item) in got.iter().enumerate() {
        let (r, i) = (n / 50, n % 50);
        assert_eq!(*item, pattern(1 + (i * 37) % 5000, r as u8), "item {n} torn or out of order");
    }
    assert_eq!(child.join().unwrap(), 0);
    assert!(q.empty());
}
