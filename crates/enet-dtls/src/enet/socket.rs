//! The socket layer between an ENet [`Host`](enet_proto::Host) and the network.
//!
//! [`EnetSocket`] is this crate's version of Godot's `ENetGodotSocket`: the protocol core never
//! sees a socket, the driver ([`EnetHost`](super::EnetHost)) moves datagrams between the core
//! and an `EnetSocket`. [`UdpEnetSocket`] is the plain UDP implementation; a DTLS
//! implementation (one ENet datagram = one DTLS record) plugs in behind the same trait.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use enet_proto::Transmit;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tracing::{debug, trace};

use crate::net::{self, is_fatal_send_error, map_destination, BindOptions};

/// Largest UDP payload over IPv4 (65535 − 20 − 8). Also the largest datagram
/// [`UdpEnetSocket`] sends or receives.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Kernel send and receive buffer size asked for by [`UdpEnetSocket::bind`] (256 KiB, as C ENet's
/// `ENET_HOST_SEND_BUFFER_SIZE`/`ENET_HOST_RECEIVE_BUFFER_SIZE`).
pub const SOCKET_BUFFER_SIZE: usize = 256 * 1024;

/// Receive slots per `recvmmsg(2)` call. Each slot is 64 KiB so that a GRO-coalesced run of
/// datagrams always fits, so one socket holds `RECV_SLOTS` × 64 KiB of receive buffer.
const RECV_SLOTS: usize = if quinn_udp::BATCH_SIZE < 16 {
    quinn_udp::BATCH_SIZE
} else {
    16
};

/// Size of one receive slot: the largest GRO super-datagram (and any single UDP datagram).
const SLOT_SIZE: usize = 64 * 1024;

/// Largest run of datagrams sent with one GSO `sendmsg(2)` (bytes).
const MAX_GSO_BYTES: usize = 64 * 1024 - 1;

/// Fewest equal-size datagrams to one destination that get a GSO `sendmsg(2)` of their own;
/// shorter runs ride in the surrounding `sendmmsg(2)`.
///
/// GSO is the cheapest send (the `enet_socket` bench), but the receiver gets the whole run at
/// once, while with `sendmmsg(2)` it can start on the first datagram while the rest is still
/// being sent. For the short runs of interactive traffic (a window of small reliable packets
/// fills 2 to 6 datagrams) that overlap wins: on the loopback bench (`enet-dtls bench`, window
/// 64, 25 interleaved rounds) sending those runs with GSO gave ~20% fewer messages per second
/// (418k vs 528k; 369k with a threshold of 4). Long runs (bulk data, the fragments of a large
/// packet, which the receiver cannot use before the last one anyway) still go out with GSO.
#[cfg(target_os = "linux")]
const MIN_GSO_RUN: usize = 8;

/// Receive calls retried after a transient error (a signal, an ICMP report) before
/// `recv_with` gives up for this round.
const MAX_TRANSIENT_RETRIES: usize = 8;

/// Most datagrams handed to one `sendmmsg(2)` (the kernel takes at most `UIO_MAXIOV` = 1024).
#[cfg(target_os = "linux")]
const MAX_MMSG: usize = 256;

