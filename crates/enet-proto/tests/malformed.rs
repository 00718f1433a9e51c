//! Malformed and hostile input: never a panic, never a big allocation, and the
//! real connection keeps working afterwards.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use common::*;
use enet_proto::wire::{Command, CommandHeader, Fragment, WireCommand, COMMAND_FLAG_ACKNOWLEDGE};
use enet_proto::{Event, Host, HostConfig, Packet};
use enet_sim::LinkConfig;
use rand::{Rng, SeedableRng};

/// Records the largest single allocation made by this thread while `TRACK` is set
/// on it. Both cells are per thread: the test harness runs tests concurrently, and
/// one test's reset must not hide another test's peak.
struct Tracking;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    // `try_with`: the allocator can run while this thread's locals are torn down.
    if TRACK.try_with(|t| t.get()).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: forwarding to the system allocator that made `ptr`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn tracked<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    TRACK.with(|t| t.set(true));
    let r = f();
    TRACK.with(|t| t.set(false));
    (r, LARGEST.with(|l| l.get()))
}

/// The tracker sees this thread's allocations only, even while another thread
/// allocates far more at the same time.
#[test]
fn allocation_tracking_is_per_thread() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let started = std::sync::Arc::new(AtomicBool::new(false));
    let other = {
        let (stop, started) = (stop.clone(), started.clone());
        std::thread::spawn(move || {
            let (_, largest) = tracked(|| loop {
                std::hint::black_box(vec![0u8; 8 << 20]);
                started.store(true, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::yield_now();
            });
            largest
        })
    };
    // Measure only once the other thread is allocating (on a loaded machine it may not have
    // been scheduled yet, and then there would be nothing to tell apart).
    while !started.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    let (_, mine) = tracked(|| {
        for _ in 0..1000 {
            std::hint::black_box(vec![0u8; 100]);
            std::thread::yield_now();
        }
    });
    stop.store(true, Ordering::Relaxed);
    let theirs = other.join().unwrap();
    assert!((100..1024).contains(&mine), "this thread's peak: {mine}");
    assert!(theirs >= 8 << 20, "the other thread's peak: {theirs}");
}

fn drain(host: &mut Host, now: Instant) -> (usize, Vec<Event>) {
    let mut n = 0;
    while host.poll_transmit(now).is_some() {
        n += 1;
    }
    let mut events = Vec::new();
    while let Some(e) = host.poll_event() {
        events.push(e);
    }
    (n, events)
}

#[test]
fn truncated_and_garbage_headers_are_dropped() {
    let now = Instant::now();
    let mut host = Host::new(HostConfig::default(), now).unwrap();
    let from = addr(CLIENT);
    let cases: &[&[u8]] = &[
        &[],
        &[0x8f],
        &[0x8f, 0xff],                               // no sentTime although flagged
        &[0x8f, 0xff, 0x00],                         // truncated sentTime
        &[0x0f, 0xff, 0x82],                         // truncated command header
        &[0x0f, 0xff, 0x82, 0xff, 0x00, 0x01, 0x00], // truncated CONNECT
        &[0x0f, 0xff, 0x00, 0x00, 0x00, 0x00],       // command 0 (NONE)
        &[0x0f, 0xff, 0x0d, 0x00, 0x00, 0x00],       // command 13 (unknown)
        &[0x0f, 0xff, 0x0f, 0xff, 0xff, 0xff],       // command 15
        &[0x00, 0x05, 0x01, 0x02],                   // peer 5 not in use
        &[0x0f, 0xfe, 0x01, 0x02],                   // peer 4094 out of range
        &[0x4f, 0xff, 0x12, 0x34],                   // compressed without compressor
    ];
    for case in cases {
        host.handle_datagram(now, from, case);
    }
    host.handle_datagram(now, from, &vec![0u8; 5000]);
    let (sent, events) = drain(&mut host, now);
    assert_eq!(sent, 0);
    assert!(events.is_empty());
    assert!(host.stats().datagrams_dropped >= 5);
    assert_eq!(
        host.peers()
            .filter(|p| p.state() != enet_proto::PeerState::Disconnected)
            .count(),
        0
    );
}

