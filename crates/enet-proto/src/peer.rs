//! Peers: the per-connection public view.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use crate::time::WireTime;
use crate::wire;
use crate::PacketFlags;

/// A connection of a [`crate::Host`]: the index of its peer slot (also its ENet
/// peer id on the wire) and the slot's generation, which changes every time the
/// slot is freed. An id kept after its connection ended is stale: the host
/// answers it with [`crate::Error::UnknownPeer`] (or `None`), even once the slot
/// serves a new connection, instead of addressing that new peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    index: u16,
    generation: u32,
}

impl PeerId {
    /// An id from its parts. Hosts hand out ids in events and from
    /// [`crate::Host::connect`]; a made-up id names a peer only if both its
    /// index and its generation match.
    pub const fn new(index: u16, generation: u32) -> PeerId {
        PeerId { index, generation }
    }

    /// The slot index (the peer id on the wire).
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation of the slot this id was handed out for.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// Connection state of a peer (C ENet's `ENetPeerState`, same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PeerState {
    /// Free slot.
    Disconnected,
    /// We sent CONNECT and wait for VERIFY_CONNECT.
    Connecting,
    /// We received CONNECT, sent VERIFY_CONNECT and wait for its acknowledgement.
    AcknowledgingConnect,
    /// Connection established, event not yet delivered (not used by this port).
    ConnectionPending,
    /// Connection established, event not yet delivered (not used by this port).
    ConnectionSucceeded,
    /// Connected.
    Connected,
    /// Disconnect requested once the queued outgoing data is delivered.
    DisconnectLater,
    /// DISCONNECT sent, waiting for its acknowledgement.
    Disconnecting,
    /// DISCONNECT received, its acknowledgement is pending.
    AcknowledgingDisconnect,
    /// Gone; the disconnect event is pending.
    Zombie,
}

/// Per-peer statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PeerStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Round-trip time variance.
    pub rtt_variance: Duration,
    /// Mean packet loss over the last loss interval, as a fraction in `0.0..=1.0`.
    pub packet_loss: f64,
    /// Reliable packets counted as lost (retransmissions).
    pub packets_lost: u64,
    /// Datagrams sent to the peer.
    pub packets_sent: u64,
    /// Datagrams received from the peer.
    pub packets_received: u64,
    /// Bytes sent to the peer (datagram sizes).
    pub bytes_sent: u64,
    /// Bytes received from the peer (datagram sizes).
    pub bytes_received: u64,
    /// Current unreliable packet throttle (0..=32, 32 = nothing dropped).
    pub packet_throttle: u32,
    /// Negotiated MTU.
    pub mtu: u32,
    /// Negotiated flow-control window (bytes).
    pub window_size: u32,
    /// Reliable bytes sent and not yet acknowledged.
    pub reliable_data_in_transit: u32,
    /// Received bytes buffered for in-order delivery or reassembly: payloads,
    /// the whole buffer of every incomplete fragmented packet, and a fixed
    /// bookkeeping charge per buffered command.
    pub incoming_buffered: usize,
    /// Bytes held by the buffers of incomplete fragmented packets (at most their
    /// total lengths, plus a bitmap of one bit per fragment).
    pub incomplete_bytes: usize,
    /// Payload bytes queued for sending or waiting for acknowledgement.
    pub outgoing_queued: usize,
}

