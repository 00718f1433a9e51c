//! Receiving datagrams: header checks, decompression, checksum, and one
//! handler per command (C's `enet_protocol_handle_incoming_commands`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, trace, trace_span};

use crate::host::{
    change_state, notify_connect, notify_disconnect, queue_outgoing, reset_peer,
    window_from_bandwidths, zombie, Core, DisconnectReason, Event, Host,
};
use crate::peer::{
    Acknowledgement, Channel, IncomingCommand, OutBody, Peer, Reassembly, FREE_RELIABLE_WINDOWS,
    FREE_UNSEQUENCED_WINDOWS, RELIABLE_WINDOWS, RELIABLE_WINDOW_SIZE, UNSEQUENCED_WINDOW_SIZE,
};
use crate::time;
use crate::wire::{self, Command, CommandHeader, Fragment, WireCommand};
use crate::{Packet, PacketFlags, PeerState};

/// A command handler failed: stop processing the rest of the datagram.
struct CommandError(&'static str);

type Handled = Result<(), CommandError>;

/// Is `seq` inside the receive window that starts at `current` (C's window test)?
fn in_receive_window(seq: u16, current: u16) -> bool {
    let mut window = seq / RELIABLE_WINDOW_SIZE;
    let current_window = current / RELIABLE_WINDOW_SIZE;
    if seq < current {
        window += RELIABLE_WINDOWS;
    }
    !(window < current_window || window >= current_window + FREE_RELIABLE_WINDOWS - 1)
}

fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

/// Do two addresses count as one source for `duplicate_peers`? IPv4: the same
/// address (C ENet's rule). IPv6: the same /64 prefix, since one host or one
/// customer is usually given a whole /64 and could otherwise use a new address
/// per peer. IPv4-mapped IPv6 addresses count as their IPv4 address.
pub(crate) fn same_source(a: &SocketAddr, b: &SocketAddr) -> bool {
    use std::net::IpAddr;
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match (canonical(a.ip()), canonical(b.ip())) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y,
        (IpAddr::V6(x), IpAddr::V6(y)) => x.segments()[..4] == y.segments()[..4],
        _ => false,
    }
}

