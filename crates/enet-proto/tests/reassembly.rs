//! Fragment reassembly under attack: a connected peer that sends fragments of
//! packets it never completes must not make the host hold more than the packets'
//! total lengths, within the per-peer and host-wide budgets, and the memory goes
//! when the peer goes. Another peer keeps exchanging packets meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use enet_proto::wire::{Command, CommandHeader, Fragment, WireCommand, COMMAND_FLAG_ACKNOWLEDGE};
use enet_proto::{DisconnectReason, Event, HostConfig, Packet, PeerId};
use enet_sim::{LinkConfig, Network, Sim};

/// Counts the bytes this thread holds (allocated minus freed) while `TRACK` is
/// set on it, and their peak. Per thread, so concurrent tests do not mix.
struct LiveBytes;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    if TRACK.try_with(|t| t.get()).unwrap_or(false) {
        let _ = LIVE.try_with(|l| {
            let now = l.get() + delta;
            l.set(now);
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        });
    }
}

unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        // SAFETY: forwarding to the system allocator that made `ptr`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

/// Runs `f` with this thread's allocations counted from zero; returns the peak
/// of the bytes held (allocated and not yet freed) during it.
fn peak_live_bytes(f: impl FnOnce()) -> isize {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    f();
    TRACK.with(|t| t.set(false));
    PEAK.with(|p| p.get())
}

const ATTACKER: &str = "127.0.0.1:40000";
const LEGIT: &str = "127.0.0.2:40001";

/// The attack of the issue: 1 MiB claimed in 1,048,576 fragments.
const TOTAL: u32 = 1 << 20;
const CLAIMED_COUNT: u32 = 1 << 20;
/// The largest fragment a datagram of the maximum MTU carries.
const PIECE: usize = 4068;

/// Server (node 0), attacker (node 1) and a legitimate client from another
/// address (node 2), both connected.
struct Scene {
    sim: Sim<Node>,
    /// The attacker's peer on the client side, and the header field (peer id and
    /// session) its datagrams carry.
    attacker: PeerId,
    field: u16,
    /// The server's peer for the attacker.
    attacker_on_server: PeerId,
    /// The legitimate client's peer on its own side.
    legit: PeerId,
}

fn scene(seed: u64, server: HostConfig) -> Scene {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(LinkConfig::with_latency(Duration::from_millis(2)));
    let mut sim = Sim::new(net);
    sim.nodes.push(Node::new(addr(SERVER), server, start));
    for (a, s) in [(ATTACKER, 11), (LEGIT, 12)] {
        let config = HostConfig {
            seed: s,
            ..HostConfig::default()
        };
        sim.nodes.push(Node::new(addr(a), config, start));
    }
    let attacker = sim.nodes[1]
        .host
        .connect(start, addr(SERVER), 16, 0)
        .unwrap();
    let legit = sim.nodes[2]
        .host
        .connect(start, addr(SERVER), 2, 0)
        .unwrap();
    let ok = sim.run_until(start + Duration::from_secs(10), |n| {
        n[0].connected().len() == 2 && !n[1].connected().is_empty() && !n[2].connected().is_empty()
    });
    assert!(ok, "peers did not connect");
    let attacker_on_server = sim.nodes[0]
        .host
        .peers()
        .find(|p| p.address() == addr(ATTACKER))
        .unwrap()
        .id();
    // A real datagram of the attacker tells the header bits the server expects.
    let now = sim.now();
    sim.nodes[1]
        .host
        .send(attacker, 0, Packet::reliable(b"probe".to_vec()))
        .unwrap();
    let probe = sim.nodes[1].host.poll_transmit(now).unwrap().data;
    sim.nodes[0]
        .host
        .handle_datagram(now, addr(ATTACKER), &probe);
    let field = u16::from_be_bytes([probe[0], probe[1]]) & 0x3FFF;
    sim.run_for(Duration::from_millis(50));
    Scene {
        sim,
        attacker,
        field,
        attacker_on_server,
        legit,
    }
}