// C ENet's peer constants (enet.h), same names without the prefix.
pub(crate) const DEFAULT_ROUND_TRIP_TIME: u32 = 500;
pub(crate) const DEFAULT_PACKET_THROTTLE: u32 = 32;
pub(crate) const PACKET_THROTTLE_SCALE: u32 = 32;
pub(crate) const PACKET_THROTTLE_COUNTER: u32 = 7;
pub(crate) const PACKET_THROTTLE_ACCELERATION: u32 = 2;
pub(crate) const PACKET_THROTTLE_DECELERATION: u32 = 2;
pub(crate) const PACKET_THROTTLE_INTERVAL: u32 = 5000;
pub(crate) const PACKET_LOSS_SCALE: u32 = 1 << 16;
pub(crate) const PACKET_LOSS_INTERVAL: u32 = 10000;
pub(crate) const WINDOW_SIZE_SCALE: u32 = 64 * 1024;
pub(crate) const TIMEOUT_LIMIT: u32 = 32;
pub(crate) const TIMEOUT_MINIMUM: u32 = 5000;
pub(crate) const TIMEOUT_MAXIMUM: u32 = 30000;
pub(crate) const PING_INTERVAL: u32 = 500;
pub(crate) const UNSEQUENCED_WINDOW_SIZE: u32 = 1024;
pub(crate) const FREE_UNSEQUENCED_WINDOWS: u32 = 32;
pub(crate) const RELIABLE_WINDOWS: u16 = 16;
pub(crate) const RELIABLE_WINDOW_SIZE: u16 = 0x1000;
pub(crate) const FREE_RELIABLE_WINDOWS: u16 = 8;

/// One bit per unsequenced group index (C's `unsequencedWindow`).
pub(crate) type UnsequencedWindow = [u32; (UNSEQUENCED_WINDOW_SIZE / 32) as usize];

/// Owned body of a queued outgoing command (payload, if any, lives in `packet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutBody {
    Connect(wire::Connect),
    VerifyConnect(wire::Connect),
    Disconnect(u32),
    Ping,
    SendReliable,
    SendUnreliable,
    SendUnsequenced,
    SendFragment {
        start: u16,
        count: u32,
        number: u32,
        total: u32,
        offset: u32,
    },
    SendUnreliableFragment {
        start: u16,
        count: u32,
        number: u32,
        total: u32,
        offset: u32,
    },
    BandwidthLimit {
        incoming: u32,
        outgoing: u32,
    },
    ThrottleConfigure {
        interval: u32,
        acceleration: u32,
        deceleration: u32,
    },
}

impl OutBody {
    pub(crate) fn number(&self) -> u8 {
        use wire::Command as C;
        match self {
            OutBody::Connect(_) => C::CONNECT,
            OutBody::VerifyConnect(_) => C::VERIFY_CONNECT,
            OutBody::Disconnect(_) => C::DISCONNECT,
            OutBody::Ping => C::PING,
            OutBody::SendReliable => C::SEND_RELIABLE,
            OutBody::SendUnreliable => C::SEND_UNRELIABLE,
            OutBody::SendUnsequenced => C::SEND_UNSEQUENCED,
            OutBody::SendFragment { .. } => C::SEND_FRAGMENT,
            OutBody::SendUnreliableFragment { .. } => C::SEND_UNRELIABLE_FRAGMENT,
            OutBody::BandwidthLimit { .. } => C::BANDWIDTH_LIMIT,
            OutBody::ThrottleConfigure { .. } => C::THROTTLE_CONFIGURE,
        }
    }
}

/// The payload of an outgoing command: the application's own buffer when the packet is
/// sent whole to one peer (no copy, no allocation), or shared by the fragments of a large
/// packet and by the peers of a broadcast.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Owned by this one command.
    Owned(Vec<u8>),
    /// Shared by several commands (fragments, broadcast).
    Shared(Arc<[u8]>),
}