/// A datagram socket under an ENet host: sends and receives whole datagrams in batches,
/// without blocking, and tells a driver when to come back.
///
/// Both drivers run any `EnetSocket` the same way: the blocking [`EnetHost`](super::EnetHost)
/// and, with the `tokio` feature, `TokioEnetHost`. Plain UDP
/// ([`UdpEnetSocket`]), an in-memory pair for tests ([`MemorySocket`](super::testing::MemorySocket))
/// and a DTLS socket all plug in here.
///
/// # Contract
///
/// * One call of [`send_batch`](Self::send_batch) or [`recv_batch`](Self::recv_batch) never
///   blocks. Datagrams are whole: one ENet datagram in, one ENet datagram out.
/// * Sending is best effort, like UDP and like C ENet's `enet_socket_send`: a datagram the
///   socket cannot send right now (kernel buffer full, destination unreachable, a DTLS session
///   still handshaking) is dropped or deferred by the socket, never reported as an error. ENet
///   retransmits reliable data on its own timers. `Err` means the socket itself is broken.
/// * `recv_batch` returning `Ok(0)` means nothing is left to receive right now (a socket that
///   swallows datagrams of its own, such as DTLS handshake records, keeps reading until it
///   delivers one or its transport is empty).
/// * Readiness, for the drivers' sleep: the blocking driver calls
///   [`wait_readable`](Self::wait_readable), the tokio driver
///   [`poll_recv_ready`](Self::poll_recv_ready).
/// * Timers: a socket with timers of its own (DTLS retransmissions, idle expiry) reports the
///   next one through [`poll_timeout`](Self::poll_timeout); both drivers then wake up at or
///   after that instant and call [`handle_timeout`](Self::handle_timeout), before sending and
///   receiving.
/// * [`max_datagram_size`](Self::max_datagram_size) caps the ENet MTU: a DTLS socket returns
///   its data MTU (record payload), so an ENet datagram always fits in one record.
///
/// `now` is passed in (not read from the clock) so that implementations built on sans-IO cores
/// (`dtls-proto`) can hand it on.
pub trait EnetSocket: Send {
    /// The local address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The largest datagram (ENet payload, header included) this socket carries.
    fn max_datagram_size(&self) -> usize;

    /// Sends a batch of datagrams, in order, without blocking. Returns how many were handed
    /// to the network now; the others were dropped or deferred (see the trait docs).
    fn send_batch(&mut self, now: Instant, batch: &[Transmit]) -> io::Result<usize>;

    /// Receives the datagrams that are ready (at most one batch), calling `sink(source, data)`
    /// for each, without blocking. Sources are plain IPv4 for IPv4 peers, also on a dual-stack
    /// socket. Returns how many were delivered; `Ok(0)` when none was ready.
    fn recv_batch(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize>;

    /// Whether the last [`recv_batch`](Self::recv_batch) emptied the socket's receive queue,
    /// so that calling it again before waiting could only return `Ok(0)`. Drivers use this
    /// to save that call (a system call for real sockets). The default, `false`, makes them
    /// call again until `Ok(0)`.
    fn recv_drained(&self) -> bool {
        false
    }

    /// Blocks until a datagram is ready to be received or `timeout` passes (`None`: no limit).
    /// Returns whether the socket is readable. May return `true` spuriously. Used by the
    /// blocking driver.
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool>;

    /// `Ready` when [`recv_batch`](Self::recv_batch) has something to deliver, otherwise
    /// `Pending` after arranging for `cx`'s waker to be woken when it has; used by async
    /// drivers. Spurious wake-ups are allowed, lost ones are not: after `recv_batch` returned
    /// `Ok(0)`, `Pending` must mean a later datagram wakes the waker. A socket built on another
    /// `EnetSocket` (DTLS over UDP) forwards to it; [`UdpEnetSocket`] registers with tokio's
    /// reactor (feature `tokio`).
    ///
    /// The default says the socket cannot be driven asynchronously (an `Unsupported` error).
    fn poll_recv_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
                    "this EnetSocket does not implement poll_recv_ready, so an async driver cannot wait on it",
        )))
    }

    /// The socket's own next deadline (a DTLS retransmission), if any. Plain UDP has none.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Lets the socket act on its own timers; drivers call it once
    /// [`poll_timeout`](Self::poll_timeout) has passed, with `now` at or after it.
    fn handle_timeout(&mut self, _now: Instant) -> io::Result<()> {
        Ok(())
    }

    /// The next connection failure the socket detected on its own (a DTLS handshake or
    /// certificate check that failed, a fatal alert, a session closed by the remote), if any.
    ///
    /// Both drivers ask after every service round. For each failure they reset the ENet
    /// peers at [`ConnectionFailure::address`] (if any is still alive) and report an
    /// `Event::Disconnect` for each, with reason
    /// [`DisconnectReason::Failed`](enet_proto::DisconnectReason::Failed)
    /// ([`DisconnectReason::Remote`](enet_proto::DisconnectReason::Remote) when the remote
    /// closed the session cleanly); the failure itself is kept for the application
    /// (`EnetHost::take_failure`). A failure for an address without a live ENet peer (a client
    /// whose handshake failed before its CONNECT got through) is only logged.
    ///
    /// The default (plain UDP, in-memory sockets): never any.
    fn poll_failure(&mut self) -> Option<ConnectionFailure> {
        None
    }

    /// Tells the socket that the last live ENet peer at `addr` is gone (disconnected, timed
    /// out, reset, or forgotten with `disconnect_now`), so that per-peer state (a DTLS
    /// session) can be released. Drivers call it when they hand out the peer's
    /// `Event::Disconnect` (after the acknowledgements of that round went out), and from
    /// `reset_peer` / `disconnect_now`.
    ///
    /// Returns a failure when the peer's loss had a cause the socket knows better than ENet:
    /// ENet gave up on CONNECT while the DTLS handshake was still running (a timeout the
    /// application should see as such); the driver then reports the disconnect with
    /// [`DisconnectReason::Failed`](enet_proto::DisconnectReason::Failed) and keeps the cause.
    ///
    /// The default does nothing.
    fn peer_gone(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionFailure> {
        let _ = (now, addr);
        None
    }

    /// Tells the socket whether its host takes new remote peers at the moment. Both drivers
    /// call it (only when the answer changes) before receiving: `false` while the ENet host
    /// refuses new connections (`Host::set_refuse_new_connections`, the multiplayer peer's
    /// `refuse_new_connections`) or every peer slot holds a connected peer (a full server).
    /// A socket with per-peer state then starts none for new remotes, since ENet would drop
    /// their CONNECT anyway: a DTLS server ([`DtlsEnetSocket`](super::DtlsEnetSocket)) answers
    /// nothing to new addresses and does no handshake work. Existing peers are not affected.
    ///
    /// The default does nothing (plain UDP has no per-peer state).
    fn set_accepting_new_peers(&mut self, accept: bool) {
        let _ = accept;
    }
}

