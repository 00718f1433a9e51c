//! Structured fuzzing of fragment reassembly: a server host with one peer
//! connected in memory receives fuzzer-chosen fragment commands, many of them for
//! the same few packets, so that reassembly (layout checks, duplicates, the bitmap,
//! completion, the per-peer and host-wide budgets, delivery and discarding of
//! unreliable fragments) is reached with many fragments of one packet.
//!
//! Input: a sequence of 8-byte records. Most records describe a fragment of one of
//! four packets whose layout (total length, fragment length) comes from the
//! record, so that fragments fit; a few bits perturb the fields or pick raw values.
//! Every payload byte is a function of its offset in the packet, so any packet
//! that is delivered must hold exactly that pattern: a fragment copied to the wrong
//! place shows up. Checks: no panic, the budgets hold, delivered packets are
//! intact, and everything is freed when the peer is reset.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::wire::{Command, CommandHeader, Fragment, WireCommand, COMMAND_FLAG_ACKNOWLEDGE};
use enet_proto::{Event, Host, HostConfig, PacketFlags, PeerId};
use libfuzzer_sys::fuzz_target;

const SERVER: &str = "127.0.0.1:7777";
const CLIENT: &str = "127.0.0.1:40000";
const MAX_PACKET: usize = 256 * 1024;
const MAX_WAITING: usize = 512 * 1024;
const MAX_INCOMPLETE: usize = 768 * 1024;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn pattern(index: usize) -> u8 {
    (index.wrapping_mul(31).wrapping_add(index >> 8) ^ 0x5A) as u8
}

/// A server with one connected client; returns the server, the header field
/// (peer id + session) the client's datagrams carry, and the time.
fn connected() -> (Host, u16, Instant) {
    let now = Instant::now();
    let mut server = Host::new(
        HostConfig {
            maximum_packet_size: MAX_PACKET,
            maximum_waiting_data: MAX_WAITING,
            maximum_incomplete_data: MAX_INCOMPLETE,
            ..HostConfig::default()
        },
        now,
    )
    .expect("server");
    let mut client = Host::new(
        HostConfig {
            seed: 3,
            ..HostConfig::default()
        },
        now,
    )
    .expect("client");
    client.connect(now, addr(SERVER), 4, 0).expect("connect");
    let mut t = now;
    let mut field = None;
    for _ in 0..8 {
        while let Some(tx) = client.poll_transmit(t) {
            let h = u16::from_be_bytes([tx.data[0], tx.data[1]]) & 0x3FFF;
            if h & 0x0FFF != 0x0FFF {
                field = Some(h);
            }
            server.handle_datagram(t, addr(CLIENT), &tx.data);
        }
        while let Some(tx) = server.poll_transmit(t) {
            client.handle_datagram(t, addr(SERVER), &tx.data);
        }
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        t += Duration::from_millis(5);
    }
    // A client with nothing to say sends nothing: ask for one datagram.
    if field.is_none() {
        client
            .send(PeerId::new(0, 0), 0, enet_proto::Packet::unsequenced(vec![0]))
            .expect("send");
        if let Some(tx) = client.poll_transmit(t) {
            field = Some(u16::from_be_bytes([tx.data[0], tx.data[1]]) & 0x3FFF);
            server.handle_datagram(t, addr(CLIENT), &tx.data);
        }
    }
    (server, field.expect("the client sent a datagram"), t)
}

struct Record<'a>(&'a [u8]);

impl Record<'_> {
    fn u8(&self, i: usize) -> u8 {
        self.0[i]
    }
    fn u16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.0[i], self.0[i + 1]])
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut server, field, now) = connected();
    let server_peer = PeerId::new(field & 0x0FFF, 0);
    let mut scratch = Vec::with_capacity(4096);
    let mut t = now;
    for (n, chunk) in data.chunks_exact(8).take(4096).enumerate() {
        let r = Record(chunk);
        let op = r.u8(0);
        let reliable = op & 1 == 0;
        let channel = (op >> 1) & 3;
        let slot = u16::from((op >> 3) & 3);
        // The packet's layout: fragment length 544..=4068, total up to MAX_PACKET.
        let length = 544 + u32::from(r.u16(1)) % (4068 - 544 + 1);
        let total = 1 + u32::from(r.u16(3)) * 4 % MAX_PACKET as u32;
        let count = total.div_ceil(length);
        let mut number = u32::from(r.u16(5)) % count;
        let mut offset = number * length;
        let mut len = length.min(total - offset);
        let mut count_field = count;
        let mut total_field = total;
        // Perturbations (the high bits of the last byte), rarer than fitting fragments.
        match r.u8(7) >> 5 {
            0 => offset = offset.wrapping_add(u32::from(r.u8(7) & 0x1F)),
            1 => len = len.saturating_sub(u32::from(r.u8(7) & 0x1F)).max(1),
            2 => count_field = count_field.wrapping_add(u32::from(r.u8(7) & 0x1F)),
            3 => total_field = total_field.wrapping_sub(u32::from(r.u8(7) & 0x1F)),
            4 => number = number.wrapping_add(u32::from(r.u8(7) & 0x1F)),
            _ => {}
        }
        let len = len.min(4068) as usize;
        let payload: Vec<u8> = (0..len).map(|i| pattern(offset as usize + i)).collect();
        let start = 2 + slot; // per channel: a few packets in flight
        let f = Fragment {
            start_sequence_number: start,
            fragment_count: count_field,
            fragment_number: number,
            total_length: total_field,
            fragment_offset: offset,
            data: &payload,
        };
        let cmd = if reliable {
            WireCommand {
                header: CommandHeader::new(
                    Command::SEND_FRAGMENT | COMMAND_FLAG_ACKNOWLEDGE,
                    channel,
                    start.wrapping_add(number as u16),
                ),
                command: Command::SendFragment(f),
            }
        } else {
            WireCommand {
                header: CommandHeader::new(Command::SEND_UNRELIABLE_FRAGMENT, channel, 0),
                command: Command::SendUnreliableFragment(f),
            }
        };
        scratch.clear();
        scratch.extend_from_slice(&(field | 0x8000).to_be_bytes());
        scratch.extend_from_slice(&(t.duration_since(now).as_millis() as u16).to_be_bytes());
        cmd.emit(&mut scratch);
        server.handle_datagram(t, addr(CLIENT), &scratch);

        let stats = server.stats();
        assert!(stats.incomplete_bytes <= MAX_INCOMPLETE, "{stats:?}");
        let peer = server.peer(server_peer).expect("peer").stats();
        // C's test-before-buffering: the budget plus one packet and its bookkeeping.
        assert!(
            peer.incoming_buffered <= MAX_WAITING + MAX_PACKET + 4096,
            "{peer:?}"
        );
        while let Some(ev) = server.poll_event() {
            if let Event::Receive { packet, .. } = ev {
                assert!(packet.data.len() <= MAX_PACKET);
                if packet.flags.contains(PacketFlags::RELIABLE)
                    || packet.flags.contains(PacketFlags::UNRELIABLE_FRAGMENT)
                {
                    for (i, b) in packet.data.iter().enumerate() {
                        assert_eq!(*b, pattern(i), "byte {i} of a reassembled packet");
                    }
                }
            }
        }
        if n % 64 == 63 {
            while server.poll_transmit(t).is_some() {}
            t += Duration::from_millis(1);
        }
    }
    // The peer goes: everything it held is freed.
    server.reset_peer(server_peer);
    let stats = server.stats();
    assert_eq!(stats.incomplete_bytes, 0, "{stats:?}");
    assert_eq!(stats.incoming_buffered, 0, "{stats:?}");
});
