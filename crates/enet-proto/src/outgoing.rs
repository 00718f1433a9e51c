//! Building datagrams: acknowledgements, queued commands, pings, header,
//! compression and checksum (C's `enet_protocol_send_outgoing_commands`).

use tracing::trace;

use crate::host::{check_timeouts, queue_ping, zombie, Core, DisconnectReason, Host, Transmit};
use crate::peer::{
    Peer, FREE_RELIABLE_WINDOWS, PACKET_LOSS_INTERVAL, PACKET_LOSS_SCALE, PACKET_THROTTLE_COUNTER,
    PACKET_THROTTLE_SCALE, RELIABLE_WINDOWS, RELIABLE_WINDOW_SIZE,
};
use crate::time;
use crate::wire::{self, Command};
use crate::PeerState;

/// Commands of the datagram being built.
struct Builder {
    body: Vec<u8>,
    commands: usize,
    /// Bytes the datagram will take uncompressed (header with sentTime + checksum + commands).
    size: usize,
    sent_time: bool,
}

impl Builder {
    fn room(&self, mtu: u32) -> usize {
        (mtu as usize).saturating_sub(self.size)
    }
}

/// How early (ms) a ping may go out when it can share a datagram (see `build_datagram`);
/// at most this much earlier than `ping_interval`, as late as `PING_SLACK_MS` in `host.rs`.
const PING_EARLY_MS: u32 = 20;

impl Host {
    /// Builds at most one datagram for peer `idx` (None if nothing is due).
    pub(crate) fn build_datagram(&mut self, idx: usize) -> Option<Transmit> {
        let core = &mut self.core;
        let peer = &mut self.peers[idx];
        if matches!(peer.state, PeerState::Disconnected | PeerState::Zombie) {
            return None;
        }
        peer.continue_sending = false;
        // The command bytes go to a buffer kept in the host between datagrams, so building
        // one does not grow a fresh `Vec` step by step; `finish_datagram` copies them out.
        let mut body = std::mem::take(&mut core.body_buf);
        body.clear();
        let mut b = Builder {
            body,
            commands: 0,
            size: wire::HEADER_SIZE + if core.checksum { 4 } else { 0 },
            sent_time: false,
        };
        let mut acked_disconnect = false;
        if !peer.acknowledgements.is_empty() {
            acked_disconnect = send_acknowledgements(peer, &mut b);
        }
        if !acked_disconnect
            && !peer.sent_reliable_commands.is_empty()
            && time::greater_equal(core.service_time, peer.next_timeout)
            && check_timeouts(core, peer)
        {
            core.body_buf = b.body;
            return None;
        }
        let can_ping =
            if peer.outgoing_commands.is_empty() && peer.outgoing_send_reliable.is_empty() {
                true
            } else {
                check_outgoing_commands(core, peer, &mut b)
            };
        // A ping due within PING_EARLY_MS rides along with a datagram that goes out anyway
        // (the acknowledgement of the other side's own ping, typically): one datagram fewer
        // and one wake-up fewer per ping interval for an idle connection.
        let early = if b.commands > 0 { PING_EARLY_MS } else { 0 };
        if can_ping
            && !acked_disconnect
            && peer.state == PeerState::Connected
            && peer.sent_reliable_commands.is_empty()
            && peer.ping_wait(core.service_time) <= early
            && b.room(peer.mtu) >= wire::command_size(Command::PING)
        {
            queue_ping(peer);
            check_outgoing_commands(core, peer, &mut b);
        }
        if b.commands == 0 {
            core.body_buf = b.body;
            if peer.continue_sending {
                // Nothing fits even in an empty datagram: drop the head to avoid livelock.
                peer.continue_sending = false;
                let head = match peer.outgoing_commands.pop_front() {
                    Some(cmd) => Some(cmd),
                    None => peer.outgoing_send_reliable.pop_front(),
                };
                if let Some(cmd) = head {
                    trace!(
                        peer = idx,
                        command = cmd.command,
                        "dropping command larger than the MTU"
                    );
                    peer.outgoing_waiting_data = peer
                        .outgoing_waiting_data
                        .saturating_sub(usize::from(cmd.fragment_length));
                }
            }
            return None;
        }

        if peer.packet_loss_epoch == 0 {
            peer.packet_loss_epoch = core.service_time;
        } else if time::difference(core.service_time, peer.packet_loss_epoch)
            >= PACKET_LOSS_INTERVAL
            && peer.packets_sent > 0
        {
            let packet_loss = (u64::from(peer.packets_lost) * u64::from(PACKET_LOSS_SCALE)
                / u64::from(peer.packets_sent))
            .min(u64::from(u32::MAX)) as u32;
            peer.packet_loss_variance = (peer.packet_loss_variance.saturating_mul(3)
                + packet_loss.abs_diff(peer.packet_loss))
                / 4;
            peer.packet_loss = (peer.packet_loss.saturating_mul(7) + packet_loss) / 8;
            peer.packet_loss_epoch = core.service_time;
            peer.packets_sent = 0;
            peer.packets_lost = 0;
        }

        let data = finish_datagram(core, peer, &b);
        core.body_buf = b.body;
        peer.last_send_time = core.service_time;
        peer.counters.packets_sent += 1;
        peer.counters.bytes_sent += data.len() as u64;
        core.stats.packets_sent += 1;
        core.stats.bytes_sent += data.len() as u64;
        let transmit = Transmit {
            destination: peer.address,
            data,
        };
        trace!(peer = idx, address = %peer.address, len = transmit.data.len(), "datagram out");
        if acked_disconnect {
            let data = peer.event_data;
            zombie(core, peer, DisconnectReason::Remote, data);
        } else if peer.state == PeerState::DisconnectLater && !peer.has_outgoing_commands() {
            let data = peer.event_data;
            crate::host::disconnect_connected(core, peer, data);
        }
        Some(transmit)
    }
}

