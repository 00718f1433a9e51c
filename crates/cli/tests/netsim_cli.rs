//! `enet-dtls netsim`: a real-time UDP relay with the simulator's link model.
//!
//! * an ENet session (our `EnetHost` client, `enet-dtls enet-echo` server) through netsim with
//!   10% loss and 20 ms delay each way: every reliable message comes back, in order;
//! * the counters: a seeded run's loss and duplication counts agree with what the sink
//!   received, lie within a statistical bound of the asked probabilities, and the same seed
//!   gives the same counts;
//! * several clients get several upstream sockets (the server sees distinct sources);
//! * bad arguments are refused with a message naming the argument.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, listening_addr, Proc};
use enet_dtls::enet::EnetHost;
use enet_proto::{Event, HostConfig, Packet};

const LINE_WAIT: Duration = Duration::from_secs(10);

fn netsim(forward: SocketAddr, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.args(["netsim", "--listen", "127.0.0.1:0", "--forward"])
        .arg(forward.to_string())
        .args(extra);
    let mut p = Proc::spawn("netsim", cmd);
    let addr = listening_addr(&p.expect_line("LISTENING", LINE_WAIT));
    assert_ne!(addr.port(), 0, "LISTENING prints the real port");
    (p, addr)
}

fn signal(p: &Proc, name: &str) {
    let st = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(p.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{name} failed");
}

/// Stops netsim with `sig` and returns its counters: `"up.lost"` → n, `"clients"` → n, ...
fn stop(mut p: Proc, sig: &str) -> HashMap<String, u64> {
    signal(&p, sig);
    assert_eq!(p.wait(LINE_WAIT), Some(0), "netsim exits 0 on {sig}");
    let mut counters = HashMap::new();
    for line in p.drain() {
        let Some(rest) = line.strip_prefix("NETSIM ") else {
            continue;
        };
        let mut words = rest.split_whitespace().peekable();
        let prefix = match words.peek() {
            Some(&d @ ("up" | "down")) => {
                words.next();
                format!("{d}.")
            }
            _ => String::new(),
        };
        for kv in words {
            let (k, v) = kv.split_once('=').expect("key=value");
            counters.insert(format!("{prefix}{k}"), v.parse().expect("a count"));
        }
    }
    for key in ["up.received", "down.received", "up.lost", "clients", "seed"] {
        assert!(counters.contains_key(key), "no {key} in {:?}", p.seen);
    }
    counters
}

#[test]
fn an_enet_session_survives_ten_percent_loss_and_20_ms_delay() {
    let mut echo_cmd = Command::new(bin());
    echo_cmd.args(["enet-echo", "--listen", "127.0.0.1:0"]);
    let mut echo = Proc::spawn("enet-echo", echo_cmd);
    let server = listening_addr(&echo.expect_line("LISTENING", LINE_WAIT));
    let (relay, relay_addr) = netsim(server, &["--loss", "0.1", "--delay", "20", "--seed", "11"]);

    let mut client = EnetHost::bind(
        "127.0.0.1:0",
        HostConfig {
            peer_limit: 1,
            channel_limit: 2,
            ..HostConfig::default()
        },
    )
    .expect("bind the client");
    let peer = client.connect(relay_addr, 2, 0).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no connect through netsim");
        if let Some(Event::Connect { .. }) = client.service(Duration::from_millis(100)).unwrap() {
            break;
        }
    }
    // Numbered messages of varied sizes, one of them fragmented (8 KiB), sent in bursts so
    // that many are in flight at once over the lossy link.
    const COUNT: u32 = 300;
    let message = |n: u32| -> Vec<u8> {
        let len = if n == 150 {
            8192
        } else {
            4 + (n as usize * 7) % 200
        };
        let mut m = n.to_be_bytes().to_vec();
        m.extend((4..len).map(|i| (i as u32 ^ n) as u8));
        m
    };
    let mut sent = 0;
    let mut next = 0;
    let mut last: [Option<u32>; 2] = [None, None];
    while next < COUNT {
        assert!(
            Instant::now() < deadline,
            "only {next} of {COUNT} echoes within the deadline"
        );
        while sent < COUNT && sent - next < 32 {
            client
                .send(peer, (sent % 2) as u8, Packet::reliable(message(sent)))
                .expect("send");
            sent += 1;
        }
        match client.service(Duration::from_millis(100)).unwrap() {
            Some(Event::Receive {
                packet, channel, ..
            }) => {
                let n = u32::from_be_bytes(packet.data[..4].try_into().unwrap());
                assert_eq!(packet.data, message(n), "echo {n} intact");
                // Two channels, each in order; across channels echoes may interleave.
                assert_eq!(n % 2, u32::from(channel), "echo {n} on its channel");
                let expected = last[usize::from(channel)].map_or(u32::from(channel), |l| l + 2);
                assert_eq!(n, expected, "channel {channel} in order");
                last[usize::from(channel)] = Some(n);
                next += 1;
            }
            Some(Event::Disconnect { reason, .. }) => panic!("disconnected: {reason:?}"),
            _ => {}
        }
    }
    client.disconnect(peer, 0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Some(Event::Disconnect { .. }) = client.service(Duration::from_millis(50)).unwrap() {
            break;
        }
    }
    let c = stop(relay, "INT");
    assert_eq!(c["clients"], 1, "{c:?}");
    // Loss really happened (hundreds of datagrams at 10%), and ENet repaired it.
    assert!(c["up.lost"] > 0 && c["down.lost"] > 0, "{c:?}");
    assert!(c["up.lost"] < c["up.received"], "{c:?}");
    drop(echo);
}

