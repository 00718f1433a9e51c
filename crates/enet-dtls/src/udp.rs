//! Godot-shaped UDP: [`PacketPeerUdp`] and [`UdpServer`], part of the Godot compatibility
//! layer (also re-exported in [`crate::godot`]).
//!
//! These are the transport under the DTLS layer ([`crate::dtls`]), shaped like Godot's
//! `PacketPeerUDP` and `UDPServer` but with Rust manners: constructors return
//! [`io::Result`], getters have no `get_` prefix, timeouts are [`Duration`]s.
//!
//! Everything is **non-blocking and polled**, like Godot: [`PacketPeerUdp::get_packet`] returns
//! `Ok(None)` when nothing is waiting, and [`UdpServer::poll`] reads whatever the kernel has.
//! To sleep until something arrives, use [`PacketPeerUdp::wait`] or [`UdpServer::wait`]
//! (`poll(2)`-style readiness with a timeout).
//!
//! # Errors
//!
//! All fallible calls return [`std::io::Error`]. Besides the kernel's own errors:
//!
//! * [`io::ErrorKind::NotConnected`]: the peer is closed, its [`UdpServer`] was stopped, or
//!   [`PacketPeerUdp::put_packet`] has no destination yet.
//! * [`io::ErrorKind::InvalidInput`]: an address of the wrong family for the socket (an IPv6
//!   destination on an IPv4 socket), or a call that does not apply (for example
//!   [`PacketPeerUdp::set_dest_address`] on a connected peer).
//! * [`io::ErrorKind::WouldBlock`] from `put_packet`: the kernel's send buffer is full and the
//!   datagram was **not** sent (UDP gives no delivery guarantee anyway).
//!
//! ICMP "port unreachable" errors (`ECONNREFUSED`, reported by Linux on a later call of a
//! socket that sent to a closed port) are not errors here: the receive side ignores them and the
//! send side reports the datagram as sent, because UDP peers come and go (a game server that
//! restarts must not break its clients).
//!
//! # Bounds
//!
//! Each peer queues at most [`MAX_QUEUED_PACKETS`] datagrams and [`MAX_QUEUED_BYTES`] bytes.
//! A [`UdpServer`] that receives for a peer whose queue is full drops the datagram (counted in
//! [`UdpServer::dropped_datagrams`]); a standalone [`PacketPeerUdp`] with a full queue leaves
//! further datagrams in the kernel's buffer. One [`UdpServer::poll`] reads at most
//! [`MAX_DATAGRAMS_PER_POLL`] datagrams, so a flood cannot keep it busy forever. A
//! [`UdpServer`] asks the kernel for a [`SERVER_RECV_BUFFER`] receive buffer; datagrams that
//! arrive while the kernel's buffer is full are lost, as with any UDP socket, so poll often.
//!
//! # IPv6
//!
//! Binding the unspecified IPv6 address `[::]` gives a dual-stack socket (IPv4 peers appear as
//! plain IPv4 addresses, and IPv4 destinations work); binding a specific IPv6 address gives an
//! IPv6-only socket.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use enet_dtls::udp::{PacketPeerUdp, UdpServer};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut server = UdpServer::listen("127.0.0.1:0")?;
//! let mut client = PacketPeerUdp::connect(server.local_addr()?)?;
//! client.put_packet(b"hello")?;
//!
//! server.wait(Some(Duration::from_secs(1)))?;
//! server.poll()?;
//! let mut peer = server.take_connection().expect("a new peer");
//! assert_eq!(peer.get_packet()?.as_deref(), Some(&b"hello"[..]));
//! peer.put_packet(b"hi")?; // goes back to the client only
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use crate::net::{self, normalize, resolve, wait_readable, wildcard_for, BindOptions};

/// Most datagrams one peer queues before further ones are dropped (or left in the kernel).
pub const MAX_QUEUED_PACKETS: usize = 1024;

/// Most payload bytes one peer queues (1 MiB) before further datagrams are dropped (or left in
/// the kernel).
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Godot's default for [`UdpServer::set_max_pending_connections`].
pub const DEFAULT_MAX_PENDING_CONNECTIONS: usize = 16;