impl Host {
    /// Feeds one received datagram from `from`. Malformed, unauthenticated or
    /// unexpected datagrams are dropped (logged with `trace!`); this never panics.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram_inner(now, from, data);
        self.arm_ack_hold();
        // Timers may have moved; the deadline is recomputed once per batch (when
        // `poll_transmit` is drained), not after every datagram.
        self.deadline_moved();
    }

    fn handle_datagram_inner(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.update_time_pub(now);
        self.core.stats.packets_received += 1;
        self.core.stats.bytes_received += data.len() as u64;
        if data.len() > wire::MAXIMUM_MTU as usize {
            return self
                .core
                .dropped(from, "datagram larger than the maximum MTU");
        }
        let Ok((header, mut header_size)) = wire::Header::parse(data) else {
            return self.core.dropped(from, "truncated header");
        };
        if self.core.checksum {
            header_size += 4;
        }
        if data.len() < header_size {
            return self.core.dropped(from, "truncated header");
        }
        let mut peer_idx = None;
        if header.peer_id == wire::MAXIMUM_PEER_ID && self.core.refuse_connections {
            self.core.stats.connects_refused += 1;
            return self.core.dropped(from, "refusing new connections");
        }
        if header.peer_id != wire::MAXIMUM_PEER_ID {
            let Some(peer) = self.peers.get(usize::from(header.peer_id)) else {
                return self.core.dropped(from, "peer id out of range");
            };
            if matches!(peer.state, PeerState::Disconnected | PeerState::Zombie) {
                return self.core.dropped(from, "peer slot not in use");
            }
            if !same_endpoint(&peer.address, &from) {
                return self.core.dropped(from, "address does not match the peer");
            }
            if peer.outgoing_peer_id < wire::MAXIMUM_PEER_ID
                && header.session_id != peer.incoming_session_id
            {
                return self.core.dropped(from, "session id mismatch");
            }
            peer_idx = Some(usize::from(header.peer_id));
            // Whatever this datagram does to the peer (acknowledgements to send,
            // timers moved), the send path and the timer refresh look at it.
            self.touch(usize::from(header.peer_id));
        }

        let mut owned;
        let mut buf: &[u8] = data;
        if header.compressed {
            let Some(compressor) = self.core.compressor.as_mut() else {
                return self
                    .core
                    .dropped(from, "compressed but no compressor configured");
            };
            let limit = wire::MAXIMUM_MTU as usize - header_size;
            let mut out = Vec::new();
            match compressor.decompress(&data[header_size..], limit, &mut out) {
                Some(n) if n > 0 && n <= limit && n <= out.len() => {
                    owned = Vec::with_capacity(header_size + n);
                    owned.extend_from_slice(&data[..header_size]);
                    owned.extend_from_slice(&out[..n]);
                    buf = &owned;
                }
                _ => return self.core.dropped(from, "decompression failed"),
            }
        }
        if self.core.checksum {
            let slot = header_size - 4;
            let desired =
                u32::from_be_bytes([buf[slot], buf[slot + 1], buf[slot + 2], buf[slot + 3]]);
            let seed = peer_idx.map_or(0, |i| self.peers[i].connect_id);
            owned = buf.to_vec();
            owned[slot..slot + 4].copy_from_slice(&seed.to_be_bytes());
            let actual = crate::crc32::crc32(&[&owned]);
            if actual != desired && !cfg!(fuzzing) {
                return self.core.dropped(from, "checksum mismatch");
            }
            buf = &owned;
        }
        if let Some(i) = peer_idx {
            let p = &mut self.peers[i];
            p.incoming_data_total = p.incoming_data_total.wrapping_add(buf.len() as u32);
            p.last_heard_time = self.core.service_time.max(1);
            p.counters.packets_received += 1;
            p.counters.bytes_received += data.len() as u64;
        }

        let mut at = header_size;
        while at < buf.len() {
            let (cmd, used) = match WireCommand::parse(&buf[at..]) {
                Ok(v) => v,
                Err(e) => {
                    trace!(%from, error = %e, "stopping at undecodable command");
                    break;
                }
            };
            at += used;
            let number = cmd.header.number();
            if peer_idx.is_none() && number != Command::CONNECT {
                trace!(%from, number, "command for no peer");
                break;
            }
            let result = match cmd.command {
                Command::Connect(c) => {
                    if peer_idx.is_some() {
                        Err(CommandError("CONNECT to an existing peer"))
                    } else {
                        match self.handle_connect(from, &c) {
                            Some(i) => {
                                peer_idx = Some(i);
                                self.touch(i);
                                Ok(())
                            }
                            None => Err(CommandError("CONNECT refused")),
                        }
                    }
                }
                _ => {
                    let Some(i) = peer_idx else { break };
                    let peer = &mut self.peers[i];
                    let _span = trace_span!("enet_peer", id = i, address = %peer.address).entered();
                    handle_command(&mut self.core, peer, &cmd)
                }
            };
            if let Err(CommandError(reason)) = result {
                trace!(%from, number, reason, "command rejected; dropping rest of datagram");
                break;
            }
            if let Some(i) = peer_idx {
                if cmd.header.wants_ack() {
                    let Some(sent_time) = header.sent_time else {
                        trace!(%from, "ACK requested without sentTime");
                        break;
                    };
                    let peer = &mut self.peers[i];
                    let queue = match peer.state {
                        PeerState::Disconnecting
                        | PeerState::AcknowledgingConnect
                        | PeerState::Disconnected
                        | PeerState::Zombie => false,
                        PeerState::AcknowledgingDisconnect => number == Command::DISCONNECT,
                        _ => true,
                    };
                    if queue {
                        queue_acknowledgement(peer, &cmd.header, sent_time);
                    }
                }
            }
        }
    }

    /// C's `enet_protocol_handle_connect`; returns the new peer's slot.
    fn handle_connect(&mut self, from: SocketAddr, c: &wire::Connect) -> Option<usize> {
        let channel_count = c.channel_count;
        if !(wire::MINIMUM_CHANNEL_COUNT..=wire::MAXIMUM_CHANNEL_COUNT).contains(&channel_count) {
            self.core.stats.connects_refused += 1;
            return None;
        }
        self.core.stats.peer_table_scans += 1;
        let mut free = None;
        let mut duplicates = 0usize;
        for (i, p) in self.peers.iter().enumerate() {
            if p.state == PeerState::Disconnected {
                if free.is_none() {
                    free = Some(i);
                }
            } else if p.state != PeerState::Connecting && same_source(&p.address, &from) {
                if p.address.port() == from.port()
                    && p.address.ip() == from.ip()
                    && p.connect_id == c.connect_id
                {
                    return None; // retransmitted CONNECT of an existing peer
                }
                duplicates += 1;
            }
        }
        // No free slot among those made so far: the next one, if the table may grow.
        let free = free.or((self.peers.len() < self.core.peer_limit).then_some(self.peers.len()));
        let Some(idx) = free else {
            self.core.stats.connects_refused += 1;
            trace!(%from, "no free peer slot");
            return None;
        };
        if duplicates >= self.core.duplicate_peers {
            self.core.stats.connects_refused += 1;
            trace!(%from, "too many peers from this address");
            return None;
        }
        if idx == self.peers.len() {
            self.new_slot();
        }
        let core = &mut self.core;
        let channel_count = (channel_count as usize).min(core.channel_limit);
        let peer = &mut self.peers[idx];
        peer.channels = (0..channel_count).map(|_| Channel::default()).collect();
        peer.state = PeerState::AcknowledgingConnect;
        peer.connect_id = c.connect_id;
        peer.address = from;
        peer.mtu = core.mtu;
        peer.outgoing_peer_id = c.outgoing_peer_id;
        peer.incoming_bandwidth = c.incoming_bandwidth;
        peer.outgoing_bandwidth = c.outgoing_bandwidth;
        peer.packet_throttle_interval = c.packet_throttle_interval;
        peer.packet_throttle_acceleration = c.packet_throttle_acceleration;
        peer.packet_throttle_deceleration = c.packet_throttle_deceleration;
        peer.event_data = c.data;

        let mask = (wire::HEADER_SESSION_MASK >> wire::HEADER_SESSION_SHIFT) as u8;
        let mut incoming_session = if c.incoming_session_id == 0xFF {
            peer.outgoing_session_id
        } else {
            c.incoming_session_id
        };
        incoming_session = incoming_session.wrapping_add(1) & mask;
        if incoming_session == peer.outgoing_session_id {
            incoming_session = incoming_session.wrapping_add(1) & mask;
        }
        peer.outgoing_session_id = incoming_session;
        let mut outgoing_session = if c.outgoing_session_id == 0xFF {
            peer.incoming_session_id
        } else {
            c.outgoing_session_id
        };
        outgoing_session = outgoing_session.wrapping_add(1) & mask;
        if outgoing_session == peer.incoming_session_id {
            outgoing_session = outgoing_session.wrapping_add(1) & mask;
        }
        peer.incoming_session_id = outgoing_session;

        let mtu = c.mtu.clamp(wire::MINIMUM_MTU, wire::MAXIMUM_MTU);
        peer.mtu = peer.mtu.min(mtu);
        peer.window_size = window_from_bandwidths(core.outgoing_bandwidth, peer.incoming_bandwidth);
        let mut window = if core.incoming_bandwidth == 0 {
            wire::MAXIMUM_WINDOW_SIZE
        } else {
            (core.incoming_bandwidth / crate::peer::WINDOW_SIZE_SCALE)
                .saturating_mul(wire::MINIMUM_WINDOW_SIZE)
        };
        window = window.min(c.window_size);
        window = window.clamp(wire::MINIMUM_WINDOW_SIZE, wire::MAXIMUM_WINDOW_SIZE);

        let verify = wire::Connect {
            outgoing_peer_id: peer.incoming_peer_id,
            incoming_session_id: incoming_session,
            outgoing_session_id: outgoing_session,
            mtu: peer.mtu,
            window_size: window,
            channel_count: channel_count as u32,
            incoming_bandwidth: core.incoming_bandwidth,
            outgoing_bandwidth: core.outgoing_bandwidth,
            packet_throttle_interval: peer.packet_throttle_interval,
            packet_throttle_acceleration: peer.packet_throttle_acceleration,
            packet_throttle_deceleration: peer.packet_throttle_deceleration,
            connect_id: peer.connect_id,
            data: 0,
        };
        queue_outgoing(
            peer,
            Command::VERIFY_CONNECT | wire::COMMAND_FLAG_ACKNOWLEDGE,
            0xFF,
            OutBody::VerifyConnect(verify),
            None,
            0,
            0,
        );
        debug!(peer = idx, address = %from, channels = channel_count, mtu = peer.mtu, "incoming connection");
        Some(idx)
    }

    fn update_time_pub(&mut self, now: Instant) {
        // Same as Host::update_time (kept private to host.rs).
        self.update_time_shared(now);
    }
}