impl Payload {
    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(a) => a,
        }
    }

    /// Whether `self` and `other` are the same shared buffer (fragments of one packet). An
    /// owned payload belongs to one command only.
    pub(crate) fn same(&self, other: &Payload) -> bool {
        match (self, other) {
            (Payload::Shared(a), Payload::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A command waiting to be sent, or sent and waiting for its acknowledgement.
#[derive(Debug)]
pub(crate) struct OutgoingCommand {
    /// Command byte including flags.
    pub(crate) command: u8,
    pub(crate) channel_id: u8,
    pub(crate) body: OutBody,
    pub(crate) reliable_sequence_number: u16,
    pub(crate) unreliable_sequence_number: u16,
    /// Unsequenced group (SEND_UNSEQUENCED only).
    pub(crate) unsequenced_group: u16,
    pub(crate) sent_time: WireTime,
    pub(crate) round_trip_timeout: u32,
    pub(crate) send_attempts: u32,
    pub(crate) packet: Option<Payload>,
    pub(crate) fragment_offset: u32,
    pub(crate) fragment_length: u16,
    /// Queueing order across the two outgoing queues.
    pub(crate) queue_seq: u64,
}

impl OutgoingCommand {
    pub(crate) fn wants_ack(&self) -> bool {
        self.command & wire::COMMAND_FLAG_ACKNOWLEDGE != 0
    }

    pub(crate) fn fixed_size(&self) -> usize {
        wire::command_size(self.body.number())
    }

    /// Payload slice (empty for control commands).
    pub(crate) fn payload(&self) -> &[u8] {
        match &self.packet {
            Some(p) => {
                let p = p.as_slice();
                let start = (self.fragment_offset as usize).min(p.len());
                let end = (start + usize::from(self.fragment_length)).min(p.len());
                &p[start..end]
            }
            None => &[],
        }
    }

    /// Encodes the command onto `out`.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        use wire::{Command, Fragment};
        let data = self.payload();
        let fragment = |start, count, number, total, offset| Fragment {
            start_sequence_number: start,
            fragment_count: count,
            fragment_number: number,
            total_length: total,
            fragment_offset: offset,
            data,
        };
        let command = match self.body {
            OutBody::Connect(c) => Command::Connect(c),
            OutBody::VerifyConnect(c) => Command::VerifyConnect(c),
            OutBody::Disconnect(data) => Command::Disconnect { data },
            OutBody::Ping => Command::Ping,
            OutBody::SendReliable => Command::SendReliable { data },
            OutBody::SendUnreliable => Command::SendUnreliable {
                unreliable_sequence_number: self.unreliable_sequence_number,
                data,
            },
            OutBody::SendUnsequenced => Command::SendUnsequenced {
                unsequenced_group: self.unsequenced_group,
                data,
            },
            OutBody::SendFragment {
                start,
                count,
                number,
                total,
                offset,
            } => Command::SendFragment(fragment(start, count, number, total, offset)),
            OutBody::SendUnreliableFragment {
                start,
                count,
                number,
                total,
                offset,
            } => Command::SendUnreliableFragment(fragment(start, count, number, total, offset)),
            OutBody::BandwidthLimit { incoming, outgoing } => Command::BandwidthLimit {
                incoming_bandwidth: incoming,
                outgoing_bandwidth: outgoing,
            },
            OutBody::ThrottleConfigure {
                interval,
                acceleration,
                deceleration,
            } => Command::ThrottleConfigure {
                packet_throttle_interval: interval,
                packet_throttle_acceleration: acceleration,
                packet_throttle_deceleration: deceleration,
            },
        };
        wire::WireCommand {
            header: wire::CommandHeader::new(
                self.command,
                self.channel_id,
                self.reliable_sequence_number,
            ),
            command,
        }
        .emit(out);
    }
}

/// A pending acknowledgement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acknowledgement {
    pub(crate) command: u8,
    pub(crate) channel_id: u8,
    pub(crate) reliable_sequence_number: u16,
    pub(crate) sent_time: u16,
}

/// Reassembly state of a fragmented packet whose `total_length` bytes live in
/// the command's `data`, allocated once when its first fragment arrives (as C
/// ENet does); fragments are copied into place. The fragment layout is fixed by
/// the first fragment, so fragments can neither overlap nor grow the memory.
#[derive(Debug)]
pub(crate) struct Reassembly {
    /// One bit per fragment number: received or not (duplicates are ignored).
    pub(crate) received: Vec<u64>,
    /// Length of every fragment but the last (the sender's fragment size).
    pub(crate) fragment_length: u32,
}

impl Reassembly {
    /// An empty bitmap for `fragment_count` fragments of `fragment_length` bytes.
    pub(crate) fn new(fragment_count: u32, fragment_length: u32) -> Reassembly {
        Reassembly {
            received: vec![0; (fragment_count as usize).div_ceil(64)],
            fragment_length,
        }
    }

    /// Bytes of bookkeeping this state holds besides the packet buffer.
    pub(crate) fn bitmap_bytes(fragment_count: u32) -> usize {
        (fragment_count as usize).div_ceil(64) * 8
    }

    /// Marks `number` received; false if it already was (or is out of range).
    pub(crate) fn mark(&mut self, number: u32) -> bool {
        let (word, bit) = ((number / 64) as usize, 1u64 << (number % 64));
        match self.received.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }
}

/// A received command waiting for its turn to be delivered.
#[derive(Debug)]
pub(crate) struct IncomingCommand {
    pub(crate) id: u64,
    pub(crate) number: u8,
    pub(crate) reliable_sequence_number: u16,
    pub(crate) unreliable_sequence_number: u16,
    pub(crate) fragment_count: u32,
    pub(crate) fragments_remaining: u32,
    pub(crate) total_length: u32,
    pub(crate) flags: PacketFlags,
    /// The payload; for a fragmented packet, its buffer of `total_length` bytes.
    pub(crate) data: Vec<u8>,
    /// What this command counts against `maximum_waiting_data` (and the host-wide budget).
    pub(crate) charge: usize,
    /// Present while a fragmented packet is incomplete.
    pub(crate) reassembly: Option<Box<Reassembly>>,
}

/// One channel of a connection.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    pub(crate) outgoing_reliable_sequence_number: u16,
    pub(crate) outgoing_unreliable_sequence_number: u16,
    pub(crate) used_reliable_windows: u16,
    pub(crate) reliable_windows: [u16; RELIABLE_WINDOWS as usize],
    pub(crate) incoming_reliable_sequence_number: u16,
    pub(crate) incoming_unreliable_sequence_number: u16,
    pub(crate) incoming_reliable_commands: VecDeque<IncomingCommand>,
    pub(crate) incoming_unreliable_commands: VecDeque<IncomingCommand>,
}