/// A connection the socket layer failed on its own, reported by
/// [`EnetSocket::poll_failure`] and kept by the drivers for the application
/// (`EnetHost::take_failure`, `TokioEnetHost::take_failure`).
///
/// Its `Display` names the address and the cause, e.g. `DTLS connection with 127.0.0.1:4433
/// failed: certificate hostname mismatch: expected "example.org", certificate presents
/// ["localhost"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionFailure {
    /// The remote address the failure concerns.
    pub address: SocketAddr,
    /// What went wrong.
    pub cause: FailureCause,
}

impl ConnectionFailure {
    /// A failure of the connection with `address` for `cause`.
    pub fn new(address: SocketAddr, cause: FailureCause) -> ConnectionFailure {
        ConnectionFailure { address, cause }
    }

    /// The DTLS error behind the failure, if it was one (`None` for a clean close).
    pub fn dtls_error(&self) -> Option<&dtls_proto::DtlsError> {
        match &self.cause {
            FailureCause::Dtls(e) => Some(e),
            FailureCause::Closed(_) => None,
        }
    }
}

impl std::fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DTLS connection with {} ", self.address)?;
        match &self.cause {
            FailureCause::Dtls(e) => write!(f, "failed: {e}"),
            FailureCause::Closed(dtls_proto::CloseReason::Remote) => {
                write!(f, "closed by the peer (close_notify)")
            }
            FailureCause::Closed(dtls_proto::CloseReason::IdleTimeout) => {
                write!(f, "closed: no data from the peer for the idle timeout")
            }
            FailureCause::Closed(reason) => write!(f, "closed ({reason:?})"),
        }
    }
}

impl std::error::Error for ConnectionFailure {}

/// Why the socket layer failed a connection; see [`ConnectionFailure`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The DTLS handshake or session failed: an untrusted certificate
    /// ([`DtlsError::UntrustedCertificate`](dtls_proto::DtlsError::UntrustedCertificate)), a
    /// hostname mismatch naming both names, an expired certificate, a fatal alert from the
    /// peer, a handshake timeout, a protocol error.
    Dtls(dtls_proto::DtlsError),
    /// The DTLS session ended while ENet still used it: the peer sent close_notify
    /// ([`CloseReason::Remote`](dtls_proto::CloseReason::Remote)) or it was silent for the idle
    /// timeout.
    Closed(dtls_proto::CloseReason),
}