/// Dispatches every command except CONNECT.
fn handle_command(core: &mut Core, peer: &mut Peer, cmd: &WireCommand<'_>) -> Handled {
    let connected = matches!(
        peer.state,
        PeerState::Connected | PeerState::DisconnectLater
    );
    match cmd.command {
        Command::Acknowledge {
            received_reliable_sequence_number,
            received_sent_time,
        } => handle_acknowledge(
            core,
            peer,
            cmd.header.channel_id,
            received_reliable_sequence_number,
            received_sent_time,
        ),
        Command::VerifyConnect(v) => handle_verify_connect(core, peer, &v),
        Command::Disconnect { data } => {
            handle_disconnect(core, peer, cmd.header.wants_ack(), data);
            Ok(())
        }
        Command::Ping => {
            if connected {
                peer.release_idle_buffers();
                Ok(())
            } else {
                Err(CommandError("PING while not connected"))
            }
        }
        Command::BandwidthLimit {
            incoming_bandwidth,
            outgoing_bandwidth,
        } => {
            if !connected {
                return Err(CommandError("BANDWIDTH_LIMIT while not connected"));
            }
            if peer.incoming_bandwidth != 0 {
                core.bandwidth_limited_peers = core.bandwidth_limited_peers.saturating_sub(1);
            }
            peer.incoming_bandwidth = incoming_bandwidth;
            peer.outgoing_bandwidth = outgoing_bandwidth;
            if peer.incoming_bandwidth != 0 {
                core.bandwidth_limited_peers += 1;
            }
            peer.window_size =
                window_from_bandwidths(peer.incoming_bandwidth, core.outgoing_bandwidth);
            Ok(())
        }
        Command::ThrottleConfigure {
            packet_throttle_interval,
            packet_throttle_acceleration,
            packet_throttle_deceleration,
        } => {
            if !connected {
                return Err(CommandError("THROTTLE_CONFIGURE while not connected"));
            }
            peer.packet_throttle_interval = packet_throttle_interval;
            peer.packet_throttle_acceleration = packet_throttle_acceleration;
            peer.packet_throttle_deceleration = packet_throttle_deceleration;
            Ok(())
        }
        Command::SendReliable { data } => {
            check_send(core, peer, &cmd.header, data.len())?;
            queue_incoming(
                core,
                peer,
                &cmd.header,
                Command::SEND_RELIABLE,
                0,
                data,
                PacketFlags::RELIABLE,
                None,
            )
            .map(|_| ())
        }
        Command::SendUnreliable {
            unreliable_sequence_number,
            data,
        } => {
            check_send(core, peer, &cmd.header, data.len())?;
            queue_incoming(
                core,
                peer,
                &cmd.header,
                Command::SEND_UNRELIABLE,
                unreliable_sequence_number,
                data,
                PacketFlags::NONE,
                None,
            )
            .map(|_| ())
        }
        Command::SendUnsequenced {
            unsequenced_group,
            data,
        } => {
            check_send(core, peer, &cmd.header, data.len())?;
            handle_unsequenced(core, peer, &cmd.header, unsequenced_group, data)
        }
        Command::SendFragment(f) => {
            check_send(core, peer, &cmd.header, f.data.len())?;
            handle_fragment(core, peer, &cmd.header, &f)
        }
        Command::SendUnreliableFragment(f) => {
            check_send(core, peer, &cmd.header, f.data.len())?;
            handle_unreliable_fragment(core, peer, &cmd.header, &f)
        }
        Command::Connect(_) => Err(CommandError("unexpected CONNECT")),
    }
}

fn check_send(core: &Core, peer: &Peer, header: &CommandHeader, len: usize) -> Handled {
    if usize::from(header.channel_id) >= peer.channels.len()
        || !matches!(
            peer.state,
            PeerState::Connected | PeerState::DisconnectLater
        )
    {
        return Err(CommandError("send on a bad channel or while not connected"));
    }
    if len > core.maximum_packet_size {
        return Err(CommandError("payload larger than the maximum packet size"));
    }
    Ok(())
}

fn queue_acknowledgement(peer: &mut Peer, header: &CommandHeader, sent_time: u16) {
    if let Some(ch) = peer.channels.get(usize::from(header.channel_id)) {
        let seq = header.reliable_sequence_number;
        let mut window = seq / RELIABLE_WINDOW_SIZE;
        let current_window = ch.incoming_reliable_sequence_number / RELIABLE_WINDOW_SIZE;
        if seq < ch.incoming_reliable_sequence_number {
            window += RELIABLE_WINDOWS;
        }
        if window >= current_window + FREE_RELIABLE_WINDOWS - 1
            && window <= current_window + FREE_RELIABLE_WINDOWS
        {
            return;
        }
    }
    peer.outgoing_data_total = peer
        .outgoing_data_total
        .wrapping_add(wire::command_size(Command::ACKNOWLEDGE) as u32);
    crate::peer::push_small(
        &mut peer.acknowledgements,
        Acknowledgement {
            command: header.command,
            channel_id: header.channel_id,
            reliable_sequence_number: header.reliable_sequence_number,
            sent_time,
        },
    );
}