#[test]
fn connect_without_sent_time_is_not_acknowledged() {
    let now = Instant::now();
    let mut host = Host::new(HostConfig::default(), now).unwrap();
    // A CONNECT with a lying channel count (0) and one with 1000 channels.
    for channels in [0u32, 1000] {
        let mut d = vec![0x8f, 0xff, 0x00, 0x01];
        WireCommand {
            header: CommandHeader::new(Command::CONNECT | COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 1),
            command: Command::Connect(enet_proto::wire::Connect {
                channel_count: channels,
                mtu: 1400,
                ..Default::default()
            }),
        }
        .emit(&mut d);
        host.handle_datagram(now, addr(CLIENT), &d);
    }
    let (sent, _) = drain(&mut host, now);
    assert_eq!(sent, 0);
}

/// Connected pair plus the raw header bytes the client uses to reach the server.
fn connected_pair(seed: u64) -> (enet_sim::Sim<Node>, enet_proto::PeerId, [u8; 2]) {
    let mut sim = pair(
        seed,
        LinkConfig::with_latency(Duration::from_millis(2)),
        HostConfig::default(),
        HostConfig::default(),
    );
    let (sp, cp) = connect(&mut sim, 2, 0);
    // Header field the client uses: the server's peer id plus the session.
    let server_peer_id = sp.index() as u16;
    let session = {
        let t = sim.now();
        let d = {
            sim.nodes[1]
                .host
                .send(cp, 0, Packet::reliable(b"probe".to_vec()))
                .unwrap();
            sim.nodes[1].host.poll_transmit(t).unwrap().data
        };
        // Deliver it so the server stays consistent.
        let now = sim.now();
        sim.nodes[0].host.handle_datagram(now, addr(CLIENT), &d);
        u16::from_be_bytes([d[0], d[1]]) & 0x3000
    };
    let field = (server_peer_id | session).to_be_bytes();
    (sim, cp, field)
}