#[test]
fn reliable_messages_on_one_channel_arrive_in_order_through_loss() {
    let mut echo_cmd = Command::new(bin());
    echo_cmd.args(["enet-echo", "--listen", "127.0.0.1:0"]);
    let mut echo = Proc::spawn("enet-echo", echo_cmd);
    let server = listening_addr(&echo.expect_line("LISTENING", LINE_WAIT));
    let (relay, relay_addr) = netsim(
        server,
        &[
            "--loss", "0.1", "--delay", "20", "--jitter", "5", "--seed", "5",
        ],
    );
    let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default()).expect("bind");
    let peer = client.connect(relay_addr, 1, 0).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no connect through netsim");
        if let Some(Event::Connect { .. }) = client.service(Duration::from_millis(100)).unwrap() {
            break;
        }
    }
    const COUNT: u32 = 500;
    for n in 0..COUNT {
        client
            .send(peer, 0, Packet::reliable(n.to_be_bytes().to_vec()))
            .expect("send");
    }
    let mut got = Vec::new();
    while got.len() < COUNT as usize {
        assert!(
            Instant::now() < deadline,
            "only {} of {COUNT} echoes within the deadline",
            got.len()
        );
        match client.service(Duration::from_millis(100)).unwrap() {
            Some(Event::Receive { packet, .. }) => {
                got.push(u32::from_be_bytes(packet.data[..].try_into().unwrap()));
            }
            Some(Event::Disconnect { reason, .. }) => panic!("disconnected: {reason:?}"),
            _ => {}
        }
    }
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>(), "every echo, in order");
    let c = stop(relay, "TERM");
    assert!(c["up.lost"] + c["down.lost"] > 0, "{c:?}");
    drop(echo);
}

/// Sends `n` numbered datagrams through a fresh netsim to a sink, paced so that no socket
/// buffer overflows; returns the counters and how many copies the sink received.
fn counted_run(n: u32, extra: &[&str]) -> (HashMap<String, u64>, u64) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (relay, relay_addr) = netsim(sink.local_addr().unwrap(), extra);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut copies = 0u64;
        // Ends 300 ms after the last datagram (the relay adds no delay here).
        while sink.recv(&mut buf).is_ok() {
            copies += 1;
        }
        copies
    });
    for i in 0..n {
        client.send_to(&i.to_be_bytes(), relay_addr).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let copies = reader.join().unwrap();
    (stop(relay, "INT"), copies)
}

#[test]
fn counters_match_the_sink_and_the_asked_probabilities() {
    const N: u32 = 4000;
    let args = ["--loss", "0.2", "--dup", "0.1", "--seed", "42"];
    let (c, copies) = counted_run(N, &args);
    assert_eq!(c["up.received"], u64::from(N), "{c:?}");
    assert_eq!(c["seed"], 42);
    assert_eq!(c["clients"], 1);
    // What left the relay is what the sink got: received - lost + duplicated.
    assert_eq!(
        c["up.delivered"],
        c["up.received"] - c["up.lost"] + c["up.duplicated"],
        "{c:?}"
    );
    assert_eq!(
        copies, c["up.delivered"],
        "the sink got every delivered copy"
    );
    // Binomial bounds, 5 standard deviations (a seeded run, so this never flickers).
    let within = |count: u64, trials: f64, p: f64, what: &str| {
        let mean = trials * p;
        let sd = (trials * p * (1.0 - p)).sqrt();
        assert!(
            (count as f64 - mean).abs() <= 5.0 * sd,
            "{what}: {count}, expected {mean:.0} ± {:.0}",
            5.0 * sd
        );
    };
    within(c["up.lost"], f64::from(N), 0.2, "lost");
    within(
        c["up.duplicated"],
        (u64::from(N) - c["up.lost"]) as f64,
        0.1,
        "duplicated",
    );
    // Nothing came back from the sink.
    assert_eq!(c["down.received"], 0);

    // The same seed and the same traffic: the same impairments.
    let (again, _) = counted_run(N, &args);
    for key in ["up.lost", "up.duplicated", "up.delivered"] {
        assert_eq!(again[key], c[key], "{key} with seed 42, twice");
    }
}

