//! Packet capture: a wrapper [`EnetSocket`] that records every datagram it sends and receives,
//! and a writer for classic libpcap files that `tshark`/Wireshark open.
//!
//! [`CaptureSocket`] sits wherever a socket goes: around the [`UdpEnetSocket`] of a plain ENet
//! host (it sees the ENet datagrams), or *under* a DTLS socket built on another `EnetSocket` (it
//! then sees the DTLS records exactly as they cross the wire). Every datagram is stored with its
//! direction, both addresses and a timestamp in a shared [`Capture`], which is bounded (see
//! [`Capture::with_limit`]) so that a long run cannot grow it without end.
//!
//! [`write_pcap`] writes a capture as a pcap file with link type `LINKTYPE_RAW` (101): each
//! datagram gets a synthesized IPv4 or IPv6 header and a UDP header (with a correct checksum), so
//! the usual dissectors (UDP, DTLS) decode it.
//!
//! ```
//! use enet_dtls::capture::{write_pcap, Capture, CaptureSocket};
//! use enet_dtls::enet::{EnetHost, UdpEnetSocket};
//! use enet_dtls::HostConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let capture = Capture::new();
//! let socket = CaptureSocket::new(UdpEnetSocket::bind("127.0.0.1:0")?, capture.clone())?;
//! let host = EnetHost::with_socket(socket, HostConfig::default())?;
//! // ... connect, service ...
//! let mut file = Vec::new();
//! write_pcap(&mut file, &capture.datagrams())?;
//! # drop(host);
//! # Ok(())
//! # }
//! ```
//!
//! [`UdpEnetSocket`]: crate::enet::UdpEnetSocket

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use enet_proto::Transmit;

use crate::enet::EnetSocket;

/// Default bound of a [`Capture`]: 64 MiB of datagram payload.
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 * 1024 * 1024;

/// Whether a captured datagram left or arrived at the capturing socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the capturing socket (from `local` to `remote`).
    Sent,
    /// Received by the capturing socket (from `remote` to `local`).
    Received,
}

/// One datagram as it crossed the capturing socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedDatagram {
    /// When it was sent or received: the driver's `now`, mapped onto the wall clock.
    pub time: SystemTime,
    /// Sent or received.
    pub direction: Direction,
    /// The capturing socket's address.
    pub local: SocketAddr,
    /// The other end.
    pub remote: SocketAddr,
    /// The UDP payload.
    pub data: Vec<u8>,
}

impl CapturedDatagram {
    /// Source address on the wire.
    pub fn source(&self) -> SocketAddr {
        match self.direction {
            Direction::Sent => self.local,
            Direction::Received => self.remote,
        }
    }

    /// Destination address on the wire.
    pub fn destination(&self) -> SocketAddr {
        match self.direction {
            Direction::Sent => self.remote,
            Direction::Received => self.local,
        }
    }
}

#[derive(Debug)]
struct Log {
    /// `Instant` and wall clock read together when the capture was made: `now` values map onto
    /// `wall + (now - base)`.
    base: Instant,
    wall: SystemTime,
    limit: usize,
    bytes: usize,
    dropped: u64,
    datagrams: Vec<CapturedDatagram>,
}

/// A shared, bounded record of captured datagrams. Clones share the same record, so one clone
/// goes into each [`CaptureSocket`] (a client's and a server's may share one, to see both
/// sides in one timeline) and another stays with the caller to read it.
#[derive(Debug, Clone)]
pub struct Capture {
    log: Arc<Mutex<Log>>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

impl Capture {
    /// An empty capture holding at most [`DEFAULT_CAPTURE_LIMIT`] bytes of payload.
    pub fn new() -> Capture {
        Capture::with_limit(DEFAULT_CAPTURE_LIMIT)
    }

