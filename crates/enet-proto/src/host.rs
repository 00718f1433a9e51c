//! The host: all peers of one socket, driven sans-IO.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use crate::peer::{
    push_small, Channel, OutBody, OutgoingCommand, Payload, Peer, PACKET_THROTTLE_SCALE,
    TIMEOUT_LIMIT, TIMEOUT_MAXIMUM, TIMEOUT_MINIMUM, WINDOW_SIZE_SCALE,
};
use crate::time::{self, WireClock, WireTime};
use crate::wire::{self, Command};
use crate::{Compressor, Error, Packet, PacketFlags, PeerId, PeerState};

/// Host configuration. `Default` gives C ENet's defaults.
pub struct HostConfig {
    /// Number of peer slots (1..=4095). Default 32.
    pub peer_limit: usize,
    /// Most channels accepted from a connecting peer (1..=255). Default 255.
    pub channel_limit: usize,
    /// Downstream bandwidth in bytes/s, 0 = unlimited. Default 0.
    pub incoming_bandwidth: u32,
    /// Upstream bandwidth in bytes/s, 0 = unlimited. Default 0.
    pub outgoing_bandwidth: u32,
    /// MTU offered to peers (576..=4096). Default 1392.
    pub mtu: u32,
    /// Most peers accepted from one source address (C ENet's `duplicatePeers`):
    /// a CONNECT from an address that already has this many peers (connected or
    /// still completing the handshake) is refused. An IPv4 address is one source;
    /// for IPv6, one /64 prefix is. Must be at least 1.
    ///
    /// The default is C ENet's 4095, i.e. no limit; [`HostConfig::server`] uses
    /// [`SERVER_DUPLICATE_PEERS`], so that one address (a machine, or an attacker
    /// sending CONNECTs from many ports) cannot fill a server's peer table.
    pub duplicate_peers: usize,
    /// Largest packet sent or accepted. Default 32 MiB.
    pub maximum_packet_size: usize,
    /// Most received data buffered per peer before new commands are refused
    /// (C ENet's `maximumWaitingData`). Default 32 MiB.
    ///
    /// It counts packets waiting for in-order delivery and the buffers of
    /// incomplete fragmented packets. A fragmented packet's buffer is its total
    /// length, allocated once when its first fragment arrives (as C ENet does) and
    /// filled in place, so its fragments never hold more than that. Like C ENet,
    /// the test is made before a command is buffered, so one peer holds at most
    /// this plus one packet (`maximum_packet_size`). Everything is freed when the
    /// peer disconnects, times out or is reset.
    pub maximum_waiting_data: usize,
    /// Most bytes held by incomplete fragmented packets over all peers together
    /// (not in C ENet, which only has the per-peer `maximum_waiting_data`).
    /// Default 128 MiB.
    ///
    /// The buffers of packets whose fragments are still arriving never add up to
    /// more than this: the first fragment of a packet whose buffer would cross it
    /// is refused (a reliable sender retransmits it later), so many peers that
    /// start packets and never finish them cannot exhaust the process's memory,
    /// whatever `peer_limit` is. Packets without fragments are not counted here
    /// (each peer's `maximum_waiting_data` bounds them), so peers that send small
    /// packets keep working while this budget is full. See
    /// [`HostStats::incomplete_bytes`]. Must be at least `maximum_packet_size`.
    pub maximum_incomplete_data: usize,
    /// Add and check a CRC32 in every datagram (C ENet's `enet_crc32` checksum).
    pub checksum: bool,
    /// Compress datagrams (header flag 0x4000) with this compressor.
    pub compressor: Option<Box<dyn Compressor>>,
    /// Seed of the host's PRNG, which draws the random connect ids. The core has
    /// no entropy source of its own: drivers should set this from a random
    /// source (e.g. `rand::random()`), otherwise every host with the same seed
    /// produces the same connect ids. Default 0.
    pub seed: u64,
    /// Value of the 32-bit wire clock at `Host::new` (default 1). Only useful to
    /// test behaviour around the clock's wrap.
    pub time_base: u32,
    /// Let acknowledgements ride with the application's replies (not in C ENet; default
    /// off, i.e. C ENet's behaviour: acknowledgements leave with the first datagram built
    /// after the commands arrived).
    ///
    /// When on, a peer whose only output is acknowledgements of data (`SEND_*` commands)
    /// is not sent a datagram while events from [`Host::handle_datagram`] wait in
    /// [`Host::poll_event`]: its acknowledgements are held until the application has taken
    /// every waiting event and calls [`Host::poll_transmit`] again (or calls
    /// [`Host::release_acknowledgements`]), so that the replies it queued meanwhile leave in
    /// the same datagram as the acknowledgements: one datagram per request and reply
    /// instead of two. Everything else is sent at once as before: acknowledgements of
    /// pings, CONNECTs and DISCONNECTs, acknowledgements of a peer that has other commands
    /// to send, retransmissions, pings, and every acknowledgement when no event waits.
    ///
    /// The cost: the held acknowledgements leave later by the time the application takes
    /// to handle its events, and the remote's round-trip-time estimate (the acknowledgement
    /// echoes the command's sent time) includes it. The drivers of `enet-dtls` bound the
    /// hold: `flush` sends held acknowledgements, and so does a `service` or `check_events`
    /// call that returns a queued event once they have been held for a millisecond.
    /// Applications that take their events in a loop and service again right away
    /// (servers, the Godot multiplayer peer) lose nothing; an application that takes one
    /// event and then stops servicing for a while should leave this off.
    ///
    /// With it on, the drain contract of the crate docs becomes: after taking the events,
    /// drain [`Host::poll_transmit`] once more (after queuing the replies).
    pub acks_with_replies: bool,
}

/// The per-address peer limit of [`HostConfig::server`]. Small enough that one
/// address cannot take more than a share of a typical game server's table (32
/// slots by default), large enough for a household or a small NAT; servers that
/// expect many peers behind one address (carrier-grade NAT, LAN events, load
/// tests from one machine) raise it.
pub const SERVER_DUPLICATE_PEERS: usize = 16;

impl HostConfig {
    /// C ENet's defaults (like [`HostConfig::default`]) except for the
    /// per-address peer limit, which is [`SERVER_DUPLICATE_PEERS`] instead of no
    /// limit: the configuration for a host that accepts connections from the
    /// internet.
    pub fn server() -> HostConfig {
        HostConfig {
            duplicate_peers: SERVER_DUPLICATE_PEERS,
            ..HostConfig::default()
        }
    }
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            peer_limit: 32,
            channel_limit: 255,
            incoming_bandwidth: 0,
            outgoing_bandwidth: 0,
            mtu: 1392,
            duplicate_peers: 4095,
            maximum_packet_size: 32 * 1024 * 1024,
            maximum_waiting_data: 32 * 1024 * 1024,
            maximum_incomplete_data: 128 * 1024 * 1024,
            checksum: false,
            compressor: None,
            seed: 0,
            time_base: 1,
            acks_with_replies: false,
        }
    }
}

impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConfig")
            .field("peer_limit", &self.peer_limit)
            .field("channel_limit", &self.channel_limit)
            .field("incoming_bandwidth", &self.incoming_bandwidth)
            .field("outgoing_bandwidth", &self.outgoing_bandwidth)
            .field("mtu", &self.mtu)
            .field("duplicate_peers", &self.duplicate_peers)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("maximum_waiting_data", &self.maximum_waiting_data)
            .field("maximum_incomplete_data", &self.maximum_incomplete_data)
            .field("checksum", &self.checksum)
            .field("compressor", &self.compressor.is_some())
            .field("seed", &self.seed)
            .field("time_base", &self.time_base)
            .field("acks_with_replies", &self.acks_with_replies)
            .finish()
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram (at most the peer's MTU).
    pub data: Vec<u8>,
}

/// Why a peer was disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The remote side disconnected.
    Remote,
    /// We disconnected (`disconnect`, `disconnect_later`, `disconnect_now`).
    Local,
    /// The peer stopped acknowledging (or never answered CONNECT).
    Timeout,
    /// The remote side refused or could not verify our CONNECT.
    Refused,
    /// The transport under ENet failed the connection: a DTLS handshake or certificate check
    /// failed, or the DTLS session died. This core never produces it; the drivers in
    /// `enet-dtls` do, when their socket reports a failure for the peer's address, and keep
    /// the cause for the application (`EnetHost::take_failure`).
    Failed,
}