/// Cumulative counters (never reset while the slot is in use).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) packets_sent: u64,
    pub(crate) packets_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) packets_lost: u64,
}

/// A peer slot of a [`crate::Host`]: one (possible) connection.
///
/// Obtained from [`crate::Host::peer`]; all mutation goes through the host.
pub struct Peer {
    pub(crate) incoming_peer_id: u16,
    /// Bumped every time the slot is freed (see [`PeerId`]).
    pub(crate) generation: u32,
    pub(crate) outgoing_peer_id: u16,
    pub(crate) connect_id: u32,
    pub(crate) incoming_session_id: u8,
    pub(crate) outgoing_session_id: u8,
    pub(crate) address: SocketAddr,
    pub(crate) state: PeerState,
    pub(crate) channels: Vec<Channel>,
    pub(crate) incoming_bandwidth: u32,
    pub(crate) outgoing_bandwidth: u32,
    pub(crate) incoming_bandwidth_throttle_epoch: WireTime,
    pub(crate) outgoing_bandwidth_throttle_epoch: WireTime,
    pub(crate) incoming_data_total: u32,
    pub(crate) outgoing_data_total: u32,
    pub(crate) last_send_time: WireTime,
    pub(crate) last_receive_time: WireTime,
    /// When the last datagram from the peer arrived (any command; `last_receive_time` moves
    /// only with acknowledgements, as in C ENet). 0: never.
    pub(crate) last_heard_time: WireTime,
    /// Whether commands other than acknowledgements went to the peer since its last
    /// acknowledgement arrived (see [`Peer::ping_wait`]).
    pub(crate) sent_since_ack: bool,
    pub(crate) next_timeout: WireTime,
    pub(crate) earliest_timeout: WireTime,
    pub(crate) packet_loss_epoch: WireTime,
    pub(crate) packets_sent: u32,
    pub(crate) packets_lost: u32,
    pub(crate) packet_loss: u32,
    pub(crate) packet_loss_variance: u32,
    pub(crate) packet_throttle: u32,
    pub(crate) packet_throttle_limit: u32,
    pub(crate) packet_throttle_counter: u32,
    pub(crate) packet_throttle_epoch: WireTime,
    pub(crate) packet_throttle_acceleration: u32,
    pub(crate) packet_throttle_deceleration: u32,
    pub(crate) packet_throttle_interval: u32,
    pub(crate) ping_interval: u32,
    pub(crate) timeout_limit: u32,
    pub(crate) timeout_minimum: u32,
    pub(crate) timeout_maximum: u32,
    pub(crate) last_round_trip_time: u32,
    pub(crate) lowest_round_trip_time: u32,
    pub(crate) last_round_trip_time_variance: u32,
    pub(crate) highest_round_trip_time_variance: u32,
    pub(crate) round_trip_time: u32,
    pub(crate) round_trip_time_variance: u32,
    pub(crate) mtu: u32,
    pub(crate) window_size: u32,
    pub(crate) reliable_data_in_transit: u32,
    pub(crate) outgoing_reliable_sequence_number: u16,
    pub(crate) acknowledgements: VecDeque<Acknowledgement>,
    pub(crate) sent_reliable_commands: VecDeque<OutgoingCommand>,
    /// Unreliable commands and reliable control commands, in queueing order.
    pub(crate) outgoing_commands: VecDeque<OutgoingCommand>,
    /// Reliable commands carrying data, in queueing order (flow-controlled by the window).
    pub(crate) outgoing_send_reliable: VecDeque<OutgoingCommand>,
    pub(crate) next_queue_seq: u64,
    pub(crate) incoming_unsequenced_group: u16,
    pub(crate) outgoing_unsequenced_group: u16,
    /// Unsequenced packets seen in the current group (C's `unsequencedWindow`); made when
    /// the first unsequenced packet arrives (`None` reads as all clear), so that a peer
    /// which sends none does not carry its 128 bytes.
    pub(crate) unsequenced_window: Option<Box<UnsequencedWindow>>,
    pub(crate) event_data: u32,
    /// Received bytes buffered for delivery or reassembly (counted against
    /// `maximum_waiting_data`; the host keeps the sum over all peers).
    pub(crate) total_waiting_data: usize,
    /// Bytes held by the buffers of incomplete fragmented packets (part of
    /// `total_waiting_data`).
    pub(crate) incomplete_bytes: usize,
    pub(crate) outgoing_waiting_data: usize,
    pub(crate) continue_sending: bool,
    pub(crate) next_incoming_id: u64,
    pub(crate) counters: Counters,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.incoming_peer_id)
            .field("address", &self.address)
            .field("state", &self.state)
            .field("mtu", &self.mtu)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Milliseconds from `now` until the keepalive ping of this connected peer with nothing
    /// in flight is due (0: due).
    ///
    /// C ENet pings a peer once `ping_interval` has passed without an acknowledgement from
    /// it, even when the peer keeps pinging too: an idle connection then carries two pings
    /// and two acknowledgements per interval, where one of each keeps it alive. So a host
    /// that has sent its peer nothing but acknowledgements since the last acknowledgement
    /// came back also waits until the peer has been silent for 1.5 `ping_interval` (any
    /// datagram counts): against a peer that pings at `ping_interval` (every C ENet host) it
    /// only answers, and the server of 4,000 idle C ENet clients receives half the datagrams.
    /// A peer that goes quiet is still pinged, and its timeout found, 0.5 `ping_interval`
    /// later than C ENet would. Once the host sends other commands (unreliable data), the
    /// C rule applies again, so the round-trip samples that drive the packet throttle keep
    /// coming. Both waits are measured back from `now` (C's `ENET_TIME_DIFFERENCE`), so an
    /// acknowledgement that is days old, as it is for a peer that pinged us for days while
    /// we only answered, still reads as long ago.
    pub(crate) fn ping_wait(&self, now: WireTime) -> u32 {
        let since_ack = crate::time::difference(now, self.last_receive_time);
        let mut wait = self.ping_interval.saturating_sub(since_ack);
        if !self.sent_since_ack && self.last_heard_time != 0 {
            let quiet = self.ping_interval.saturating_add(self.ping_interval / 2);
            let since_heard = crate::time::difference(now, self.last_heard_time);
            wait = wait.max(quiet.saturating_sub(since_heard));
        }
        wait
    }

    pub(crate) fn new(id: u16, mtu: u32) -> Peer {
        Peer {
            incoming_peer_id: id,
            generation: 0,
            outgoing_peer_id: wire::MAXIMUM_PEER_ID,
            connect_id: 0,
            incoming_session_id: 0xFF,
            outgoing_session_id: 0xFF,
            address: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            state: PeerState::Disconnected,
            channels: Vec::new(),
            incoming_bandwidth: 0,
            outgoing_bandwidth: 0,
            incoming_bandwidth_throttle_epoch: 0,
            outgoing_bandwidth_throttle_epoch: 0,
            incoming_data_total: 0,
            outgoing_data_total: 0,
            last_send_time: 0,
            last_receive_time: 0,
            last_heard_time: 0,
            sent_since_ack: false,
            next_timeout: 0,
            earliest_timeout: 0,
            packet_loss_epoch: 0,
            packets_sent: 0,
            packets_lost: 0,
            packet_loss: 0,
            packet_loss_variance: 0,
            packet_throttle: DEFAULT_PACKET_THROTTLE,
            packet_throttle_limit: PACKET_THROTTLE_SCALE,
            packet_throttle_counter: 0,
            packet_throttle_epoch: 0,
            packet_throttle_acceleration: PACKET_THROTTLE_ACCELERATION,
            packet_throttle_deceleration: PACKET_THROTTLE_DECELERATION,
            packet_throttle_interval: PACKET_THROTTLE_INTERVAL,
            ping_interval: PING_INTERVAL,
            timeout_limit: TIMEOUT_LIMIT,
            timeout_minimum: TIMEOUT_MINIMUM,
            timeout_maximum: TIMEOUT_MAXIMUM,
            last_round_trip_time: DEFAULT_ROUND_TRIP_TIME,
            lowest_round_trip_time: DEFAULT_ROUND_TRIP_TIME,
            last_round_trip_time_variance: 0,
            highest_round_trip_time_variance: 0,
            round_trip_time: DEFAULT_ROUND_TRIP_TIME,
            round_trip_time_variance: 0,
            mtu,
            window_size: wire::MAXIMUM_WINDOW_SIZE,
            reliable_data_in_transit: 0,
            outgoing_reliable_sequence_number: 0,
            acknowledgements: VecDeque::new(),
            sent_reliable_commands: VecDeque::new(),
            outgoing_commands: VecDeque::new(),
            outgoing_send_reliable: VecDeque::new(),
            next_queue_seq: 0,
            incoming_unsequenced_group: 0,
            outgoing_unsequenced_group: 0,
            unsequenced_window: None,
            event_data: 0,
            total_waiting_data: 0,
            incomplete_bytes: 0,
            outgoing_waiting_data: 0,
            continue_sending: false,
            next_incoming_id: 0,
            counters: Counters::default(),
        }
    }

    /// Clears every queue and the channels (C's `enet_peer_reset_queues`). Use
    /// [`crate::host::clear_queues`], which also returns the freed incoming bytes
    /// to the host-wide budget.
    pub(crate) fn reset_queues(&mut self) {
        self.acknowledgements.clear();
        self.sent_reliable_commands.clear();
        self.outgoing_commands.clear();
        self.outgoing_send_reliable.clear();
        self.channels.clear();
        self.outgoing_waiting_data = 0;
        self.total_waiting_data = 0;
        self.incomplete_bytes = 0;
    }

    /// Gives back the buffers of the peer's empty command queues (not in C ENet, whose
    /// queues are intrusive lists). A queue keeps its buffer once it has held a command, so
    /// without this an idle connection would keep what its handshake used (224 bytes) and
    /// whatever its last burst of traffic grew its queues to, for as long as it stays idle.
    /// Called when a connection is established and at each keepalive (a PING received, the
    /// acknowledgement of a PING sent): points a busy peer reaches at most once per ping
    /// interval, so a peer that exchanges data keeps its buffers and its steady state
    /// allocates nothing.
    pub(crate) fn release_idle_buffers(&mut self) {
        fn release<T>(queue: &mut VecDeque<T>) {
            if queue.is_empty() && queue.capacity() != 0 {
                *queue = VecDeque::new();
            }
        }
        release(&mut self.sent_reliable_commands);
        release(&mut self.outgoing_commands);
        release(&mut self.outgoing_send_reliable);
        // A client's channel table can be longer than what the server granted.
        self.channels.shrink_to_fit();
        for channel in &mut self.channels {
            release(&mut channel.incoming_reliable_commands);
            release(&mut channel.incoming_unreliable_commands);
        }
    }

    /// Heap bytes this peer holds beside its slot: its channel table and the buffers of its
    /// command queues, by capacity (used or not). Packet payloads are not counted.
    pub(crate) fn heap_bytes(&self) -> usize {
        fn deque<T>(queue: &VecDeque<T>) -> usize {
            queue.capacity() * std::mem::size_of::<T>()
        }
        let channels: usize = self
            .channels
            .iter()
            .map(|c| deque(&c.incoming_reliable_commands) + deque(&c.incoming_unreliable_commands))
            .sum();
        self.channels.capacity() * std::mem::size_of::<Channel>()
            + channels
            + deque(&self.acknowledgements)
            + deque(&self.sent_reliable_commands)
            + deque(&self.outgoing_commands)
            + deque(&self.outgoing_send_reliable)
            + self
                .unsequenced_window
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<UnsequencedWindow>())
    }

    /// True while queued or in-flight commands remain (C's `enet_peer_has_outgoing_commands`).
    pub(crate) fn has_outgoing_commands(&self) -> bool {
        !self.outgoing_commands.is_empty()
            || !self.outgoing_send_reliable.is_empty()
            || !self.sent_reliable_commands.is_empty()
    }

    /// The id of the slot's current connection (its index is also the peer id the
    /// remote puts in its headers).
    pub fn id(&self) -> PeerId {
        PeerId::new(self.incoming_peer_id, self.generation)
    }

    /// The remote address (meaningless while [`PeerState::Disconnected`]).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The connection state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// Number of channels negotiated (0 while disconnected).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Negotiated MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The random connection id of the current connection (0 while disconnected).
    pub fn connect_id(&self) -> u32 {
        self.connect_id
    }

    /// Statistics of the current connection.
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            rtt: Duration::from_millis(u64::from(self.round_trip_time)),
            rtt_variance: Duration::from_millis(u64::from(self.round_trip_time_variance)),
            packet_loss: f64::from(self.packet_loss) / f64::from(PACKET_LOSS_SCALE),
            packets_lost: self.counters.packets_lost,
            packets_sent: self.counters.packets_sent,
            packets_received: self.counters.packets_received,
            bytes_sent: self.counters.bytes_sent,
            bytes_received: self.counters.bytes_received,
            packet_throttle: self.packet_throttle,
            mtu: self.mtu,
            window_size: self.window_size,
            reliable_data_in_transit: self.reliable_data_in_transit,
            incoming_buffered: self.total_waiting_data,
            incomplete_bytes: self.incomplete_bytes,
            outgoing_queued: self.outgoing_waiting_data,
        }
    }
}

/// Appends `item` to a per-peer queue, starting an empty queue at room for one element
/// (the standard growth would start at four): an idle connection only ever holds one ping
/// in flight, so this keeps its memory small, while a busy one grows its queues to their
/// working size once and reuses them.
pub(crate) fn push_small<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.capacity() == 0 {
        queue.reserve_exact(1);
    }
    queue.push_back(item);
}