/// C's `enet_peer_throttle`.
fn throttle(peer: &mut Peer, rtt: u32) {
    if peer.last_round_trip_time <= peer.last_round_trip_time_variance {
        peer.packet_throttle = peer.packet_throttle_limit;
    } else if rtt <= peer.last_round_trip_time {
        peer.packet_throttle = peer
            .packet_throttle
            .saturating_add(peer.packet_throttle_acceleration)
            .min(peer.packet_throttle_limit);
    } else if rtt
        > peer
            .last_round_trip_time
            .saturating_add(peer.last_round_trip_time_variance.saturating_mul(2))
    {
        peer.packet_throttle = peer
            .packet_throttle
            .saturating_sub(peer.packet_throttle_deceleration);
    }
}

fn handle_acknowledge(
    core: &mut Core,
    peer: &mut Peer,
    channel_id: u8,
    received_seq: u16,
    received_sent_time: u16,
) -> Handled {
    if matches!(peer.state, PeerState::Disconnected | PeerState::Zombie) {
        return Ok(());
    }
    let now = core.service_time;
    let sent_time = time::expand_sent_time(now, received_sent_time);
    if time::less(now, sent_time) {
        return Ok(());
    }
    let rtt = time::difference(now, sent_time).max(1);
    if peer.last_receive_time > 0 {
        throttle(peer, rtt);
        peer.round_trip_time_variance -= peer.round_trip_time_variance / 4;
        if rtt >= peer.round_trip_time {
            let diff = rtt - peer.round_trip_time;
            peer.round_trip_time_variance += diff / 4;
            peer.round_trip_time += diff / 8;
        } else {
            let diff = peer.round_trip_time - rtt;
            peer.round_trip_time_variance += diff / 4;
            peer.round_trip_time -= diff / 8;
        }
    } else {
        peer.round_trip_time = rtt;
        peer.round_trip_time_variance = rtt.div_ceil(2);
    }
    peer.lowest_round_trip_time = peer.lowest_round_trip_time.min(peer.round_trip_time);
    peer.highest_round_trip_time_variance = peer
        .highest_round_trip_time_variance
        .max(peer.round_trip_time_variance);
    if peer.packet_throttle_epoch == 0
        || time::difference(now, peer.packet_throttle_epoch) >= peer.packet_throttle_interval
    {
        peer.last_round_trip_time = peer.lowest_round_trip_time;
        peer.last_round_trip_time_variance = peer.highest_round_trip_time_variance.max(1);
        peer.lowest_round_trip_time = peer.round_trip_time;
        peer.highest_round_trip_time_variance = peer.round_trip_time_variance;
        peer.packet_throttle_epoch = now;
    }
    peer.last_receive_time = now.max(1);
    peer.sent_since_ack = false;
    peer.earliest_timeout = 0;

    let number = remove_sent_reliable_command(core, peer, received_seq, channel_id);
    match peer.state {
        PeerState::AcknowledgingConnect => {
            if number != Some(Command::VERIFY_CONNECT) {
                return Err(CommandError(
                    "ACK in AcknowledgingConnect is not for VERIFY_CONNECT",
                ));
            }
            notify_connect(core, peer);
        }
        PeerState::Disconnecting => {
            if number != Some(Command::DISCONNECT) {
                return Err(CommandError("ACK in Disconnecting is not for DISCONNECT"));
            }
            notify_disconnect(core, peer, DisconnectReason::Local);
        }
        PeerState::DisconnectLater if !peer.has_outgoing_commands() => {
            let data = peer.event_data;
            crate::host::disconnect_connected(core, peer, data);
        }
        PeerState::Connected if number == Some(Command::PING) => peer.release_idle_buffers(),
        _ => {}
    }
    Ok(())
}

/// C's `enet_protocol_remove_sent_reliable_command`; returns the acknowledged command number.
fn remove_sent_reliable_command(
    core: &mut Core,
    peer: &mut Peer,
    seq: u16,
    channel_id: u8,
) -> Option<u8> {
    let (cmd, was_sent) = if let Some(pos) = peer
        .sent_reliable_commands
        .iter()
        .position(|c| c.reliable_sequence_number == seq && c.channel_id == channel_id)
    {
        (peer.sent_reliable_commands.remove(pos)?, true)
    } else {
        // An acknowledgement for a command that was sent, timed out and re-queued.
        let find = |queue: &VecDeque<crate::peer::OutgoingCommand>| {
            for (i, c) in queue.iter().enumerate() {
                if !c.wants_ack() {
                    continue;
                }
                if c.send_attempts < 1 {
                    return None;
                }
                if c.reliable_sequence_number == seq && c.channel_id == channel_id {
                    return Some(i);
                }
            }
            None
        };
        if let Some(i) = find(&peer.outgoing_commands) {
            (peer.outgoing_commands.remove(i)?, false)
        } else {
            let i = find(&peer.outgoing_send_reliable)?;
            (peer.outgoing_send_reliable.remove(i)?, false)
        }
    };
    if let Some(ch) = peer.channels.get_mut(usize::from(channel_id)) {
        let window = usize::from(seq / RELIABLE_WINDOW_SIZE);
        if ch.reliable_windows[window] > 0 {
            ch.reliable_windows[window] -= 1;
            if ch.reliable_windows[window] == 0 {
                ch.used_reliable_windows &= !(1 << window);
            }
        }
    }
    if cmd.packet.is_some() {
        if was_sent {
            peer.reliable_data_in_transit = peer
                .reliable_data_in_transit
                .saturating_sub(u32::from(cmd.fragment_length));
        }
        peer.outgoing_waiting_data = peer
            .outgoing_waiting_data
            .saturating_sub(usize::from(cmd.fragment_length));
    }
    if let Some(front) = peer.sent_reliable_commands.front() {
        peer.next_timeout = front.sent_time.wrapping_add(front.round_trip_timeout);
    }
    let number = cmd.body.number();
    core.recycle_payload(cmd.packet);
    Some(number)
}

