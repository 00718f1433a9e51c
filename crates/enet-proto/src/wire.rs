//! The ENet 1.3 wire format: datagram header and the 12 protocol commands.
//!
//! All multi-byte fields are big-endian. Every parser checks lengths before
//! indexing and never panics; sizes come from one table ([`command_size`]),
//! like C ENet's `commandSizes`.
//!
//! ```
//! use enet_proto::wire::{Command, CommandHeader, WireCommand};
//!
//! let ping = WireCommand {
//!     header: CommandHeader::new(Command::PING | enet_proto::wire::COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 3),
//!     command: Command::Ping,
//! };
//! let mut buf = Vec::new();
//! ping.emit(&mut buf);
//! assert_eq!(buf, [0x85, 0xFF, 0x00, 0x03]);
//! let (parsed, used) = WireCommand::parse(&buf).unwrap();
//! assert_eq!((parsed, used), (ping, 4));
//! ```

pub use crate::time;

/// Smallest MTU a peer may negotiate.
pub const MINIMUM_MTU: u32 = 576;
/// Largest MTU a peer may negotiate (also the largest datagram ENet receives).
pub const MAXIMUM_MTU: u32 = 4096;
/// Most commands C ENet puts in one datagram.
pub const MAXIMUM_PACKET_COMMANDS: usize = 32;
/// Smallest flow-control window.
pub const MINIMUM_WINDOW_SIZE: u32 = 4096;
/// Largest flow-control window.
pub const MAXIMUM_WINDOW_SIZE: u32 = 65536;
/// Fewest channels a connection may have.
pub const MINIMUM_CHANNEL_COUNT: u32 = 1;
/// Most channels a connection may have.
pub const MAXIMUM_CHANNEL_COUNT: u32 = 255;
/// Largest peer id; also the "no peer yet" id used by CONNECT.
pub const MAXIMUM_PEER_ID: u16 = 0xFFF;
/// Most fragments one packet may be split into.
pub const MAXIMUM_FRAGMENT_COUNT: u32 = 1024 * 1024;

/// Header flag: the commands after the header are compressed.
pub const HEADER_FLAG_COMPRESSED: u16 = 1 << 14;
/// Header flag: a 16-bit `sentTime` follows the peer id.
pub const HEADER_FLAG_SENT_TIME: u16 = 1 << 15;
/// Both header flags.
pub const HEADER_FLAG_MASK: u16 = HEADER_FLAG_COMPRESSED | HEADER_FLAG_SENT_TIME;
/// Session id bits of the header's peer id field.
pub const HEADER_SESSION_MASK: u16 = 3 << 12;
/// Shift of the session id inside the header's peer id field.
pub const HEADER_SESSION_SHIFT: u16 = 12;

/// Command flag: the receiver must acknowledge this command.
pub const COMMAND_FLAG_ACKNOWLEDGE: u8 = 1 << 7;
/// Command flag: the command is unsequenced.
pub const COMMAND_FLAG_UNSEQUENCED: u8 = 1 << 6;
/// Mask of the command number inside the command byte.
pub const COMMAND_MASK: u8 = 0x0F;

/// Size of the command header (command, channel, reliable sequence number).
pub const COMMAND_HEADER_SIZE: usize = 4;
/// Size of the fixed part of a SEND_FRAGMENT / SEND_UNRELIABLE_FRAGMENT command.
pub const SEND_FRAGMENT_SIZE: usize = 24;
/// Size of a datagram header with `sentTime` and without checksum.
pub const HEADER_SIZE: usize = 4;

/// Fixed size of each command number (payload excluded), 0 for unknown numbers.
const COMMAND_SIZES: [usize; 13] = [0, 8, 48, 44, 8, 4, 6, 8, 24, 8, 12, 16, 24];

/// The fixed size of command `number` (low 4 bits of the command byte), or 0 if
/// the number is not a valid command.
pub fn command_size(number: u8) -> usize {
    COMMAND_SIZES
        .get(usize::from(number & COMMAND_MASK))
        .copied()
        .unwrap_or(0)
}

/// Why a datagram or command could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the structure does.
    #[error("truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// The command number is 0 or above 12.
    #[error("unknown command number {0}")]
    UnknownCommand(u8),
}