/// Something that happened on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection was established (we connected, or a peer connected to us).
    Connect {
        /// The peer.
        peer: PeerId,
        /// Its address.
        address: SocketAddr,
        /// User data from the remote CONNECT (0 for outgoing connections).
        data: u32,
    },
    /// A packet arrived.
    Receive {
        /// The peer.
        peer: PeerId,
        /// Channel it arrived on.
        channel: u8,
        /// The packet.
        packet: Packet,
    },
    /// A peer is gone; its slot is free again.
    Disconnect {
        /// The peer.
        peer: PeerId,
        /// Its address.
        address: SocketAddr,
        /// User data from the DISCONNECT (0 if none).
        data: u32,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Host totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostStats {
    /// Bytes sent (datagram sizes).
    pub bytes_sent: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Bytes received (datagram sizes).
    pub bytes_received: u64,
    /// Datagrams received.
    pub packets_received: u64,
    /// Datagrams dropped as malformed, unauthenticated or unexpected.
    pub datagrams_dropped: u64,
    /// Passes over the whole peer table. Sending, timers, timeouts and the
    /// once-a-second bandwidth throttle (which walks the connected peers only)
    /// never walk the table (see [`HostStats::peer_visits`]); only a CONNECT
    /// does (free slot, duplicate check).
    pub peer_table_scans: u64,
    /// Peers looked at by the send and timer paths: one per peer that had
    /// something due (a datagram received for it, an API call on it, a timer of
    /// its own that expired), never one per peer slot. The host's work per
    /// message depends on this, not on the peer capacity.
    pub peer_visits: u64,
    /// CONNECTs refused: no free peer slot, too many peers from the source
    /// address ([`HostConfig::duplicate_peers`]), a bad channel count, or (counted per
    /// datagram) refusing new connections ([`Host::set_refuse_new_connections`]).
    pub connects_refused: u64,
    /// Peers currently connected.
    pub connected_peers: usize,
    /// Received bytes buffered over all peers, for in-order delivery or
    /// reassembly (the sum of every peer's [`crate::PeerStats::incoming_buffered`]).
    pub incoming_buffered: usize,
    /// Bytes held by the buffers of incomplete fragmented packets over all peers
    /// (part of `incoming_buffered`; bounded by [`HostConfig::maximum_incomplete_data`]).
    pub incomplete_bytes: usize,
}

/// Host-wide constants from C ENet.
const BANDWIDTH_THROTTLE_INTERVAL: u32 = 1000;

/// Host state shared by all peers (split from the peer table for borrowing).
pub(crate) struct Core {
    pub(crate) channel_limit: usize,
    /// [`HostConfig::peer_limit`]: the slots `Host::peers` may grow to.
    pub(crate) peer_limit: usize,
    pub(crate) incoming_bandwidth: u32,
    pub(crate) outgoing_bandwidth: u32,
    pub(crate) mtu: u32,
    pub(crate) duplicate_peers: usize,
    pub(crate) maximum_packet_size: usize,
    pub(crate) maximum_waiting_data: usize,
    pub(crate) maximum_incomplete_data: usize,
    /// Sum of every peer's `total_waiting_data`.
    pub(crate) waiting_data_total: usize,
    /// Sum of every peer's `incomplete_bytes`.
    pub(crate) incomplete_bytes: usize,
    pub(crate) checksum: bool,
    pub(crate) compressor: Option<Box<dyn Compressor>>,
    /// Drop every datagram addressed to no peer (CONNECT), see [`Host::set_refuse_new_connections`].
    pub(crate) refuse_connections: bool,
    /// [`HostConfig::acks_with_replies`].
    acks_with_replies: bool,
    /// Set by every received datagram when `acks_with_replies` is on; cleared when the held
    /// acknowledgements are released (the hold applies to acknowledgements queued since).
    pub(crate) hold_armed: bool,
    rng: u64,
    clock: WireClock,
    pub(crate) service_time: WireTime,
    last_now: Instant,
    bandwidth_throttle_epoch: WireTime,
    pub(crate) recalculate_bandwidth_limits: bool,
    pub(crate) connected_peers: usize,
    /// Slots of the connected peers (Connected or DisconnectLater), in no order: the
    /// once-a-second bandwidth throttle walks these instead of every slot.
    live: Vec<u16>,
    /// Position of each slot in `live` (`u32::MAX`: not there).
    live_pos: Vec<u32>,
    /// Reused buffer for the sorted `live` slots of one throttle pass.
    live_sorted: Vec<u16>,
    pub(crate) bandwidth_limited_peers: usize,
    pub(crate) events: VecDeque<Event>,
    pending: VecDeque<Transmit>,
    pub(crate) stats: HostStats,
    /// The earliest timer, valid while `deadline_dirty` is false.
    next_deadline: Option<Instant>,
    /// Set by every input that may move a timer; the deadline is recomputed (one
    /// pass over the peers) once per batch, not once per datagram.
    deadline_dirty: bool,
    pub(crate) scratch: Vec<u8>,
    /// Reused buffer for the commands of the datagram being built (see `build_datagram`).
    pub(crate) body_buf: Vec<u8>,
    /// Datagram buffers handed back with [`Host::recycle`], reused by `poll_transmit`.
    pub(crate) spare: Vec<Vec<u8>>,
    /// Payload buffers of acknowledged (or sent unreliable) packets, reused for the copies of
    /// received ones (see [`Core::payload_copy`]).
    payloads: Vec<Vec<u8>>,
    /// Milliseconds from the wire clock's epoch to `last_now` (never wraps).
    abs_ms: u64,
    /// Which peers have something due (see [`Sched`]).
    pub(crate) sched: Sched,
}

/// How many sent datagram buffers [`Host::recycle`] keeps for reuse.
pub const SPARE_BUFFERS: usize = 256;

/// Buffers larger than this (bytes of capacity) are not kept by [`Host::recycle`].
const SPARE_BUFFER_CAPACITY: usize = 64 * 1024;

/// Most payload buffers kept for reuse ([`Core::payload_copy`]).
const PAYLOAD_POOL: usize = 64;

/// Largest payload buffer kept for reuse (an unfragmented packet fits in one MTU).
const PAYLOAD_POOL_CAPACITY: usize = wire::MAXIMUM_MTU as usize;

/// Granularity of idle ping timers, in milliseconds (see `Host::peer_deadline`): a ping
/// goes out at most this much later than `ping_interval` after the last datagram from the
/// peer, far below the timeouts (seconds) it serves, and the host wakes at most
/// `1000 / PING_SLACK_MS` times a second for the pings of any number of idle peers.
const PING_SLACK_MS: u64 = 20;

/// Not queued in `Sched::active`.
const IDLE: u8 = 0;
/// Queued in `Sched::active`, not yet visited by `poll_transmit`.
const QUEUED: u8 = 1;
/// Visited by `poll_transmit` (nothing more to send); its timer is refreshed at the end of the batch.
const DRAINED: u8 = 2;
/// Has only acknowledgements to send, held until the application took its events
/// ([`HostConfig::acks_with_replies`]); listed in `Sched::held`.
const HELD: u8 = 3;
/// No timer armed.
const NO_TIMER: u64 = u64::MAX;

/// The host's schedule: the only structure the send and timer paths walk, so
/// their cost follows the peers with something due, not the peer capacity.
///
/// * `active`: peers touched since the last completed batch (a datagram was
///   received for them, an API call queued something, their timer expired).
///   `poll_transmit` builds datagrams for them in order; once it has drained
///   the list, each one's timer is re-armed and the list is emptied.
/// * `timers`: a min-heap of (deadline in ms since the clock epoch, slot), at
///   most one valid entry per peer (`timer_at[slot]` is its key; entries with
///   another key are stale and dropped when they surface). An entry is never
///   later than the peer's real deadline (retransmission when reliable
///   commands are in flight, otherwise the idle ping); a deadline that moved
///   later (every received datagram moves the ping) is not re-pushed: the early
///   entry is re-armed when it reaches the top, so a busy peer costs no heap
///   operation per batch.
pub(crate) struct Sched {
    mark: Vec<u8>,
    active: Vec<u16>,
    cursor: usize,
    timers: BinaryHeap<Reverse<(u64, u16)>>,
    timer_at: Vec<u64>,
    /// Peers whose acknowledgements are held ([`HostConfig::acks_with_replies`]).
    held: Vec<u16>,
}

impl Sched {
    /// Bytes held by the scheduler's tables, by capacity.
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.mark.capacity()
            + (self.active.capacity() + self.held.capacity()) * size_of::<u16>()
            + self.timers.capacity() * size_of::<Reverse<(u64, u16)>>()
            + self.timer_at.capacity() * size_of::<u64>()
    }

    fn new(slots: usize) -> Sched {
        Sched {
            mark: vec![IDLE; slots],
            active: Vec::new(),
            cursor: 0,
            timers: BinaryHeap::new(),
            timer_at: vec![NO_TIMER; slots],
            held: Vec::new(),
        }
    }

    /// Queues slot `idx` for the send path and a timer refresh.
    pub(crate) fn touch(&mut self, idx: usize) {
        if self.mark[idx] != QUEUED {
            self.mark[idx] = QUEUED;
            self.active.push(idx as u16);
        }
    }

    /// Arms the timer of `idx` at `key` unless an entry at or before it is armed.
    fn arm(&mut self, idx: usize, key: u64) {
        if key < self.timer_at[idx] {
            self.timer_at[idx] = key;
            self.timers.push(Reverse((key, idx as u16)));
        }
    }

    /// Whether a valid entry (not stale) is at the top, and its key.
    fn top(&self) -> Option<(u64, usize)> {
        self.timers
            .peek()
            .map(|Reverse((k, i))| (*k, usize::from(*i)))
    }
}

impl Core {
    /// A copy of `data`, the payload of a received packet, that the application will own.
    /// It reuses the last payload buffer given back ([`Core::recycle_payload`]) when that
    /// one fits (at least `data.len()` and at most about twice that, so a small packet the
    /// application keeps never holds a large buffer); a buffer that does not fit is freed
    /// instead, so the kept buffers follow the sizes in use. When an application sends back
    /// what it receives (an echo, a relay), a received payload travels on as the sent one
    /// and returns here once acknowledged: that steady state allocates nothing.
    pub(crate) fn payload_copy(&mut self, data: &[u8]) -> Vec<u8> {
        match self.payloads.pop() {
            Some(mut buffer)
                if buffer.capacity() >= data.len() && buffer.capacity() <= 2 * data.len() + 64 =>
            {
                buffer.clear();
                buffer.extend_from_slice(data);
                buffer
            }
            _ => data.to_vec(),
        }
    }