/// Most datagrams one [`UdpServer::poll`] (or one receive call of a [`PacketPeerUdp`]) reads from
/// the socket, so a flood cannot keep a caller busy forever.
pub const MAX_DATAGRAMS_PER_POLL: usize = 4096;

/// Kernel receive buffer (`SO_RCVBUF`) a [`UdpServer`] asks for, since many clients share its
/// socket (best effort: Linux caps it at `net.core.rmem_max`).
pub const SERVER_RECV_BUFFER: usize = 1 << 20;

/// Size of the receive buffer: the largest UDP payload plus a margin.
const RECV_BUFFER: usize = 65_536;

/// Longest single `poll(2)` sleep of a peer that shares its socket with a [`UdpServer`]: another
/// thread may route our datagram into our queue while we sleep on the socket, so we look again
/// at least this often.
const SHARED_WAIT_SLICE: Duration = Duration::from_millis(10);

fn not_connected(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, what.to_string())
}

fn invalid_input(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// A non-blocking UDP socket bound to `addr` (dual-stack for `[::]`).
fn bind_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    net::bind_udp(addr, &BindOptions::default())
}

/// `dest` as the socket bound to `local` needs it: IPv4 on an IPv6 socket becomes IPv4-mapped.
fn for_socket(local: SocketAddr, dest: SocketAddr) -> io::Result<SocketAddr> {
    net::to_socket_family(local, dest)
}

