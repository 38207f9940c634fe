//! `pickle_decode` (our data-only decoder) against serde-pickle on the same real CPython
//! pickles (protocol 4, what `multiprocessing` sends): a list of 1000 small tuples, a dict of
//! 1000 str → int, 1 MiB of bytes. Python writes them in the same run; without python3 the
//! bench says so and does nothing.
//!
//! `cargo bench -p procshare --bench pickle -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, Criterion};
use procshare::codec::pickle_decode;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const PY: &str = r#"
import pickle
for o in ([(i, str(i), i / 7) for i in range(1000)],
          {'key%d' % i: i for i in range(1000)},
          bytes(range(256)) * 4096):
    print(pickle.dumps(o, 4).hex())
"#;

fn pickles() -> Option<Vec<Vec<u8>>> {
    let out = Command::new("python3").arg("-c").arg(PY).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    let v: Vec<Vec<u8>> = text.lines().map(unhex).collect();
    (v.len() == 3).then_some(v)
}

fn pair<T: DeserializeOwned>(c: &mut Criterion, name: &str, p: &[u8]) {
    let ours = pickle_decode::<T>(p).is_ok();
    let theirs =
        serde_pickle::from_slice::<T>(p, serde_pickle::DeOptions::new().decode_strings()).is_ok();
    assert!(ours && theirs, "{name}: both decoders must read the pickle");
    let mut g = c.benchmark_group(name);
    g.bench_function("procshare", |b| b.iter(|| pickle_decode::<T>(black_box(p)).unwrap()));
    g.bench_function("serde-pickle", |b| {
        b.iter(|| {
            serde_pickle::from_slice::<T>(
                black_box(p),
                serde_pickle::DeOptions::new().decode_strings(),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn main() {
    let Some(p) = pickles() else {
        eprintln!("python3 not found: SKIPPING the pickle bench");
        return;
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    pair::<Vec<(i64, String, f64)>>(&mut c, "pickle/1000 tuples", &p[0]);
    pair::<HashMap<String, i64>>(&mut c, "pickle/dict 1000 str->int", &p[1]);
    pair::<serde_bytes::ByteBuf>(&mut c, "pickle/1 MiB bytes", &p[2]);
    c.final_summary();
}