fn handle_verify_connect(core: &mut Core, peer: &mut Peer, v: &wire::Connect) -> Handled {
    if peer.state != PeerState::Connecting {
        return Ok(());
    }
    let channel_count = v.channel_count;
    if !(wire::MINIMUM_CHANNEL_COUNT..=wire::MAXIMUM_CHANNEL_COUNT).contains(&channel_count)
        || v.packet_throttle_interval != peer.packet_throttle_interval
        || v.packet_throttle_acceleration != peer.packet_throttle_acceleration
        || v.packet_throttle_deceleration != peer.packet_throttle_deceleration
        || v.connect_id != peer.connect_id
    {
        debug!(
            peer = peer.incoming_peer_id,
            "VERIFY_CONNECT does not match our CONNECT"
        );
        zombie(core, peer, DisconnectReason::Refused, 0);
        return Err(CommandError("VERIFY_CONNECT mismatch"));
    }
    remove_sent_reliable_command(core, peer, 1, 0xFF);
    peer.channels.truncate(channel_count as usize);
    peer.outgoing_peer_id = v.outgoing_peer_id;
    peer.incoming_session_id = v.incoming_session_id;
    peer.outgoing_session_id = v.outgoing_session_id;
    let mtu = v.mtu.clamp(wire::MINIMUM_MTU, wire::MAXIMUM_MTU);
    peer.mtu = peer.mtu.min(mtu);
    let window = v
        .window_size
        .clamp(wire::MINIMUM_WINDOW_SIZE, wire::MAXIMUM_WINDOW_SIZE);
    peer.window_size = peer.window_size.min(window);
    peer.incoming_bandwidth = v.incoming_bandwidth;
    peer.outgoing_bandwidth = v.outgoing_bandwidth;
    notify_connect(core, peer);
    Ok(())
}

fn handle_disconnect(core: &mut Core, peer: &mut Peer, wants_ack: bool, data: u32) {
    match peer.state {
        PeerState::Disconnected | PeerState::Zombie | PeerState::AcknowledgingDisconnect => return,
        _ => {}
    }
    crate::host::clear_queues(core, peer);
    match peer.state {
        PeerState::ConnectionSucceeded | PeerState::Disconnecting => {
            zombie(core, peer, DisconnectReason::Remote, data)
        }
        PeerState::Connecting => zombie(core, peer, DisconnectReason::Refused, data),
        PeerState::Connected | PeerState::DisconnectLater => {
            if wants_ack {
                change_state(core, peer, PeerState::AcknowledgingDisconnect);
                peer.event_data = data;
            } else {
                zombie(core, peer, DisconnectReason::Remote, data);
            }
        }
        _ => {
            if peer.state == PeerState::ConnectionPending {
                core.recalculate_bandwidth_limits = true;
            }
            reset_peer(core, peer);
        }
    }
}

fn handle_unsequenced(
    core: &mut Core,
    peer: &mut Peer,
    header: &CommandHeader,
    group: u16,
    data: &[u8],
) -> Handled {
    let mut group = u32::from(group);
    let index = group % UNSEQUENCED_WINDOW_SIZE;
    let incoming = u32::from(peer.incoming_unsequenced_group);
    if group < incoming {
        group += 0x10000;
    }
    if group >= incoming + FREE_UNSEQUENCED_WINDOWS * UNSEQUENCED_WINDOW_SIZE {
        return Ok(());
    }
    group &= 0xFFFF;
    let word = (index / 32) as usize;
    let bit = 1u32 << (index % 32);
    if group.wrapping_sub(index) as u16 != peer.incoming_unsequenced_group {
        peer.incoming_unsequenced_group = group.wrapping_sub(index) as u16;
        if let Some(window) = peer.unsequenced_window.as_deref_mut() {
            window.fill(0);
        }
    } else if peer
        .unsequenced_window
        .as_ref()
        .is_some_and(|window| window[word] & bit != 0)
    {
        return Ok(()); // duplicate
    }
    queue_incoming(
        core,
        peer,
        header,
        Command::SEND_UNSEQUENCED,
        0,
        data,
        PacketFlags::UNSEQUENCED,
        None,
    )?;
    peer.unsequenced_window.get_or_insert_default()[word] |= bit;
    Ok(())
}

/// Smallest fragment a C ENet sender makes: its fragment length is the peer's MTU
/// less the header and the SEND_FRAGMENT command (and the checksum, if any), and
/// the MTU is at least the minimum MTU.
const MINIMUM_FRAGMENT_LENGTH: u64 =
    wire::MINIMUM_MTU as u64 - wire::HEADER_SIZE as u64 - wire::SEND_FRAGMENT_SIZE as u64 - 4;

/// Largest fragment that fits the maximum MTU.
const MAXIMUM_FRAGMENT_LENGTH: u64 =
    wire::MAXIMUM_MTU as u64 - wire::HEADER_SIZE as u64 - wire::SEND_FRAGMENT_SIZE as u64;

/// The shape of a fragmented packet: what every one of its fragments must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FragmentLayout {
    count: u32,
    total: u32,
    /// Length of every fragment but the last.
    length: u32,
}

/// Checks one fragment against the layout every C ENet sender uses (fragment `n`
/// of `count` starts at `n * length` and is `length` bytes long, the last one ends
/// at `total`, and `count = ceil(total / length)`), and returns that layout.
///
/// C ENet only checks that a fragment fits its packet; it then copies it in place
/// into a buffer of the packet's total length, so overlapping fragments waste
/// nothing there. Here a fragment that does not sit exactly in its slot is refused
/// as well, so that a packet completes only when every byte of it has arrived.
fn fragment_layout(core: &Core, f: &Fragment<'_>) -> Option<FragmentLayout> {
    let count = u64::from(f.fragment_count);
    let number = u64::from(f.fragment_number);
    let total = u64::from(f.total_length);
    let offset = u64::from(f.fragment_offset);
    let len = f.data.len() as u64;
    if count == 0
        || count > u64::from(wire::MAXIMUM_FRAGMENT_COUNT)
        || number >= count
        || total == 0
        || total > core.maximum_packet_size as u64
        || len == 0
        || offset + len > total
    {
        return None;
    }
    let length = if count == 1 {
        // C never fragments a packet that fits one fragment, but the layout is sound.
        if offset != 0 || len != total || len > MAXIMUM_FRAGMENT_LENGTH {
            return None;
        }
        len
    } else if number + 1 < count {
        if offset != number * len {
            return None;
        }
        len
    } else {
        // The last fragment: it ends the packet, and its offset gives the length.
        if offset + len != total || offset % number != 0 || len > offset / number {
            return None;
        }
        offset / number
    };
    if count > 1
        && (!(MINIMUM_FRAGMENT_LENGTH..=MAXIMUM_FRAGMENT_LENGTH).contains(&length)
            || total.div_ceil(length) != count)
    {
        return None;
    }
    Some(FragmentLayout {
        count: f.fragment_count,
        total: f.total_length,
        length: length as u32,
    })
}