/// Reads one datagram; `Ok(None)` when the socket has nothing. ICMP errors are skipped.
fn recv_one(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
    loop {
        match socket.recv_from(buf) {
            Ok((n, from)) => return Ok(Some((n, net::normalize(from)))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if net::is_transient(&e) => {
                // Interrupted, or an ICMP report about an earlier send: look again.
                debug!(error = %e, "ignoring transient error on a udp socket");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends one datagram; ICMP errors from earlier sends are reported as success (see the module
/// docs).
fn send_one(socket: &UdpSocket, to: Option<SocketAddr>, data: &[u8]) -> io::Result<()> {
    // Linux reports a pending ICMP error once, then clears it: a few retries always suffice.
    let mut icmp_retries = 3;
    loop {
        let sent = match to {
            Some(to) => socket.send_to(data, to),
            None => socket.send(data),
        };
        match sent {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "datagram truncated on send ({n} of {} bytes)",
                    data.len()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if icmp_retries > 0 && net::is_icmp_report(&e) => {
                debug!(error = %e, "ignoring ICMP error reported on a udp socket");
                // The error was for an earlier datagram; this one was not sent yet.
                icmp_retries -= 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A bounded FIFO of datagrams (see [`MAX_QUEUED_PACKETS`] and [`MAX_QUEUED_BYTES`]).
#[derive(Debug, Default)]
struct PacketQueue {
    packets: VecDeque<(SocketAddr, Vec<u8>)>,
    bytes: usize,
}

impl PacketQueue {
    fn is_full(&self) -> bool {
        self.packets.len() >= MAX_QUEUED_PACKETS || self.bytes >= MAX_QUEUED_BYTES
    }

    /// Adds a datagram unless that would exceed a bound; returns whether it was queued.
    fn push(&mut self, from: SocketAddr, data: &[u8]) -> bool {
        if self.packets.len() >= MAX_QUEUED_PACKETS || self.bytes + data.len() > MAX_QUEUED_BYTES {
            return false;
        }
        self.bytes += data.len();
        self.packets.push_back((from, data.to_vec()));
        true
    }

    fn pop(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let p = self.packets.pop_front()?;
        self.bytes -= p.1.len();
        Some(p)
    }

    fn len(&self) -> usize {
        self.packets.len()
    }
}

/// A socket of its own (a client, or a standalone bound peer).
#[derive(Debug)]
struct OwnSocket {
    socket: UdpSocket,
    local: SocketAddr,
    /// Set by `connect_to_host`: the kernel filters other sources, and so do we.
    connected: Option<SocketAddr>,
    /// Set by `set_dest_address`: where `put_packet` sends.
    dest: Option<SocketAddr>,
    queue: PacketQueue,
    buf: Vec<u8>,
}

impl OwnSocket {
    fn new(socket: UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(OwnSocket {
            socket,
            local,
            connected: None,
            dest: None,
            queue: PacketQueue::default(),
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// Moves what the kernel has into the queue (until the queue is full).
    fn pump(&mut self) -> io::Result<()> {
        for _ in 0..MAX_DATAGRAMS_PER_POLL {
            if self.queue.is_full() {
                break;
            }
            let Some((n, from)) = recv_one(&self.socket, &mut self.buf)? else {
                break;
            };
            if let Some(remote) = self.connected {
                if from != remote {
                    trace!(%from, %remote, "dropping datagram from a stranger (connected peer)");
                    continue;
                }
            }
            if !self.queue.push(from, &self.buf[..n]) {
                trace!(%from, len = n, "dropping datagram: queue full");
            }
        }
        Ok(())
    }
}

/// A peer handed out by a [`UdpServer`]: shares the server's socket, sees one remote address.
struct SharedPeer {
    server: Arc<Mutex<ServerState>>,
    remote: SocketAddr,
}

impl fmt::Debug for SharedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPeer")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Inner {
    /// Not bound (new, or closed).
    Unbound {
        dest: Option<SocketAddr>,
    },
    Own(OwnSocket),
    Shared(SharedPeer),
}

/// A UDP peer, like Godot's `PacketPeerUDP`: send and receive whole datagrams, non-blocking.
///
/// Three ways to get one:
///
/// * [`PacketPeerUdp::bind`]: a socket of its own on a local address; send with
///   [`set_dest_address`](Self::set_dest_address) + [`put_packet`](Self::put_packet), receive
///   from anyone.
/// * [`PacketPeerUdp::connect`] (or [`connect_to_host`](Self::connect_to_host) on a new or
///   bound peer): a socket "connected" to one remote address; datagrams from anyone else are
///   ignored.
/// * [`UdpServer::take_connection`]: shares the server's socket and sees only the datagrams
///   of its remote address; [`put_packet`](Self::put_packet) goes to that address.
///
/// Receiving is polled: [`get_packet`](Self::get_packet) returns `Ok(None)` when nothing is
/// waiting, and [`wait`](Self::wait) sleeps until something is. Dropping the peer closes it.
#[derive(Debug)]
pub struct PacketPeerUdp {
    inner: Inner,
    last_from: Option<SocketAddr>,
}

impl Default for PacketPeerUdp {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketPeerUdp {
    /// A peer with no socket yet. [`connect_to_host`](Self::connect_to_host), or
    /// [`set_dest_address`](Self::set_dest_address) followed by [`put_packet`](Self::put_packet),
    /// binds it to an ephemeral port of the right address family, as Godot does.
    pub fn new() -> Self {
        PacketPeerUdp {
            inner: Inner::Unbound { dest: None },
            last_from: None,
        }
    }

    /// Binds a new socket to `addr` (IPv4 or IPv6; port 0 picks a free port, read it back with
    /// [`local_addr`](Self::local_addr)). If `addr` resolves to several addresses, the first one
    /// that binds is used.
    ///
    /// # Errors
    ///
    /// The kernel's error for the last address tried (for example `AddrInUse`).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        let own = OwnSocket::new(net::bind_udp(addr, &BindOptions::default())?)?;
        Ok(PacketPeerUdp {
            inner: Inner::Own(own),
            last_from: None,
        })
    }

    /// A new peer bound to an ephemeral port and connected to `addr`; shorthand for
    /// [`new`](Self::new) + [`connect_to_host`](Self::connect_to_host).
    ///
    /// # Errors
    ///
    /// See [`connect_to_host`](Self::connect_to_host).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        let mut peer = Self::new();
        peer.connect_to_host(addr)?;
        Ok(peer)
    }

    /// Connects this peer to one remote address (`"host:port"` is resolved, IPv4 or IPv6):
    /// [`put_packet`](Self::put_packet) then sends there, and datagrams from any other source are
    /// ignored (the kernel filters them, and so does this type).
    ///
    /// An unbound peer is first bound to an ephemeral port of the address's family (the first
    /// resolved address that works). A bound peer uses the first resolved address its socket can
    /// reach (an IPv4 socket cannot reach IPv6).
    ///
    /// # Errors
    ///
    /// Resolution failures; `InvalidInput` if a peer taken from a [`UdpServer`] is asked to
    /// connect elsewhere (it is already tied to its remote) or no resolved address fits the
    /// socket's family; `NotConnected` if the peer's server was stopped.
    pub fn connect_to_host<A: ToSocketAddrs>(&mut self, addr: A) -> io::Result<()> {
        let addrs = resolve(addr)?;
        match &mut self.inner {
            Inner::Shared(shared) => {
                if addrs.iter().any(|a| normalize(*a) == shared.remote) {
                    return Ok(());
                }
                Err(invalid_input(format!(
                    "this peer belongs to a UdpServer and is tied to {}",
                    shared.remote
                )))
            }
            Inner::Unbound { .. } => {
                let mut last_err = None;
                for a in addrs {
                    let attempt = bind_socket(wildcard_for(a))
                        .and_then(OwnSocket::new)
                        .and_then(|mut own| connect_own(&mut own, a).map(|()| own));
                    match attempt {
                        Ok(own) => {
                            self.inner = Inner::Own(own);
                            return Ok(());
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                Err(last_err.unwrap_or_else(|| invalid_input("nothing to connect to".into())))
            }
            Inner::Own(own) => {
                let local = own.local;
                let target = addrs
                    .iter()
                    .copied()
                    .find(|a| for_socket(local, *a).is_ok())
                    .ok_or_else(|| {
                        invalid_input(format!(
                            "no address of the right family for socket {local}: {addrs:?}"
                        ))
                    })?;
                connect_own(own, target)
            }
        }
    }

    /// Sets where [`put_packet`](Self::put_packet) sends (`"host:port"` is resolved; the first
    /// address the socket can reach is used). Like Godot, this is refused on a connected peer.
    ///
    /// # Errors
    ///
    /// Resolution failures; `InvalidInput` on a connected peer, on a peer taken from a
    /// [`UdpServer`], or when no address fits the socket's family.
    pub fn set_dest_address<A: ToSocketAddrs>(&mut self, addr: A) -> io::Result<()> {
        let addrs = resolve(addr)?;
        match &mut self.inner {
            Inner::Shared(shared) => Err(invalid_input(format!(
                "this peer belongs to a UdpServer and always sends to {}",
                shared.remote
            ))),
            Inner::Unbound { dest } => {
                *dest = Some(normalize(addrs[0]));
                Ok(())
            }
            Inner::Own(own) => {
                if let Some(remote) = own.connected {
                    return Err(invalid_input(format!(
                        "destination cannot be set on a peer connected to {remote}"
                    )));
                }
                let local = own.local;
                let target = addrs
                    .iter()
                    .copied()
                    .find(|a| for_socket(local, *a).is_ok())
                    .ok_or_else(|| {
                        invalid_input(format!(
                            "no address of the right family for socket {local}: {addrs:?}"
                        ))
                    })?;
                own.dest = Some(normalize(target));
                Ok(())
            }
        }
    }

    /// Sends one datagram to the connected host, the destination address, or (for a peer taken
    /// from a [`UdpServer`]) its remote address. An unbound peer with a destination binds to an
    /// ephemeral port first.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a destination or on a closed peer (or one whose server was
    /// stopped); `WouldBlock` if the kernel's send buffer is full (the datagram was not sent);
    /// other kernel errors (for example `EMSGSIZE` for a datagram over 65507 bytes).
    pub fn put_packet(&mut self, data: &[u8]) -> io::Result<()> {
        if let Inner::Unbound { dest: Some(dest) } = self.inner {
            let mut own = OwnSocket::new(bind_socket(wildcard_for(dest))?)?;
            own.dest = Some(dest);
            self.inner = Inner::Own(own);
        }
        match &mut self.inner {
            Inner::Unbound { .. } => Err(not_connected(
                "no destination: call set_dest_address or connect_to_host first",
            )),
            Inner::Own(own) => {
                if own.connected.is_some() {
                    send_one(&own.socket, None, data)
                } else if let Some(dest) = own.dest {
                    send_one(&own.socket, Some(for_socket(own.local, dest)?), data)
                } else {
                    Err(not_connected(
                        "no destination: call set_dest_address or connect_to_host first",
                    ))
                }
            }
            Inner::Shared(shared) => {
                let state = lock(&shared.server);
                let socket = state.socket()?;
                send_one(socket, Some(for_socket(state.local, shared.remote)?), data)
            }
        }
    }

    /// Returns the next datagram, or `Ok(None)` if none is waiting (never blocks). Its source is
    /// then [`packet_address`](Self::packet_address).
    ///
    /// A peer taken from a [`UdpServer`] also reads the shared socket here (routing other
    /// sources' datagrams to their peers), so it works whether or not the server is polled.
    ///
    /// # Errors
    ///
    /// `NotConnected` on a closed peer or one whose server was stopped; kernel errors.
    pub fn get_packet(&mut self) -> io::Result<Option<Vec<u8>>> {
        let next = match &mut self.inner {
            Inner::Unbound { .. } => return Err(not_connected("peer is not bound")),
            Inner::Own(own) => {
                if own.queue.len() == 0 {
                    own.pump()?;
                }
                own.queue.pop()
            }
            Inner::Shared(shared) => {
                let mut state = lock(&shared.server);
                state.pump_if_empty(shared.remote)?;
                state.pop_for(shared.remote)
            }
        };
        Ok(next.map(|(from, data)| {
            self.last_from = Some(from);
            data
        }))
    }

    /// Source address of the last datagram returned by [`get_packet`](Self::get_packet).
    pub fn packet_address(&self) -> Option<SocketAddr> {
        self.last_from
    }

    /// How many datagrams [`get_packet`](Self::get_packet) can return right now (reads the socket
    /// first). Errors while reading are logged; the next `get_packet` reports them.
    pub fn available_packet_count(&mut self) -> usize {
        match &mut self.inner {
            Inner::Unbound { .. } => 0,
            Inner::Own(own) => {
                if let Err(e) = own.pump() {
                    debug!(error = %e, "udp receive failed");
                }
                own.queue.len()
            }
            Inner::Shared(shared) => {
                let mut state = lock(&shared.server);
                if let Err(e) = state.pump() {
                    debug!(error = %e, "udp receive failed");
                }
                state.queued_for(shared.remote)
            }
        }
    }

    /// Waits until a datagram is ready for [`get_packet`](Self::get_packet), for at most
    /// `timeout` (`None`: no limit). Returns `Ok(true)` if one is, `Ok(false)` on timeout.
    ///
    /// A peer taken from a [`UdpServer`] rechecks its queue at least every 10 ms, since another
    /// thread may read its datagram from the shared socket.
    ///
    /// # Errors
    ///
    /// `NotConnected` on a closed peer (or one whose server was stopped); kernel errors.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match &mut self.inner {
                Inner::Unbound { .. } => return Err(not_connected("peer is not bound")),
                Inner::Own(own) => {
                    own.pump()?;
                    if own.queue.len() > 0 {
                        return Ok(true);
                    }
                    if left == Some(Duration::ZERO) {
                        return Ok(false);
                    }
                    wait_readable(&own.socket, left)?;
                }
                Inner::Shared(shared) => {
                    let socket = {
                        let mut state = lock(&shared.server);
                        state.pump()?;
                        if state.queued_for(shared.remote) > 0 {
                            return Ok(true);
                        }
                        Arc::clone(state.socket_arc()?)
                    };
                    if left == Some(Duration::ZERO) {
                        return Ok(false);
                    }
                    let slice = left.map_or(SHARED_WAIT_SLICE, |l| l.min(SHARED_WAIT_SLICE));
                    wait_readable(&socket, Some(slice))?;
                }
            }
        }
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`), like Godot's
    /// `set_broadcast_enabled`. Call it after [`bind`](Self::bind).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the peer has no socket of its own (unbound, or taken from a
    /// [`UdpServer`]); kernel errors.
    pub fn set_broadcast_enabled(&mut self, enabled: bool) -> io::Result<()> {
        match &self.inner {
            Inner::Own(own) => own.socket.set_broadcast(enabled),
            _ => Err(not_connected(
                "broadcast needs a bound peer with a socket of its own",
            )),
        }
    }

    /// The local address of the socket (for a peer taken from a [`UdpServer`], the server's).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the peer is not bound (or its server was stopped).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Unbound { .. } => Err(not_connected("peer is not bound")),
            Inner::Own(own) => Ok(own.local),
            Inner::Shared(shared) => {
                let state = lock(&shared.server);
                state.socket()?;
                Ok(state.local)
            }
        }
    }

    /// The one remote address this peer talks to: the connected host, or the remote of a peer
    /// taken from a [`UdpServer`]. `None` for an unconnected peer.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Inner::Unbound { .. } => None,
            Inner::Own(own) => own.connected,
            Inner::Shared(shared) => Some(shared.remote),
        }
    }

    /// Where [`put_packet`](Self::put_packet) sends: the remote address, or the destination
    /// address of an unconnected peer.
    pub fn dest_address(&self) -> Option<SocketAddr> {
        match &self.inner {
            Inner::Unbound { dest } => *dest,
            Inner::Own(own) => own.connected.or(own.dest),
            Inner::Shared(shared) => Some(shared.remote),
        }
    }

    /// Whether this peer has a socket (of its own or shared with a [`UdpServer`]).
    pub fn is_bound(&self) -> bool {
        !matches!(self.inner, Inner::Unbound { .. })
    }

    /// Whether this peer talks to one remote only (connected, or taken from a [`UdpServer`]).
    pub fn is_connected_to_host(&self) -> bool {
        self.remote_addr().is_some()
    }

    /// Closes the peer: its own socket is closed; a peer taken from a [`UdpServer`] leaves the
    /// server's routing table, so later datagrams from its address become a new pending
    /// connection. Queued datagrams are discarded. Calling it twice is harmless.
    pub fn close(&mut self) {
        let old = std::mem::replace(&mut self.inner, Inner::Unbound { dest: None });
        match old {
            Inner::Unbound { .. } => {}
            Inner::Own(own) => debug!(local = %own.local, "udp peer closed"),
            Inner::Shared(shared) => {
                lock(&shared.server).remove(shared.remote);
                debug!(remote = %shared.remote, "udp server peer closed");
            }
        }
        self.last_from = None;
    }
}

impl Drop for PacketPeerUdp {
    fn drop(&mut self) {
        self.close();
    }
}

fn connect_own(own: &mut OwnSocket, addr: SocketAddr) -> io::Result<()> {
    let target = for_socket(own.local, addr)?;
    own.socket.connect(target)?;
    // The kernel now picked the local IP (a wildcard bind becomes the route's source address).
    own.local = own.socket.local_addr()?;
    let remote = normalize(addr);
    own.connected = Some(remote);
    own.dest = None;
    // Datagrams queued before connecting may come from anyone: keep only the remote's.
    own.queue.packets.retain(|(from, _)| *from == remote);
    own.queue.bytes = own.queue.packets.iter().map(|(_, d)| d.len()).sum();
    debug!(local = %own.local, %remote, "udp peer connected");
    Ok(())
}

fn lock(server: &Mutex<ServerState>) -> MutexGuard<'_, ServerState> {
    // A panic elsewhere while holding the lock leaves consistent data (every update is a
    // single push/pop/insert), so a poisoned lock is still usable.
    server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by a [`UdpServer`] and the peers it handed out.
#[derive(Debug)]
struct ServerState {
    /// `None` once stopped.
    socket: Option<Arc<UdpSocket>>,
    local: SocketAddr,
    /// Every known remote (pending or taken) and its queue.
    queues: HashMap<SocketAddr, PacketQueue>,
    /// Remotes not taken yet, oldest first.
    pending: VecDeque<SocketAddr>,
    max_pending: usize,
    /// False once the `UdpServer` is dropped: new sources are then ignored.
    accepting: bool,
    dropped: u64,
    buf: Vec<u8>,
}

impl ServerState {
    fn socket_arc(&self) -> io::Result<&Arc<UdpSocket>> {
        self.socket
            .as_ref()
            .ok_or_else(|| not_connected("the UdpServer was stopped"))
    }

    fn socket(&self) -> io::Result<&UdpSocket> {
        self.socket_arc().map(|s| &**s)
    }

    /// Reads up to [`MAX_DATAGRAMS_PER_POLL`] datagrams and routes each by source.
    fn pump(&mut self) -> io::Result<()> {
        let socket = Arc::clone(self.socket_arc()?);
        for _ in 0..MAX_DATAGRAMS_PER_POLL {
            let Some((n, from)) = recv_one(&socket, &mut self.buf)? else {
                break;
            };
            self.route(from, n);
        }
        Ok(())
    }

    fn pump_if_empty(&mut self, remote: SocketAddr) -> io::Result<()> {
        if self.queued_for(remote) == 0 {
            self.pump()
        } else {
            self.socket().map(|_| ())
        }
    }

    /// Routes the `n` bytes in `self.buf` that came from `from`.
    fn route(&mut self, from: SocketAddr, n: usize) {
        let data = &self.buf[..n];
        if let Some(queue) = self.queues.get_mut(&from) {
            if !queue.push(from, data) {
                self.dropped += 1;
                trace!(%from, len = n, "dropping datagram: peer queue full");
            }
            return;
        }
        if !self.accepting || self.pending.len() >= self.max_pending {
            self.dropped += 1;
            trace!(%from, len = n, pending = self.pending.len(), "dropping datagram from a new source");
            return;
        }
        let mut queue = PacketQueue::default();
        queue.push(from, data);
        self.queues.insert(from, queue);
        self.pending.push_back(from);
        debug!(%from, "udp server: new pending connection");
    }

    fn pop_for(&mut self, remote: SocketAddr) -> Option<(SocketAddr, Vec<u8>)> {
        self.queues.get_mut(&remote).and_then(PacketQueue::pop)
    }

    fn queued_for(&self, remote: SocketAddr) -> usize {
        self.queues.get(&remote).map_or(0, PacketQueue::len)
    }

    fn remove(&mut self, remote: SocketAddr) {
        self.queues.remove(&remote);
        self.pending.retain(|a| *a != remote);
    }

    fn stop(&mut self) {
        if self.socket.take().is_some() {
            debug!(local = %self.local, "udp server stopped");
        }
        self.queues.clear();
        self.pending.clear();
    }
}

/// A UDP "server", like Godot's `UDPServer`: one socket, one [`PacketPeerUdp`] per remote
/// address.
///
/// [`poll`](Self::poll) reads the socket and routes each datagram by its source address: to the
/// queue of a peer already handed out, to a pending connection, or (for a new source) to a new
/// pending connection. At most [`max_pending_connections`](Self::max_pending_connections)
/// (default 16, like Godot) are pending; datagrams from further new sources are dropped.
/// [`take_connection`](Self::take_connection) hands out the oldest pending connection as a
/// [`PacketPeerUdp`] that sends to and receives from that one address over the shared socket.
///
/// Dropping the server stops accepting new sources but leaves the peers already handed out
/// working (like a `TcpListener` and its streams); [`stop`](Self::stop) closes the socket for
/// everyone.
pub struct UdpServer {
    state: Arc<Mutex<ServerState>>,
}

impl fmt::Debug for UdpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("UdpServer")
            .field("local", &state.local)
            .field("listening", &state.socket.is_some())
            .field("pending", &state.pending.len())
            .finish_non_exhaustive()
    }
}

impl UdpServer {
    /// Binds the server socket to `addr` (IPv4 or IPv6; port 0 picks a free port, read it back
    /// with [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    ///
    /// The kernel's error for the last address tried (for example `AddrInUse`).
    pub fn listen<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        // Many clients share this socket: ask for a bigger receive buffer (best effort; Linux
        // caps it at net.core.rmem_max).
        let options = BindOptions {
            recv_buffer_size: Some(SERVER_RECV_BUFFER),
            ..BindOptions::default()
        };
        let socket = net::bind_udp(addr, &options)?;
        let local = socket.local_addr()?;
        let state = ServerState {
            socket: Some(Arc::new(socket)),
            local,
            queues: HashMap::new(),
            pending: VecDeque::new(),
            max_pending: DEFAULT_MAX_PENDING_CONNECTIONS,
            accepting: true,
            dropped: 0,
            buf: vec![0; RECV_BUFFER],
        };
        debug!(%local, "udp server listening");
        Ok(UdpServer {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Reads every datagram waiting on the socket (at most [`MAX_DATAGRAMS_PER_POLL`]) and
    /// routes each by source address. Call it regularly, like Godot's `UDPServer.poll()`.
    ///
    /// # Errors
    ///
    /// `NotConnected` after [`stop`](Self::stop); kernel errors.
    pub fn poll(&mut self) -> io::Result<()> {
        lock(&self.state).pump()
    }

    /// Waits until a datagram is readable on the socket, for at most `timeout` (`None`: no
    /// limit). Returns whether one is; then call [`poll`](Self::poll). It does not read anything.
    ///
    /// This reports new datagrams only: check [`is_connection_available`](Self::is_connection_available)
    /// (and the peers already handed out) before sleeping here, since a peer's own
    /// [`PacketPeerUdp::get_packet`] may already have routed datagrams from the socket.
    ///
    /// # Errors
    ///
    /// `NotConnected` after [`stop`](Self::stop); kernel errors.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let socket = Arc::clone(lock(&self.state).socket_arc()?);
        wait_readable(&socket, timeout)
    }

    /// Whether [`take_connection`](Self::take_connection) has a peer to hand out (does not read
    /// the socket; call [`poll`](Self::poll) first).
    pub fn is_connection_available(&self) -> bool {
        !lock(&self.state).pending.is_empty()
    }

    /// Hands out the oldest pending connection: a [`PacketPeerUdp`] tied to that remote address
    /// on the shared socket, with the datagrams received from it so far already queued.
    pub fn take_connection(&mut self) -> Option<PacketPeerUdp> {
        let remote = lock(&self.state).pending.pop_front()?;
        debug!(%remote, "udp server: connection taken");
        Some(PacketPeerUdp {
            inner: Inner::Shared(SharedPeer {
                server: Arc::clone(&self.state),
                remote,
            }),
            last_from: None,
        })
    }

    /// Sets how many new sources may wait in the pending list (Godot's default is 16). Lowering
    /// it drops the newest pending connections beyond the new limit.
    pub fn set_max_pending_connections(&mut self, max: usize) {
        let mut state = lock(&self.state);
        state.max_pending = max;
        while state.pending.len() > max {
            if let Some(addr) = state.pending.pop_back() {
                state.queues.remove(&addr);
            }
        }
    }

    /// How many new sources may wait in the pending list.
    pub fn max_pending_connections(&self) -> usize {
        lock(&self.state).max_pending
    }

    /// How many connections are pending.
    pub fn pending_connection_count(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// How many datagrams were dropped so far (pending list full, or a peer's queue full).
    pub fn dropped_datagrams(&self) -> u64 {
        lock(&self.state).dropped
    }

    /// Whether the server still has its socket (it has not been stopped).
    pub fn is_listening(&self) -> bool {
        lock(&self.state).socket.is_some()
    }

    /// Closes the socket: pending connections are discarded and the peers already handed out
    /// stop working (their calls return `NotConnected`). The port is free again once no call is
    /// using the socket. Calling it twice is harmless.
    pub fn stop(&mut self) {
        lock(&self.state).stop();
    }

    /// The address the server is bound to.
    ///
    /// # Errors
    ///
    /// `NotConnected` after [`stop`](Self::stop).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let state = lock(&self.state);
        state.socket()?;
        Ok(state.local)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.accepting = false;
        let pending: Vec<SocketAddr> = state.pending.drain(..).collect();
        for addr in pending {
            state.queues.remove(&addr);
        }
    }
}