/// One datagram with one fragment command (reliable or unreliable).
#[allow(clippy::too_many_arguments)]
fn fragment_datagram(
    field: u16,
    reliable: bool,
    channel: u8,
    start: u16,
    count: u32,
    number: u32,
    total: u32,
    offset: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut d = (field | 0x8000).to_be_bytes().to_vec();
    d.extend_from_slice(&1u16.to_be_bytes());
    // Reliable: sequence 2 and up (the probe took 1 on channel 0).
    let start = if reliable { start.max(2) } else { start };
    let f = Fragment {
        start_sequence_number: start,
        fragment_count: count,
        fragment_number: number,
        total_length: total,
        fragment_offset: offset,
        data,
    };
    let cmd = if reliable {
        WireCommand {
            header: CommandHeader::new(
                Command::SEND_FRAGMENT | COMMAND_FLAG_ACKNOWLEDGE,
                channel,
                start,
            ),
            command: Command::SendFragment(f),
        }
    } else {
        // Unreliable: the reliable sequence number of the channel (nothing
        // reliable received on it yet: 0), the start is the unreliable one.
        WireCommand {
            header: CommandHeader::new(Command::SEND_UNRELIABLE_FRAGMENT, channel, 0),
            command: Command::SendUnreliableFragment(f),
        }
    };
    cmd.emit(&mut d);
    d
}

/// Feeds `n` attack datagrams made by `make(i)` straight into the server, in
/// batches between which the simulation runs (acknowledgements go out, the
/// legitimate client keeps talking). Checks the host's stat after every batch
/// and returns the peak of the bytes the server held while handling them.
fn flood(s: &mut Scene, n: u32, bound: usize, make: impl Fn(u32) -> Vec<u8>) -> isize {
    let from: SocketAddr = addr(ATTACKER);
    let mut peak = 0;
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + 2000).min(n)).map(&make).collect();
        i += batch.len() as u32;
        let now = s.sim.now();
        let server = &mut s.sim.nodes[0].host;
        peak = peak.max(peak_live_bytes(|| {
            for d in &batch {
                server.handle_datagram(now, from, d);
            }
        }));
        let stats = server.stats();
        assert!(stats.incomplete_bytes <= bound, "after {i}: {stats:?}");
        s.sim.run_for(Duration::from_millis(1));
    }
    peak
}

/// The legitimate client sends a fragmented reliable packet and a small one;
/// both must arrive intact at the server.
fn legit_exchange(s: &mut Scene, tag: u8) {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i as u8) ^ tag).collect();
    let small = vec![tag; 10];
    let host = &mut s.sim.nodes[2].host;
    host.send(s.legit, 0, Packet::reliable(big.clone()))
        .unwrap();
    host.send(s.legit, 1, Packet::reliable(small.clone()))
        .unwrap();
    let t = s.sim.now() + Duration::from_secs(10);
    assert!(
        s.sim.run_until(t, |n| {
            let got = n[0].received();
            got.contains(&(0, big.clone())) && got.contains(&(1, small.clone()))
        }),
        "the legitimate client's packets did not arrive intact"
    );
}

fn assert_released(s: &Scene) {
    let stats = s.sim.nodes[0].host.stats();
    assert_eq!(stats.incomplete_bytes, 0, "{stats:?}");
    assert_eq!(stats.incoming_buffered, 0, "{stats:?}");
}

/// The attack as reported: 1 MiB claimed in 1,048,576 fragments, every one at
/// offset 0 with 4,068 bytes and its own fragment number. No fragment of it sits
/// where its number says, so nothing is buffered at all.
fn overlapping_flood(reliable: bool) {
    let mut s = scene(if reliable { 1 } else { 2 }, HostConfig::default());
    let field = s.field;
    let piece = vec![0xA5u8; PIECE];
    let peak = flood(&mut s, 300_000, TOTAL as usize, |i| {
        fragment_datagram(field, reliable, 1, 1, CLAIMED_COUNT, i, TOTAL, 0, &piece)
    });
    assert!(
        peak <= TOTAL as isize,
        "the server held up to {peak} bytes for a {TOTAL}-byte packet"
    );
    let stats = s.sim.nodes[0].host.stats();
    assert_eq!(stats.incomplete_bytes, 0, "{stats:?}");
    assert!(
        s.sim.nodes[0]
            .host
            .peer(s.attacker_on_server)
            .unwrap()
            .state()
            == enet_proto::PeerState::Connected
    );
    legit_exchange(&mut s, 1);
}