fn handle_fragment(
    core: &mut Core,
    peer: &mut Peer,
    header: &CommandHeader,
    f: &Fragment<'_>,
) -> Handled {
    let ch_idx = usize::from(header.channel_id);
    let start = f.start_sequence_number;
    let current = peer.channels[ch_idx].incoming_reliable_sequence_number;
    if !in_receive_window(start, current) {
        return Ok(());
    }
    let Some(layout) = fragment_layout(core, f) else {
        return Err(CommandError("fragment does not fit a fragment layout"));
    };
    let ch = &peer.channels[ch_idx];
    let mut start_id = None;
    for cmd in ch.incoming_reliable_commands.iter().rev() {
        if start >= current {
            if cmd.reliable_sequence_number < current {
                continue;
            }
        } else if cmd.reliable_sequence_number >= current {
            break;
        }
        if cmd.reliable_sequence_number <= start {
            if cmd.reliable_sequence_number < start {
                break;
            }
            if cmd.number != Command::SEND_FRAGMENT
                || f.total_length != cmd.total_length
                || f.fragment_count != cmd.fragment_count
            {
                return Err(CommandError("fragment does not match its start command"));
            }
            start_id = Some(cmd.id);
            break;
        }
    }
    let id = match start_id {
        Some(id) => id,
        None => {
            let start_header = CommandHeader::new(header.command, header.channel_id, start);
            match queue_incoming(
                core,
                peer,
                &start_header,
                Command::SEND_FRAGMENT,
                0,
                &[],
                PacketFlags::RELIABLE,
                Some(layout),
            )? {
                Some(id) => id,
                None => return Ok(()),
            }
        }
    };
    if add_fragment(core, peer, ch_idx, true, id, f, layout)? {
        dispatch_reliable(core, peer, ch_idx, None);
    }
    Ok(())
}

/// Copies a fragment into its packet's buffer; returns true when the packet
/// became complete. Duplicates are ignored; a fragment whose layout differs
/// from the packet's (set by its first fragment) is refused.
fn add_fragment(
    core: &mut Core,
    peer: &mut Peer,
    ch_idx: usize,
    reliable: bool,
    id: u64,
    f: &Fragment<'_>,
    layout: FragmentLayout,
) -> Result<bool, CommandError> {
    let ch = &mut peer.channels[ch_idx];
    let list = if reliable {
        &mut ch.incoming_reliable_commands
    } else {
        &mut ch.incoming_unreliable_commands
    };
    let Some(cmd) = list.iter_mut().find(|c| c.id == id) else {
        return Ok(false);
    };
    let Some(r) = cmd.reassembly.as_mut() else {
        return Ok(false); // already complete: a duplicate
    };
    if r.fragment_length != layout.length
        || cmd.total_length != layout.total
        || cmd.fragment_count != layout.count
    {
        return Err(CommandError("fragment does not match its packet's layout"));
    }
    let start = f.fragment_offset as usize;
    let Some(slot) = cmd.data.get_mut(start..start + f.data.len()) else {
        return Err(CommandError("fragment outside its packet"));
    };
    if !r.mark(f.fragment_number) {
        return Ok(false); // duplicate
    }
    slot.copy_from_slice(f.data);
    cmd.fragments_remaining = cmd.fragments_remaining.saturating_sub(1);
    if cmd.fragments_remaining > 0 {
        return Ok(false);
    }
    // Complete: the bitmap goes, the buffer is now a packet waiting for delivery.
    cmd.reassembly = None;
    let held = incomplete_size(cmd.fragment_count, cmd.total_length);
    peer.incomplete_bytes = peer.incomplete_bytes.saturating_sub(held);
    core.incomplete_bytes = core.incomplete_bytes.saturating_sub(held);
    Ok(true)
}

fn handle_unreliable_fragment(
    core: &mut Core,
    peer: &mut Peer,
    header: &CommandHeader,
    f: &Fragment<'_>,
) -> Handled {
    let ch_idx = usize::from(header.channel_id);
    let ch = &peer.channels[ch_idx];
    let reliable_seq = header.reliable_sequence_number;
    let start = f.start_sequence_number;
    let current = ch.incoming_reliable_sequence_number;
    if !in_receive_window(reliable_seq, current) {
        return Ok(());
    }
    if reliable_seq == current && start <= ch.incoming_unreliable_sequence_number {
        return Ok(());
    }
    let Some(layout) = fragment_layout(core, f) else {
        return Err(CommandError("fragment does not fit a fragment layout"));
    };
    let mut start_id = None;
    for cmd in ch.incoming_unreliable_commands.iter().rev() {
        if reliable_seq >= current {
            if cmd.reliable_sequence_number < current {
                continue;
            }
        } else if cmd.reliable_sequence_number >= current {
            break;
        }
        if cmd.reliable_sequence_number < reliable_seq {
            break;
        }
        if cmd.reliable_sequence_number > reliable_seq {
            continue;
        }
        if cmd.unreliable_sequence_number <= start {
            if cmd.unreliable_sequence_number < start {
                break;
            }
            if cmd.number != Command::SEND_UNRELIABLE_FRAGMENT
                || f.total_length != cmd.total_length
                || f.fragment_count != cmd.fragment_count
            {
                return Err(CommandError("fragment does not match its start command"));
            }
            start_id = Some(cmd.id);
            break;
        }
    }
    let id = match start_id {
        Some(id) => id,
        None => match queue_incoming(
            core,
            peer,
            header,
            Command::SEND_UNRELIABLE_FRAGMENT,
            start,
            &[],
            PacketFlags::UNRELIABLE_FRAGMENT,
            Some(layout),
        )? {
            Some(id) => id,
            None => return Ok(()),
        },
    };
    if add_fragment(core, peer, ch_idx, false, id, f, layout)? {
        dispatch_unreliable(core, peer, ch_idx, None);
    }
    Ok(())
}