    /// Keeps the payload buffer of a packet that is done with (acknowledged, or sent
    /// unreliably) for [`Core::payload_copy`]: at most [`PAYLOAD_POOL`] of them, none larger
    /// than [`PAYLOAD_POOL_CAPACITY`].
    pub(crate) fn recycle_payload(&mut self, payload: Option<Payload>) {
        if let Some(Payload::Owned(buffer)) = payload {
            if self.payloads.len() < PAYLOAD_POOL
                && buffer.capacity() != 0
                && buffer.capacity() <= PAYLOAD_POOL_CAPACITY
            {
                self.payloads.push(buffer);
            }
        }
    }

    fn random(&mut self) -> u32 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    /// Bytes of payload that fit in one fragment for a peer with `mtu`.
    pub(crate) fn fragment_payload(&self, mtu: u32) -> usize {
        let mut len = mtu as usize - wire::HEADER_SIZE - wire::SEND_FRAGMENT_SIZE;
        if self.checksum {
            len -= 4;
        }
        len
    }

    pub(crate) fn dropped(&mut self, from: SocketAddr, reason: &'static str) {
        self.stats.datagrams_dropped += 1;
        trace!(%from, reason, "dropped datagram");
    }
}

/// Window size derived from two bandwidths (C ENet's rule), clamped to the protocol limits.
pub(crate) fn window_from_bandwidths(a: u32, b: u32) -> u32 {
    let w = if a == 0 && b == 0 {
        wire::MAXIMUM_WINDOW_SIZE
    } else if a == 0 || b == 0 {
        (a.max(b) / WINDOW_SIZE_SCALE).saturating_mul(wire::MINIMUM_WINDOW_SIZE)
    } else {
        (a.min(b) / WINDOW_SIZE_SCALE).saturating_mul(wire::MINIMUM_WINDOW_SIZE)
    };
    w.clamp(wire::MINIMUM_WINDOW_SIZE, wire::MAXIMUM_WINDOW_SIZE)
}

/// An ENet host: a set of peer slots behind one socket, as a sans-IO state machine.
///
/// Inputs: [`Host::handle_datagram`], [`Host::handle_timeout`] and the API calls
/// ([`Host::connect`], [`Host::send`], ...). Outputs: [`Host::poll_transmit`],
/// [`Host::poll_event`] and [`Host::poll_timeout`]. After every input, drain
/// `poll_transmit` and `poll_event` until `None`, then wait until `poll_timeout`
/// or the next datagram (see the crate docs for a run loop).
pub struct Host {
    pub(crate) peers: Vec<Peer>,
    pub(crate) core: Core,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("peers", &self.peers.len())
            .field("connected_peers", &self.core.connected_peers)
            .field("mtu", &self.core.mtu)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Creates a host; `now` fixes the epoch of its 32-bit wire clock.
    ///
    /// Errors if `peer_limit` is not in `1..=4095`, `mtu` not in `576..=4096`,
    /// `duplicate_peers` or `maximum_packet_size` is 0, or
    /// `maximum_incomplete_data` is below `maximum_packet_size`. A `channel_limit` of 0 or above 255 means 255.
    pub fn new(config: HostConfig, now: Instant) -> Result<Host, Error> {
        if config.peer_limit == 0 || config.peer_limit > usize::from(wire::MAXIMUM_PEER_ID) {
            return Err(Error::InvalidConfig("peer_limit must be in 1..=4095"));
        }
        if config.mtu < wire::MINIMUM_MTU || config.mtu > wire::MAXIMUM_MTU {
            return Err(Error::InvalidConfig("mtu must be in 576..=4096"));
        }
        if config.duplicate_peers == 0 {
            return Err(Error::InvalidConfig("duplicate_peers must be at least 1"));
        }
        if config.maximum_packet_size == 0 {
            return Err(Error::InvalidConfig("maximum_packet_size must not be 0"));
        }
        if config.maximum_incomplete_data < config.maximum_packet_size {
            return Err(Error::InvalidConfig(
                "maximum_incomplete_data must be at least maximum_packet_size",
            ));
        }
        let channel_limit = if config.channel_limit == 0
            || config.channel_limit > wire::MAXIMUM_CHANNEL_COUNT as usize
        {
            wire::MAXIMUM_CHANNEL_COUNT as usize
        } else {
            config.channel_limit
        };
        let clock = WireClock::new(now, config.time_base);
        // Slots are made when first used (see `Host::new_slot`), in the room reserved here: the
        // memory of slots never used is never touched, so it takes no resident memory.
        let peers = Vec::with_capacity(config.peer_limit);
        Ok(Host {
            peers,
            core: Core {
                channel_limit,
                peer_limit: config.peer_limit,
                incoming_bandwidth: config.incoming_bandwidth,
                outgoing_bandwidth: config.outgoing_bandwidth,
                mtu: config.mtu,
                duplicate_peers: config.duplicate_peers,
                maximum_packet_size: config.maximum_packet_size,
                maximum_waiting_data: config.maximum_waiting_data,
                maximum_incomplete_data: config.maximum_incomplete_data,
                waiting_data_total: 0,
                incomplete_bytes: 0,
                checksum: config.checksum,
                compressor: config.compressor,
                refuse_connections: false,
                acks_with_replies: config.acks_with_replies,
                hold_armed: false,
                rng: config.seed ^ 0x454E_6574_5275_7374,
                clock,
                service_time: config.time_base,
                last_now: now,
                bandwidth_throttle_epoch: config.time_base,
                recalculate_bandwidth_limits: false,
                connected_peers: 0,
                live: Vec::new(),
                live_pos: vec![u32::MAX; config.peer_limit],
                live_sorted: Vec::new(),
                bandwidth_limited_peers: 0,
                events: VecDeque::new(),
                pending: VecDeque::new(),
                stats: HostStats::default(),
                next_deadline: None,
                deadline_dirty: false,
                scratch: Vec::new(),
                body_buf: Vec::new(),
                spare: Vec::new(),
                payloads: Vec::new(),
                abs_ms: 0,
                sched: Sched::new(config.peer_limit),
            },
        })
    }

    pub(crate) fn update_time_shared(&mut self, now: Instant) {
        self.update_time(now);
    }

    /// A datagram came in: acknowledgements it queued may be held (acks_with_replies).
    pub(crate) fn arm_ack_hold(&mut self) {
        self.core.hold_armed = self.core.acks_with_replies;
    }

    /// Marks the cached deadline stale (see [`Host::poll_timeout`]).
    pub(crate) fn deadline_moved(&mut self) {
        self.core.deadline_dirty = true;
    }

    fn update_time(&mut self, now: Instant) {
        if now > self.core.last_now {
            self.core.last_now = now;
        }
        self.core.service_time = self.core.clock.at(self.core.last_now);
        self.core.abs_ms = self.core.clock.elapsed_ms(self.core.last_now);
    }

    /// Queues peer `idx` for the send path and a timer refresh (see [`Sched`]).
    pub(crate) fn touch(&mut self, idx: usize) {
        self.core.sched.touch(idx);
    }

    /// The heap key (ms since the clock epoch) of wire time `t`.
    fn key_of(&self, t: WireTime) -> u64 {
        let now = self.core.service_time;
        if time::less_equal(t, now) {
            self.core
                .abs_ms
                .saturating_sub(u64::from(time::difference(now, t)))
        } else {
            self.core.abs_ms + u64::from(time::difference(t, now))
        }
    }

    /// The real deadline of peer `idx` as a heap key: its retransmission timer
    /// while reliable commands are in flight, else its idle ping when connected.
    fn peer_deadline(&self, idx: usize) -> Option<u64> {
        let p = &self.peers[idx];
        if matches!(p.state, PeerState::Disconnected | PeerState::Zombie) {
            None
        } else if !p.sent_reliable_commands.is_empty() {
            Some(self.key_of(p.next_timeout))
        } else if p.state == PeerState::Connected {
            // Idle pings are not urgent: rounded up to the next multiple of PING_SLACK_MS,
            // so that thousands of idle peers share a few wake-ups instead of one each.
            let now = self.core.service_time;
            let key = self.key_of(now.wrapping_add(p.ping_wait(now)));
            Some(key.div_ceil(PING_SLACK_MS) * PING_SLACK_MS)
        } else {
            None
        }
    }

