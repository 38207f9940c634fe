//! Connection throughput and latency between two real processes, against baselines measured in
//! the same run: a raw `SOCK_STREAM` socket pair (one `write` per message, the kernel's floor for
//! "a message through a socket") and `memcpy` for large messages.
//!
//! `cargo bench -p procshare --bench pipe`; compare the `procshare` and `baseline` lines of a
//! group as a ratio. Python's figures come from `procshare bench --python` or
//! `../shared/bench/python_ipc_baseline.py`, run in the same session.
#![allow(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use procshare::{pipe, pipe_simplex, Connection, Process, StartMethod};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A child that, for each count it is told, sends that many `size`-byte messages.
fn procshare_sender(size: usize) -> (Connection, Connection, Process) {
    let (ctl, ctl_child) = pipe().unwrap();
    let (rx, tx) = pipe_simplex().unwrap();
    let p = Process::spawn(
        (ctl_child, tx, size),
        |(ctl, tx, size): (Connection, Connection, usize)| {
            let msg = vec![7u8; size];
            while let Ok(n) = ctl.recv::<u64>() {
                for _ in 0..n {
                    tx.send_bytes(&msg).unwrap();
                }
            }
        },
    )
    .unwrap();
    (ctl, rx, p)
}

/// The same over a raw stream socket pair, in a forked child (fixed-size messages need no
/// framing: the baseline is one `write` and one `read_exact` per message).
fn raw_sender(size: usize) -> (UnixStream, UnixStream, Process) {
    let (ctl, ctl_child) = UnixStream::pair().unwrap();
    let (rx, tx) = UnixStream::pair().unwrap();
    use std::os::fd::AsRawFd;
    let fds = (ctl_child.into_raw_fd(), tx.into_raw_fd(), size, [ctl.as_raw_fd(), rx.as_raw_fd()]);
    let p = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(fds, |(ctl, tx, size, parents): (i32, i32, usize, [i32; 2])| {
            // SAFETY: all four descriptors were inherited through fork; the child owns its
            // copies, and closes the parent's ends so the parent's close is seen as EOF.
            let (mut ctl, mut tx) = unsafe {
                libc::close(parents[0]);
                libc::close(parents[1]);
                (UnixStream::from_raw_fd(ctl), UnixStream::from_raw_fd(tx))
            };
            let msg = vec![7u8; size];
            let mut n = [0u8; 8];
            while ctl.read_exact(&mut n).is_ok() {
                for _ in 0..u64::from_le_bytes(n) {
                    tx.write_all(&msg).unwrap();
                }
            }
        })
        .unwrap();
    // SAFETY: the parent's copies of the child's ends are closed; ours stay open.
    unsafe {
        libc::close(fds.0);
        libc::close(fds.1);
    }
    (ctl, rx, p)
}

fn throughput(c: &mut Criterion) {
    for size in [64usize, 4096, 1 << 20] {
        let mut g = c.benchmark_group(format!("pipe_1to1_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        g.measurement_time(Duration::from_secs(3));
        let (ctl, rx, mut p) = procshare_sender(size);
        let mut buf = vec![0u8; size];
        g.bench_function(BenchmarkId::new("procshare", size), |b| {
            b.iter_custom(|iters| {
                ctl.send(&iters).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    rx.recv_bytes_into(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        drop((ctl, rx));
        p.join().unwrap();

        let (mut ctl, mut rx, mut p) = raw_sender(size);
        g.bench_function(BenchmarkId::new("baseline_raw_stream", size), |b| {
            b.iter_custom(|iters| {
                ctl.write_all(&iters.to_le_bytes()).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    rx.read_exact(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        drop((ctl, rx));
        p.join().unwrap();

        if size >= 1 << 20 {
            let src = vec![1u8; size];
            g.bench_function(BenchmarkId::new("baseline_memcpy", size), |b| {
                b.iter(|| {
                    buf.copy_from_slice(black_box(&src));
                    black_box(&buf);
                })
            });
        }
        g.finish();
    }
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_ping_pong_8B");
    let (here, there) = pipe().unwrap();
    let mut p = Process::spawn(there, |c: Connection| {
        let mut b = [0u8; 8];
        while let Ok(n) = c.recv_bytes_into(&mut b) {
            c.send_bytes(&b[..n]).unwrap();
        }
    })
    .unwrap();
    let mut b = [0u8; 8];
    g.bench_function("procshare", |bench| {
        bench.iter(|| {
            here.send_bytes(&[1u8; 8]).unwrap();
            here.recv_bytes_into(&mut b).unwrap();
        })
    });
    drop(here);
    p.join().unwrap();

    let (a, b2) = UnixStream::pair().unwrap();
    let fd = b2.into_raw_fd();
    use std::os::fd::AsRawFd;
    let mut p = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn((fd, a.as_raw_fd()), |(fd, parent): (i32, i32)| {
            // SAFETY: inherited through fork, owned by this child; the parent's end is closed
            // here so the parent's close is seen as EOF.
            let mut s = unsafe {
                libc::close(parent);
                UnixStream::from_raw_fd(fd)
            };
            let mut b = [0u8; 8];
            while s.read_exact(&mut b).is_ok() {
                s.write_all(&b).unwrap();
            }
        })
        .unwrap();
    // SAFETY: the parent's copy of the child's end.
    unsafe { libc::close(fd) };
    let mut a = a;
    g.bench_function("baseline_raw_stream", |bench| {
        bench.iter(|| {
            a.write_all(&[1u8; 8]).unwrap();
            a.read_exact(&mut b).unwrap();
        })
    });
    drop(a);
    p.join().unwrap();
    g.finish();
}

fn objects(c: &mut Criterion) {
    // send/recv of a small serde value vs send_bytes of the same size: the codec's cost.
    let mut g = c.benchmark_group("pipe_object_64B_same_thread");
    let (a, b) = pipe().unwrap();
    let v: (u32, Vec<u8>) = (7, vec![3u8; 58]);
    g.bench_function("send_recv_object", |bench| {
        bench.iter(|| {
            a.send(black_box(&v)).unwrap();
            black_box(b.recv::<(u32, Vec<u8>)>().unwrap());
        })
    });
    let raw = vec![3u8; 64];
    let mut buf = [0u8; 64];
    g.bench_function("send_recv_bytes", |bench| {
        bench.iter(|| {
            a.send_bytes(black_box(&raw)).unwrap();
            black_box(b.recv_bytes_into(&mut buf).unwrap());
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = throughput, ping_pong, objects
}
criterion_main!(benches);
