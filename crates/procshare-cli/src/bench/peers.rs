//! The Rust peers a user would pick instead of procshare (the `peers` feature): ipc-channel
//! (bytes and typed channels) and iceoryx2 publish-subscribe (busy-polling, and blocking on its
//! event service). Their other side is a child started with `procshare::Process::spawn`.
//!
//! iceoryx2 keeps its state in files: every service of one bench run lives under a prefix and a
//! root directory named after the bench's process id, and [`cleanup`] removes whatever is left
//! of them in `/dev/shm` and the root directory.

use super::native::{rate_for, sample_rtts};
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::prelude::*;
use ipc_channel::ipc::{
    self as ipcc, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender,
};
use procshare::{Event, Process};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// ---- ipc-channel -----------------------------------------------------------------------

fn ipc_bytes_sender((server, size): (String, usize)) {
    let (tx, rx) = ipcc::bytes_channel().expect("ipc-channel");
    IpcSender::<IpcBytesReceiver>::connect(server).expect("connect").send(rx).expect("send");
    let msg = vec![7u8; size];
    while tx.send(&msg).is_ok() {}
}

/// Messages/s through an `IpcBytesSender` from a child process.
pub fn ipc_bytes_rate(size: usize, dur: Duration) -> f64 {
    let (server, name) = IpcOneShotServer::<IpcBytesReceiver>::new().expect("ipc-channel");
    let child = Process::spawn((name, size), ipc_bytes_sender).expect("spawn");
    let (_, rx) = server.accept().expect("accept");
    receive_rate(child, dur, move || drop(std::hint::black_box(rx.recv().expect("recv"))))
}

/// Messages/s of `recv` (after one warm-up message) from `child`'s sender, which is then ended.
fn receive_rate(mut child: Process, dur: Duration, mut recv: impl FnMut()) -> f64 {
    recv();
    let rate = rate_for(dur, &mut recv);
    drop(recv);
    // A sender blocked in a large message does not always see the receiver go: end it.
    let _ = child.kill();
    let _ = child.join();
    rate
}

fn ipc_typed_sender((server, size): (String, usize)) {
    let (tx, rx) = ipcc::channel::<Vec<u8>>().expect("ipc-channel");
    IpcSender::<ipcc::IpcReceiver<Vec<u8>>>::connect(server)
        .expect("connect")
        .send(rx)
        .expect("send");
    let msg = vec![7u8; size];
    while tx.send(msg.clone()).is_ok() {}
}

/// Messages/s through a typed `IpcSender<Vec<u8>>` from a child process.
pub fn ipc_typed_rate(size: usize, dur: Duration) -> f64 {
    let (server, name) =
        IpcOneShotServer::<ipcc::IpcReceiver<Vec<u8>>>::new().expect("ipc-channel");
    let child = Process::spawn((name, size), ipc_typed_sender).expect("spawn");
    let (_, rx) = server.accept().expect("accept");
    receive_rate(child, dur, move || drop(std::hint::black_box(rx.recv().expect("recv"))))
}

fn ipc_bytes_echo(server: String) {
    let (to_child, from_parent) = ipcc::bytes_channel().expect("ipc-channel");
    let (to_parent, from_child) = ipcc::bytes_channel().expect("ipc-channel");
    IpcSender::<(IpcBytesSender, IpcBytesReceiver)>::connect(server)
        .expect("connect")
        .send((to_child, from_child))
        .expect("send");
    while let Ok(m) = from_parent.recv() {
        if to_parent.send(&m).is_err() {
            break;
        }
    }
}

/// Round trips of 8 bytes through two ipc-channel bytes channels and a child, in µs.
pub fn ipc_bytes_rtt(dur: Duration) -> [f64; 2] {
    let (server, name) =
        IpcOneShotServer::<(IpcBytesSender, IpcBytesReceiver)>::new().expect("ipc-channel");
    let mut child = Process::spawn(name, ipc_bytes_echo).expect("spawn");
    let (_, (tx, rx)) = server.accept().expect("accept");
    let rtt = sample_rtts(dur, || {
        tx.send(&[1u8; 8]).expect("send");
        rx.recv().expect("recv");
    });
    drop((tx, rx));
    let _ = child.join();
    rtt
}

// ---- iceoryx2 --------------------------------------------------------------------------

/// Where one bench run keeps iceoryx2's files: (prefix of its /dev/shm entries, root dir).
fn iox_home() -> (String, String) {
    let pid = std::process::id();
    (format!("psbench{pid}_"), format!("/tmp/psbench-iox2-{pid}/"))
}