    /// Drops stale entries at the top of the timer heap and re-arms early ones at
    /// their peer's real deadline, so that the top is the earliest real timer.
    /// With `due`, entries whose real deadline has come are popped and their
    /// peers touched (and their retransmission timeouts run).
    fn settle_timers(&mut self, due: bool) {
        while let Some((key, idx)) = self.core.sched.top() {
            if self.core.sched.timer_at[idx] != key {
                self.core.sched.timers.pop(); // stale
                continue;
            }
            match self.peer_deadline(idx) {
                Some(real) if real <= key => {
                    if !(due && real <= self.core.abs_ms) {
                        break; // the earliest real timer, not yet due
                    }
                    self.core.sched.timers.pop();
                    self.core.sched.timer_at[idx] = NO_TIMER;
                    self.core.stats.peer_visits += 1;
                    let p = &self.peers[idx];
                    if !p.sent_reliable_commands.is_empty()
                        && time::greater_equal(self.core.service_time, p.next_timeout)
                    {
                        check_timeouts(&mut self.core, &mut self.peers[idx]);
                    }
                    // A due ping (or the retransmissions just queued) goes out in `poll_transmit`.
                    self.core.sched.touch(idx);
                }
                real => {
                    // The deadline moved later (or went away): re-arm at the real one.
                    self.core.sched.timers.pop();
                    self.core.sched.timer_at[idx] = NO_TIMER;
                    if let Some(r) = real {
                        self.core.sched.arm(idx, r);
                    }
                }
            }
        }
    }

    /// Re-arms the timers of every peer touched in this batch and empties the
    /// active list (the end of a batch: `poll_transmit` found nothing to send).
    fn end_batch(&mut self) {
        let active = std::mem::take(&mut self.core.sched.active);
        for &i in &active {
            let idx = usize::from(i);
            match self.core.sched.mark[idx] {
                IDLE => continue, // a duplicate entry, already refreshed
                HELD => {}        // stays held (its timer is armed all the same)
                _ => self.core.sched.mark[idx] = IDLE,
            }
            if let Some(r) = self.peer_deadline(idx) {
                self.core.sched.arm(idx, r);
            }
        }
        let mut active = active;
        active.clear();
        self.core.sched.active = active;
        self.core.sched.cursor = 0;
        // A heap of stale entries (many peers gone) is rebuilt from the valid ones.
        if self.core.sched.timers.len() > 2 * self.peers.len() + 64 {
            let sched = &mut self.core.sched;
            let valid: Vec<_> = sched
                .timer_at
                .iter()
                .enumerate()
                .filter(|(_, k)| **k != NO_TIMER)
                .map(|(i, k)| Reverse((*k, i as u16)))
                .collect();
            sched.timers = BinaryHeap::from(valid);
        }
        self.settle_timers(false);
    }

    /// Makes the next slot when the table is not at `peer_limit` yet; returns its index.
    /// C ENet takes the first free slot in slot order: the slots made so far are the lowest
    /// ones, so when none of them is free, the next one is the first free slot.
    pub(crate) fn new_slot(&mut self) -> Option<usize> {
        let idx = self.peers.len();
        if idx >= self.core.peer_limit {
            return None;
        }
        self.peers.push(Peer::new(idx as u16, self.core.mtu));
        Some(idx)
    }

    /// The slot `id` names, if its connection is still the one `id` was handed out for.
    fn slot(&self, id: PeerId) -> Option<usize> {
        self.peers
            .get(id.index())
            .filter(|p| p.generation == id.generation())
            .map(|_| id.index())
    }

    /// The peer `id` names, queued for the send path and a timer refresh (every
    /// caller may change what it sends or when).
    fn peer_mut(&mut self, id: PeerId) -> Result<&mut Peer, Error> {
        let idx = self.slot(id).ok_or(Error::UnknownPeer(id))?;
        self.core.sched.touch(idx);
        self.core.deadline_dirty = true;
        Ok(&mut self.peers[idx])
    }

    /// Starts connecting to `address` with `channel_count` channels (clamped to
    /// 1..=255); `data` is delivered to the remote's connect event. The
    /// [`Event::Connect`] (or a [`Event::Disconnect`] with `Timeout`/`Refused`) follows.
    pub fn connect(
        &mut self,
        now: Instant,
        address: SocketAddr,
        channel_count: usize,
        data: u32,
    ) -> Result<PeerId, Error> {
        self.update_time(now);
        let channel_count = channel_count.clamp(1, wire::MAXIMUM_CHANNEL_COUNT as usize);
        let idx = self
            .peers
            .iter()
            .position(|p| p.state == PeerState::Disconnected)
            .or_else(|| self.new_slot())
            .ok_or(Error::NoFreePeer)?;
        let connect_id = self.core.random();
        let core = &mut self.core;
        let peer = &mut self.peers[idx];
        peer.channels = (0..channel_count).map(|_| Channel::default()).collect();
        peer.state = PeerState::Connecting;
        peer.address = address;
        peer.connect_id = connect_id;
        peer.mtu = core.mtu;
        peer.window_size = if core.outgoing_bandwidth == 0 {
            wire::MAXIMUM_WINDOW_SIZE
        } else {
            ((core.outgoing_bandwidth / WINDOW_SIZE_SCALE) * wire::MINIMUM_WINDOW_SIZE)
                .clamp(wire::MINIMUM_WINDOW_SIZE, wire::MAXIMUM_WINDOW_SIZE)
        };
        let body = OutBody::Connect(wire::Connect {
            outgoing_peer_id: peer.incoming_peer_id,
            incoming_session_id: peer.incoming_session_id,
            outgoing_session_id: peer.outgoing_session_id,
            mtu: peer.mtu,
            window_size: peer.window_size,
            channel_count: channel_count as u32,
            incoming_bandwidth: core.incoming_bandwidth,
            outgoing_bandwidth: core.outgoing_bandwidth,
            packet_throttle_interval: peer.packet_throttle_interval,
            packet_throttle_acceleration: peer.packet_throttle_acceleration,
            packet_throttle_deceleration: peer.packet_throttle_deceleration,
            connect_id,
            data,
        });
        queue_outgoing(
            peer,
            Command::CONNECT | wire::COMMAND_FLAG_ACKNOWLEDGE,
            0xFF,
            body,
            None,
            0,
            0,
        );
        debug!(peer = idx, %address, "connecting");
        self.touch(idx);
        self.core.deadline_dirty = true;
        Ok(self.peers[idx].id())
    }

    /// Queues `packet` to `peer` on `channel`.
    ///
    /// Packets larger than one fragment are split; unreliable ones are sent as
    /// unreliable fragments only with [`PacketFlags::UNRELIABLE_FRAGMENT`],
    /// otherwise reliably (like C ENet).
    pub fn send(&mut self, peer: PeerId, channel: u8, packet: Packet) -> Result<(), Error> {
        let idx = self.slot(peer).ok_or(Error::UnknownPeer(peer))?;
        let core = &mut self.core;
        let p = &mut self.peers[idx];
        send_to_peer(core, p, channel, Payload::Owned(packet.data), packet.flags)?;
        core.sched.touch(idx);
        Ok(())
    }

    /// Queues `packet` to every connected peer (errors for single peers are ignored).
    pub fn broadcast(&mut self, channel: u8, packet: Packet) {
        let data: Arc<[u8]> = packet.data.into();
        let core = &mut self.core;
        for (idx, p) in self.peers.iter_mut().enumerate() {
            if p.state == PeerState::Connected
                && send_to_peer(
                    core,
                    p,
                    channel,
                    Payload::Shared(data.clone()),
                    packet.flags,
                )
                .is_ok()
            {
                core.sched.touch(idx);
            }
        }
    }

    /// Gracefully disconnects `peer`: queued data is discarded, a DISCONNECT is
    /// sent, and [`Event::Disconnect`] with [`DisconnectReason::Local`] follows
    /// once it is acknowledged (or `Timeout`). A peer still connecting is
    /// dropped at once, without event.
    pub fn disconnect(&mut self, peer: PeerId, data: u32) {
        if let Some(idx) = self.slot(peer) {
            self.disconnect_idx(idx, data);
            self.touch(idx);
            self.core.deadline_dirty = true;
        }
    }

    fn disconnect_idx(&mut self, idx: usize, data: u32) {
        let peer = &mut self.peers[idx];
        match peer.state {
            PeerState::Disconnecting
            | PeerState::Disconnected
            | PeerState::AcknowledgingDisconnect
            | PeerState::Zombie => return,
            _ => {}
        }
        clear_queues(&mut self.core, peer);
        let connected = matches!(
            peer.state,
            PeerState::Connected | PeerState::DisconnectLater
        );
        let flag = if connected {
            wire::COMMAND_FLAG_ACKNOWLEDGE
        } else {
            wire::COMMAND_FLAG_UNSEQUENCED
        };
        queue_outgoing(
            peer,
            Command::DISCONNECT | flag,
            0xFF,
            OutBody::Disconnect(data),
            None,
            0,
            0,
        );
        if connected {
            change_state(&mut self.core, peer, PeerState::Disconnecting);
            debug!(peer = idx, "disconnecting");
        } else {
            self.flush_peer(idx);
            reset_peer(&mut self.core, &mut self.peers[idx]);
        }
    }

    /// Disconnects once every queued outgoing packet has been delivered.
    pub fn disconnect_later(&mut self, peer: PeerId, data: u32) {
        let Some(idx) = self.slot(peer) else {
            return;
        };
        let p = &mut self.peers[idx];
        if matches!(p.state, PeerState::Connected | PeerState::DisconnectLater)
            && p.has_outgoing_commands()
        {
            change_state(&mut self.core, p, PeerState::DisconnectLater);
            p.event_data = data;
        } else {
            self.disconnect_idx(idx, data);
        }
        self.touch(idx);
        self.core.deadline_dirty = true;
    }

