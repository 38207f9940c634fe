//! The native codec on the item types people write — `Vec<u8>`, `Box<[u8]>`, `String`,
//! `Vec<u64>`, a tuple and a struct holding them — next to the tuned byte string
//! (`serde_bytes::ByteBuf`) and to plain postcard (what the codec was before its fast paths):
//! encode + decode of one item, and a `Queue` put + get of one item in one thread (the CPU cost
//! of a round trip, free of the scheduling noise of two processes).
//!
//! ```text
//! cargo bench -p procshare --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `PROCSHARE_CODEC_COUNT=N` instead runs each case (or only `PROCSHARE_CODEC_ONLY=name`) `N`
//! times through one path (`PROCSHARE_CODEC_PATH=codec`, `postcard` or `queue`) without
//! criterion and prints nothing, for an instruction count that does not depend on the load:
//! `valgrind --tool=callgrind` at two values of `N`, difference divided by the difference of
//! `N` = instructions per item.

use criterion::{black_box, Criterion, Throughput};
use procshare::codec::{decode, encode_into};
use procshare::Queue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A small record as a user writes it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Debug)]
struct Record {
    id: u64,
    name: String,
    data: Vec<u8>,
}

/// One item type: a name and a value of it.
struct Case<T> {
    name: &'static str,
    value: T,
}

/// Something done with each case's item (a criterion group, a counted loop).
trait Runner {
    fn run<T: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug>(
        &mut self,
        case: Case<T>,
    );
}

fn each_case(r: &mut impl Runner) {
    let bytes: Vec<u8> = (0..64u8).collect();
    r.run(Case { name: "vec_u8_64B", value: bytes.clone() });
    r.run(Case { name: "bytebuf_64B", value: serde_bytes::ByteBuf::from(bytes.clone()) });
    r.run(Case { name: "box_u8_64B", value: bytes.clone().into_boxed_slice() });
    r.run(Case { name: "string_64B", value: "x".repeat(64) });
    r.run(Case { name: "vec_u64_8", value: (0..8u64).map(|i| i << 40).collect::<Vec<_>>() });
    r.run(Case { name: "u64_vec_u8_64B", value: (7u64, bytes.clone()) });
    r.run(Case { name: "record_64B", value: Record { id: 7, name: "a name".into(), data: bytes } });
}

fn codec_round<T: Serialize + DeserializeOwned>(value: &T, buf: &mut Vec<u8>) -> T {
    buf.clear();
    encode_into(value, buf).unwrap();
    decode(buf).unwrap()
}

fn postcard_round<T: Serialize + DeserializeOwned>(value: &T, buf: &mut Vec<u8>) -> T {
    buf.clear();
    *buf = postcard::to_extend(value, std::mem::take(buf)).unwrap();
    postcard::from_bytes(buf).unwrap()
}

fn queue_round<T: Serialize + DeserializeOwned + Clone>(q: &Queue<T>, value: &T) -> T {
    q.put(value.clone()).unwrap();
    q.get().unwrap()
}

struct Bench(Criterion);

impl Runner for Bench {
    fn run<T: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug>(
        &mut self,
        case: Case<T>,
    ) {
        let mut buf = Vec::new();
        assert_eq!(codec_round(&case.value, &mut buf), case.value, "{}", case.name);
        let q = Queue::<T>::new().unwrap();
        let mut g = self.0.benchmark_group(case.name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("codec_encode_decode", |b| {
            b.iter(|| codec_round(black_box(&case.value), &mut buf))
        });
        g.bench_function("postcard_encode_decode", |b| {
            b.iter(|| postcard_round(black_box(&case.value), &mut buf))
        });
        g.bench_function("queue_put_get_one_thread", |b| {
            b.iter(|| queue_round(&q, black_box(&case.value)))
        });
        g.finish();
    }
}

/// The fixed-count mode (see the module doc).
struct Count {
    n: u64,
    only: String,
    path: String,
}

impl Runner for Count {
    fn run<T: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug>(
        &mut self,
        case: Case<T>,
    ) {
        if !self.only.is_empty() && case.name != self.only {
            return;
        }
        let mut buf = Vec::new();
        // Only when asked for: valgrind cannot map a queue's sparse 64 GiB.
        let q = (self.path == "queue").then(|| Queue::<T>::new().unwrap());
        for _ in 0..self.n {
            match (self.path.as_str(), &q) {
                ("codec", _) => drop(black_box(codec_round(black_box(&case.value), &mut buf))),
                ("postcard", _) => {
                    drop(black_box(postcard_round(black_box(&case.value), &mut buf)))
                }
                ("queue", Some(q)) => drop(black_box(queue_round(q, black_box(&case.value)))),
                (other, _) => {
                    panic!("PROCSHARE_CODEC_PATH is codec, postcard or queue, not {other}")
                }
            }
        }
    }
}

fn main() {
    if let Ok(n) = std::env::var("PROCSHARE_CODEC_COUNT") {
        each_case(&mut Count {
            n: n.parse().expect("PROCSHARE_CODEC_COUNT is a number"),
            only: std::env::var("PROCSHARE_CODEC_ONLY").unwrap_or_default(),
            path: std::env::var("PROCSHARE_CODEC_PATH").unwrap_or_else(|_| "codec".into()),
        });
        return;
    }
    let mut bench = Bench(Criterion::default().configure_from_args());
    each_case(&mut bench);
    bench.0.final_summary();
}