fn need(buf: &[u8], needed: usize) -> Result<(), DecodeError> {
    if buf.len() < needed {
        Err(DecodeError::Truncated {
            needed,
            available: buf.len(),
        })
    } else {
        Ok(())
    }
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// The datagram header (`ENetProtocolHeader`), without the optional checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Receiver's peer id (low 12 bits); [`MAXIMUM_PEER_ID`] before connect.
    pub peer_id: u16,
    /// 2-bit session id.
    pub session_id: u8,
    /// The commands are compressed.
    pub compressed: bool,
    /// Low 16 bits of the sender's clock, present when a command needs an ACK.
    pub sent_time: Option<u16>,
}

impl Header {
    /// Parses the header; returns it and its size (2 or 4 bytes).
    pub fn parse(buf: &[u8]) -> Result<(Header, usize), DecodeError> {
        need(buf, 2)?;
        let raw = u16_at(buf, 0);
        let mut header = Header {
            peer_id: raw & MAXIMUM_PEER_ID,
            session_id: ((raw & HEADER_SESSION_MASK) >> HEADER_SESSION_SHIFT) as u8,
            compressed: raw & HEADER_FLAG_COMPRESSED != 0,
            sent_time: None,
        };
        if raw & HEADER_FLAG_SENT_TIME != 0 {
            need(buf, 4)?;
            header.sent_time = Some(u16_at(buf, 2));
            Ok((header, 4))
        } else {
            Ok((header, 2))
        }
    }

    /// The 16-bit peer id field as sent (peer id, session and flags).
    pub fn peer_id_field(&self) -> u16 {
        let mut raw = (self.peer_id & MAXIMUM_PEER_ID)
            | ((u16::from(self.session_id) << HEADER_SESSION_SHIFT) & HEADER_SESSION_MASK);
        if self.compressed {
            raw |= HEADER_FLAG_COMPRESSED;
        }
        if self.sent_time.is_some() {
            raw |= HEADER_FLAG_SENT_TIME;
        }
        raw
    }

    /// Encoded size (2 or 4 bytes).
    pub fn buffer_len(&self) -> usize {
        if self.sent_time.is_some() {
            4
        } else {
            2
        }
    }

    /// Appends the encoded header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.peer_id_field().to_be_bytes());
        if let Some(t) = self.sent_time {
            out.extend_from_slice(&t.to_be_bytes());
        }
    }
}

/// The 4-byte header in front of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHeader {
    /// Command byte: number in the low 4 bits plus the ACKNOWLEDGE/UNSEQUENCED flags.
    pub command: u8,
    /// Channel, 0xFF for connection-level commands.
    pub channel_id: u8,
    /// Reliable sequence number.
    pub reliable_sequence_number: u16,
}

impl CommandHeader {
    /// A command header from its three fields.
    pub const fn new(command: u8, channel_id: u8, reliable_sequence_number: u16) -> CommandHeader {
        CommandHeader {
            command,
            channel_id,
            reliable_sequence_number,
        }
    }

    /// The command number (low 4 bits).
    pub const fn number(&self) -> u8 {
        self.command & COMMAND_MASK
    }

    /// True if the sender asks for an acknowledgement.
    pub const fn wants_ack(&self) -> bool {
        self.command & COMMAND_FLAG_ACKNOWLEDGE != 0
    }
}

/// CONNECT parameters (`ENetProtocolConnect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connect {
    /// The sender's own peer id (the id the receiver must put in headers).
    pub outgoing_peer_id: u16,
    /// Session id the sender expects on incoming datagrams (0xFF: pick one).
    pub incoming_session_id: u8,
    /// Session id the sender will use (0xFF: pick one).
    pub outgoing_session_id: u8,
    /// Sender's MTU.
    pub mtu: u32,
    /// Sender's flow-control window.
    pub window_size: u32,
    /// Channels requested.
    pub channel_count: u32,
    /// Sender's downstream bandwidth (bytes/s, 0 = unlimited).
    pub incoming_bandwidth: u32,
    /// Sender's upstream bandwidth (bytes/s, 0 = unlimited).
    pub outgoing_bandwidth: u32,
    /// Throttle interval (ms).
    pub packet_throttle_interval: u32,
    /// Throttle acceleration.
    pub packet_throttle_acceleration: u32,
    /// Throttle deceleration.
    pub packet_throttle_deceleration: u32,
    /// Random connection id.
    pub connect_id: u32,
    /// User data.
    pub data: u32,
}

/// The fixed fields of a fragment command (`ENetProtocolSendFragment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Sequence number of the first fragment.
    pub start_sequence_number: u16,
    /// Number of fragments of the packet.
    pub fragment_count: u32,
    /// Index of this fragment.
    pub fragment_number: u32,
    /// Length of the reassembled packet.
    pub total_length: u32,
    /// Byte offset of this fragment in the packet.
    pub fragment_offset: u32,
    /// This fragment's payload.
    pub data: &'a [u8],
}

