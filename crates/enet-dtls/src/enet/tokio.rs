//! The async driver: [`TokioEnetHost`] (crate feature `tokio`).

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, Packet, Peer, PeerId};

use super::driver::Core;
use super::host::BindError;
use super::socket::{EnetSocket, SocketStats, UdpEnetSocket};

/// An ENet host on any [`EnetSocket`] (UDP by default), driven by tokio: the async twin of
/// [`EnetHost`](super::EnetHost), with the same batching (the socket's
/// [`send_batch`](EnetSocket::send_batch)/[`recv_batch`](EnetSocket::recv_batch):
/// `recvmmsg`, `sendmmsg` and GSO for UDP), the same service order and the same methods, but
/// [`service`](Self::service) and [`next_event`](Self::next_event) are `async` and sleep with
/// `tokio::time::sleep_until` until the host's or the socket's next deadline, or until the
/// socket's [`poll_recv_ready`](EnetSocket::poll_recv_ready) says it has something to receive
/// (for UDP, tokio's reactor watches the socket).
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
/// let mut host = TokioEnetHost::bind("127.0.0.1:7777", HostConfig::default()).await?;
/// loop {
///     if let Event::Receive { peer, channel, packet } = host.next_event().await? {
///         host.send(peer, channel, packet)?;
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TokioEnetHost<S: EnetSocket = UdpEnetSocket> {
    socket: S,
    core: Core,
}

impl TokioEnetHost<UdpEnetSocket> {
    /// Binds a UDP socket to `addr` (port 0: any free port; a `"host:port"` name is resolved
    /// with the blocking resolver) and creates the host. Must run inside a tokio runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A, config: HostConfig) -> Result<Self, BindError> {
        TokioEnetHost::with_socket(UdpEnetSocket::bind(addr)?, config)
    }

    /// Creates a host on an already bound socket (switched to non-blocking). Must be called
    /// inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket, config: HostConfig) -> Result<Self, BindError> {
        TokioEnetHost::with_socket(UdpEnetSocket::from_std(socket)?, config)
    }

    /// Send/receive counters of the socket.
    pub fn socket_stats(&self) -> SocketStats {
        self.socket.stats()
    }
}

impl<S: EnetSocket> TokioEnetHost<S> {
    /// Creates a host on any socket. The configured MTU is capped at the socket's
    /// [`max_datagram_size`](EnetSocket::max_datagram_size). Service it inside one tokio
    /// runtime (a UDP socket registers with that runtime's reactor on first use).
    pub fn with_socket(socket: S, config: HostConfig) -> Result<Self, BindError> {
        let core = Core::new(config, socket.max_datagram_size(), Instant::now())?;
        Ok(TokioEnetHost { socket, core })
    }

    /// Services the host like [`EnetHost::service`](super::EnetHost::service): a queued event at
    /// once, otherwise timers, sends, receive, timers and sends, then wait for traffic until
    /// `timeout` has passed (`Ok(None)`).
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
        if let Some(event) = self.core.queued_event(&mut self.socket, Instant::now())? {
            return Ok(Some(event));
        }
        loop {
            // One clock read per round (the wake-up below is an absolute instant).
            let now = Instant::now();
            self.pump(now)?;
            if let Some(event) = self.core.poll_event(&mut self.socket, now) {
                return Ok(Some(event));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let wake = self.core.wake_at(now, deadline, self.socket.poll_timeout());
            let socket = &mut self.socket;
            let readable = poll_fn(|cx| socket.poll_recv_ready(cx));
            match wake {
                Some(wake) => {
                    tokio::select! {
                        ready = readable => ready?,
                        () = tokio::time::sleep_until(wake.into()) => {}
                    }
                }
                None => readable.await?,
            }
        }
    }

    /// Waits until [`service`](Self::service) has something to do, like
    /// [`EnetHost::wait`](super::EnetHost::wait): a datagram is readable, or a timer of the host
    /// or of the socket is due; for at most `timeout` (`None`: no limit). Returns whether one
    /// of those happened. Cancel safe (it takes nothing from the host).
    pub async fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let now = Instant::now();
        let timer = self.core.next_timer(self.socket.poll_timeout());
        if timer.is_some_and(|t| t <= now) {
            return Ok(true);
        }
        let socket = &mut self.socket;
        let readable = poll_fn(|cx| socket.poll_recv_ready(cx));
        match Core::wait_limit(now, timeout, timer) {
            Some(limit) => match tokio::time::timeout(limit, readable).await {
                Ok(ready) => ready.map(|()| true),
                Err(_elapsed) => Ok(timer.is_some_and(|t| Instant::now() >= t)),
            },
            None => readable.await.map(|()| true),
        }
    }

    super::driver::forward_host_methods!();

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// One service round, the same as the blocking driver's.
    fn pump(&mut self, now: Instant) -> io::Result<()> {
        self.core.round(&mut self.socket, now)
    }

    fn send_queued(&mut self, now: Instant) -> io::Result<()> {
        self.core.send_via(&mut self.socket, now)
    }
}