/// C's `enet_peer_queue_incoming_command`. `Ok(None)` = discarded (duplicate or
/// out of window), `Ok(Some(id))` = queued, `Err` = refused (stop the datagram).
#[allow(clippy::too_many_arguments)]
fn queue_incoming(
    core: &mut Core,
    peer: &mut Peer,
    header: &CommandHeader,
    number: u8,
    unreliable_seq: u16,
    data: &[u8],
    flags: PacketFlags,
    fragments: Option<FragmentLayout>,
) -> Result<Option<u64>, CommandError> {
    let fragment_count = fragments.map_or(0, |l| l.count);
    let discard = |fragment_count: u32| {
        if fragment_count > 0 {
            Err(CommandError("fragment start discarded"))
        } else {
            Ok(None)
        }
    };
    if peer.state == PeerState::DisconnectLater {
        return discard(fragment_count);
    }
    let ch_idx = usize::from(header.channel_id);
    let ch = &peer.channels[ch_idx];
    let current = ch.incoming_reliable_sequence_number;
    let mut reliable_seq = 0;
    if number != Command::SEND_UNSEQUENCED {
        reliable_seq = header.reliable_sequence_number;
        if !in_receive_window(reliable_seq, current) {
            return discard(fragment_count);
        }
    }
    let insert_at;
    match number {
        Command::SEND_FRAGMENT | Command::SEND_RELIABLE => {
            if reliable_seq == current {
                return discard(fragment_count);
            }
            let mut at = 0;
            for (i, cmd) in ch.incoming_reliable_commands.iter().enumerate().rev() {
                if reliable_seq >= current {
                    if cmd.reliable_sequence_number < current {
                        continue;
                    }
                } else if cmd.reliable_sequence_number >= current {
                    at = i + 1;
                    break;
                }
                if cmd.reliable_sequence_number <= reliable_seq {
                    if cmd.reliable_sequence_number < reliable_seq {
                        at = i + 1;
                        break;
                    }
                    return discard(fragment_count);
                }
            }
            insert_at = at;
        }
        Command::SEND_UNRELIABLE | Command::SEND_UNRELIABLE_FRAGMENT => {
            if reliable_seq == current && unreliable_seq <= ch.incoming_unreliable_sequence_number {
                return discard(fragment_count);
            }
            let mut at = 0;
            for (i, cmd) in ch.incoming_unreliable_commands.iter().enumerate().rev() {
                if cmd.number == Command::SEND_UNSEQUENCED {
                    continue;
                }
                if reliable_seq >= current {
                    if cmd.reliable_sequence_number < current {
                        continue;
                    }
                } else if cmd.reliable_sequence_number >= current {
                    at = i + 1;
                    break;
                }
                if cmd.reliable_sequence_number < reliable_seq {
                    at = i + 1;
                    break;
                }
                if cmd.reliable_sequence_number > reliable_seq {
                    continue;
                }
                if cmd.unreliable_sequence_number <= unreliable_seq {
                    if cmd.unreliable_sequence_number < unreliable_seq {
                        at = i + 1;
                        break;
                    }
                    return discard(fragment_count);
                }
            }
            insert_at = at;
        }
        Command::SEND_UNSEQUENCED => insert_at = 0,
        _ => return discard(fragment_count),
    }
    let charge = waiting_size(fragments, data.len());
    if peer.total_waiting_data >= core.maximum_waiting_data {
        return Err(CommandError("too much data waiting for delivery"));
    }
    if let Some(l) = fragments {
        if core.incomplete_bytes + incomplete_size(l.count, l.total) > core.maximum_incomplete_data
        {
            return Err(CommandError(
                "too many incomplete fragmented packets on this host",
            ));
        }
    }
    let id = peer.next_incoming_id;
    peer.next_incoming_id += 1;
    peer.total_waiting_data += charge;
    core.waiting_data_total += charge;
    let (data, reassembly, total_length) = match fragments {
        // The whole packet, once; fragments are copied into place.
        Some(l) => {
            let held = incomplete_size(l.count, l.total);
            peer.incomplete_bytes += held;
            core.incomplete_bytes += held;
            (
                vec![0; l.total as usize],
                Some(Box::new(Reassembly::new(l.count, l.length))),
                l.total,
            )
        }
        None => (core.payload_copy(data), None, 0),
    };
    let cmd = IncomingCommand {
        id,
        number,
        reliable_sequence_number: header.reliable_sequence_number,
        unreliable_sequence_number: unreliable_seq,
        fragment_count,
        fragments_remaining: fragment_count,
        total_length,
        flags,
        data,
        charge,
        reassembly,
    };
    let ch = &mut peer.channels[ch_idx];
    match number {
        Command::SEND_FRAGMENT | Command::SEND_RELIABLE => {
            ch.incoming_reliable_commands.insert(insert_at, cmd);
            dispatch_reliable(core, peer, ch_idx, Some(id));
        }
        _ => {
            ch.incoming_unreliable_commands.insert(insert_at, cmd);
            dispatch_unreliable(core, peer, ch_idx, Some(id));
        }
    }
    Ok(Some(id))
}

/// Bookkeeping overhead charged per buffered command, so that floods of empty
/// commands also hit `maximum_waiting_data` (C ENet only counts payload bytes).
const INCOMING_COMMAND_OVERHEAD: usize = 64;

/// Bytes an incomplete fragmented packet holds: its buffer plus the bitmap.
fn incomplete_size(fragment_count: u32, total_length: u32) -> usize {
    total_length as usize + Reassembly::bitmap_bytes(fragment_count)
}

/// Bytes a buffered command counts against `maximum_waiting_data`: the payload
/// (for a fragmented packet, its whole buffer and bitmap) plus a fixed overhead.
fn waiting_size(fragments: Option<FragmentLayout>, data_len: usize) -> usize {
    let payload = match fragments {
        Some(l) => incomplete_size(l.count, l.total),
        None => data_len,
    };
    payload + INCOMING_COMMAND_OVERHEAD
}