/// Counters kept by a [`UdpEnetSocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketStats {
    /// Datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// Datagrams dropped on send (kernel buffer full, unreachable destination, too large).
    pub datagrams_dropped: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// `sendmsg(2)` calls that carried more than one datagram (generic segmentation offload).
    pub gso_batches: u64,
    /// Send system calls made (`sendmsg(2)`, GSO or not, and `sendmmsg(2)`), failed ones
    /// included. Below `datagrams_sent` when batching works.
    pub send_calls: u64,
    /// `sendmmsg(2)` calls that sent more than one datagram (Linux).
    pub mmsg_batches: u64,
    /// Receive system calls made (`recvmmsg(2)` or `recvmsg(2)`), empty ones included. An
    /// idle socket under a driver makes few: the drivers sleep instead of polling.
    pub recv_calls: u64,
}

/// One send system call, handed to the caller's wrapper by [`Batcher::send_on`]; returns how
/// many datagrams went.
type SendCall<'a> = dyn FnMut() -> io::Result<usize> + 'a;

/// Batched send/receive over any UDP socket, shared by the blocking and the tokio drivers.
pub(crate) struct Batcher {
    state: UdpSocketState,
    /// The socket is IPv6: IPv4 destinations are sent as v4-mapped addresses.
    ipv6: bool,
    recv_buf: Vec<u8>,
    meta: Vec<RecvMeta>,
    gso_buf: Vec<u8>,
    /// The last receive call emptied the kernel queue (it filled fewer slots than it offered,
    /// or found nothing), so another call right now would only find nothing.
    drained: bool,
    /// Destinations of one `sendmmsg(2)` call, kept to reuse the allocation.
    #[cfg(target_os = "linux")]
    mmsg_addrs: Vec<rustix::net::SocketAddrAny>,
    pub(crate) stats: SocketStats,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("ipv6", &self.ipv6)
            .field("max_gso_segments", &self.state.max_gso_segments())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Batcher {
    /// Sets the socket up for batching (non-blocking, GRO where available).
    pub(crate) fn new(sock: UdpSockRef<'_>, local: SocketAddr) -> io::Result<Batcher> {
        let state = UdpSocketState::new(sock)?;
        Ok(Batcher {
            state,
            ipv6: local.is_ipv6(),
            recv_buf: vec![0; RECV_SLOTS * SLOT_SIZE],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            gso_buf: Vec::new(),
            drained: false,
            #[cfg(target_os = "linux")]
            mmsg_addrs: Vec::new(),
            stats: SocketStats::default(),
        })
    }

    /// Receives one batch with `recv` (which runs the actual system call on the caller's socket)
    /// and hands every datagram to `sink`. `Ok(0)` when nothing was ready.
    pub(crate) fn recv_with(
        &mut self,
        mut recv: impl FnMut(
            &UdpSocketState,
            &mut [IoSliceMut<'_>],
            &mut [RecvMeta],
        ) -> io::Result<usize>,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        // On the stack rather than a `Vec`: this runs for every receive system call.
        let mut chunks = self.recv_buf.chunks_mut(SLOT_SIZE);
        let mut slices: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        // `Ok(0)` must mean "the kernel queue is empty" (the tokio driver then waits for a new
        // readiness edge), so a signal or an ICMP report about an earlier send is skipped and
        // the call made again. Linux reports each ICMP error once, so this ends quickly.
        let mut retries = MAX_TRANSIENT_RETRIES;
        let n = loop {
            match recv(&self.state, &mut slices, &mut self.meta) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok(0);
                }
                Err(e) if net::is_transient(&e) && retries > 0 => {
                    trace!(error = %e, "transient receive error skipped");
                    retries -= 1;
                }
                Err(e) if net::is_transient(&e) => {
                    // Still erroring: report "nothing now" but not drained, so drivers look
                    // again soon rather than wait for a readiness edge.
                    self.drained = false;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
        };
        // Fewer slots filled than offered: the kernel queue was empty when the call returned.
        self.drained = n < RECV_SLOTS;
        let mut delivered = 0;
        for (slot, meta) in self.recv_buf.chunks(SLOT_SIZE).zip(&self.meta).take(n) {
            let from = net::normalize(meta.addr);
            let data = &slot[..meta.len.min(slot.len())];
            if data.is_empty() {
                sink(from, data);
                delivered += 1;
                continue;
            }
            let stride = if meta.stride == 0 {
                data.len()
            } else {
                meta.stride
            };
            // One datagram, or a GRO run of `stride`-sized datagrams (the last may be shorter).
            for datagram in data.chunks(stride) {
                trace!(%from, len = datagram.len(), "udp recv");
                sink(from, datagram);
                delivered += 1;
            }
        }
        self.stats.datagrams_received += delivered as u64;
        Ok(delivered)
    }

    /// Sends `batch` with `send` (one `sendmsg(2)` per call), coalescing runs of equal-size
    /// datagrams to the same destination into one GSO send. Returns how many were sent.
    ///
    /// This is the portable path: [`send_on`](Self::send_on) uses it where `sendmmsg(2)` is
    /// missing, and callers that can only hand over a `sendmsg` closure use it directly.
    #[cfg_attr(
        target_os = "linux",
        allow(
            dead_code,
            reason = "the Linux path is `send_on`; this is the portable one"
        )
    )]
    pub(crate) fn send_with(
        &mut self,
        batch: &[Transmit],
        mut send: impl FnMut(&UdpSocketState, &quinn_udp::Transmit<'_>) -> io::Result<()>,
    ) -> io::Result<usize> {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut sent = 0;
        let mut i = 0;
        while i < batch.len() {
            let end = run_end(batch, i, max_segments);
            let result = self.send_run(&batch[i..end], &mut send);
            match self.settle_run(result, &batch[i..end], batch.len() - i)? {
                Some(n) => sent += n,
                None => return Ok(sent),
            }
            i = end;
        }
        Ok(sent)
    }

    /// Sends `batch` on `socket` with as few system calls as it can: on Linux, runs of at least
    /// `MIN_GSO_RUN` equal-size datagrams to one destination go out as one GSO `sendmsg(2)`
    /// each, and every stretch of other datagrams (any sizes, any destinations) goes out with
    /// one `sendmmsg(2)` per `MAX_MMSG` datagrams. Elsewhere this is
    /// [`send_with`](Self::send_with). The batch order is kept.
    ///
    /// `io` runs each system call (given as `op`) and returns its result: plain callers pass
    /// `|op| op()`, a tokio driver `|op| socket.try_io(Interest::WRITABLE, op)` so that
    /// readiness is cleared on `WouldBlock`.
    ///
    /// Best effort like [`send_with`](Self::send_with): on `WouldBlock` the rest of the batch
    /// is dropped, a datagram the kernel refuses (unreachable, too large, wrong family) is
    /// dropped alone, and only a broken socket is an `Err`. Returns how many were sent.
    #[cfg(target_os = "linux")]
    pub(crate) fn send_on<S: AsFd>(
        &mut self,
        socket: &S,
        batch: &[Transmit],
        mut io: impl FnMut(&mut SendCall<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut sent = 0;
        let mut i = 0;
        while i < batch.len() {
            let end = run_end(batch, i, max_segments);
            if end - i >= MIN_GSO_RUN {
                let result = self.send_run(&batch[i..end], &mut |state, t| {
                    io(&mut || state.try_send(UdpSockRef::from(socket), t).map(|()| 0)).map(drop)
                });
                match self.settle_run(result, &batch[i..end], batch.len() - i)? {
                    Some(n) => sent += n,
                    None => return Ok(sent),
                }
                i = end;
                continue;
            }
            // A stretch of datagrams up to the next worthwhile GSO run.
            let mut j = end;
            while j < batch.len() {
                let e = run_end(batch, j, max_segments);
                if e - j >= MIN_GSO_RUN {
                    break;
                }
                j = e;
            }
            let (n, go_on) =
                self.send_mmsg(socket.as_fd(), &batch[i..j], batch.len() - j, &mut io)?;
            sent += n;
            if !go_on {
                return Ok(sent);
            }
            i = j;
        }
        Ok(sent)
    }

    /// Sends `batch` on `socket`; without `sendmmsg(2)` this is [`send_with`](Self::send_with)
    /// (see the Linux version for `io`).
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn send_on<S: AsFd>(
        &mut self,
        socket: &S,
        batch: &[Transmit],
        mut io: impl FnMut(&mut SendCall<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.send_with(batch, |state, t| {
            io(&mut || state.try_send(UdpSockRef::from(socket), t).map(|()| 0)).map(drop)
        })
    }

    /// Sends `group` with `sendmmsg(2)` ([`MAX_MMSG`] datagrams per call), going past the
    /// datagrams the kernel refuses one by one. `after` is how many datagrams of the batch
    /// follow the group (dropped too when the send buffer is full). Returns how many were sent
    /// and whether the caller may go on with the batch.
    #[cfg(target_os = "linux")]
    fn send_mmsg(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        group: &[Transmit],
        after: usize,
        io: &mut dyn FnMut(&mut SendCall<'_>) -> io::Result<usize>,
    ) -> io::Result<(usize, bool)> {
        use rustix::net::{sendto, SendFlags};

        let mut sent = 0;
        let mut start = 0;
        while start < group.len() {
            let chunk = &group[start..group.len().min(start + MAX_MMSG)];
            let ipv6 = self.ipv6;
            self.stats.send_calls += 1;
            let result = if let [only] = chunk {
                // A lone datagram (the common case when traffic is light): `sendto(2)` needs
                // none of the per-message vectors that `sendmmsg(2)` is set up with below, and
                // its outcome maps onto the same cases (one datagram sent, or its error).
                let to = map_destination(ipv6, only.destination);
                io(&mut || {
                    sendto(socket, &only.data, SendFlags::empty(), &to)
                        .map(|_| 1)
                        .map_err(io::Error::from)
                })
            } else {
                self.send_mmsg_call(socket, chunk, io)
            };
            match result {
                Ok(n) if n > 0 => {
                    // A short count: the datagram at `start + n` failed; the next call reports
                    // why (or sends it after all).
                    let n = n.min(chunk.len());
                    trace!(datagrams = n, "udp send");
                    self.stats.datagrams_sent += n as u64;
                    if n > 1 {
                        self.stats.mmsg_batches += 1;
                    }
                    sent += n;
                    start += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // `Ok(0)` is not expected for a non-empty vector; treat it as a full buffer
                // rather than spin.
                Ok(_) => return Ok((sent, self.drop_rest(group.len() - start + after))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((sent, self.drop_rest(group.len() - start + after)))
                }
                Err(e) if is_fatal_send_error(&e) => return Err(e),
                Err(e) => {
                    debug!(to = %chunk[0].destination, error = %e, "udp send failed; dropped");
                    self.stats.datagrams_dropped += 1;
                    start += 1;
                }
            }
        }
        Ok((sent, true))
    }

    /// One `sendmmsg(2)` call for `chunk` (at most [`MAX_MMSG`] datagrams) through `io`;
    /// returns how many the kernel took.
    #[cfg(target_os = "linux")]
    fn send_mmsg_call(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        chunk: &[Transmit],
        io: &mut dyn FnMut(&mut SendCall<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
        use std::io::IoSlice;

        let ipv6 = self.ipv6;
        self.mmsg_addrs.clear();
        self.mmsg_addrs.extend(
            chunk
                .iter()
                .map(|t| SocketAddrAny::from(map_destination(ipv6, t.destination))),
        );
        let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|t| [IoSlice::new(&t.data)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut msgs: Vec<MMsgHdr<'_>> = self
            .mmsg_addrs
            .iter()
            .zip(&iovs)
            .zip(controls.iter_mut())
            .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
            .collect();
        io(&mut || sendmmsg(socket, &mut msgs, SendFlags::empty()).map_err(io::Error::from))
    }

    /// Counts `dropped` datagrams lost to a full send buffer; returns `false` (stop sending).
    fn drop_rest(&mut self, dropped: usize) -> bool {
        debug!(dropped, "udp send buffer full; datagrams dropped");
        self.stats.datagrams_dropped += dropped as u64;
        false
    }

    /// Sends one run (see [`run_end`]) with one `sendmsg(2)`: a single datagram, or a GSO
    /// super-datagram when the run has more than one.
    fn send_run(
        &mut self,
        run: &[Transmit],
        send: &mut dyn FnMut(&UdpSocketState, &quinn_udp::Transmit<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        let destination = self.destination(first.destination);
        self.stats.send_calls += 1;
        if run.len() == 1 {
            return send(
                &self.state,
                &quinn_udp::Transmit {
                    destination,
                    ecn: None,
                    contents: &first.data,
                    segment_size: None,
                    src_ip: None,
                },
            );
        }
        self.gso_buf.clear();
        for t in run {
            self.gso_buf.extend_from_slice(&t.data);
        }
        self.stats.gso_batches += 1;
        send(
            &self.state,
            &quinn_udp::Transmit {
                destination,
                ecn: None,
                contents: &self.gso_buf,
                segment_size: Some(first.data.len()),
                src_ip: None,
            },
        )
    }

    /// Books the outcome of [`send_run`](Self::send_run) for `run`; `left` counts the run and
    /// everything after it in the batch. `Some(sent)` to go on, `None` when the send buffer is
    /// full (the rest was dropped), `Err` when the socket is broken.
    fn settle_run(
        &mut self,
        result: io::Result<()>,
        run: &[Transmit],
        left: usize,
    ) -> io::Result<Option<usize>> {
        let count = run.len();
        match result {
            Ok(()) => {
                if let Some(first) = run.first() {
                    trace!(to = %first.destination, datagrams = count, "udp send");
                }
                self.stats.datagrams_sent += count as u64;
                Ok(Some(count))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Kernel buffer full: drop the rest of this batch, as C ENet does.
                self.drop_rest(left);
                Ok(None)
            }
            Err(e) if is_fatal_send_error(&e) => Err(e),
            Err(e) => {
                if let Some(first) = run.first() {
                    debug!(to = %first.destination, error = %e, datagrams = count, "udp send failed; dropped");
                }
                self.stats.datagrams_dropped += count as u64;
                Ok(Some(0))
            }
        }
    }

    pub(crate) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn destination(&self, to: SocketAddr) -> SocketAddr {
        map_destination(self.ipv6, to)
    }
}

/// The end (exclusive) of the run of datagrams starting at `batch[i]` that one GSO send can
/// carry: same destination, same size (the last may be shorter), at most `max_segments`
/// datagrams and [`MAX_GSO_BYTES`] bytes. `i + 1` when `batch[i]` stands alone.
fn run_end(batch: &[Transmit], i: usize, max_segments: usize) -> usize {
    let Some(first) = batch.get(i) else {
        return i;
    };
    let size = first.data.len();
    let mut end = i + 1;
    if size == 0 {
        return end;
    }
    let mut bytes = size;
    while end < batch.len()
        && end - i < max_segments
        && batch[end].destination == first.destination
        && batch[end - 1].data.len() == size
        && batch[end].data.len() <= size
        && !batch[end].data.is_empty()
        && bytes + batch[end].data.len() <= MAX_GSO_BYTES
    {
        bytes += batch[end].data.len();
        end += 1;
    }
    end
}

/// Plain UDP [`EnetSocket`]: IPv4 or IPv6, batched on Linux: `recvmmsg(2)` (through
/// [`quinn_udp`]) to receive; to send, one `sendmmsg(2)` for a batch of datagrams to any mix of
/// destinations and sizes, and GSO `sendmsg(2)` for runs of equal-size datagrams to one
/// destination. Elsewhere it sends and receives one datagram per call.
///
/// * [`stats`](UdpEnetSocket::stats) counts datagrams and send system calls, so the batching
///   can be watched.
/// * Binding `[::]` gives a dual-stack socket; IPv4 peers then appear as plain IPv4 addresses
///   and IPv4 destinations work.
/// * IPv4 datagrams larger than the path MTU are fragmented by IP, as with C ENet (on Linux the
///   socket keeps the kernel's default `IP_PMTUDISC_WANT`). Over IPv6 they are not
///   (`IPV6_DONTFRAG`, set by quinn-udp): keep the ENet MTU (default 1392) below the path MTU.
/// * It holds 1 MiB of receive buffers (16 slots of 64 KiB, so GRO runs always fit).
///
/// # Example
///
/// ```no_run
/// use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
///
/// # fn main() -> std::io::Result<()> {
/// let socket = UdpEnetSocket::bind("127.0.0.1:0")?;
/// println!("bound to {}", socket.local_addr()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UdpEnetSocket {
    socket: UdpSocket,
    batcher: Batcher,
    /// A duplicate of `socket`'s descriptor registered with tokio's reactor, made by the first
    /// [`poll_recv_ready`](EnetSocket::poll_recv_ready) (the tokio driver). Once it exists,
    /// receives go through its `try_io`, which clears the readiness when the kernel queue is
    /// empty. (A duplicate, not the descriptor itself: registering a borrowed descriptor with
    /// tokio needs `unsafe`, which this crate forbids.)
    #[cfg(feature = "tokio")]
    reactor: Option<tokio::net::UdpSocket>,
}

impl UdpEnetSocket {
    /// Binds a UDP socket to `addr` (port 0: any free port; read it back with
    /// [`EnetSocket::local_addr`]) with 256 KiB kernel buffers, like C ENet.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpEnetSocket> {
        let socket = net::bind_udp(addr, &BindOptions::buffers(SOCKET_BUFFER_SIZE))?;
        UdpEnetSocket::from_std(socket)
    }

    /// Wraps an already bound socket (it is switched to non-blocking mode).
    pub fn from_std(socket: UdpSocket) -> io::Result<UdpEnetSocket> {
        let local = socket.local_addr()?;
        let batcher = Batcher::new(UdpSockRef::from(&socket), local)?;
        net::allow_fragmentation(&socket, local);
        Ok(UdpEnetSocket {
            socket,
            batcher,
            #[cfg(feature = "tokio")]
            reactor: None,
        })
    }

    /// The underlying socket.
    pub fn get_ref(&self) -> &UdpSocket {
        &self.socket
    }

    /// Send/receive counters.
    pub fn stats(&self) -> SocketStats {
        self.batcher.stats
    }

    /// Most datagrams one GSO `sendmsg(2)` may carry here (1: no segmentation offload).
    pub fn max_gso_segments(&self) -> usize {
        self.batcher.max_gso_segments()
    }
}

impl EnetSocket for UdpEnetSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn max_datagram_size(&self) -> usize {
        MAX_UDP_PAYLOAD
    }

    fn send_batch(&mut self, _now: Instant, batch: &[Transmit]) -> io::Result<usize> {
        self.batcher.send_on(&self.socket, batch, |op| op())
    }

    fn recv_batch(
        &mut self,
        _now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let socket = &self.socket;
        let mut calls = 0;
        #[cfg(feature = "tokio")]
        if let Some(reactor) = &self.reactor {
            let result = self.batcher.recv_with(
                |state, bufs, meta| {
                    // try_io skips the call when tokio has not seen the socket readable, and
                    // clears that readiness when the call finds the queue empty.
                    reactor.try_io(tokio::io::Interest::READABLE, || {
                        calls += 1;
                        state.recv(UdpSockRef::from(socket), bufs, meta)
                    })
                },
                sink,
            );
            self.batcher.stats.recv_calls += calls;
            return result;
        }
        let result = self.batcher.recv_with(
            |state, bufs, meta| {
                calls += 1;
                state.recv(UdpSockRef::from(socket), bufs, meta)
            },
            sink,
        );
        self.batcher.stats.recv_calls += calls;
        result
    }

    fn recv_drained(&self) -> bool {
        self.batcher.drained
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        net::wait_readable(&self.socket, timeout)
    }

    /// With the `tokio` feature: registers a duplicate of the socket's descriptor with the
    /// current tokio runtime on first use (must run inside one), then reports tokio's read
    /// readiness. Without it: `Unsupported`.
    fn poll_recv_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        #[cfg(feature = "tokio")]
        {
            if self.reactor.is_none() {
                let dup = self.socket.try_clone()?;
                self.reactor = Some(tokio::net::UdpSocket::from_std(dup)?);
            }
            match &self.reactor {
                Some(reactor) => reactor.poll_recv_ready(cx),
                None => Poll::Pending,
            }
        }
        #[cfg(not(feature = "tokio"))]
        {
            let _ = cx;
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "async readiness of UdpEnetSocket needs the `tokio` feature",
            )))
        }
    }
}
