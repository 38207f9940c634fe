//! `procshare bench --smoke`: every row is measured once (tiny durations), the JSON has each of
//! them with finite positive figures and the issue 12, 21 and 23 targets, and the run leaves nothing in
//! /dev/shm (iceoryx2 keeps its state in files there).

use std::collections::BTreeSet;
use std::process::Command;

fn shm_entries() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The (workload, contender) pairs every smoke run must report.
const ROWS: &[(&str, &str)] = &[
    ("64 B, 1 process -> 1", "procshare pipe (send_bytes)"),
    ("64 B, 1 process -> 1", "procshare Queue (serde_bytes item)"),
    ("64 B, 1 process -> 1", "OS pipe, 1 write/msg"),
    ("64 B, 1 process -> 1", "crossbeam bounded, 2 threads"),
    ("4 KiB, 1 process -> 1", "procshare pipe (send_bytes)"),
    ("4 KiB, 1 process -> 1", "procshare Queue (serde_bytes item)"),
    ("4 KiB, 1 process -> 1", "OS pipe, 1 write/msg"),
    ("4 KiB, 1 process -> 1", "crossbeam bounded, 2 threads"),
    ("1 MiB, 1 process -> 1", "procshare pipe (send_bytes)"),
    ("1 MiB, 1 process -> 1", "procshare Queue (serde_bytes item)"),
    ("1 MiB, 1 process -> 1", "OS pipe, 1 write/msg"),
    ("1 MiB, 1 process -> 1", "crossbeam bounded, 2 threads"),
    ("1 MiB, 1 process -> 1", "memcpy, 1 thread, out of cache"),
    ("64 B, 2 -> 2 processes", "procshare pipe (send_bytes)"),
    ("64 B, 2 -> 2 processes", "procshare Queue (serde_bytes item)"),
    ("64 B, 2 -> 2 processes", "crossbeam bounded, 2 -> 2 threads"),
    ("ping-pong 8 B median RTT", "procshare pipe (send_bytes)"),
    ("ping-pong 8 B median RTT", "procshare Queue (serde_bytes item)"),
    ("ping-pong 8 B median RTT", "OS pipe pair"),
    ("ping-pong 8 B median RTT", "crossbeam bounded(1), 2 threads"),
    ("ping-pong 8 B p99 RTT", "procshare pipe (send_bytes)"),
    ("ping-pong 8 B p99 RTT", "procshare Queue (serde_bytes item)"),
    ("ping-pong 8 B p99 RTT", "OS pipe pair"),
    ("ping-pong 8 B p99 RTT", "crossbeam bounded(1), 2 threads"),
    ("item types, 64 B, 1 process -> 1", "procshare Queue (serde_bytes item)"),
    ("item types, 64 B, 1 process -> 1", "procshare Queue<Vec<u8>>"),
    ("item types, 64 B, 1 process -> 1", "procshare Queue<String>"),
    ("item types, 64 B, 1 process -> 1", "procshare Queue<small struct>"),
    ("item types, 64 B, 1 process -> 1", "procshare Connection::send(&Vec<u8>)"),
    ("Lock, 2 contenders", "procshare Lock, 2 processes"),
    ("Lock, 2 contenders", "parking_lot Mutex, 2 threads"),
    ("thread queue, 1 thread -> 1", "procshare thread_queue::Queue"),
    ("thread queue, 1 thread -> 1", "crossbeam bounded(1024)"),
    ("process start + join", "procshare spawn"),
    ("process start + join", "procshare fork"),
    ("pool map, 100,000 tiny tasks, default chunksize", "procshare Pool::map"),
    ("pool imap, tiny tasks, chunksize 1", "procshare Pool::imap"),
    ("pool apply_async x 20,000, then get each", "procshare Pool::apply_async"),
    ("pool apply round trip, warm median RTT", "procshare Pool::apply"),
    (
        "pool worker SIGKILL -> its task's Err median RTT",
        "procshare Pool: SIGKILL to the task's Err",
    ),
];

/// The peers' rows (the `peers` feature, on by default).
const PEER_CONTENDERS: &[&str] = &[
    "ipc-channel IpcBytesSender",
    "ipc-channel IpcSender<Vec<u8>>",
    "iceoryx2 pub-sub, busy-poll",
    "iceoryx2 pub-sub, blocking (event)",
];
const THROUGHPUT: &[&str] =
    &["64 B, 1 process -> 1", "4 KiB, 1 process -> 1", "1 MiB, 1 process -> 1"];