/// Hands a complete command to the application as a Receive event.
fn deliver(core: &mut Core, peer: &mut Peer, channel: u8, cmd: IncomingCommand) {
    if cmd.reassembly.is_some() {
        trace!(
            peer = peer.incoming_peer_id,
            "incomplete packet at delivery; dropping it"
        );
        discard_incoming(core, peer, &cmd);
        return;
    }
    release_charge(core, peer, cmd.charge);
    core.events.push_back(Event::Receive {
        peer: peer.id(),
        channel,
        packet: Packet::new(cmd.data, cmd.flags),
    });
}

fn release_charge(core: &mut Core, peer: &mut Peer, charge: usize) {
    peer.total_waiting_data = peer.total_waiting_data.saturating_sub(charge);
    core.waiting_data_total = core.waiting_data_total.saturating_sub(charge);
}

/// Forgets a buffered command (and its reassembly buffer) without delivering it.
fn discard_incoming(core: &mut Core, peer: &mut Peer, cmd: &IncomingCommand) {
    release_charge(core, peer, cmd.charge);
    if cmd.reassembly.is_some() {
        let held = incomplete_size(cmd.fragment_count, cmd.total_length);
        peer.incomplete_bytes = peer.incomplete_bytes.saturating_sub(held);
        core.incomplete_bytes = core.incomplete_bytes.saturating_sub(held);
    }
}

/// C's `enet_peer_dispatch_incoming_reliable_commands`.
fn dispatch_reliable(core: &mut Core, peer: &mut Peer, ch_idx: usize, queued: Option<u64>) {
    let ch = &mut peer.channels[ch_idx];
    let mut n = 0;
    while let Some(cmd) = ch.incoming_reliable_commands.get(n) {
        if cmd.fragments_remaining > 0
            || cmd.reliable_sequence_number != ch.incoming_reliable_sequence_number.wrapping_add(1)
        {
            break;
        }
        ch.incoming_reliable_sequence_number = cmd.reliable_sequence_number;
        if cmd.fragment_count > 0 {
            ch.incoming_reliable_sequence_number = ch
                .incoming_reliable_sequence_number
                .wrapping_add((cmd.fragment_count - 1) as u16);
        }
        n += 1;
    }
    if n == 0 {
        return;
    }
    ch.incoming_unreliable_sequence_number = 0;
    let unreliable_waiting = !ch.incoming_unreliable_commands.is_empty();
    // Popped one by one (no temporary `Vec`): this runs for every reliable packet received.
    for _ in 0..n {
        let Some(cmd) = peer.channels[ch_idx].incoming_reliable_commands.pop_front() else {
            break;
        };
        deliver(core, peer, ch_idx as u8, cmd);
    }
    if unreliable_waiting {
        dispatch_unreliable(core, peer, ch_idx, queued);
    }
}

/// C's `enet_peer_dispatch_incoming_unreliable_commands`: delivers what is in
/// order, drops what is now too old.
fn dispatch_unreliable(core: &mut Core, peer: &mut Peer, ch_idx: usize, queued: Option<u64>) {
    let ch = &mut peer.channels[ch_idx];
    let list = &ch.incoming_unreliable_commands;
    let len = list.len();
    let mut dispatch = vec![false; len];
    let mut mark = |from: usize, to: usize| {
        for d in dispatch.iter_mut().take(to).skip(from) {
            *d = true;
        }
    };
    let (mut start, mut dropped, mut current) = (0usize, 0usize, 0usize);
    let incoming = ch.incoming_reliable_sequence_number;
    while current < len {
        let cmd = &list[current];
        if cmd.number == Command::SEND_UNSEQUENCED {
            current += 1;
            continue;
        }
        if cmd.reliable_sequence_number == incoming {
            if cmd.fragments_remaining == 0 {
                ch.incoming_unreliable_sequence_number = cmd.unreliable_sequence_number;
                current += 1;
                continue;
            }
            if start != current {
                mark(start, current);
                dropped = current;
            } else if dropped != current {
                dropped = current.saturating_sub(1);
            }
        } else {
            let mut window = cmd.reliable_sequence_number / RELIABLE_WINDOW_SIZE;
            let current_window = incoming / RELIABLE_WINDOW_SIZE;
            if cmd.reliable_sequence_number < incoming {
                window += RELIABLE_WINDOWS;
            }
            if window >= current_window && window < current_window + FREE_RELIABLE_WINDOWS - 1 {
                break;
            }
            dropped = current + 1;
            if start != current {
                mark(start, current);
            }
        }
        start = current + 1;
        current += 1;
    }
    if start != current {
        mark(start, current);
        dropped = current;
    }
    let old: VecDeque<IncomingCommand> = std::mem::take(&mut ch.incoming_unreliable_commands);
    let mut keep = VecDeque::with_capacity(old.len());
    let mut deliveries = Vec::new();
    let mut discards = Vec::new();
    for (i, cmd) in old.into_iter().enumerate() {
        if dispatch[i] {
            deliveries.push(cmd);
        } else if i < dropped && Some(cmd.id) != queued {
            discards.push(cmd);
        } else {
            keep.push_back(cmd);
        }
    }
    ch.incoming_unreliable_commands = keep;
    for cmd in &discards {
        discard_incoming(core, peer, cmd);
    }
    for cmd in deliveries {
        deliver(core, peer, ch_idx as u8, cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::in_receive_window;

    #[test]
    fn receive_window_matches_c_rules() {
        // Windows are 4096 sequence numbers; 7 windows ahead are accepted.
        assert!(in_receive_window(1, 0));
        assert!(in_receive_window(7 * 4096 - 1, 0));
        assert!(!in_receive_window(7 * 4096, 0));
        // Old sequence numbers wrap into the window 16 ahead and are refused.
        assert!(!in_receive_window(10, 100));
        // Across the 16-bit wrap.
        assert!(in_receive_window(5, 65_000));
        assert!(!in_receive_window(65_000 - 4096, 65_000));
    }
}