/// Header, optional compression and checksum around the commands.
fn finish_datagram(core: &mut Core, peer: &Peer, b: &Builder) -> Vec<u8> {
    let mut flags = 0u16;
    if b.sent_time {
        flags |= wire::HEADER_FLAG_SENT_TIME;
    }
    let mut compressed = false;
    if let Some(c) = core.compressor.as_mut() {
        let original = b.body.len();
        if let Some(n) = c.compress(&[&b.body], original, &mut core.scratch) {
            if n > 0 && n < original && n <= core.scratch.len() {
                core.scratch.truncate(n);
                compressed = true;
                flags |= wire::HEADER_FLAG_COMPRESSED;
            }
        }
    }
    if peer.outgoing_peer_id < wire::MAXIMUM_PEER_ID {
        flags |= u16::from(peer.outgoing_session_id) << wire::HEADER_SESSION_SHIFT;
    }
    let mut out = core.spare.pop().unwrap_or_default();
    out.clear();
    out.reserve(b.size);
    out.extend_from_slice(&(peer.outgoing_peer_id | flags).to_be_bytes());
    if b.sent_time {
        out.extend_from_slice(&(core.service_time as u16).to_be_bytes());
    }
    if core.checksum {
        let slot = out.len();
        let seed = if peer.outgoing_peer_id < wire::MAXIMUM_PEER_ID {
            peer.connect_id
        } else {
            0
        };
        out.extend_from_slice(&seed.to_be_bytes());
        let crc = crate::crc32::crc32(&[&out, &b.body]);
        out[slot..slot + 4].copy_from_slice(&crc.to_be_bytes());
    }
    if compressed {
        out.extend_from_slice(&core.scratch);
    } else {
        out.extend_from_slice(&b.body);
    }
    out
}

/// Emits queued acknowledgements; returns true if a DISCONNECT was acknowledged.
fn send_acknowledgements(peer: &mut Peer, b: &mut Builder) -> bool {
    let mut acked_disconnect = false;
    let ack_size = wire::command_size(Command::ACKNOWLEDGE);
    while let Some(ack) = peer.acknowledgements.front().copied() {
        if b.commands >= wire::MAXIMUM_PACKET_COMMANDS || b.room(peer.mtu) < ack_size {
            peer.continue_sending = true;
            break;
        }
        peer.acknowledgements.pop_front();
        wire::WireCommand {
            header: wire::CommandHeader::new(
                Command::ACKNOWLEDGE,
                ack.channel_id,
                ack.reliable_sequence_number,
            ),
            command: Command::Acknowledge {
                received_reliable_sequence_number: ack.reliable_sequence_number,
                received_sent_time: ack.sent_time,
            },
        }
        .emit(&mut b.body);
        b.size += ack_size;
        b.commands += 1;
        if ack.command & wire::COMMAND_MASK == Command::DISCONNECT {
            acked_disconnect = true;
        }
    }
    acked_disconnect
}