#[test]
fn each_client_gets_its_own_upstream_socket() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (relay, relay_addr) = netsim(server.local_addr().unwrap(), &[]);
    let clients: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    let mut sources = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(&[i as u8], relay_addr).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = server.recv_from(&mut buf).expect("relayed");
        assert_eq!(&buf[..n], &[i as u8]);
        sources.push(from);
        // The reply goes back to the client that sent it, from the relay's listening port.
        server.send_to(&[100 + i as u8], from).unwrap();
        let (n, back_from) = c.recv_from(&mut buf).expect("reply relayed back");
        assert_eq!((&buf[..n], back_from), (&[100 + i as u8][..], relay_addr));
    }
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 3, "three clients, three upstream sources");
    let c = stop(relay, "TERM");
    assert_eq!(
        (c["clients"], c["up.received"], c["down.received"]),
        (3, 3, 3)
    );
}

#[test]
fn bad_arguments_are_refused_with_what_and_why() {
    for (args, needle) in [
        (&["--loss", "1.5"][..], "from 0 to 1"),
        (&["--dup", "-0.1"][..], "from 0 to 1"),
        (&["--delay", "-3"][..], "milliseconds"),
        (&["--jitter", "600000"][..], "milliseconds"),
        (&["--rate", "0"][..], "--rate"),
    ] {
        let out = Command::new(bin())
            .args([
                "netsim",
                "--listen",
                "127.0.0.1:0",
                "--forward",
                "127.0.0.1:9",
            ])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(args[0]) && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    for (forward, needle) in [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:0", "port 0"),
        ("0.0.0.0:9", "unspecified"),
    ] {
        let out = Command::new(bin())
            .args(["netsim", "--listen", "127.0.0.1:0", "--forward", forward])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--forward {forward} refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--forward") && err.contains(needle),
            "{forward}: {err}"
        );
    }
}

/// A C ENet 1.3 program through netsim: the interop client (`enet_peer.c client`, the full
/// scenario: every kind of packet, a fragmented 1 MiB one, 10,000 ordered ones) against our
/// `enet-echo` over a link with 10 ms of delay and 5% duplicates each way (no loss, no
/// jitter: the scenario expects every unreliable echo too, and ENet drops an unreliable
/// packet that a later one overtook).
#[test]
fn a_c_enet_client_runs_its_scenario_through_netsim() {
    let Some(c_peer) = common::build_c_enet_program("tests/enet_peers/enet_peer.c") else {
        return;
    };
    let mut echo_cmd = Command::new(bin());
    echo_cmd.args(["enet-echo", "--listen", "127.0.0.1:0"]);
    let mut echo = Proc::spawn("enet-echo", echo_cmd);
    let server = listening_addr(&echo.expect_line("LISTENING", LINE_WAIT));
    let (relay, relay_addr) = netsim(server, &["--delay", "10", "--dup", "0.05", "--seed", "3"]);
    let mut client_cmd = Command::new(c_peer);
    client_cmd.args([
        "client".to_string(),
        relay_addr.ip().to_string(),
        relay_addr.port().to_string(),
    ]);
    let mut client = Proc::spawn("enet_peer.c client", client_cmd);
    for step in [
        "CONNECTED channels=4",
        "OK basic 48",
        "OK big 1048576",
        "OK ordered 10000",
        "DISCONNECTED",
        "PASS",
    ] {
        client.expect_line(step, Duration::from_secs(120));
    }
    assert_eq!(client.wait(LINE_WAIT), Some(0), "{:?}", client.seen);
    let c = stop(relay, "INT");
    assert_eq!(c["clients"], 1);
    assert!(c["up.duplicated"] > 0 && c["down.duplicated"] > 0, "{c:?}");
    drop(echo);
}