/// A decoded command body. VERIFY_CONNECT reuses [`Connect`] (its `data` is not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// ACKNOWLEDGE (1).
    Acknowledge {
        /// Sequence number being acknowledged.
        received_reliable_sequence_number: u16,
        /// The `sentTime` of the datagram that carried it.
        received_sent_time: u16,
    },
    /// CONNECT (2).
    Connect(Connect),
    /// VERIFY_CONNECT (3); `data` is always 0.
    VerifyConnect(Connect),
    /// DISCONNECT (4).
    Disconnect {
        /// User data.
        data: u32,
    },
    /// PING (5).
    Ping,
    /// SEND_RELIABLE (6).
    SendReliable {
        /// Payload.
        data: &'a [u8],
    },
    /// SEND_UNRELIABLE (7).
    SendUnreliable {
        /// Unreliable sequence number.
        unreliable_sequence_number: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// SEND_FRAGMENT (8).
    SendFragment(Fragment<'a>),
    /// SEND_UNSEQUENCED (9).
    SendUnsequenced {
        /// Unsequenced group.
        unsequenced_group: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// BANDWIDTH_LIMIT (10).
    BandwidthLimit {
        /// Sender's downstream bandwidth.
        incoming_bandwidth: u32,
        /// Sender's upstream bandwidth.
        outgoing_bandwidth: u32,
    },
    /// THROTTLE_CONFIGURE (11).
    ThrottleConfigure {
        /// Throttle interval (ms).
        packet_throttle_interval: u32,
        /// Throttle acceleration.
        packet_throttle_acceleration: u32,
        /// Throttle deceleration.
        packet_throttle_deceleration: u32,
    },
    /// SEND_UNRELIABLE_FRAGMENT (12).
    SendUnreliableFragment(Fragment<'a>),
}

impl Command<'_> {
    /// ACKNOWLEDGE.
    pub const ACKNOWLEDGE: u8 = 1;
    /// CONNECT.
    pub const CONNECT: u8 = 2;
    /// VERIFY_CONNECT.
    pub const VERIFY_CONNECT: u8 = 3;
    /// DISCONNECT.
    pub const DISCONNECT: u8 = 4;
    /// PING.
    pub const PING: u8 = 5;
    /// SEND_RELIABLE.
    pub const SEND_RELIABLE: u8 = 6;
    /// SEND_UNRELIABLE.
    pub const SEND_UNRELIABLE: u8 = 7;
    /// SEND_FRAGMENT.
    pub const SEND_FRAGMENT: u8 = 8;
    /// SEND_UNSEQUENCED.
    pub const SEND_UNSEQUENCED: u8 = 9;
    /// BANDWIDTH_LIMIT.
    pub const BANDWIDTH_LIMIT: u8 = 10;
    /// THROTTLE_CONFIGURE.
    pub const THROTTLE_CONFIGURE: u8 = 11;
    /// SEND_UNRELIABLE_FRAGMENT.
    pub const SEND_UNRELIABLE_FRAGMENT: u8 = 12;

    /// The command number of this body.
    pub fn number(&self) -> u8 {
        match self {
            Command::Acknowledge { .. } => Self::ACKNOWLEDGE,
            Command::Connect(_) => Self::CONNECT,
            Command::VerifyConnect(_) => Self::VERIFY_CONNECT,
            Command::Disconnect { .. } => Self::DISCONNECT,
            Command::Ping => Self::PING,
            Command::SendReliable { .. } => Self::SEND_RELIABLE,
            Command::SendUnreliable { .. } => Self::SEND_UNRELIABLE,
            Command::SendFragment(_) => Self::SEND_FRAGMENT,
            Command::SendUnsequenced { .. } => Self::SEND_UNSEQUENCED,
            Command::BandwidthLimit { .. } => Self::BANDWIDTH_LIMIT,
            Command::ThrottleConfigure { .. } => Self::THROTTLE_CONFIGURE,
            Command::SendUnreliableFragment(_) => Self::SEND_UNRELIABLE_FRAGMENT,
        }
    }

    /// The payload carried by a send command (empty for the others).
    pub fn payload(&self) -> &[u8] {
        match self {
            Command::SendReliable { data }
            | Command::SendUnreliable { data, .. }
            | Command::SendUnsequenced { data, .. } => data,
            Command::SendFragment(f) | Command::SendUnreliableFragment(f) => f.data,
            _ => &[],
        }
    }
}

/// A command header with its decoded body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCommand<'a> {
    /// The command header.
    pub header: CommandHeader,
    /// The decoded body.
    pub command: Command<'a>,
}

impl<'a> WireCommand<'a> {
    /// Parses one command from the front of `buf`; returns it and the bytes used
    /// (fixed size plus payload). The header's command number decides the body.
    pub fn parse(buf: &'a [u8]) -> Result<(WireCommand<'a>, usize), DecodeError> {
        need(buf, COMMAND_HEADER_SIZE)?;
        let header = CommandHeader::new(buf[0], buf[1], u16_at(buf, 2));
        let number = header.number();
        let size = command_size(number);
        if size == 0 {
            return Err(DecodeError::UnknownCommand(number));
        }
        need(buf, size)?;
        let payload = |len_at: usize| -> Result<(&'a [u8], usize), DecodeError> {
            let len = usize::from(u16_at(buf, len_at));
            need(buf, size + len)?;
            Ok((&buf[size..size + len], size + len))
        };
        let connect = |with_data: bool| Connect {
            outgoing_peer_id: u16_at(buf, 4),
            incoming_session_id: buf[6],
            outgoing_session_id: buf[7],
            mtu: u32_at(buf, 8),
            window_size: u32_at(buf, 12),
            channel_count: u32_at(buf, 16),
            incoming_bandwidth: u32_at(buf, 20),
            outgoing_bandwidth: u32_at(buf, 24),
            packet_throttle_interval: u32_at(buf, 28),
            packet_throttle_acceleration: u32_at(buf, 32),
            packet_throttle_deceleration: u32_at(buf, 36),
            connect_id: u32_at(buf, 40),
            data: if with_data { u32_at(buf, 44) } else { 0 },
        };
        let fragment = || -> Result<(Fragment<'a>, usize), DecodeError> {
            let (data, used) = payload(6)?;
            Ok((
                Fragment {
                    start_sequence_number: u16_at(buf, 4),
                    fragment_count: u32_at(buf, 8),
                    fragment_number: u32_at(buf, 12),
                    total_length: u32_at(buf, 16),
                    fragment_offset: u32_at(buf, 20),
                    data,
                },
                used,
            ))
        };
        let (command, used) = match number {
            Command::ACKNOWLEDGE => (
                Command::Acknowledge {
                    received_reliable_sequence_number: u16_at(buf, 4),
                    received_sent_time: u16_at(buf, 6),
                },
                size,
            ),
            Command::CONNECT => (Command::Connect(connect(true)), size),
            Command::VERIFY_CONNECT => (Command::VerifyConnect(connect(false)), size),
            Command::DISCONNECT => (
                Command::Disconnect {
                    data: u32_at(buf, 4),
                },
                size,
            ),
            Command::PING => (Command::Ping, size),
            Command::SEND_RELIABLE => {
                let (data, used) = payload(4)?;
                (Command::SendReliable { data }, used)
            }
            Command::SEND_UNRELIABLE => {
                let (data, used) = payload(6)?;
                (
                    Command::SendUnreliable {
                        unreliable_sequence_number: u16_at(buf, 4),
                        data,
                    },
                    used,
                )
            }
            Command::SEND_FRAGMENT => {
                let (f, used) = fragment()?;
                (Command::SendFragment(f), used)
            }
            Command::SEND_UNSEQUENCED => {
                let (data, used) = payload(6)?;
                (
                    Command::SendUnsequenced {
                        unsequenced_group: u16_at(buf, 4),
                        data,
                    },
                    used,
                )
            }
            Command::BANDWIDTH_LIMIT => (
                Command::BandwidthLimit {
                    incoming_bandwidth: u32_at(buf, 4),
                    outgoing_bandwidth: u32_at(buf, 8),
                },
                size,
            ),
            Command::THROTTLE_CONFIGURE => (
                Command::ThrottleConfigure {
                    packet_throttle_interval: u32_at(buf, 4),
                    packet_throttle_acceleration: u32_at(buf, 8),
                    packet_throttle_deceleration: u32_at(buf, 12),
                },
                size,
            ),
            Command::SEND_UNRELIABLE_FRAGMENT => {
                let (f, used) = fragment()?;
                (Command::SendUnreliableFragment(f), used)
            }
            other => return Err(DecodeError::UnknownCommand(other)),
        };
        Ok((WireCommand { header, command }, used))
    }

    /// Encoded size (fixed part plus payload).
    pub fn buffer_len(&self) -> usize {
        command_size(self.command.number()) + self.command.payload().len()
    }

    /// Appends the encoded command to `out`. The command number in the header
    /// is replaced by the body's; the header flags are kept. Payloads longer
    /// than 65535 bytes are truncated to the length field.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let command = (self.header.command & !COMMAND_MASK) | self.command.number();
        out.push(command);
        out.push(self.header.channel_id);
        out.extend_from_slice(&self.header.reliable_sequence_number.to_be_bytes());
        let put16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_be_bytes());
        let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
        let with_payload = |out: &mut Vec<u8>, data: &[u8]| {
            let len = data.len().min(usize::from(u16::MAX));
            put16(out, len as u16);
            len
        };
        match &self.command {
            Command::Acknowledge {
                received_reliable_sequence_number,
                received_sent_time,
            } => {
                put16(out, *received_reliable_sequence_number);
                put16(out, *received_sent_time);
            }
            Command::Connect(c) | Command::VerifyConnect(c) => {
                put16(out, c.outgoing_peer_id);
                out.push(c.incoming_session_id);
                out.push(c.outgoing_session_id);
                for v in [
                    c.mtu,
                    c.window_size,
                    c.channel_count,
                    c.incoming_bandwidth,
                    c.outgoing_bandwidth,
                    c.packet_throttle_interval,
                    c.packet_throttle_acceleration,
                    c.packet_throttle_deceleration,
                    c.connect_id,
                ] {
                    put32(out, v);
                }
                if matches!(self.command, Command::Connect(_)) {
                    put32(out, c.data);
                }
            }
            Command::Disconnect { data } => put32(out, *data),
            Command::Ping => {}
            Command::SendReliable { data } => {
                let len = with_payload(out, data);
                out.extend_from_slice(&data[..len]);
            }
            Command::SendUnreliable {
                unreliable_sequence_number: seq,
                data,
            }
            | Command::SendUnsequenced {
                unsequenced_group: seq,
                data,
            } => {
                put16(out, *seq);
                let len = with_payload(out, data);
                out.extend_from_slice(&data[..len]);
            }
            Command::SendFragment(f) | Command::SendUnreliableFragment(f) => {
                put16(out, f.start_sequence_number);
                let len = with_payload(out, f.data);
                put32(out, f.fragment_count);
                put32(out, f.fragment_number);
                put32(out, f.total_length);
                put32(out, f.fragment_offset);
                out.extend_from_slice(&f.data[..len]);
            }
            Command::BandwidthLimit {
                incoming_bandwidth,
                outgoing_bandwidth,
            } => {
                put32(out, *incoming_bandwidth);
                put32(out, *outgoing_bandwidth);
            }
            Command::ThrottleConfigure {
                packet_throttle_interval,
                packet_throttle_acceleration,
                packet_throttle_deceleration,
            } => {
                put32(out, *packet_throttle_interval);
                put32(out, *packet_throttle_acceleration);
                put32(out, *packet_throttle_deceleration);
            }
        }
    }
}