fn datagram(field: [u8; 2], sent_time: u16, cmds: &[WireCommand<'_>]) -> Vec<u8> {
    let mut d = vec![field[0] | 0x80, field[1]];
    d.extend_from_slice(&sent_time.to_be_bytes());
    for c in cmds {
        c.emit(&mut d);
    }
    d
}

#[test]
fn lying_fragments_are_rejected_without_big_allocations() {
    let (mut sim, cp, field) = connected_pair(21);
    let now = sim.now();
    let frag = |count: u32, number: u32, total: u32, offset: u32, seq: u16, data: &'static [u8]| {
        WireCommand {
            header: CommandHeader::new(Command::SEND_FRAGMENT | COMMAND_FLAG_ACKNOWLEDGE, 0, seq),
            command: Command::SendFragment(Fragment {
                start_sequence_number: seq,
                fragment_count: count,
                fragment_number: number,
                total_length: total,
                fragment_offset: offset,
                data,
            }),
        }
    };
    let ufrag =
        |count: u32, number: u32, total: u32, offset: u32, data: &'static [u8]| WireCommand {
            header: CommandHeader::new(Command::SEND_UNRELIABLE_FRAGMENT, 1, 0),
            command: Command::SendUnreliableFragment(Fragment {
                start_sequence_number: 1,
                fragment_count: count,
                fragment_number: number,
                total_length: total,
                fragment_offset: offset,
                data,
            }),
        };
    // Lies that are rejected outright: they must not disturb the connection.
    let rejected = vec![
        // Claims 32 MiB in one fragment of 10 bytes.
        datagram(field, 1, &[frag(1, 0, 32 << 20, 0, 2, b"0123456789")]),
        // Fragment number >= count, offset >= total, data longer than the rest.
        datagram(field, 3, &[frag(4, 4, 4000, 0, 4, b"x")]),
        datagram(field, 4, &[frag(4, 1, 4000, 4000, 5, b"x")]),
        datagram(field, 5, &[frag(4, 1, 4000, 3999, 6, b"xy")]),
        // Count larger than the maximum.
        datagram(field, 6, &[frag((1 << 20) + 1, 0, 32 << 20, 0, 7, b"x")]),
        // Empty fragment.
        datagram(field, 7, &[frag(2, 0, 3000, 0, 8, b"")]),
        datagram(field, 8, &[ufrag(1, 0, 32 << 20, 0, b"0123456789")]),
        // A second fragment that disagrees with the first one's totals.
        datagram(
            field,
            10,
            &[
                frag(3, 0, 3000, 0, 20, &[b'a'; 1000]),
                frag(3, 1, 2999, 1000, 20, &[b'b'; 1000]),
            ],
        ),
        // Fragments that do not sit in the slot their number gives (C ENet's
        // layout: fragment n starts at n * length), or are shorter than any
        // C ENet sender makes them.
        datagram(field, 14, &[frag(3, 1, 3000, 999, 30, &[b'c'; 1000])]),
        datagram(field, 15, &[frag(3, 2, 3000, 2000, 31, &[b'c'; 999])]),
        datagram(field, 16, &[frag(6, 0, 3000, 0, 32, &[b'c'; 500])]),
        datagram(field, 17, &[frag(4, 0, 3000, 0, 33, &[b'c'; 1000])]),
        // Payload length field beyond the datagram end.
        {
            let mut d = datagram(field, 11, &[]);
            d.extend_from_slice(&[0x86, 0x00, 0x00, 0x09, 0xff, 0xff, 1, 2, 3]);
            d
        },
        // Bogus session id and bogus peer id.
        {
            let mut d = datagram(field, 12, &[]);
            d[0] ^= 0x10;
            d.extend_from_slice(&[0x85, 0xff, 0x00, 0x09]);
            d
        },
        {
            let mut d = datagram([0x00, 0x1f], 13, &[]);
            d.extend_from_slice(&[0x85, 0xff, 0x00, 0x09]);
            d
        },
    ];
    // Huge claims (1 Mi fragments, 32 MiB) whose fragments do not fit the
    // layout they claim: refused before any buffer is allocated.
    let claims = vec![
        datagram(
            field,
            2,
            &[frag(1 << 20, 999_999, 32 << 20, 31 << 20, 3, b"abc")],
        ),
        datagram(field, 9, &[ufrag(1 << 20, 5, 32 << 20, 100, b"abc")]),
    ];
    let sp = sim.nodes[0]
        .host
        .peers()
        .find(|p| p.address() == addr(CLIENT))
        .unwrap()
        .id();
    let server = &mut sim.nodes[0];
    while server.host.poll_event().is_some() {}
    let (_, largest) = tracked(|| {
        for d in &rejected {
            server.host.handle_datagram(now, addr(CLIENT), d);
        }
    });
    assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
    // Only the honest first fragment of the disagreeing pair waits for its siblings
    // (its 3000-byte buffer, the bitmap and the per-command bookkeeping charge).
    let buffered = server.host.peer(sp).unwrap().stats().incoming_buffered;
    assert!((3000..3200).contains(&buffered), "{buffered}");
    while server.host.poll_event().is_some() {}
    server.events.clear();

    // The connection still works.
    sim.nodes[1]
        .host
        .send(cp, 1, Packet::reliable(b"after".to_vec()))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().iter().any(|(_, d)| d == b"after")));
    assert_eq!(
        sim.nodes[0].received().len(),
        1,
        "only the real packet is delivered"
    );

    let now = sim.now();
    let server = &mut sim.nodes[0];
    let (_, largest) = tracked(|| {
        for d in &claims {
            server.host.handle_datagram(now, addr(CLIENT), d);
        }
    });
    assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
    let stats = server.host.peer(sp).unwrap().stats();
    assert_eq!(stats.incoming_buffered, buffered, "{stats:?}");
    assert_eq!(stats.incomplete_bytes, 3000 + 8, "{stats:?}");
    assert!(server.host.poll_event().is_none());
}