/// A fresh service name for this run.
fn service_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("procshare-bench/{what}/{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The iceoryx2 settings both sides use: the prefix and root of `home`, no signal handlers.
fn node(home: &(String, String)) -> Node<ipc::Service> {
    iceoryx2::prelude::set_log_level(LogLevel::Error);
    let mut config = Config::default();
    config.global.prefix = FileName::new(home.0.as_bytes()).expect("iceoryx2 prefix");
    config.global.set_root_path(&Path::new(home.1.as_bytes()).expect("iceoryx2 root"));
    NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

type PubSub =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;
type EventService = iceoryx2::service::port_factory::event::PortFactory<ipc::Service>;

/// Creates (in the parent) a byte-slice publish-subscribe service: one publisher, one
/// subscriber, `buffer` samples, the publisher waits when it is full (nothing is dropped).
fn create_pubsub(node: &Node<ipc::Service>, name: &str, buffer: usize) -> PubSub {
    node.service_builder(&name.try_into().expect("service name"))
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(false)
        .create()
        .expect("iceoryx2 service")
}

fn open_pubsub(node: &Node<ipc::Service>, name: &str) -> PubSub {
    node.service_builder(&name.try_into().expect("service name"))
        .publish_subscribe::<[u8]>()
        .open()
        .expect("iceoryx2 open")
}

fn event(node: &Node<ipc::Service>, name: &str) -> EventService {
    node.service_builder(&name.try_into().expect("service name"))
        .event()
        .open_or_create()
        .expect("iceoryx2 event service")
}

fn publisher(
    svc: &PubSub,
    size: usize,
) -> iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()> {
    svc.publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("iceoryx2 publisher")
}

/// The arguments of an iceoryx2 child: home, data service, event service (blocking mode),
/// message size, stop, ready.
type IoxArgs = ((String, String), String, Option<String>, usize, Event, Event);

fn iox_publisher((home, data, ev, size, stop, ready): IoxArgs) {
    let node = node(&home);
    let svc = open_pubsub(&node, &data);
    let publisher = publisher(&svc, size);
    let ev = ev.map(|e| event(&node, &e));
    let notifier = ev.as_ref().map(|e| e.notifier_builder().create().expect("notifier"));
    ready.set();
    let msg = vec![7u8; size];
    while !stop.is_set() {
        for _ in 0..64 {
            let sample = publisher.loan_slice_uninit(size).expect("loan");
            sample.write_from_slice(&msg).send().expect("send");
            if let Some(n) = &notifier {
                n.notify().expect("notify");
            }
        }
    }
}

/// Waits for the next sample (spinning, or on `listener`) and copies it out into `buf`.
fn receive(
    sub: &iceoryx2::port::subscriber::Subscriber<ipc::Service, [u8], ()>,
    listener: Option<&iceoryx2::port::listener::Listener<ipc::Service>>,
    buf: &mut [u8],
    stop: Option<&Event>,
) -> bool {
    let mut spins = 0u32;
    loop {
        if let Some(s) = sub.receive().expect("receive") {
            let p = s.payload();
            buf[..p.len()].copy_from_slice(p);
            return true;
        }
        match listener {
            Some(l) => {
                l.timed_wait(|_| {}, Duration::from_millis(10)).expect("wait");
            }
            None => std::hint::spin_loop(),
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) && stop.is_some_and(|s| s.is_set()) {
            return false;
        }
    }
}

/// Messages/s from an iceoryx2 publisher in a child; `blocking` waits on the event service.
pub fn iox_rate(size: usize, blocking: bool, dur: Duration) -> f64 {
    let home = iox_home();
    let node = node(&home);
    let data = service_name("rate");
    let buffer = if size >= 1 << 20 { 16 } else { 1024 };
    let svc = create_pubsub(&node, &data, buffer);
    let sub = svc.subscriber_builder().buffer_size(buffer).create().expect("subscriber");
    let ev_name = blocking.then(|| service_name("rate-ev"));
    let ev = ev_name.as_deref().map(|e| event(&node, e));
    let listener = ev.as_ref().map(|e| e.listener_builder().create().expect("listener"));
    let (stop, ready) = (Event::new().expect("event"), Event::new().expect("event"));
    let args = (home, data, ev_name, size, stop.clone(), ready.clone());
    let mut child = Process::spawn(args, iox_publisher).expect("spawn");
    let mut buf = vec![0u8; size];
    receive(&sub, listener.as_ref(), &mut buf, None);
    let rate = rate_for(dur, || {
        receive(&sub, listener.as_ref(), &mut buf, None);
    });
    stop.set();
    // Drain until the child is gone: its publisher waits for room in our buffer.
    while child.is_alive() {
        while sub.receive().expect("receive").is_some() {}
        std::thread::yield_now();
    }
    let _ = child.join();
    rate
}

fn iox_echo(
    (home, names, blocking, stop, ready): ((String, String), [String; 4], bool, Event, Event),
) {
    let node = node(&home);
    let ping = open_pubsub(&node, &names[0]);
    let pong = open_pubsub(&node, &names[1]);
    let sub = ping.subscriber_builder().create().expect("subscriber");
    let publisher = publisher(&pong, 8);
    let (ping_ev, pong_ev) = (event(&node, &names[2]), event(&node, &names[3]));
    let listener = blocking.then(|| ping_ev.listener_builder().create().expect("listener"));
    let notifier = blocking.then(|| pong_ev.notifier_builder().create().expect("notifier"));
    ready.set();
    let mut buf = [0u8; 8];
    while receive(&sub, listener.as_ref(), &mut buf, Some(&stop)) {
        publisher.loan_slice_uninit(8).expect("loan").write_from_slice(&buf).send().expect("send");
        if let Some(n) = &notifier {
            n.notify().expect("notify");
        }
    }
}

/// Round trips of 8 bytes through two iceoryx2 services and a child, in µs.
pub fn iox_rtt(blocking: bool, dur: Duration) -> [f64; 2] {
    let home = iox_home();
    let node = node(&home);
    let names = ["ping", "pong", "ping-ev", "pong-ev"].map(service_name);
    let ping = create_pubsub(&node, &names[0], 4);
    let pong = create_pubsub(&node, &names[1], 4);
    let (ping_ev, pong_ev) = (event(&node, &names[2]), event(&node, &names[3]));
    let sub = pong.subscriber_builder().create().expect("subscriber");
    let publisher = publisher(&ping, 8);
    let notifier = blocking.then(|| ping_ev.notifier_builder().create().expect("notifier"));
    let listener = blocking.then(|| pong_ev.listener_builder().create().expect("listener"));
    let (stop, ready) = (Event::new().expect("event"), Event::new().expect("event"));
    let args = (home, names, blocking, stop.clone(), ready.clone());
    let mut child = Process::spawn(args, iox_echo).expect("spawn");
    // Its subscriber must exist before our first ping, or that ping reaches nobody.
    while !ready.wait(Some(Duration::from_millis(100))).expect("wait") {
        assert!(child.is_alive(), "the iceoryx2 echo child died");
    }
    let mut buf = [0u8; 8];
    let rtt = sample_rtts(dur, || {
        publisher
            .loan_slice_uninit(8)
            .expect("loan")
            .write_from_slice(&[1u8; 8])
            .send()
            .expect("send");
        if let Some(n) = &notifier {
            n.notify().expect("notify");
        }
        receive(&sub, listener.as_ref(), &mut buf, None);
    });
    stop.set();
    let _ = child.join();
    rtt
}

/// Removes what iceoryx2 left of this bench run: `/dev/shm` entries under its prefix and its
/// root directory.
pub fn cleanup() {
    let (prefix, root) = iox_home();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(root);
}

/// procspawn's `Pool` (2 workers): `spawn` x 2,000 tiny tasks, then `join` each; tasks/s.
/// Measured in a fresh process (`__bench-child procspawn MS`): procspawn's pool leaves monitor
/// threads behind, and a multithreaded bench could not measure `Fork` afterwards.
pub fn procspawn_pool_rate(dur: Duration) -> f64 {
    let out = std::process::Command::new("/proc/self/exe")
        .args(["__bench-child", "procspawn", &dur.as_millis().max(1).to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(f64::NAN)
        }
        _ => f64::NAN,
    }
}

/// The child side of [`procspawn_pool_rate`]: prints the rate.
pub fn procspawn_child(millis: usize) {
    let dur = Duration::from_millis(millis as u64);
    let pool = procspawn::Pool::new(2).expect("a procspawn pool");
    let per = 2_000u64;
    let start = std::time::Instant::now();
    let mut n = 0;
    while n == 0 || start.elapsed() < dur {
        let hs: Vec<_> = (0..per).map(|x| pool.spawn(x, |x: u64| x * x)).collect();
        for h in hs {
            h.join().expect("a procspawn task");
        }
        n += per;
    }
    println!("{}", n as f64 / start.elapsed().as_secs_f64());
    pool.kill();
}