    /// An empty capture holding at most `limit` bytes of payload; datagrams past the limit are
    /// counted in [`dropped`](Self::dropped) and not stored.
    pub fn with_limit(limit: usize) -> Capture {
        Capture {
            log: Arc::new(Mutex::new(Log {
                base: Instant::now(),
                wall: SystemTime::now(),
                limit,
                bytes: 0,
                dropped: 0,
                datagrams: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves a consistent log (pushes are atomic), so a
        // poisoned lock is still usable.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one datagram (used by [`CaptureSocket`]; callers may add datagrams of their own).
    pub fn record(
        &self,
        now: Instant,
        direction: Direction,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let mut log = self.lock();
        if log.bytes.saturating_add(data.len()) > log.limit {
            log.dropped += 1;
            return;
        }
        let time = match now.checked_duration_since(log.base) {
            Some(after) => log.wall + after,
            None => log
                .wall
                .checked_sub(log.base.duration_since(now))
                .unwrap_or(log.wall),
        };
        log.bytes += data.len();
        log.datagrams.push(CapturedDatagram {
            time,
            direction,
            local,
            remote,
            data: data.to_vec(),
        });
    }

    /// A copy of every datagram recorded so far, in the order they were recorded.
    pub fn datagrams(&self) -> Vec<CapturedDatagram> {
        self.lock().datagrams.clone()
    }

    /// How many datagrams are stored.
    pub fn len(&self) -> usize {
        self.lock().datagrams.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Datagrams not stored because the limit was reached.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Takes every stored datagram out (the capture is empty afterwards and its byte budget is
    /// free again).
    pub fn take(&self) -> Vec<CapturedDatagram> {
        let mut log = self.lock();
        log.bytes = 0;
        std::mem::take(&mut log.datagrams)
    }
}

/// An [`EnetSocket`] that forwards everything to `inner` and records every datagram that
/// `inner` sends or receives in a [`Capture`].
///
/// Of a batch that `inner` only partly sent (best effort: a full kernel buffer), the first `n`
/// datagrams (`n` = what `send_batch` returned) are recorded as sent.
#[derive(Debug)]
pub struct CaptureSocket<S> {
    inner: S,
    capture: Capture,
    local: SocketAddr,
}

impl<S: EnetSocket> CaptureSocket<S> {
    /// Wraps `inner`, recording into `capture`.
    ///
    /// # Errors
    /// `inner`'s, when it cannot tell its local address.
    pub fn new(inner: S, capture: Capture) -> io::Result<CaptureSocket<S>> {
        let local = inner.local_addr()?;
        Ok(CaptureSocket {
            inner,
            capture,
            local,
        })
    }

    /// The capture this socket records into.
    pub fn capture(&self) -> &Capture {
        &self.capture
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped socket, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the socket.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: EnetSocket> EnetSocket for CaptureSocket<S> {
    crate::forward_enet_socket!(field: inner, except: [send_batch, recv_batch]);

    fn send_batch(&mut self, now: Instant, batch: &[Transmit]) -> io::Result<usize> {
        let sent = self.inner.send_batch(now, batch)?;
        for t in batch.iter().take(sent) {
            self.capture
                .record(now, Direction::Sent, self.local, t.destination, &t.data);
        }
        Ok(sent)
    }

    fn recv_batch(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let capture = &self.capture;
        let local = self.local;
        self.inner.recv_batch(now, &mut |from, data| {
            capture.record(now, Direction::Received, local, from, data);
            sink(from, data);
        })
    }
}

/// pcap link type for raw IPv4/IPv6 packets (`LINKTYPE_RAW`).
pub const LINKTYPE_RAW: u32 = 101;

/// Largest datagram [`write_pcap`] writes whole; longer ones are cut to this length in the
/// file (the record keeps the original length, as a capture with a snap length would).
pub const PCAP_SNAPLEN: usize = 65_535 - 48;

/// Writes `datagrams` as a classic libpcap file (microsecond timestamps, `LINKTYPE_RAW`),
/// each with a synthesized IPv4 (or IPv6, when either address is IPv6) and UDP header. An IPv4
/// address paired with an IPv6 one is written as IPv4-mapped IPv6.
///
/// # Errors
/// The writer's.
pub fn write_pcap<W: Write>(mut out: W, datagrams: &[CapturedDatagram]) -> io::Result<()> {
    // Global header: magic, version 2.4, thiszone, sigfigs, snaplen, network.
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&65_535u32.to_le_bytes());
    header.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    out.write_all(&header)?;
    let mut packet = Vec::new();
    for d in datagrams {
        let payload = &d.data[..d.data.len().min(PCAP_SNAPLEN)];
        ip_udp_packet(d.source(), d.destination(), payload, &mut packet);
        let full_len = packet.len() - payload.len() + d.data.len();
        let since = d.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut record = Vec::with_capacity(16);
        record.extend_from_slice(
            &u32::try_from(since.as_secs())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        record.extend_from_slice(&since.subsec_micros().to_le_bytes());
        record.extend_from_slice(&len_u32(packet.len()).to_le_bytes());
        record.extend_from_slice(&len_u32(full_len).to_le_bytes());
        out.write_all(&record)?;
        out.write_all(&packet)?;
    }
    out.flush()
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Builds an IP + UDP packet around `payload` into `out` (cleared first).
fn ip_udp_packet(from: SocketAddr, to: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let udp_len = 8 + payload.len();
    let (src, dst) = (from.ip(), to.ip());
    let v4 = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
        _ => None,
    };
    let mut pseudo = Vec::with_capacity(40);
    if let Some((s, d)) = v4 {
        let total = 20 + udp_len;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&len_u16(total).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64; // TTL
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&s.octets());
        ip[16..20].copy_from_slice(&d.octets());
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        pseudo.extend_from_slice(&s.octets());
        pseudo.extend_from_slice(&d.octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&len_u16(udp_len).to_be_bytes());
    } else {
        let s = to_v6(src);
        let d = to_v6(dst);
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&len_u16(udp_len).to_be_bytes());
        ip[6] = 17; // next header: UDP
        ip[7] = 64; // hop limit
        ip[8..24].copy_from_slice(&s.octets());
        ip[24..40].copy_from_slice(&d.octets());
        out.extend_from_slice(&ip);
        pseudo.extend_from_slice(&s.octets());
        pseudo.extend_from_slice(&d.octets());
        pseudo.extend_from_slice(&len_u32(udp_len).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
    }
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&from.port().to_be_bytes());
    udp[2..4].copy_from_slice(&to.port().to_be_bytes());
    udp[4..6].copy_from_slice(&len_u16(udp_len).to_be_bytes());
    let mut sum = checksum(&[&pseudo, &udp, payload]);
    if sum == 0 {
        sum = 0xffff; // 0 means "no checksum" in UDP
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&udp);
    out.extend_from_slice(payload);
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The Internet checksum (RFC 1071) of the concatenation of `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u64::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u64::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enet::testing::MemorySocket;
    use std::time::Duration;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&data]), !0xddf2);
        // Split at an odd offset: same result.
        assert_eq!(checksum(&[&data[..3], &data[3..]]), !0xddf2);
    }

    #[test]
    fn ipv4_packet_has_valid_checksums() {
        let mut p = Vec::new();
        ip_udp_packet(
            addr("127.0.0.1:1000"),
            addr("127.0.0.2:2000"),
            b"hello",
            &mut p,
        );
        assert_eq!(p.len(), 20 + 8 + 5);
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&[&p[..20]]), 0);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 13]);
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0);
        assert_eq!(&p[20..22], &1000u16.to_be_bytes());
        assert_eq!(&p[22..24], &2000u16.to_be_bytes());
        assert_eq!(&p[28..], b"hello");
    }

    #[test]
    fn ipv6_packet_layout() {
        let mut p = Vec::new();
        ip_udp_packet(addr("[::1]:5"), addr("127.0.0.1:6"), b"abc", &mut p);
        assert_eq!(p.len(), 40 + 8 + 3);
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 11);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 11, 0, 0, 0, 17]);
        assert_eq!(checksum(&[&pseudo, &p[40..]]), 0);
    }

    #[test]
    fn pcap_file_layout() {
        let capture = Capture::new();
        let now = Instant::now();
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        capture.record(now, Direction::Sent, a, b, b"one");
        capture.record(
            now + Duration::from_millis(1500),
            Direction::Received,
            a,
            b,
            b"four",
        );
        let mut file = Vec::new();
        write_pcap(&mut file, &capture.datagrams()).unwrap();
        assert_eq!(&file[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(&file[20..24], &LINKTYPE_RAW.to_le_bytes());
        let first_len = u32::from_le_bytes(file[32..36].try_into().unwrap()) as usize;
        assert_eq!(first_len, 28 + 3);
        let second = 24 + 16 + first_len;
        let second_len = u32::from_le_bytes(file[second + 8..second + 12].try_into().unwrap());
        assert_eq!(second_len as usize, 28 + 4);
        assert_eq!(file.len(), second + 16 + 32);
        // The received datagram goes from b to a.
        assert_eq!(
            &file[second + 16 + 20..second + 16 + 22],
            &2u16.to_be_bytes()
        );
        let t = |at: usize| {
            u64::from(u32::from_le_bytes(file[at..at + 4].try_into().unwrap())) * 1_000_000
                + u64::from(u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()))
        };
        assert_eq!(t(second) - t(24), 1_500_000);
    }

    #[test]
    fn capture_is_bounded() {
        let capture = Capture::with_limit(10);
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        let now = Instant::now();
        for _ in 0..5 {
            capture.record(now, Direction::Sent, a, b, b"abcd");
        }
        assert_eq!(capture.len(), 2);
        assert_eq!(capture.dropped(), 3);
        assert_eq!(capture.take().len(), 2);
        capture.record(now, Direction::Sent, a, b, b"abcd");
        assert_eq!(capture.len(), 1);
    }

    #[test]
    fn capture_socket_records_both_directions() {
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        let (sa, mut sb) = MemorySocket::pair(a, b);
        let capture = Capture::new();
        let mut sa = CaptureSocket::new(sa, capture.clone()).unwrap();
        let now = Instant::now();
        let batch = [Transmit {
            destination: b,
            data: b"ping".to_vec(),
        }];
        assert_eq!(sa.send_batch(now, &batch).unwrap(), 1);
        let mut got = Vec::new();
        sb.recv_batch(now, &mut |from, d| got.push((from, d.to_vec())))
            .unwrap();
        assert_eq!(got, vec![(a, b"ping".to_vec())]);
        sb.send_batch(
            now,
            &[Transmit {
                destination: a,
                data: b"pong".to_vec(),
            }],
        )
        .unwrap();
        let mut back = Vec::new();
        sa.recv_batch(now, &mut |_, d| back.push(d.to_vec()))
            .unwrap();
        assert_eq!(back, vec![b"pong".to_vec()]);
        let d = capture.datagrams();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].direction, d[0].source(), d[0].destination()),
            (Direction::Sent, a, b)
        );
        assert_eq!(d[0].data, b"ping");
        assert_eq!(
            (d[1].direction, d[1].source(), d[1].destination()),
            (Direction::Received, b, a)
        );
        assert_eq!(d[1].data, b"pong");
    }
}