    /// Disconnects immediately: one unsequenced DISCONNECT is queued for
    /// sending (see [`Host::poll_transmit`]) and the slot is freed. No event is
    /// generated (like C ENet's `enet_peer_disconnect_now`).
    pub fn disconnect_now(&mut self, now: Instant, peer: PeerId, data: u32) {
        self.update_time(now);
        let Some(idx) = self.slot(peer) else {
            return;
        };
        let p = &mut self.peers[idx];
        if p.state == PeerState::Disconnected {
            return;
        }
        if p.state != PeerState::Zombie && p.state != PeerState::Disconnecting {
            clear_queues(&mut self.core, p);
            queue_outgoing(
                p,
                Command::DISCONNECT | wire::COMMAND_FLAG_UNSEQUENCED,
                0xFF,
                OutBody::Disconnect(data),
                None,
                0,
                0,
            );
            self.flush_peer(idx);
        }
        reset_peer(&mut self.core, &mut self.peers[idx]);
        self.touch(idx);
        self.core.deadline_dirty = true;
    }

    /// Forcefully frees the peer slot without telling the remote (no event).
    pub fn reset_peer(&mut self, peer: PeerId) {
        if let Some(idx) = self.slot(peer) {
            reset_peer(&mut self.core, &mut self.peers[idx]);
            self.touch(idx);
            self.core.deadline_dirty = true;
        }
    }

    /// Sets the timeout parameters of `peer` (C's `enet_peer_timeout`): the peer is
    /// dropped when the oldest unacknowledged command is older than `maximum`,
    /// or when it was retried so often that `2^(attempts-1) >= limit` and it is
    /// older than `minimum`. Zero values select the defaults (32, 5 s, 30 s).
    pub fn set_peer_timeout(
        &mut self,
        peer: PeerId,
        limit: u32,
        minimum: Duration,
        maximum: Duration,
    ) -> Result<(), Error> {
        let p = self.peer_mut(peer)?;
        let ms = |d: Duration| d.as_millis().min(u128::from(u32::MAX)) as u32;
        p.timeout_limit = if limit == 0 { TIMEOUT_LIMIT } else { limit };
        p.timeout_minimum = if minimum.is_zero() {
            TIMEOUT_MINIMUM
        } else {
            ms(minimum)
        };
        p.timeout_maximum = if maximum.is_zero() {
            TIMEOUT_MAXIMUM
        } else {
            ms(maximum)
        };
        Ok(())
    }

    /// Sets the ping interval of `peer` (default 500 ms; zero selects the default).
    ///
    /// As in C ENet, a connected peer with nothing in flight is pinged once this interval
    /// passes without an acknowledgement from it. One difference: while the host has sent
    /// the peer nothing but acknowledgements since the last acknowledgement came back, it
    /// waits until the peer has been silent (no datagram at all) for 1.5 intervals, so that
    /// a peer which pings on its own (every C ENet host does) keeps an idle connection alive
    /// with its pings and our acknowledgements alone: half the datagrams of two C ENet hosts.
    pub fn set_ping_interval(&mut self, peer: PeerId, interval: Duration) -> Result<(), Error> {
        let p = self.peer_mut(peer)?;
        p.ping_interval = if interval.is_zero() {
            crate::peer::PING_INTERVAL
        } else {
            interval.as_millis().min(u128::from(u32::MAX)) as u32
        };
        self.core.deadline_dirty = true;
        Ok(())
    }

    /// Configures the packet throttle of `peer` and sends THROTTLE_CONFIGURE to the remote
    /// (C defaults: 5000 ms, 2, 2; the scale is 32).
    pub fn throttle_configure(
        &mut self,
        peer: PeerId,
        interval: Duration,
        acceleration: u32,
        deceleration: u32,
    ) -> Result<(), Error> {
        let p = self.peer_mut(peer)?;
        if matches!(p.state, PeerState::Disconnected | PeerState::Zombie) {
            return Err(Error::NotConnected(peer));
        }
        let interval = interval.as_millis().min(u128::from(u32::MAX)) as u32;
        p.packet_throttle_interval = interval;
        p.packet_throttle_acceleration = acceleration;
        p.packet_throttle_deceleration = deceleration;
        queue_outgoing(
            p,
            Command::THROTTLE_CONFIGURE | wire::COMMAND_FLAG_ACKNOWLEDGE,
            0xFF,
            OutBody::ThrottleConfigure {
                interval,
                acceleration,
                deceleration,
            },
            None,
            0,
            0,
        );
        Ok(())
    }

    /// Changes the host's bandwidth limits (bytes/s, 0 = unlimited); peers are
    /// told with BANDWIDTH_LIMIT at the next bandwidth throttle tick (1 s).
    pub fn set_bandwidth_limit(&mut self, incoming: u32, outgoing: u32) {
        self.core.incoming_bandwidth = incoming;
        self.core.outgoing_bandwidth = outgoing;
        self.core.recalculate_bandwidth_limits = true;
        self.core.deadline_dirty = true;
    }

    /// Queues a PING to a connected `peer` (pings are also sent automatically when idle).
    pub fn ping(&mut self, peer: PeerId) -> Result<(), Error> {
        let p = self.peer_mut(peer)?;
        if p.state != PeerState::Connected {
            return Err(Error::NotConnected(peer));
        }
        queue_ping(p);
        Ok(())
    }