/// A whole uncompressed datagram: header, optional checksum and commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The header.
    pub header: Header,
    /// The checksum slot, when the hosts use checksums.
    pub checksum: Option<u32>,
    /// The commands, in order.
    pub commands: Vec<WireCommand<'a>>,
}

impl<'a> Datagram<'a> {
    /// Parses a datagram. `has_checksum` says whether a 4-byte checksum slot follows
    /// the header. Compressed datagrams cannot be parsed here (their commands
    /// are decoded as-is and will usually fail). Parsing stops with an error at
    /// the first bad command (a receiving [`crate::Host`] instead processes the
    /// commands before it, like C ENet).
    pub fn parse(buf: &'a [u8], has_checksum: bool) -> Result<Datagram<'a>, DecodeError> {
        let (header, mut at) = Header::parse(buf)?;
        let checksum = if has_checksum {
            need(buf, at + 4)?;
            let c = u32_at(buf, at);
            at += 4;
            Some(c)
        } else {
            None
        };
        let mut commands = Vec::new();
        while at < buf.len() {
            let (cmd, used) = WireCommand::parse(&buf[at..])?;
            commands.push(cmd);
            at += used;
        }
        Ok(Datagram {
            header,
            checksum,
            commands,
        })
    }

    /// Appends the encoded datagram to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.header.emit(out);
        if let Some(c) = self.checksum {
            out.extend_from_slice(&c.to_be_bytes());
        }
        for cmd in &self.commands {
            cmd.emit(out);
        }
    }
}