/// C's `enet_protocol_check_outgoing_commands`: fills the datagram from the two
/// outgoing queues in queueing order; returns whether a ping may be added.
fn check_outgoing_commands(core: &mut Core, peer: &mut Peer, b: &mut Builder) -> bool {
    // Index into outgoing_commands (skipped commands stay queued); reliable data
    // is always taken from the front of outgoing_send_reliable, or blocks.
    let mut i = 0;
    let mut reliable_blocked = false; // window full or about to wrap
    let mut can_ping = true;
    loop {
        let from_reliable = match (
            peer.outgoing_commands.get(i),
            (!reliable_blocked)
                .then(|| peer.outgoing_send_reliable.front())
                .flatten(),
        ) {
            (Some(a), Some(r)) => r.queue_seq < a.queue_seq,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let cmd = if from_reliable {
            &peer.outgoing_send_reliable[0]
        } else {
            &peer.outgoing_commands[i]
        };
        let reliable = cmd.wants_ack();
        let channel_idx = usize::from(cmd.channel_id);
        let has_channel = reliable && channel_idx < peer.channels.len();
        let reliable_window = cmd.reliable_sequence_number / RELIABLE_WINDOW_SIZE;
        if reliable {
            if has_channel {
                let ch = &peer.channels[channel_idx];
                let rw = u32::from(reliable_window);
                let span = (1u32 << (FREE_RELIABLE_WINDOWS + 2)) - 1;
                let mask = (span << rw) | (span >> (u32::from(RELIABLE_WINDOWS) - rw));
                let previous = ch.reliable_windows
                    [usize::from((reliable_window + RELIABLE_WINDOWS - 1) % RELIABLE_WINDOWS)];
                if cmd.send_attempts < 1
                    && cmd.reliable_sequence_number & (RELIABLE_WINDOW_SIZE - 1) == 0
                    && (previous >= RELIABLE_WINDOW_SIZE
                        || u32::from(ch.used_reliable_windows) & mask != 0)
                {
                    // Starting a new window would overrun the receiver's windows.
                    if from_reliable {
                        reliable_blocked = true;
                    } else {
                        i += 1;
                    }
                    continue;
                }
            }
            if cmd.packet.is_some() {
                let window =
                    peer.packet_throttle.saturating_mul(peer.window_size) / PACKET_THROTTLE_SCALE;
                if peer.reliable_data_in_transit + u32::from(cmd.fragment_length)
                    > window.max(peer.mtu)
                {
                    if from_reliable {
                        reliable_blocked = true;
                    } else {
                        i += 1;
                    }
                    continue;
                }
            }
            can_ping = false;
        }
        let command_size = cmd.fixed_size();
        let needed = command_size
            + if cmd.packet.is_some() {
                usize::from(cmd.fragment_length)
            } else {
                0
            };
        if b.commands >= wire::MAXIMUM_PACKET_COMMANDS || b.room(peer.mtu) < needed {
            peer.continue_sending = true;
            break;
        }
        let taken = if from_reliable {
            peer.outgoing_send_reliable.pop_front()
        } else {
            peer.outgoing_commands.remove(i)
        };
        let Some(mut cmd) = taken else {
            break;
        };
        if reliable {
            if has_channel && cmd.send_attempts < 1 {
                let ch = &mut peer.channels[channel_idx];
                ch.used_reliable_windows |= 1 << reliable_window;
                ch.reliable_windows[usize::from(reliable_window)] += 1;
            }
            cmd.send_attempts += 1;
            if cmd.round_trip_timeout == 0 {
                cmd.round_trip_timeout = peer
                    .round_trip_time
                    .saturating_add(peer.round_trip_time_variance.saturating_mul(4));
            }
            if peer.sent_reliable_commands.is_empty() {
                peer.next_timeout = core.service_time.wrapping_add(cmd.round_trip_timeout);
            }
            cmd.sent_time = core.service_time;
            b.sent_time = true;
            peer.reliable_data_in_transit += u32::from(cmd.fragment_length);
            cmd.emit(&mut b.body);
            crate::peer::push_small(&mut peer.sent_reliable_commands, cmd);
        } else {
            if cmd.packet.is_some() && cmd.fragment_offset == 0 {
                peer.packet_throttle_counter = (peer.packet_throttle_counter
                    + PACKET_THROTTLE_COUNTER)
                    % PACKET_THROTTLE_SCALE;
                if peer.packet_throttle_counter > peer.packet_throttle {
                    // Throttled: drop this packet and its remaining fragments.
                    peer.outgoing_waiting_data = peer
                        .outgoing_waiting_data
                        .saturating_sub(usize::from(cmd.fragment_length));
                    let packet = cmd.packet.as_ref();
                    while let Some(next) = peer.outgoing_commands.get(i) {
                        let same = match (&next.packet, packet) {
                            (Some(a), Some(b)) => a.same(b),
                            _ => false,
                        };
                        if !same || next.wants_ack() {
                            break;
                        }
                        peer.outgoing_waiting_data = peer
                            .outgoing_waiting_data
                            .saturating_sub(usize::from(next.fragment_length));
                        peer.outgoing_commands.remove(i);
                    }
                    trace!(peer = peer.incoming_peer_id, "unreliable packet throttled");
                    continue;
                }
            }
            peer.outgoing_waiting_data = peer
                .outgoing_waiting_data
                .saturating_sub(usize::from(cmd.fragment_length));
            cmd.emit(&mut b.body);
            core.recycle_payload(cmd.packet.take());
        }
        b.size += needed;
        b.commands += 1;
        peer.packets_sent += 1;
        peer.sent_since_ack = true;
    }
    can_ping
}