    /// Runs timers due at `now`: retransmissions, timeouts and the bandwidth throttle.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.update_time(now);
        self.bandwidth_throttle_if_due();
        // Only the peers whose own timer expired: they run their retransmission
        // timeouts here and are queued for `poll_transmit` (a due ping).
        self.settle_timers(true);
        self.core.deadline_dirty = true;
    }

    /// Hands back the buffer of a [`Transmit`] once it was sent, so that a later
    /// [`poll_transmit`](Host::poll_transmit) reuses it instead of allocating: with it, the
    /// steady state allocates nothing per datagram. Optional; at most [`SPARE_BUFFERS`]
    /// buffers are kept (larger ones than a datagram are dropped).
    pub fn recycle(&mut self, data: Vec<u8>) {
        if self.core.spare.len() < SPARE_BUFFERS && data.capacity() <= SPARE_BUFFER_CAPACITY {
            self.core.spare.push(data);
        }
    }

    /// The next datagram to send, or `None` when nothing is due.
    ///
    /// Builds datagrams on demand: acknowledgements, retransmissions, queued
    /// commands (up to 32 per datagram and never more than the peer's MTU) and
    /// pings for idle peers.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.update_time(now);
        self.bandwidth_throttle_if_due();
        if let Some(t) = self.core.pending.pop_front() {
            return Some(t);
        }
        if !self.core.sched.held.is_empty() && !self.hold_active() {
            self.release_acknowledgements();
        }
        if !self.core.deadline_dirty && self.core.sched.active.is_empty() {
            return None; // nothing happened since the last batch ended
        }
        let service_time = self.core.service_time;
        // Only the peers touched since the last batch (see `Sched`), each until it
        // has nothing more to send; never the whole peer table.
        while let Some(&i) = self.core.sched.active.get(self.core.sched.cursor) {
            let idx = usize::from(i);
            if self.core.sched.mark[idx] == QUEUED {
                self.core.stats.peer_visits += 1;
                if may_have_work(&self.peers[idx], service_time) {
                    if self.hold_active()
                        && self.core.sched.held.len() < self.peers.len()
                        && only_data_acks(&self.peers[idx], service_time)
                    {
                        // Held until the application took its events (acks_with_replies).
                        self.core.sched.mark[idx] = HELD;
                        self.core.sched.held.push(i);
                        self.core.sched.cursor += 1;
                        continue;
                    }
                    if let Some(t) = self.build_datagram(idx) {
                        // Sending moves timers (retransmission, ping); they are
                        // re-armed once the batch is drained, not per datagram.
                        self.core.deadline_dirty = true;
                        return Some(t);
                    }
                }
                self.core.sched.mark[idx] = DRAINED;
            }
            self.core.sched.cursor += 1;
        }
        // Every touched peer is drained: the batch ends.
        self.refresh_deadline();
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// Whether acknowledgements are being held for the application's replies
    /// ([`HostConfig::acks_with_replies`]).
    pub fn holds_acknowledgements(&self) -> bool {
        !self.core.sched.held.is_empty()
    }

    /// Ends the hold of [`HostConfig::acks_with_replies`]: the acknowledgements held so far
    /// (and those of datagrams received before the next one) go out with the next
    /// [`Host::poll_transmit`], whether events still wait or not. The drivers call it from
    /// `flush`. Nothing happens when nothing is held.
    pub fn release_acknowledgements(&mut self) {
        self.core.hold_armed = false;
        if self.core.sched.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.core.sched.held);
        for &i in &held {
            let idx = usize::from(i);
            if self.core.sched.mark[idx] == HELD {
                self.core.sched.mark[idx] = IDLE;
                self.core.sched.touch(idx);
            }
        }
        let mut held = held;
        held.clear();
        self.core.sched.held = held;
        self.core.deadline_dirty = true;
    }

    /// Whether acknowledgements of data are held now: the option is on, datagrams came in
    /// since the last release and events wait for the application.
    fn hold_active(&self) -> bool {
        self.core.hold_armed && !self.core.events.is_empty()
    }

    /// The earliest instant at which [`Host::handle_timeout`] must be called.
    ///
    /// Cheap after the drain contract was followed ([`Host::poll_transmit`]
    /// returned `None`); otherwise computed here, in one pass over the peers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.core.deadline_dirty
            || !self.core.sched.active.is_empty()
            || !self.core.sched.held.is_empty()
        {
            self.compute_deadline()
        } else {
            self.core.next_deadline
        }
    }

    /// A peer slot (any state).
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.slot(id).map(|idx| &self.peers[idx])
    }

    /// The peer slots used so far (any state), in slot order. Slots are made when a
    /// connection first needs one (the lowest free slot, as in C ENet), so this never lists
    /// more slots than the most connections the host has had at once; the slots not listed
    /// are free.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }

    /// Number of peer slots ([`HostConfig::peer_limit`]).
    pub fn peer_limit(&self) -> usize {
        self.core.peer_limit
    }

    /// The MTU offered to new connections.
    pub fn mtu(&self) -> u32 {
        self.core.mtu
    }

    /// Changes the MTU offered to new connections (576..=4096).
    pub fn set_mtu(&mut self, mtu: u32) -> Result<(), Error> {
        if !(wire::MINIMUM_MTU..=wire::MAXIMUM_MTU).contains(&mtu) {
            return Err(Error::InvalidConfig("mtu must be in 576..=4096"));
        }
        self.core.mtu = mtu;
        Ok(())
    }

    /// Refuses (or accepts again) new incoming connections, like the
    /// `enet_host_refuse_new_connections` of Godot's bundled ENet: while on, every
    /// datagram that addresses no peer yet (peer id 0xFFF, i.e. a CONNECT) is dropped
    /// before any slot is allocated or any reply sent, so the remote's CONNECT times
    /// out. Established peers and our own outgoing connections are not affected.
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.core.refuse_connections = refuse;
    }

    /// Whether new incoming connections are refused (see
    /// [`set_refuse_new_connections`](Self::set_refuse_new_connections)).
    pub fn refuses_new_connections(&self) -> bool {
        self.core.refuse_connections
    }

    /// Changes the channel limit for incoming connections (0 = 255).
    pub fn set_channel_limit(&mut self, limit: usize) {
        self.core.channel_limit = if limit == 0 || limit > 255 {
            255
        } else {
            limit
        };
    }

    /// Bytes of memory the host holds for its peers: the peer slots made so far (a slot is
    /// made when a connection first needs it, so a host sized for 4,095 peers with 10
    /// connected holds about 10), each peer's channel table, the buffers of its command
    /// queues by capacity, and the host's per-peer indexes. Packet payloads (see
    /// [`HostStats::incoming_buffered`]) and the datagram buffers are not included.
    ///
    /// A connected peer with nothing in flight holds its slot, its channels and a small
    /// acknowledgement queue: the buffers its queues grew to are given back when the
    /// connection is established and at each keepalive.
    ///
    /// This walks every slot made so far: call it for monitoring, not per packet.
    ///
    /// ```
    /// use std::time::Instant;
    /// use enet_proto::{Host, HostConfig};
    ///
    /// let host = Host::new(HostConfig::server(), Instant::now()).unwrap();
    /// assert!(host.peer_memory() < 4096, "no slot is made before a connection needs one");
    /// ```
    pub fn peer_memory(&self) -> usize {
        let slots = self.peers.len() * std::mem::size_of::<Peer>();
        let heap: usize = self.peers.iter().map(Peer::heap_bytes).sum();
        let core = &self.core;
        let indexes = (core.live.capacity() + core.live_sorted.capacity())
            * std::mem::size_of::<u16>()
            + core.live_pos.capacity() * std::mem::size_of::<u32>()
            + core.sched.heap_bytes();
        slots + heap + indexes
    }

    /// Host totals.
    pub fn stats(&self) -> HostStats {
        HostStats {
            connected_peers: self.core.connected_peers,
            incoming_buffered: self.core.waiting_data_total,
            incomplete_bytes: self.core.incomplete_bytes,
            ..self.core.stats
        }
    }

    /// The current value of the host's 32-bit wire clock (ms).
    pub fn wire_time(&self) -> WireTime {
        self.core.service_time
    }

    /// Ends the batch: re-arms the timers of the peers it touched and takes the
    /// earliest one as the host's next deadline.
    fn refresh_deadline(&mut self) {
        self.end_batch();
        self.core.next_deadline = self.compute_deadline();
        self.core.deadline_dirty = false;
    }

    /// The earliest timer: the top of the timer heap (never later than the
    /// earliest real peer timer), now if touched peers still wait for
    /// `poll_transmit`, and the bandwidth throttle.
    fn compute_deadline(&self) -> Option<Instant> {
        let mut earliest: Option<u64> = self.core.sched.top().map(|(k, _)| k);
        let mut consider = |k: u64| {
            earliest = Some(earliest.map_or(k, |e| e.min(k)));
        };
        let sched = &self.core.sched;
        for &i in &sched.active {
            let idx = usize::from(i);
            if sched.mark[idx] == QUEUED && may_have_work(&self.peers[idx], self.core.service_time)
            {
                consider(self.core.abs_ms);
            } else if sched.mark[idx] != IDLE {
                if let Some(k) = self.peer_deadline(idx) {
                    consider(k);
                }
            }
        }
        if !sched.held.is_empty() && !self.hold_active() {
            consider(self.core.abs_ms); // released at the next poll_transmit
        }
        if self.core.connected_peers > 0 {
            consider(
                self.key_of(
                    self.core
                        .bandwidth_throttle_epoch
                        .wrapping_add(BANDWIDTH_THROTTLE_INTERVAL),
                ),
            );
        }
        earliest
            .map(|k| self.core.last_now + Duration::from_millis(k.saturating_sub(self.core.abs_ms)))
    }

    fn bandwidth_throttle_if_due(&mut self) {
        if time::difference(self.core.service_time, self.core.bandwidth_throttle_epoch)
            >= BANDWIDTH_THROTTLE_INTERVAL
        {
            self.bandwidth_throttle();
        }
    }

    /// C ENet's `enet_host_bandwidth_throttle`: spreads the host's bandwidth
    /// over the peers and tells them our limits.
    fn bandwidth_throttle(&mut self) {
        let core = &mut self.core;
        let time_current = core.service_time;
        let elapsed = u64::from(time_current.wrapping_sub(core.bandwidth_throttle_epoch));
        let mut peers_remaining = core.connected_peers as u64;
        let mut data_total: u64 = u64::MAX;
        let mut bandwidth: u64 = u64::MAX;
        let mut needs_adjustment = core.bandwidth_limited_peers > 0;
        let scale = u64::from(PACKET_THROTTLE_SCALE);
        core.bandwidth_throttle_epoch = time_current;
        if peers_remaining == 0 {
            return;
        }
        let live = |p: &Peer| matches!(p.state, PeerState::Connected | PeerState::DisconnectLater);
        // The connected peers in slot order (C ENet walks every slot in that order; the
        // others are skipped there anyway), without touching the other slots.
        let mut slots = std::mem::take(&mut core.live_sorted);
        slots.clear();
        slots.extend_from_slice(&core.live);
        slots.sort_unstable();
        debug_assert_eq!(
            slots.len(),
            core.connected_peers,
            "the live list is the connected set"
        );
        if core.outgoing_bandwidth != 0 {
            data_total = 0;
            bandwidth = u64::from(core.outgoing_bandwidth) * elapsed / 1000;
            for &i in &slots {
                let p = &self.peers[usize::from(i)];
                if live(p) {
                    data_total += u64::from(p.outgoing_data_total);
                }
            }
        }
        let mut throttle;
        while peers_remaining > 0 && needs_adjustment {
            needs_adjustment = false;
            throttle = if data_total <= bandwidth {
                scale
            } else {
                bandwidth * scale / data_total.max(1)
            };
            for &i in &slots {
                let p = &mut self.peers[usize::from(i)];
                if !live(p)
                    || p.incoming_bandwidth == 0
                    || p.outgoing_bandwidth_throttle_epoch == time_current
                {
                    continue;
                }
                let peer_bandwidth = u64::from(p.incoming_bandwidth) * elapsed / 1000;
                if throttle * u64::from(p.outgoing_data_total) / scale <= peer_bandwidth {
                    continue;
                }
                let limit = (peer_bandwidth * scale / u64::from(p.outgoing_data_total).max(1))
                    .clamp(1, scale) as u32;
                p.packet_throttle_limit = limit;
                p.packet_throttle = p.packet_throttle.min(limit);
                p.outgoing_bandwidth_throttle_epoch = time_current;
                p.incoming_data_total = 0;
                p.outgoing_data_total = 0;
                needs_adjustment = true;
                peers_remaining -= 1;
                bandwidth = bandwidth.saturating_sub(peer_bandwidth);
                data_total = data_total.saturating_sub(peer_bandwidth);
            }
        }
        if peers_remaining > 0 {
            throttle = if data_total <= bandwidth {
                scale
            } else {
                bandwidth * scale / data_total.max(1)
            };
            for &i in &slots {
                let p = &mut self.peers[usize::from(i)];
                if !live(p) || p.outgoing_bandwidth_throttle_epoch == time_current {
                    continue;
                }
                p.packet_throttle_limit = throttle as u32;
                p.packet_throttle = p.packet_throttle.min(p.packet_throttle_limit);
                p.incoming_data_total = 0;
                p.outgoing_data_total = 0;
            }
        }
        if core.recalculate_bandwidth_limits {
            core.recalculate_bandwidth_limits = false;
            let mut peers_remaining = core.connected_peers as u64;
            let mut bandwidth = u64::from(core.incoming_bandwidth);
            let mut bandwidth_limit: u64 = 0;
            let mut needs_adjustment = true;
            if bandwidth != 0 {
                while peers_remaining > 0 && needs_adjustment {
                    needs_adjustment = false;
                    bandwidth_limit = bandwidth / peers_remaining;
                    for &i in &slots {
                        let p = &mut self.peers[usize::from(i)];
                        if !live(p) || p.incoming_bandwidth_throttle_epoch == time_current {
                            continue;
                        }
                        if p.outgoing_bandwidth > 0
                            && u64::from(p.outgoing_bandwidth) >= bandwidth_limit
                        {
                            continue;
                        }
                        p.incoming_bandwidth_throttle_epoch = time_current;
                        needs_adjustment = true;
                        peers_remaining -= 1;
                        bandwidth = bandwidth.saturating_sub(u64::from(p.outgoing_bandwidth));
                    }
                }
            }
            let outgoing = core.outgoing_bandwidth;
            for &i in &slots {
                let idx = usize::from(i);
                let p = &mut self.peers[idx];
                if !live(p) {
                    continue;
                }
                core.sched.touch(idx);
                let incoming = if p.incoming_bandwidth_throttle_epoch == time_current {
                    p.outgoing_bandwidth
                } else {
                    bandwidth_limit.min(u64::from(u32::MAX)) as u32
                };
                queue_outgoing(
                    p,
                    Command::BANDWIDTH_LIMIT | wire::COMMAND_FLAG_ACKNOWLEDGE,
                    0xFF,
                    OutBody::BandwidthLimit { incoming, outgoing },
                    None,
                    0,
                    0,
                );
            }
        }
        core.live_sorted = slots;
    }

    /// Builds every datagram currently due for `idx` into the pending queue
    /// (C's `enet_host_flush` for one peer).
    fn flush_peer(&mut self, idx: usize) {
        for _ in 0..64 {
            match self.build_datagram(idx) {
                Some(t) => self.core.pending.push_back(t),
                None => break,
            }
            if !self.peers[idx].continue_sending {
                break;
            }
        }
    }
}

