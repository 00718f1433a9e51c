//! The async driver: [`TokioEnetHost`] (crate feature `tokio`).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, Packet, Peer, PeerId};
use quinn_udp::UdpSockRef;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::driver::{Core, MAX_RECV_PER_ROUND};
use super::host::BindError;
use super::socket::{Batcher, SocketStats, MAX_UDP_PAYLOAD, SOCKET_BUFFER_SIZE};
use crate::net::{self, BindOptions};

/// An ENet host on a tokio UDP socket: the async twin of [`EnetHost`](super::EnetHost), with
/// the same batching (`recvmmsg`/GSO through quinn-udp) and the same methods, but
/// [`service`](Self::service) and [`next_event`](Self::next_event) are `async` and sleep with
/// `tokio::time::sleep_until` until the host's next deadline or the next datagram.
///
/// # Cancel safety
///
/// [`service`](Self::service) and [`next_event`](Self::next_event) are cancel safe: an event is
/// taken from the host only when it is returned, so dropping the future (in `select!`) loses
/// nothing.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use enet_dtls::enet::TokioEnetHost;
/// use enet_dtls::enet_proto::{Event, HostConfig};
///
/// let mut host = TokioEnetHost::bind("127.0.0.1:7777".parse()?, HostConfig::default()).await?;
/// loop {
///     if let Event::Receive { peer, channel, packet } = host.next_event().await? {
///         host.send(peer, channel, packet)?;
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TokioEnetHost {
    socket: UdpSocket,
    batcher: Batcher,
    core: Core,
}

impl TokioEnetHost {
    /// Binds a UDP socket to `addr` (port 0: any free port) and creates the host. Must run
    /// inside a tokio runtime.
    pub async fn bind(addr: SocketAddr, config: HostConfig) -> Result<Self, BindError> {
        let socket = net::bind_udp(addr, &BindOptions::buffers(SOCKET_BUFFER_SIZE))?;
        TokioEnetHost::from_std(socket, config)
    }

    /// Creates a host on an already bound socket (switched to non-blocking). Must be called
    /// inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket, config: HostConfig) -> Result<Self, BindError> {
        let local = socket.local_addr()?;
        let batcher = Batcher::new(UdpSockRef::from(&socket), local)?;
        net::allow_fragmentation(&socket, local);
        let socket = UdpSocket::from_std(socket)?;
        let core = Core::new(config, MAX_UDP_PAYLOAD, Instant::now())?;
        Ok(TokioEnetHost {
            socket,
            batcher,
            core,
        })
    }

    /// Services the host like [`EnetHost::service`](super::EnetHost::service): a queued event at
    /// once, otherwise timers, sends, receive, timers and sends, then wait for traffic until `timeout` has
    /// passed (`Ok(None)`).
    pub async fn service(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        let deadline = Instant::now().checked_add(timeout);
        self.run(deadline).await
    }

    /// Waits for the next event, servicing the host meanwhile (no time limit).
    pub async fn next_event(&mut self) -> io::Result<Event> {
        loop {
            if let Some(event) = self.run(None).await? {
                return Ok(event);
            }
        }
    }

    async fn run(&mut self, deadline: Option<Instant>) -> io::Result<Option<Event>> {
        if let Some(event) = self.core.poll_event() {
            return Ok(Some(event));
        }
        loop {
            let now = Instant::now();
            self.pump(now)?;
            if let Some(event) = self.core.poll_event() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            match self.core.wake_at(now, deadline, None) {
                Some(wake) => {
                    tokio::select! {
                        ready = self.socket.readable() => ready?,
                        () = tokio::time::sleep_until(wake.into()) => {}
                    }
                }
                None => self.socket.readable().await?,
            }
        }
    }

    super::driver::forward_host_methods!();

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Send/receive counters of the socket.
    pub fn socket_stats(&self) -> SocketStats {
        self.batcher.stats
    }

    /// One service round in C's `enet_host_service` order, like the blocking driver: timers and
    /// queued sends first (so both ends overlap), then receive, then timers and sends again.
    fn pump(&mut self, now: Instant) -> io::Result<()> {
        self.core.tick(now);
        self.send_queued(now)?;
        let mut received = 0;
        while received < MAX_RECV_PER_ROUND {
            let socket = &self.socket;
            let core = &mut self.core;
            let n = self.batcher.recv_with(
                // try_io clears tokio's readiness on WouldBlock, so `readable()` really waits.
                |state, bufs, meta| {
                    socket.try_io(Interest::READABLE, || {
                        state.recv(UdpSockRef::from(socket), bufs, meta)
                    })
                },
                &mut |from, data| core.receive(now, from, data),
            )?;
            if n == 0 {
                break;
            }
            received += n;
        }
        self.core.tick(now);
        self.send_queued(now)
    }

    fn send_queued(&mut self, now: Instant) -> io::Result<()> {
        let socket = &self.socket;
        let batcher = &mut self.batcher;
        self.core.flush(now, &mut |batch| {
            batcher.send_on(socket, batch, |op| socket.try_io(Interest::WRITABLE, op))
        })
    }
}