#[test]
fn overlapping_reliable_fragments_hold_nothing() {
    overlapping_flood(true);
}

#[test]
fn overlapping_unreliable_fragments_hold_nothing() {
    overlapping_flood(false);
}

/// The same flood with a layout that fits (258 fragments of 4,068 bytes make
/// 1 MiB), every fragment but the last sent again and again: the server holds
/// the packet's buffer, once, and nothing more; duplicates are ignored. The
/// memory goes when the attacker disconnects.
fn never_completing_flood(reliable: bool) {
    let mut s = scene(if reliable { 3 } else { 4 }, HostConfig::default());
    let field = s.field;
    let count = TOTAL.div_ceil(PIECE as u32);
    let piece = vec![0x5Au8; PIECE];
    let held = TOTAL as usize + (count as usize).div_ceil(64) * 8;
    let peak = flood(&mut s, 300_000, held, |i| {
        let number = i % (count - 1);
        fragment_datagram(
            field,
            reliable,
            1,
            1,
            count,
            number,
            TOTAL,
            number * PIECE as u32,
            &piece,
        )
    });
    // One buffer of the total length (plus the command and its bitmap), never a
    // copy per fragment: without the fix this was 300,000 x 4 kB = 1.2 GB.
    assert!(
        peak <= held as isize + 64 * 1024,
        "the server held up to {peak} bytes for a {TOTAL}-byte packet"
    );
    let stats = s.sim.nodes[0].host.stats();
    assert_eq!(stats.incomplete_bytes, held, "{stats:?}");
    legit_exchange(&mut s, 2);
    assert!(s.sim.nodes[0]
        .received()
        .iter()
        .all(|(_, d)| d.len() != TOTAL as usize));

    // The attacker leaves: its buffers go with it.
    s.sim.nodes[1].host.disconnect(s.attacker, 0);
    let t = s.sim.now() + Duration::from_secs(5);
    let server_saw = |n: &mut [Node]| {
        n[0].events
            .iter()
            .any(|e| matches!(e, Event::Disconnect { address, .. } if *address == addr(ATTACKER)))
    };
    assert!(s.sim.run_until(t, server_saw));
    assert_released(&s);
}

#[test]
fn never_completing_reliable_packet_holds_its_total_once() {
    never_completing_flood(true);
}

#[test]
fn never_completing_unreliable_packet_holds_its_total_once() {
    never_completing_flood(false);
}

