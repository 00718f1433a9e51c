//! API misuse errors. Network input never produces an `Err`: bad datagrams are
//! dropped (with a `trace!` log) and disconnects are [`crate::Event`]s.

use crate::PeerId;

/// An error returned by a [`crate::Host`] API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::HostConfig`] value is out of range.
    #[error("invalid host configuration: {0}")]
    InvalidConfig(&'static str),
    /// Every peer slot is in use (the host's `peer_limit` is reached).
    #[error("no free peer slot (peer limit reached)")]
    NoFreePeer,
    /// The peer id names no peer of this host, or is stale: its connection
    /// ended and the slot was freed (and maybe reused) since it was handed out.
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    /// The peer is not connected, so nothing can be sent to it.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// The channel id is not below the peer's negotiated channel count.
    #[error("channel {channel} is out of range (peer has {channel_count} channels)")]
    InvalidChannel {
        /// The channel that was asked for.
        channel: u8,
        /// The number of channels negotiated with the peer.
        channel_count: usize,
    },
    /// The packet is larger than the host's `maximum_packet_size`.
    #[error("packet of {size} bytes exceeds the maximum packet size of {maximum} bytes")]
    PacketTooLarge {
        /// Size of the packet that was refused.
        size: usize,
        /// The configured maximum.
        maximum: usize,
    },
    /// The packet would need more fragments than ENet allows (1 048 576).
    #[error("packet needs {0} fragments, more than ENet allows")]
    TooManyFragments(usize),
    /// The peer already has `maximum_waiting_data` bytes queued for sending.
    #[error("send queue of peer {peer} is full ({queued} bytes waiting)")]
    QueueFull {
        /// The peer.
        peer: PeerId,
        /// Bytes already queued.
        queued: usize,
    },
}