/// The CPython rows (with `--python`).
const PYTHON_ROWS: &[(&str, &str)] = &[
    ("64 B, 1 process -> 1", "CPython mp.Pipe send_bytes"),
    ("64 B, 1 process -> 1", "CPython mp.Queue"),
    ("4 KiB, 1 process -> 1", "CPython mp.Queue"),
    ("1 MiB, 1 process -> 1", "CPython mp.Queue"),
    ("64 B, 2 -> 2 processes", "CPython mp.Queue"),
    ("ping-pong 8 B median RTT", "CPython mp.Pipe"),
    ("ping-pong 8 B p99 RTT", "CPython mp.Pipe"),
    ("item types, 64 B, 1 process -> 1", "CPython mp.Queue"),
    ("Lock, 2 contenders", "CPython mp.Lock"),
    ("thread queue, 1 thread -> 1", "CPython queue.Queue"),
    ("process start + join", "CPython spawn"),
];

#[test]
fn smoke_run_reports_every_row_and_leaves_nothing_in_dev_shm() {
    let dir = std::env::temp_dir().join(format!("procshare-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let svg = dir.join("bench.svg");
    let python = Command::new("python3")
        .args(["-c", "import multiprocessing"])
        .status()
        .is_ok_and(|s| s.success());
    let before = shm_entries();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procshare"));
    cmd.arg("bench").arg("--smoke").arg("--json").arg(&json).arg("--plot").arg(&svg);
    if python {
        cmd.arg("--python");
    } else {
        eprintln!("python3 is missing: the CPython rows are not checked");
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bench --smoke failed:\n{text}");

    // Nothing of this run is left in /dev/shm: iceoryx2's files carry the bench's pid in their
    // prefix, and none may appear under iceoryx2's default prefix either.
    let new: Vec<String> = shm_entries().difference(&before).cloned().collect();
    let ours: Vec<&String> =
        new.iter().filter(|n| n.contains(&pid.to_string()) || n.starts_with("iox2")).collect();
    assert!(ours.is_empty(), "left in /dev/shm: {ours:?} (all new entries: {new:?})");
    assert!(
        !std::path::Path::new(&format!("/tmp/psbench-iox2-{pid}")).exists(),
        "iceoryx2's root dir is left"
    );

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().expect("rows");
    let mut expected: Vec<(String, String)> =
        ROWS.iter().map(|(w, c)| (w.to_string(), c.to_string())).collect();
    let peers = cfg!(feature = "peers");
    for w in THROUGHPUT.iter().filter(|_| peers) {
        expected.extend(PEER_CONTENDERS.iter().map(|c| (w.to_string(), c.to_string())));
    }
    for w in ["ping-pong 8 B median RTT", "ping-pong 8 B p99 RTT"].iter().filter(|_| peers) {
        expected.extend(
            [
                "ipc-channel IpcBytesSender",
                "iceoryx2 pub-sub, busy-poll",
                "iceoryx2 pub-sub, blocking (event)",
            ]
            .iter()
            .map(|c| (w.to_string(), c.to_string())),
        );
    }
    if peers {
        let w = "pool apply_async x 20,000, then get each";
        expected.push((w.to_string(), "procspawn Pool::spawn + join".to_string()));
    }
    if python {
        expected.extend(PYTHON_ROWS.iter().map(|(w, c)| (w.to_string(), c.to_string())));
    }
    for (w, c) in &expected {
        let row = rows
            .iter()
            .find(|r| r["workload"] == w.as_str() && r["contender"] == c.as_str())
            .unwrap_or_else(|| panic!("no row {w} / {c} in {}", report["rows"]));
        for key in ["median", "min", "max"] {
            let v = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{w} / {c}: {key} = {v}");
        }
    }
    // Every target is evaluated. Seven compare with CPython (mp.Queue throughput, mp.Pipe() and
    // mp.Queue() creation, the Pool's map, imap and two apply_async ones), three with the peers.
    let targets = report["targets"].as_array().expect("targets");
    let want = 19 - 7 * usize::from(!python) - if peers { 0 } else { 3 };
    assert_eq!(targets.len(), want, "{targets:?}");
    for t in targets {
        let r = t["ratio"].as_f64().unwrap_or(f64::NAN);
        assert!(r.is_finite() && r > 0.0, "{t}");
    }
    assert!(text.contains("issue 12, 21 and 23 targets"), "{text}");
    // The plot: an SVG with a bar per row, and the PNG beside it.
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.contains("procshare Queue&lt;Vec&lt;u8&gt;&gt;")
            || svg_text.contains("procshare Queue<Vec<u8>>")
    );
    let png = std::fs::read(dir.join("bench.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let _ = std::fs::remove_dir_all(&dir);
}