/// Could `build_datagram` produce anything for this peer now? False only when it
/// certainly would not (and would change nothing): no acknowledgement or command
/// queued, no retransmission due, no ping due.
fn may_have_work(p: &Peer, now: WireTime) -> bool {
    if matches!(p.state, PeerState::Disconnected | PeerState::Zombie) {
        return false;
    }
    !p.acknowledgements.is_empty()
        || !p.outgoing_commands.is_empty()
        || !p.outgoing_send_reliable.is_empty()
        || p.continue_sending
        || if p.sent_reliable_commands.is_empty() {
            p.state == PeerState::Connected && p.ping_wait(now) == 0
        } else {
            time::greater_equal(now, p.next_timeout)
        }
}

/// Most acknowledgements of one peer that [`HostConfig::acks_with_replies`] holds: half a
/// datagram's commands, so that as many replies fit beside them. More acknowledgements fill
/// a datagram of their own anyway (acknowledgements go first), and holding them would
/// only delay them.
const HOLD_ACKS_MAX: usize = wire::MAXIMUM_PACKET_COMMANDS / 2;

/// Would `build_datagram` send this (connected) peer nothing but acknowledgements of
/// data, none of a ping, CONNECT or DISCONNECT? Those are what
/// [`HostConfig::acks_with_replies`] holds.
fn only_data_acks(p: &Peer, now: WireTime) -> bool {
    p.state == PeerState::Connected
        && !p.acknowledgements.is_empty()
        && p.acknowledgements.len() <= HOLD_ACKS_MAX
        && p.outgoing_commands.is_empty()
        && p.outgoing_send_reliable.is_empty()
        && !p.continue_sending
        && if p.sent_reliable_commands.is_empty() {
            p.ping_wait(now) > 0
        } else {
            time::less(now, p.next_timeout)
        }
        && p.acknowledgements.iter().all(|a| {
            matches!(
                a.command & wire::COMMAND_MASK,
                Command::SEND_RELIABLE
                    | Command::SEND_UNRELIABLE
                    | Command::SEND_FRAGMENT
                    | Command::SEND_UNSEQUENCED
                    | Command::SEND_UNRELIABLE_FRAGMENT
            )
        })
}

/// C's `enet_peer_disconnect` for a connected peer: queue DISCONNECT, wait for its ACK.
pub(crate) fn disconnect_connected(core: &mut Core, peer: &mut Peer, data: u32) {
    clear_queues(core, peer);
    queue_outgoing(
        peer,
        Command::DISCONNECT | wire::COMMAND_FLAG_ACKNOWLEDGE,
        0xFF,
        OutBody::Disconnect(data),
        None,
        0,
        0,
    );
    change_state(core, peer, PeerState::Disconnecting);
}

/// C's `enet_protocol_change_state`: keeps the connected-peer counters right.
pub(crate) fn change_state(core: &mut Core, peer: &mut Peer, state: PeerState) {
    let was = matches!(
        peer.state,
        PeerState::Connected | PeerState::DisconnectLater
    );
    let is = matches!(state, PeerState::Connected | PeerState::DisconnectLater);
    let slot = usize::from(peer.incoming_peer_id);
    if is && !was {
        if peer.incoming_bandwidth != 0 {
            core.bandwidth_limited_peers += 1;
        }
        core.connected_peers += 1;
        if core.live_pos.get(slot) == Some(&u32::MAX) {
            core.live_pos[slot] = core.live.len() as u32;
            core.live.push(slot as u16);
        }
    } else if was && !is {
        if peer.incoming_bandwidth != 0 {
            core.bandwidth_limited_peers = core.bandwidth_limited_peers.saturating_sub(1);
        }
        core.connected_peers = core.connected_peers.saturating_sub(1);
        if let Some(&pos) = core.live_pos.get(slot).filter(|p| **p != u32::MAX) {
            core.live.swap_remove(pos as usize);
            if let Some(&moved) = core.live.get(pos as usize) {
                core.live_pos[usize::from(moved)] = pos;
            }
            core.live_pos[slot] = u32::MAX;
        }
    }
    if peer.state != state {
        debug!(peer = peer.incoming_peer_id, address = %peer.address, from = ?peer.state, to = ?state, "peer state");
    }
    peer.state = state;
}

/// Clears every queue of `peer` (C's `enet_peer_reset_queues`) and gives its
/// buffered incoming data back to the host-wide budget.
pub(crate) fn clear_queues(core: &mut Core, peer: &mut Peer) {
    core.waiting_data_total = core
        .waiting_data_total
        .saturating_sub(peer.total_waiting_data);
    core.incomplete_bytes = core.incomplete_bytes.saturating_sub(peer.incomplete_bytes);
    peer.reset_queues();
}

/// C's `enet_peer_reset`: frees the slot (session ids are kept).
pub(crate) fn reset_peer(core: &mut Core, peer: &mut Peer) {
    clear_queues(core, peer);
    change_state(core, peer, PeerState::Disconnected);
    let (id, in_session, out_session, generation) = (
        peer.incoming_peer_id,
        peer.incoming_session_id,
        peer.outgoing_session_id,
        peer.generation,
    );
    *peer = Peer::new(id, core.mtu);
    // Every id handed out for the old connection is stale from now on.
    peer.generation = generation.wrapping_add(1);
    peer.incoming_session_id = in_session;
    peer.outgoing_session_id = out_session;
}

/// Emits a disconnect event and frees the slot (C's ZOMBIE dispatch).
pub(crate) fn zombie(core: &mut Core, peer: &mut Peer, reason: DisconnectReason, data: u32) {
    core.recalculate_bandwidth_limits = true;
    core.events.push_back(Event::Disconnect {
        peer: peer.id(),
        address: peer.address,
        data,
        reason,
    });
    debug!(peer = peer.incoming_peer_id, address = %peer.address, ?reason, "disconnected");
    reset_peer(core, peer);
}

/// C's `enet_protocol_notify_disconnect`.
pub(crate) fn notify_disconnect(core: &mut Core, peer: &mut Peer, reason: DisconnectReason) {
    if peer.state >= PeerState::ConnectionPending {
        core.recalculate_bandwidth_limits = true;
    }
    if peer.state != PeerState::Connecting && peer.state < PeerState::ConnectionSucceeded {
        reset_peer(core, peer);
    } else {
        zombie(core, peer, reason, 0);
    }
}

/// C's `enet_protocol_notify_connect`.
pub(crate) fn notify_connect(core: &mut Core, peer: &mut Peer) {
    core.recalculate_bandwidth_limits = true;
    change_state(core, peer, PeerState::Connected);
    peer.release_idle_buffers();
    core.events.push_back(Event::Connect {
        peer: peer.id(),
        address: peer.address,
        data: peer.event_data,
    });
}

pub(crate) fn queue_ping(peer: &mut Peer) {
    if peer.state == PeerState::Connected {
        queue_outgoing(
            peer,
            Command::PING | wire::COMMAND_FLAG_ACKNOWLEDGE,
            0xFF,
            OutBody::Ping,
            None,
            0,
            0,
        );
    }
}