#[test]
fn floods_of_empty_commands_hit_the_waiting_data_cap() {
    let now = Instant::now();
    let mut server = Host::new(
        HostConfig {
            maximum_waiting_data: 64 * 1024,
            ..HostConfig::default()
        },
        now,
    )
    .unwrap();
    let mut client = Host::new(HostConfig::default(), now).unwrap();
    client.connect(now, addr(SERVER), 1, 0).unwrap();
    for _ in 0..4 {
        while let Some(t) = client.poll_transmit(now) {
            server.handle_datagram(now, addr(CLIENT), &t.data);
        }
        while let Some(t) = server.poll_transmit(now) {
            client.handle_datagram(now, addr(SERVER), &t.data);
        }
    }
    while server.poll_event().is_some() {}
    let sp = server
        .peers()
        .find(|p| p.address() == addr(CLIENT))
        .unwrap()
        .id();
    let field = (sp.index() as u16).to_be_bytes();
    // Empty unreliable commands for a future reliable sequence number: they can
    // only be buffered, never delivered, so the cap must stop them.
    let mut seq = 0u16;
    for _ in 0..2000 {
        let cmds: Vec<WireCommand<'_>> = (0..30)
            .map(|_| {
                seq = seq.wrapping_add(1);
                WireCommand {
                    header: CommandHeader::new(Command::SEND_UNRELIABLE, 0, 100),
                    command: Command::SendUnreliable {
                        unreliable_sequence_number: seq,
                        data: &[],
                    },
                }
            })
            .collect();
        let d = datagram(field, 1, &cmds);
        server.handle_datagram(now, addr(CLIENT), &d);
    }
    let stats = server.peer(sp).unwrap().stats();
    // About 1000 of the 60 000 commands were buffered (64 B each), then refused.
    assert!(
        (60 * 1024..=64 * 1024 + 64).contains(&stats.incoming_buffered),
        "{stats:?}"
    );
    assert!(server.poll_event().is_none());
}

#[test]
fn random_garbage_never_panics() {
    let (mut sim, cp, field) = connected_pair(22);
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let now = sim.now();
    let (_, largest) = tracked(|| {
        for i in 0..8_000 {
            let len = rng.gen_range(0..1500);
            let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Half of them carry a valid header so they reach the command parser.
            if i % 2 == 0 && d.len() >= 4 {
                d[0] = field[0] | 0x80;
                d[1] = field[1];
                // Mostly valid command numbers.
                if d.len() > 4 {
                    d[4] = (d[4] & 0xC0) | rng.gen_range(1..13);
                }
            }
            sim.nodes[0].host.handle_datagram(now, addr(CLIENT), &d);
            while sim.nodes[0].host.poll_transmit(now).is_some() {}
            while sim.nodes[0].host.poll_event().is_some() {}
        }
    });
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    // The client may have been disconnected by a forged DISCONNECT; if not, it works.
    if sim.nodes[0].host.stats().connected_peers == 1 {
        sim.nodes[1]
            .host
            .send(cp, 0, Packet::reliable(b"still".to_vec()))
            .unwrap();
        let t = sim.now() + Duration::from_secs(5);
        sim.run_until(t, |_| false);
    }
}

#[test]
fn wire_parser_never_panics_on_random_bytes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..100_000 {
        let len = rng.gen_range(0..64);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if !d.is_empty() {
            d[0] = (d[0] & 0xF0) | rng.gen_range(0..16);
        }
        if let Ok((cmd, used)) = WireCommand::parse(&d) {
            assert!(used <= d.len());
            let mut out = Vec::new();
            cmd.emit(&mut out);
            assert_eq!(out, d[..used]);
        }
        let _ = enet_proto::wire::Datagram::parse(&d, rng.gen());
    }
}
