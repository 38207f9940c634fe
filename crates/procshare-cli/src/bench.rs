//! `procshare bench`: procshare next to what a user would pick instead, measured in one run.
//!
//! The bench is a table of workloads (64 B, 4 KiB and 1 MiB 1 → 1, 2 → 2, ping-pong, item types,
//! locks, thread queues, process start), each with its contenders: procshare, the Rust peers
//! (ipc-channel and iceoryx2, behind the `peers` feature), the OS or hardware limit (an OS pipe
//! with one write per message, memcpy out of cache), crossbeam and parking_lot between threads,
//! and with `--python` CPython's `multiprocessing` measured by a script run now. Every round
//! measures every contender of every workload once, one after the other, so that load the
//! machine picks up hits them alike; a contender's figure is the median of its rounds, and
//! `--runs N` repeats the whole thing to show the spread of those medians.

mod native;
#[cfg(feature = "peers")]
mod peers;
mod plot;
mod pool;

pub use native::child;

use native::median;
use procshare::StartMethod;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of `procshare bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short rounds (under 30 s in all) instead of the full run.
    #[arg(long)]
    quick: bool,
    /// Repeat the whole run N times and report the spread of the medians (min..max).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw one log-scale bar chart per workload in FILE.svg, and a PNG next to it.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Also measure CPython's multiprocessing (needs python3).
    #[arg(long)]
    python: bool,
    /// Measure only procshare-redis against redis-py and a manager Queue (bench_redis.rs).
    #[arg(long)]
    redis: bool,
    /// Only the workloads whose title contains TEXT (e.g. "1 MiB", "ping-pong"); repeatable.
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// (tests) every row once with tiny durations.
    #[arg(long, hide = true)]
    smoke: bool,
}

/// What a figure is, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Unit {
    #[serde(rename = "msg/s")]
    MsgPerSec,
    #[serde(rename = "B/s")]
    BytesPerSec,
    #[serde(rename = "ops/s")]
    OpsPerSec,
    #[serde(rename = "µs")]
    Micros,
}

impl Unit {
    pub fn higher_is_better(self) -> bool {
        self != Unit::Micros
    }

    pub fn human(self, v: f64) -> String {
        match self {
            Unit::MsgPerSec | Unit::OpsPerSec if v >= 1e6 => {
                format!("{:.2} M{}", v / 1e6, self.label())
            }
            Unit::MsgPerSec | Unit::OpsPerSec => format!("{:.1} k{}", v / 1e3, self.label()),
            Unit::BytesPerSec => format!("{:.2} GiB/s", v / (1u64 << 30) as f64),
            Unit::Micros if v >= 1000.0 => format!("{:.2} ms", v / 1e3),
            Unit::Micros => format!("{v:.2} µs"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Unit::MsgPerSec => "msg/s",
            Unit::BytesPerSec => "B/s",
            Unit::OpsPerSec => "ops/s",
            Unit::Micros => "µs",
        }
    }
}

/// Whose row it is: the plot colours them so, the ratios block looks them up so.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Procshare,
    /// A Rust crate a user could use instead.
    Peer,
    /// The kernel's or the hardware's figure for the same bytes.
    Limit,
    /// Threads of one process: a reference, not a competitor.
    Threads,
    Python,
}

/// How a contender is measured: a rate, round trips (median and p99), or a key of the CPython
/// script's output.
#[derive(Clone, Copy)]
enum Run {
    Rate(fn(Duration) -> f64),
    Rtt(fn(Duration) -> [f64; 2]),
    Python(&'static str),
}

struct Contender {
    name: &'static str,
    kind: Kind,
    run: Run,
}

struct Workload {
    title: &'static str,
    unit: Unit,
    contenders: Vec<Contender>,
}

const fn c(name: &'static str, kind: Kind, run: Run) -> Contender {
    Contender { name, kind, run }
}

const MIB: usize = 1 << 20;
const W64: &str = "64 B, 1 process -> 1";
const W4K: &str = "4 KiB, 1 process -> 1";
const W1M: &str = "1 MiB, 1 process -> 1";
const W2X2: &str = "64 B, 2 -> 2 processes";
const WRTT: &str = "ping-pong 8 B";
const WITEM: &str = "item types, 64 B, 1 process -> 1";

// Contender names the ratios block refers to.
const PIPE: &str = "procshare pipe (send_bytes)";
const QUEUE: &str = "procshare Queue (serde_bytes item)";
const QUEUE_VEC: &str = "procshare Queue<Vec<u8>>";
const OS_PIPE: &str = "OS pipe, 1 write/msg";
const MEMCPY: &str = "memcpy, 1 thread, out of cache";
const IPC_BYTES: &str = "ipc-channel IpcBytesSender";
const IOX_BUSY: &str = "iceoryx2 pub-sub, busy-poll";
const CROSSBEAM: &str = "crossbeam bounded, 2 threads";
const PY_QUEUE: &str = "CPython mp.Queue";
const WPMAP: &str = "pool map, 100,000 tiny tasks, default chunksize";
const WPIMAP: &str = "pool imap, tiny tasks, chunksize 1";
const WPAPPLY: &str = "pool apply_async x 20,000, then get each";
const WPRTT: &str = "pool apply round trip, warm";
const WPDEATH: &str = "pool worker SIGKILL -> its task's Err";
const POOL_MAP: &str = "procshare Pool::map";
const POOL_IMAP: &str = "procshare Pool::imap";
const POOL_APPLY: &str = "procshare Pool::apply_async";
const POOL_RTT: &str = "procshare Pool::apply";
const POOL_DEATH: &str = "procshare Pool: SIGKILL to the task's Err";
const PY_POOL_MAP: &str = "CPython mp.Pool.map";
const PY_POOL_IMAP: &str = "CPython mp.Pool.imap(chunksize=1)";
const PY_POOL_APPLY: &str = "CPython mp.Pool.apply_async";
const PY_PPE_SUBMIT: &str = "CPython ProcessPoolExecutor.submit";
const PY_PPE_MAP: &str = "CPython ProcessPoolExecutor.map(chunksize=1)";
const WMAKE: &str = "handle creation (make + drop)";
const MAKE_PIPE: &str = "procshare pipe() creation";
const MAKE_QUEUE: &str = "procshare Queue::new creation";
const PY_MAKE_PIPE: &str = "CPython mp.Pipe() creation";
const PY_MAKE_QUEUE: &str = "CPython mp.Queue() creation";

/// The throughput contenders of one message size (the same list for 64 B, 4 KiB and 1 MiB).
fn throughput(size: usize, unit: Unit, python: (&'static str, &'static str)) -> Vec<Contender> {
    use Kind::*;
    // The rates are msg/s; 1 MiB reports bytes/s. Non-capturing closures per size: `Run` holds
    // plain fn pointers.
    macro_rules! at {
        ($f:expr) => {
            match (size, unit) {
                (64, _) => Run::Rate(|d| $f(64, d)),
                (4096, _) => Run::Rate(|d| $f(4096, d)),
                _ => Run::Rate(|d| $f(MIB, d) * MIB as f64),
            }
        };
    }
    let mut v = vec![
        c(PIPE, Procshare, at!(native::pipe_rate)),
        c(QUEUE, Procshare, at!(native::queue_rate)),
        c(OS_PIPE, Limit, at!(native::os_pipe_rate)),
    ];
    #[cfg(feature = "peers")]
    v.extend([
        c(IPC_BYTES, Peer, at!(peers::ipc_bytes_rate)),
        c("ipc-channel IpcSender<Vec<u8>>", Peer, at!(peers::ipc_typed_rate)),
        c(IOX_BUSY, Peer, at!(|s, d| peers::iox_rate(s, false, d))),
        c("iceoryx2 pub-sub, blocking (event)", Peer, at!(|s, d| peers::iox_rate(s, true, d))),
    ]);
    v.push(c(CROSSBEAM, Threads, at!(native::crossbeam_items_rate)));
    if size == MIB {
        v.push(c(MEMCPY, Limit, Run::Rate(native::memcpy_rate)));
    }
    v.push(c("CPython mp.Pipe send_bytes", Python, Run::Python(python.0)));
    v.push(c(PY_QUEUE, Python, Run::Python(python.1)));
    v
}

/// Every workload, in report order.
fn workloads() -> Vec<Workload> {
    use Kind::*;
    let mut rtt = vec![
        c(PIPE, Procshare, Run::Rtt(native::pipe_rtt)),
        c(QUEUE, Procshare, Run::Rtt(native::queue_rtt)),
        c("OS pipe pair", Limit, Run::Rtt(native::os_pipe_rtt)),
    ];
    #[cfg(feature = "peers")]
    rtt.extend([
        c(IPC_BYTES, Peer, Run::Rtt(peers::ipc_bytes_rtt)),
        c(IOX_BUSY, Peer, Run::Rtt(|d| peers::iox_rtt(false, d))),
        c("iceoryx2 pub-sub, blocking (event)", Peer, Run::Rtt(|d| peers::iox_rtt(true, d))),
    ]);
    rtt.push(c("crossbeam bounded(1), 2 threads", Threads, Run::Rtt(native::crossbeam_rtt)));
    rtt.push(c("CPython mp.Pipe", Python, Run::Python("pipe_rtt")));
    vec![
        Workload {
            title: W64,
            unit: Unit::MsgPerSec,
            contenders: throughput(64, Unit::MsgPerSec, ("pipe_64", "queue_64")),
        },
        Workload {
            title: W4K,
            unit: Unit::MsgPerSec,
            contenders: throughput(4096, Unit::MsgPerSec, ("pipe_4k", "queue_4k")),
        },
        Workload {
            title: W1M,
            unit: Unit::BytesPerSec,
            contenders: throughput(MIB, Unit::BytesPerSec, ("pipe_1m", "queue_1m")),
        },
        Workload {
            title: W2X2,
            unit: Unit::MsgPerSec,
            contenders: vec![
                c(PIPE, Procshare, Run::Rate(native::pipe_2x2_rate)),
                c(QUEUE, Procshare, Run::Rate(native::queue_2x2_rate)),
                c(
                    "crossbeam bounded, 2 -> 2 threads",
                    Threads,
                    Run::Rate(native::crossbeam_2x2_rate),
                ),
                c(PY_QUEUE, Python, Run::Python("queue_2x2")),
            ],
        },
        Workload { title: WRTT, unit: Unit::Micros, contenders: rtt },
        Workload {
            title: WITEM,
            unit: Unit::MsgPerSec,
            contenders: vec![
                c(QUEUE, Procshare, Run::Rate(|d| native::queue_rate(64, d))),
                c(QUEUE_VEC, Procshare, Run::Rate(native::queue_vec_rate)),
                c("procshare Queue<String>", Procshare, Run::Rate(native::queue_string_rate)),
                c("procshare Queue<small struct>", Procshare, Run::Rate(native::queue_struct_rate)),
                c(
                    "procshare Connection::send(&Vec<u8>)",
                    Procshare,
                    Run::Rate(native::pipe_send_vec_rate),
                ),
                c(PY_QUEUE, Python, Run::Python("queue_64")),
            ],
        },
        Workload {
            title: "Lock, 2 contenders",
            unit: Unit::OpsPerSec,
            contenders: vec![
                c("procshare Lock, 2 processes", Procshare, Run::Rate(native::lock_rate)),
                c("parking_lot Mutex, 2 threads", Threads, Run::Rate(native::parking_lot_rate)),
                c("CPython mp.Lock", Python, Run::Python("lock")),
            ],
        },
        Workload {
            title: "thread queue, 1 thread -> 1",
            unit: Unit::MsgPerSec,
            contenders: vec![
                c("procshare thread_queue::Queue", Procshare, Run::Rate(native::thread_queue_rate)),
                c("crossbeam bounded(1024)", Threads, Run::Rate(native::crossbeam_rate)),
                c("CPython queue.Queue", Python, Run::Python("thread_queue")),
            ],
        },
        Workload {
            title: WPMAP,
            unit: Unit::OpsPerSec,
            contenders: vec![
                c(POOL_MAP, Procshare, Run::Rate(pool::map_rate)),
                c(
                    "procshare Pool::map_chunked(.., 100)",
                    Procshare,
                    Run::Rate(pool::map_chunk100_rate),
                ),
                c(PY_POOL_MAP, Python, Run::Python("pool_map")),
            ],
        },
        Workload {
            title: WPIMAP,
            unit: Unit::OpsPerSec,
            contenders: vec![
                c(POOL_IMAP, Procshare, Run::Rate(pool::imap_rate)),
                c(PY_POOL_IMAP, Python, Run::Python("pool_imap1")),
                c(PY_PPE_MAP, Python, Run::Python("ppe_map1")),
            ],
        },
        Workload {
            title: WPAPPLY,
            unit: Unit::OpsPerSec,
            contenders: vec![
                c(POOL_APPLY, Procshare, Run::Rate(pool::apply_async_rate)),
                #[cfg(feature = "peers")]
                c("procspawn Pool::spawn + join", Peer, Run::Rate(peers::procspawn_pool_rate)),
                c(PY_POOL_APPLY, Python, Run::Python("pool_apply_async")),
                c(PY_PPE_SUBMIT, Python, Run::Python("ppe_submit")),
            ],
        },
        Workload {
            title: WPRTT,
            unit: Unit::Micros,
            contenders: vec![
                c(POOL_RTT, Procshare, Run::Rtt(pool::apply_rtt)),
                c("CPython mp.Pool.apply", Python, Run::Python("pool_apply_rtt")),
            ],
        },
        Workload {
            title: WPDEATH,
            unit: Unit::Micros,
            contenders: vec![
                c(POOL_DEATH, Procshare, Run::Rtt(pool::death_to_err)),
                c(
                    "procshare Pool: ... to its replacement's result",
                    Procshare,
                    Run::Rtt(pool::death_to_replacement),
                ),
            ],
        },
        Workload {
            title: WMAKE,
            unit: Unit::Micros,
            contenders: vec![
                c(MAKE_PIPE, Procshare, Run::Rate(native::pipe_create_cost)),
                c(MAKE_QUEUE, Procshare, Run::Rate(native::queue_create_cost)),
                c(PY_MAKE_PIPE, Python, Run::Python("pipe_create_us")),
                c(PY_MAKE_QUEUE, Python, Run::Python("queue_create_us")),
            ],
        },
        Workload {
            title: "process start + join",
            unit: Unit::Micros,
            contenders: vec![
                c(
                    "procshare spawn",
                    Procshare,
                    Run::Rate(|d| native::spawn_cost(StartMethod::Spawn, d)),
                ),
                c(
                    "procshare fork",
                    Procshare,
                    Run::Rate(|d| native::spawn_cost(StartMethod::Fork, d)),
                ),
                c("CPython spawn", Python, Run::Python("spawn_us")),
            ],
        },
    ]
}

// ---- results ---------------------------------------------------------------------------

/// One bar of the report: a contender's figure on one metric of one workload.
#[derive(Debug, Serialize, Clone)]
pub struct Row {
    pub workload: String,
    pub unit: Unit,
    pub higher_is_better: bool,
    pub contender: String,
    pub kind: Kind,
    /// The median of `run_medians`.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Each run's median over its rounds.
    pub run_medians: Vec<f64>,
}

/// A target of issue 12 and how far this run got.
#[derive(Debug, Serialize)]
struct Target {
    target: String,
    /// Reached, oriented as the target is stated (≥ goal, or ≤ goal for "at most").
    ratio: f64,
    goal: f64,
    at_most: bool,
    met: bool,
    /// The figure itself (µs), not a ratio.
    absolute: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    command: String,
    machine: Machine,
    runs: u32,
    rounds: usize,
    round_seconds: f64,
    seconds_taken: f64,
    rows: &'a [Row],
    targets: &'a [Target],
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    load_average_start: String,
    load_average_end: String,
    kernel: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs the CPython script for `dur` a measurement; `None` (with a note) without python3.
fn python(dur: Duration) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(include_str!("bench/cpython.py"))
        .arg(dur.as_secs_f64().to_string())
        .output();
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
        Err(e) => {
            eprintln!("python3 is not available ({e}): no CPython rows");
            None
        }
    }
}

/// The values of one contender in one round (one, or two for round trips: median and p99).
fn measure(run: Run, dur: Duration, py: Option<&serde_json::Value>) -> Option<Vec<f64>> {
    match run {
        Run::Rate(f) => Some(vec![f(dur)]),
        Run::Rtt(f) => Some(f(dur).to_vec()),
        Run::Python(key) => match py?.get(key)? {
            serde_json::Value::Array(a) => a.iter().map(|v| v.as_f64()).collect(),
            v => v.as_f64().map(|v| vec![v]),
        },
    }
}

/// The report's metric names of a workload: round trips show the median and the p99.
fn metrics(w: &Workload) -> Vec<String> {
    if w.contenders.iter().any(|c| matches!(c.run, Run::Rtt(_))) {
        vec![format!("{} median RTT", w.title), format!("{} p99 RTT", w.title)]
    } else {
        vec![w.title.to_string()]
    }
}

/// Runs every workload and prints the report (and JSON / plot when asked).
pub fn run(args: Args) -> procshare::Result<()> {
    if args.redis {
        return crate::bench_redis::run(args.quick);
    }
    let (rounds, dur) = if args.smoke {
        (1, Duration::from_millis(20))
    } else if args.quick {
        (1, Duration::from_millis(200))
    } else {
        (3, Duration::from_millis(500))
    };
    let mut workloads = workloads();
    if !args.only.is_empty() {
        workloads.retain(|w| args.only.iter().any(|o| w.title.contains(o.as_str())));
    }
    let started = Instant::now();
    let load_start = load_average();
    #[cfg(feature = "peers")]
    peers::cleanup();

    let cells: usize = workloads.iter().map(|w| w.contenders.len()).sum();
    let bar = indicatif::ProgressBar::new((args.runs as usize * rounds * cells) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // samples[(workload, contender)][run][round] = the values of that round.
    let mut samples: BTreeMap<(usize, usize), Vec<Vec<Vec<f64>>>> = BTreeMap::new();
    for run in 0..args.runs {
        for _round in 0..rounds {
            let py = if args.python {
                bar.set_message("CPython multiprocessing");
                python(dur)
            } else {
                None
            };
            for (wi, w) in workloads.iter().enumerate() {
                for (ci, c) in w.contenders.iter().enumerate() {
                    bar.set_message(format!("{}: {}", w.title, c.name));
                    if args.smoke {
                        eprintln!("bench: {}: {}", w.title, c.name);
                    }
                    if let Some(v) = measure(c.run, dur, py.as_ref()) {
                        let runs = samples.entry((wi, ci)).or_default();
                        runs.resize_with(args.runs as usize, Vec::new);
                        runs[run as usize].push(v);
                    }
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    #[cfg(feature = "peers")]
    peers::cleanup();

    let rows = rows(&workloads, &samples);
    let targets = targets(&rows);
    print_report(&rows, &targets, args.runs, rounds, dur);

    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average_start: load_start,
            load_average_end: load_average(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        },
        runs: args.runs,
        rounds,
        round_seconds: dur.as_secs_f64(),
        seconds_taken: started.elapsed().as_secs_f64(),
        rows: &rows,
        targets: &targets,
    };
    println!(
        "{:.0} s in all; load average {} at the start, {} at the end ({} CPUs)",
        report.seconds_taken,
        report.machine.load_average_start,
        report.machine.load_average_end,
        report.machine.cpus
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| procshare::Error::Codec(e.to_string()))?;
        std::fs::write(path, json + "\n")?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        for written in plot::plot(&rows, path)? {
            println!("wrote {}", written.display());
        }
    }
    Ok(())
}

/// The report's rows: per workload metric and contender, the median of the run medians.
fn rows(
    workloads: &[Workload],
    samples: &BTreeMap<(usize, usize), Vec<Vec<Vec<f64>>>>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        for (mi, metric) in metrics(w).into_iter().enumerate() {
            for (ci, c) in w.contenders.iter().enumerate() {
                let Some(runs) = samples.get(&(wi, ci)) else { continue };
                let run_medians: Vec<f64> = runs
                    .iter()
                    .filter_map(|rounds| {
                        let v: Vec<f64> =
                            rounds.iter().filter_map(|r| r.get(mi).copied()).collect();
                        (!v.is_empty()).then(|| median(v))
                    })
                    .collect();
                if run_medians.is_empty() {
                    continue;
                }
                rows.push(Row {
                    workload: metric.clone(),
                    unit: w.unit,
                    higher_is_better: w.unit.higher_is_better(),
                    contender: c.name.to_string(),
                    kind: c.kind,
                    median: median(run_medians.clone()),
                    min: run_medians.iter().copied().fold(f64::INFINITY, f64::min),
                    max: run_medians.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    run_medians,
                });
            }
        }
    }
    rows
}

fn find(rows: &[Row], workload: &str, contender: &str) -> Option<f64> {
    rows.iter().find(|r| r.workload == workload && r.contender == contender).map(|r| r.median)
}

/// Issue 12's targets, each as (statement, goal, at most?, numerator, denominator) looked up in
/// the rows; a target whose rows are missing (no python3, no `peers`) is left out.
fn targets(rows: &[Row]) -> Vec<Target> {
    let rtt_med = format!("{WRTT} median RTT");
    type Spec<'a> = (&'a str, f64, bool, (&'a str, &'a str), (&'a str, &'a str));
    let prtt = format!("{WPRTT} median RTT");
    let pdeath = format!("{WPDEATH} median RTT");
    let pdeath99 = format!("{WPDEATH} p99 RTT");
    let specs: [Spec; 19] = [
        ("pipe 64 B 1->1 >= 3x OS pipe", 3.0, false, (W64, PIPE), (W64, OS_PIPE)),
        ("pipe 64 B 1->1 >= 5x ipc-channel", 5.0, false, (W64, PIPE), (W64, IPC_BYTES)),
        ("pipe ping-pong median <= 1.5x Queue's", 1.5, true, (&rtt_med, PIPE), (&rtt_med, QUEUE)),
        (
            "pipe ping-pong median below iceoryx2 busy-poll",
            1.0,
            true,
            (&rtt_med, PIPE),
            (&rtt_med, IOX_BUSY),
        ),
        ("pipe 1 MiB >= 60% of memcpy", 0.6, false, (W1M, PIPE), (W1M, MEMCPY)),
        ("Queue 1 MiB >= 60% of memcpy", 0.6, false, (W1M, QUEUE), (W1M, MEMCPY)),
        (
            "Queue<Vec<u8>> 64 B >= 50x CPython mp.Queue",
            50.0,
            false,
            (WITEM, QUEUE_VEC),
            (WITEM, PY_QUEUE),
        ),
        ("tuned byte item <= 1.3x Queue<Vec<u8>>", 1.3, true, (WITEM, QUEUE), (WITEM, QUEUE_VEC)),
        ("Queue 64 B >= 1x crossbeam bounded", 1.0, false, (W64, QUEUE), (W64, CROSSBEAM)),
        ("Queue 64 B >= 4x iceoryx2 busy-poll", 4.0, false, (W64, QUEUE), (W64, IOX_BUSY)),
        // Issue 21, the Pool.
        (
            "Pool apply_async >= 20x mp.Pool.apply_async",
            20.0,
            false,
            (WPAPPLY, POOL_APPLY),
            (WPAPPLY, PY_POOL_APPLY),
        ),
        (
            "Pool apply_async >= 50x ProcessPoolExecutor.submit",
            50.0,
            false,
            (WPAPPLY, POOL_APPLY),
            (WPAPPLY, PY_PPE_SUBMIT),
        ),
        (
            "Pool imap chunksize 1 >= 20x mp.Pool.imap",
            20.0,
            false,
            (WPIMAP, POOL_IMAP),
            (WPIMAP, PY_POOL_IMAP),
        ),
        ("Pool map >= 1x mp.Pool.map", 1.0, false, (WPMAP, POOL_MAP), (WPMAP, PY_POOL_MAP)),
        ("Pool apply round trip <= 10 us median", 10.0, true, (&prtt, POOL_RTT), (&prtt, POOL_RTT)),
        (
            "Pool death -> Err <= 10 ms median",
            10_000.0,
            true,
            (&pdeath, POOL_DEATH),
            (&pdeath, POOL_DEATH),
        ),
        (
            "Pool death -> Err <= 50 ms p99",
            50_000.0,
            true,
            (&pdeath99, POOL_DEATH),
            (&pdeath99, POOL_DEATH),
        ),
        // Issue 23's creation targets.
        ("pipe() creation <= 1x mp.Pipe()", 1.0, true, (WMAKE, MAKE_PIPE), (WMAKE, PY_MAKE_PIPE)),
        (
            "Queue::new creation <= 0.5x mp.Queue()",
            0.5,
            true,
            (WMAKE, MAKE_QUEUE),
            (WMAKE, PY_MAKE_QUEUE),
        ),
    ];
    specs
        .iter()
        .filter_map(|&(target, goal, at_most, a, b)| {
            // A target naming the same row twice is absolute (µs): the figure itself.
            let ratio = if a == b {
                find(rows, a.0, a.1)?
            } else {
                find(rows, a.0, a.1)? / find(rows, b.0, b.1)?
            };
            // "below" is strict; the rest include the goal.
            let met =
                if at_most { ratio <= goal && (goal != 1.0 || ratio < 1.0) } else { ratio >= goal };
            Some(Target { target: target.to_string(), ratio, goal, at_most, met, absolute: a == b })
        })
        .collect()
}

fn print_report(rows: &[Row], targets: &[Target], runs: u32, rounds: usize, dur: Duration) {
    println!(
        "procshare bench: {runs} run(s) x {rounds} round(s) of {:?} per contender; figure = median of \
         the rounds{}",
        dur,
        if runs > 1 { ", median of the runs, [min..max of the run medians]" } else { "" }
    );
    let mut last = "";
    for r in rows {
        if r.workload != last {
            let dir = if r.higher_is_better { "higher is better" } else { "lower is better" };
            println!("\n{} ({}, {dir})", r.workload, r.unit.label());
            last = &r.workload;
        }
        let best_ours = rows
            .iter()
            .filter(|o| o.workload == r.workload && o.kind == Kind::Procshare)
            .map(|o| o.median)
            .reduce(if r.higher_is_better { f64::max } else { f64::min });
        let vs = best_ours
            .filter(|_| r.kind != Kind::Procshare)
            .map(|o| {
                let x = if r.higher_is_better { o / r.median } else { r.median / o };
                format!("procshare {x:.2}x")
            })
            .unwrap_or_default();
        let spread = if runs > 1 {
            format!("[{} .. {}]", r.unit.human(r.min), r.unit.human(r.max))
        } else {
            String::new()
        };
        let mark = if r.kind == Kind::Procshare { "*" } else { " " };
        println!("  {mark} {:<40} {:>14} {:<32} {vs}", r.contender, r.unit.human(r.median), spread);
    }
    println!("\nissue 12, 21 and 23 targets (ratio of medians):");
    for t in targets {
        let cmp = if t.at_most { "<=" } else { ">=" };
        let unit = if t.absolute { " µs" } else { "x" };
        println!(
            "  {:<50} {:>8.2}{unit}  (goal {cmp} {}{})  {}",
            t.target,
            t.ratio,
            t.goal,
            if t.absolute { " µs" } else { "" },
            if t.met { "met" } else { "MISSED" }
        );
    }
}
