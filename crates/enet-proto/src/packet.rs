//! Packets handed to and received from a [`crate::Host`].

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Delivery flags of a [`Packet`] (C ENet's `ENetPacketFlag`, same bit values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketFlags(u32);

impl PacketFlags {
    /// No flags: unreliable, sequenced delivery.
    pub const NONE: PacketFlags = PacketFlags(0);
    /// Delivered exactly once, in order per channel; retransmitted until acknowledged.
    pub const RELIABLE: PacketFlags = PacketFlags(1 << 0);
    /// Not sequenced against other packets; may arrive in any order, never duplicated.
    pub const UNSEQUENCED: PacketFlags = PacketFlags(1 << 1);
    /// Oversize unreliable packets are sent as unreliable fragments instead of reliably.
    pub const UNRELIABLE_FRAGMENT: PacketFlags = PacketFlags(1 << 3);

    /// Builds flags from C ENet's bit values; unknown bits are kept but ignored.
    pub const fn from_bits(bits: u32) -> PacketFlags {
        PacketFlags(bits)
    }

    /// The raw bit values, as C ENet defines them.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True if every flag in `other` is set in `self`.
    pub const fn contains(self, other: PacketFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for PacketFlags {
    type Output = PacketFlags;
    fn bitor(self, rhs: PacketFlags) -> PacketFlags {
        PacketFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for PacketFlags {
    fn bitor_assign(&mut self, rhs: PacketFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for PacketFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.contains(PacketFlags::RELIABLE) {
            names.push("RELIABLE");
        }
        if self.contains(PacketFlags::UNSEQUENCED) {
            names.push("UNSEQUENCED");
        }
        if self.contains(PacketFlags::UNRELIABLE_FRAGMENT) {
            names.push("UNRELIABLE_FRAGMENT");
        }
        if names.is_empty() {
            write!(f, "PacketFlags(NONE)")
        } else {
            write!(f, "PacketFlags({})", names.join(" | "))
        }
    }
}

/// An application message and its delivery flags.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// The payload.
    pub data: Vec<u8>,
    /// How the payload is delivered.
    pub flags: PacketFlags,
}

impl Packet {
    /// A packet with explicit flags.
    pub fn new(data: impl Into<Vec<u8>>, flags: PacketFlags) -> Packet {
        Packet {
            data: data.into(),
            flags,
        }
    }

    /// A reliable, ordered packet.
    pub fn reliable(data: impl Into<Vec<u8>>) -> Packet {
        Packet::new(data, PacketFlags::RELIABLE)
    }

    /// An unreliable, sequenced packet (older ones are dropped once a newer one arrived).
    pub fn unreliable(data: impl Into<Vec<u8>>) -> Packet {
        Packet::new(data, PacketFlags::NONE)
    }

    /// An unreliable, unsequenced packet.
    pub fn unsequenced(data: impl Into<Vec<u8>>) -> Packet {
        Packet::new(data, PacketFlags::UNSEQUENCED)
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log payloads: only their size.
        f.debug_struct("Packet")
            .field("len", &self.data.len())
            .field("flags", &self.flags)
            .finish()
    }
}