/// Incomplete packets of an attacker that vanishes are freed when it times out.
#[test]
fn incomplete_packets_are_freed_when_the_peer_times_out() {
    let mut s = scene(5, HostConfig::default());
    let field = s.field;
    let count = TOTAL.div_ceil(PIECE as u32);
    let piece = vec![1u8; PIECE];
    for ch in 0..4u8 {
        let d = fragment_datagram(field, true, ch, 1, count, 0, TOTAL, 0, &piece);
        let now = s.sim.now();
        s.sim.nodes[0].host.handle_datagram(now, addr(ATTACKER), &d);
    }
    let held = s.sim.nodes[0].host.stats().incomplete_bytes;
    assert!(held >= 4 * TOTAL as usize, "{held}");
    // The attacker goes silent: nothing of it reaches the server any more.
    s.sim.net.set_link(
        addr(ATTACKER),
        addr(SERVER),
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    s.sim.net.set_link(
        addr(SERVER),
        addr(ATTACKER),
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    let t = s.sim.now() + Duration::from_secs(60);
    assert!(s.sim.run_until(t, |n| n[0].events.iter().any(|e| matches!(
        e,
        Event::Disconnect { address, reason: DisconnectReason::Timeout, .. } if *address == addr(ATTACKER)
    ))));
    assert_released(&s);
    legit_exchange(&mut s, 3);
}

/// Incomplete packets of many peers together stay within the host-wide budget,
/// each peer within its own, and peers that send ordinary packets keep working
/// while the budget is full. A large packet refused meanwhile (reliable, so
/// retransmitted) gets through once the budget frees up.
#[test]
fn incomplete_packets_are_bounded_per_peer_and_per_host() {
    let config = HostConfig {
        maximum_packet_size: 1 << 20,
        maximum_waiting_data: 3 << 20,
        // Room for two incomplete packets of 1 MiB (buffer plus bitmap).
        maximum_incomplete_data: (2 << 20) + 4096,
        ..HostConfig::default()
    };
    let mut s = scene(6, config);
    let field = s.field;
    let count = TOTAL.div_ceil(PIECE as u32);
    let piece = vec![2u8; PIECE];
    // First fragments of 16 packets of 1 MiB, one per channel: the host keeps two.
    let peak = flood(&mut s, 16, (2 << 20) + 4096, |ch| {
        fragment_datagram(field, true, ch as u8, 1, count, 0, TOTAL, 0, &piece)
    });
    let stats = s.sim.nodes[0].host.stats();
    let one = TOTAL as usize + (count as usize).div_ceil(64) * 8;
    assert_eq!(stats.incomplete_bytes, 2 * one, "{stats:?}");
    assert!(peak <= (2 * one) as isize + 64 * 1024, "{peak}");

    // Small packets of the legitimate client still get through.
    let before = s.sim.nodes[0].received().len();
    s.sim.nodes[2]
        .host
        .send(s.legit, 1, Packet::reliable(b"small".to_vec()))
        .unwrap();
    let t = s.sim.now() + Duration::from_secs(5);
    assert!(s.sim.run_until(t, |n| n[0].received().len() > before));
    // Its large packet waits for room: the attacker leaves, then it arrives.
    let big = vec![9u8; 200_000];
    s.sim.nodes[2]
        .host
        .send(s.legit, 0, Packet::reliable(big.clone()))
        .unwrap();
    s.sim.run_for(Duration::from_millis(500));
    assert!(!s.sim.nodes[0].received().contains(&(0, big.clone())));
    s.sim.nodes[1].host.disconnect(s.attacker, 0);
    let t = s.sim.now() + Duration::from_secs(20);
    assert!(s
        .sim
        .run_until(t, |n| n[0].received().contains(&(0, big.clone()))));
    assert_released(&s);
}

/// The per-peer budget (C ENet's `maximumWaitingData`): tested before a packet is
/// buffered, so one peer holds at most the budget plus one packet.
#[test]
fn one_peer_is_bounded_by_maximum_waiting_data() {
    let config = HostConfig {
        maximum_packet_size: 1 << 20,
        maximum_waiting_data: 2 << 20,
        ..HostConfig::default()
    };
    let mut s = scene(7, config);
    let field = s.field;
    let count = TOTAL.div_ceil(PIECE as u32);
    let piece = vec![3u8; PIECE];
    flood(&mut s, 16, 16 << 20, |ch| {
        fragment_datagram(field, true, ch as u8, 1, count, 0, TOTAL, 0, &piece)
    });
    let peer = s.sim.nodes[0]
        .host
        .peer(s.attacker_on_server)
        .unwrap()
        .stats();
    let one = TOTAL as usize + (count as usize).div_ceil(64) * 8;
    // Two packets: after them the peer holds more than its budget, so no third.
    assert_eq!(peer.incomplete_bytes, 2 * one, "{peer:?}");
    assert!(
        peer.incoming_buffered <= (2 << 20) + (1 << 20) + 4 * 1024,
        "{peer:?}"
    );
    legit_exchange(&mut s, 4);
}