/// C's `enet_peer_queue_outgoing_command` + `enet_peer_setup_outgoing_command`.
pub(crate) fn queue_outgoing(
    peer: &mut Peer,
    command: u8,
    channel_id: u8,
    body: OutBody,
    packet: Option<Payload>,
    fragment_offset: u32,
    fragment_length: u16,
) {
    if channel_id != 0xFF && usize::from(channel_id) >= peer.channels.len() {
        return;
    }
    peer.outgoing_data_total = peer
        .outgoing_data_total
        .wrapping_add((wire::command_size(body.number()) + usize::from(fragment_length)) as u32);
    peer.outgoing_waiting_data += usize::from(fragment_length);
    let mut out = OutgoingCommand {
        command,
        channel_id,
        body,
        reliable_sequence_number: 0,
        unreliable_sequence_number: 0,
        unsequenced_group: 0,
        sent_time: 0,
        round_trip_timeout: 0,
        send_attempts: 0,
        packet,
        fragment_offset,
        fragment_length,
        queue_seq: peer.next_queue_seq,
    };
    peer.next_queue_seq += 1;
    if channel_id == 0xFF {
        peer.outgoing_reliable_sequence_number =
            peer.outgoing_reliable_sequence_number.wrapping_add(1);
        out.reliable_sequence_number = peer.outgoing_reliable_sequence_number;
    } else if let Some(ch) = peer.channels.get_mut(usize::from(channel_id)) {
        if command & wire::COMMAND_FLAG_ACKNOWLEDGE != 0 {
            ch.outgoing_reliable_sequence_number =
                ch.outgoing_reliable_sequence_number.wrapping_add(1);
            ch.outgoing_unreliable_sequence_number = 0;
            out.reliable_sequence_number = ch.outgoing_reliable_sequence_number;
        } else if command & wire::COMMAND_FLAG_UNSEQUENCED != 0 {
            peer.outgoing_unsequenced_group = peer.outgoing_unsequenced_group.wrapping_add(1);
            out.unsequenced_group = peer.outgoing_unsequenced_group;
        } else {
            if fragment_offset == 0 {
                ch.outgoing_unreliable_sequence_number =
                    ch.outgoing_unreliable_sequence_number.wrapping_add(1);
            }
            out.reliable_sequence_number = ch.outgoing_reliable_sequence_number;
            out.unreliable_sequence_number = ch.outgoing_unreliable_sequence_number;
        }
    } else {
        return;
    }
    if out.wants_ack() && out.packet.is_some() {
        push_small(&mut peer.outgoing_send_reliable, out);
    } else {
        push_small(&mut peer.outgoing_commands, out);
    }
}

/// C's `enet_peer_send`.
fn send_to_peer(
    core: &Core,
    peer: &mut Peer,
    channel: u8,
    data: Payload,
    flags: PacketFlags,
) -> Result<(), Error> {
    let id = peer.id();
    if peer.state != PeerState::Connected {
        return Err(Error::NotConnected(id));
    }
    if usize::from(channel) >= peer.channels.len() {
        return Err(Error::InvalidChannel {
            channel,
            channel_count: peer.channels.len(),
        });
    }
    let len = data.as_slice().len();
    if len > core.maximum_packet_size {
        return Err(Error::PacketTooLarge {
            size: len,
            maximum: core.maximum_packet_size,
        });
    }
    if peer.outgoing_waiting_data > 0
        && peer.outgoing_waiting_data + len > core.maximum_waiting_data
    {
        return Err(Error::QueueFull {
            peer: id,
            queued: peer.outgoing_waiting_data,
        });
    }
    let fragment_length = core.fragment_payload(peer.mtu);
    let ch = &peer.channels[usize::from(channel)];
    if len > fragment_length {
        let fragment_count = len.div_ceil(fragment_length);
        if fragment_count > wire::MAXIMUM_FRAGMENT_COUNT as usize {
            return Err(Error::TooManyFragments(fragment_count));
        }
        let unreliable = flags.bits()
            & (PacketFlags::RELIABLE.bits() | PacketFlags::UNRELIABLE_FRAGMENT.bits())
            == PacketFlags::UNRELIABLE_FRAGMENT.bits()
            && ch.outgoing_unreliable_sequence_number < 0xFFFF;
        // The fragments share one buffer.
        let data: Arc<[u8]> = match data {
            Payload::Shared(a) => a,
            Payload::Owned(v) => v.into(),
        };
        let (command, start) = if unreliable {
            (
                Command::SEND_UNRELIABLE_FRAGMENT,
                ch.outgoing_unreliable_sequence_number.wrapping_add(1),
            )
        } else {
            (
                Command::SEND_FRAGMENT | wire::COMMAND_FLAG_ACKNOWLEDGE,
                ch.outgoing_reliable_sequence_number.wrapping_add(1),
            )
        };
        for number in 0..fragment_count {
            let offset = number * fragment_length;
            let flen = fragment_length.min(len - offset);
            let (count, number, total, offset32) = (
                fragment_count as u32,
                number as u32,
                len as u32,
                offset as u32,
            );
            let body = if unreliable {
                OutBody::SendUnreliableFragment {
                    start,
                    count,
                    number,
                    total,
                    offset: offset32,
                }
            } else {
                OutBody::SendFragment {
                    start,
                    count,
                    number,
                    total,
                    offset: offset32,
                }
            };
            queue_outgoing(
                peer,
                command,
                channel,
                body,
                Some(Payload::Shared(data.clone())),
                offset32,
                flen as u16,
            );
        }
        return Ok(());
    }
    let (command, body) = if flags.bits()
        & (PacketFlags::RELIABLE.bits() | PacketFlags::UNSEQUENCED.bits())
        == PacketFlags::UNSEQUENCED.bits()
    {
        (
            Command::SEND_UNSEQUENCED | wire::COMMAND_FLAG_UNSEQUENCED,
            OutBody::SendUnsequenced,
        )
    } else if flags.contains(PacketFlags::RELIABLE)
        || ch.outgoing_unreliable_sequence_number == u16::MAX
    {
        (
            Command::SEND_RELIABLE | wire::COMMAND_FLAG_ACKNOWLEDGE,
            OutBody::SendReliable,
        )
    } else {
        (Command::SEND_UNRELIABLE, OutBody::SendUnreliable)
    };
    queue_outgoing(peer, command, channel, body, Some(data), 0, len as u16);
    Ok(())
}

/// C's `enet_protocol_check_timeouts`; returns true if the peer was dropped.
pub(crate) fn check_timeouts(core: &mut Core, peer: &mut Peer) -> bool {
    let now = core.service_time;
    let mut i = 0;
    let mut insert_at = 0;
    let mut insert_reliable_at = 0;
    while i < peer.sent_reliable_commands.len() {
        let cmd = &peer.sent_reliable_commands[i];
        if time::difference(now, cmd.sent_time) < cmd.round_trip_timeout {
            i += 1;
            continue;
        }
        if peer.earliest_timeout == 0 || time::less(cmd.sent_time, peer.earliest_timeout) {
            peer.earliest_timeout = cmd.sent_time;
        }
        let age = time::difference(now, peer.earliest_timeout);
        let attempts_exp = 1u64 << cmd.send_attempts.saturating_sub(1).min(63);
        if peer.earliest_timeout != 0
            && (age >= peer.timeout_maximum
                || (attempts_exp >= u64::from(peer.timeout_limit) && age >= peer.timeout_minimum))
        {
            debug!(peer = peer.incoming_peer_id, address = %peer.address, "timed out");
            notify_disconnect(core, peer, DisconnectReason::Timeout);
            return true;
        }
        peer.packets_lost += 1;
        peer.counters.packets_lost += 1;
        let Some(mut cmd) = peer.sent_reliable_commands.remove(i) else {
            break;
        };
        cmd.round_trip_timeout = cmd.round_trip_timeout.saturating_mul(2);
        if cmd.packet.is_some() {
            peer.reliable_data_in_transit = peer
                .reliable_data_in_transit
                .saturating_sub(u32::from(cmd.fragment_length));
        }
        trace!(
            peer = peer.incoming_peer_id,
            seq = cmd.reliable_sequence_number,
            "retransmit"
        );
        if cmd.packet.is_some() {
            peer.outgoing_send_reliable.insert(insert_reliable_at, cmd);
            insert_reliable_at += 1;
        } else {
            peer.outgoing_commands.insert(insert_at, cmd);
            insert_at += 1;
        }
        if i == 0 {
            if let Some(front) = peer.sent_reliable_commands.front() {
                peer.next_timeout = front.sent_time.wrapping_add(front.round_trip_timeout);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::window_from_bandwidths;

    #[test]
    fn host_and_events_can_move_across_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<super::Host>();
        assert_send::<super::Event>();
        assert_send::<super::HostConfig>();
    }

    #[test]
    fn window_follows_c_enet() {
        assert_eq!(window_from_bandwidths(0, 0), 65536);
        // One side limited: the larger value decides.
        assert_eq!(
            window_from_bandwidths(0, 1_000_000),
            (1_000_000 / 65536) * 4096
        );
        // Both limited: the smaller value decides, clamped to 4096..=65536.
        assert_eq!(window_from_bandwidths(50_000, 1_000_000), 4096);
        assert_eq!(window_from_bandwidths(u32::MAX, u32::MAX), 65536);
    }
}
