//! Test support: [`MemorySocket`], an in-memory [`EnetSocket`] pair that both drivers can run,
//! for tests of code built on [`EnetHost`](super::EnetHost) or
//! `TokioEnetHost` that need no kernel socket (and of sockets that wrap
//! another one, such as a DTLS socket); and [`WireSocket`], an [`EnetSocket`] whose datagrams
//! the test itself carries (a simulator, a fuzz target).
//!
//! ```
//! use std::time::Duration;
//! use enet_dtls::enet::testing::MemorySocket;
//! use enet_dtls::enet::EnetHost;
//! use enet_dtls::enet_proto::{Event, HostConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, b) = MemorySocket::pair("10.0.0.1:1000".parse()?, "10.0.0.2:2000".parse()?);
//! let mut server = EnetHost::with_socket(a, HostConfig::default())?;
//! let mut client = EnetHost::with_socket(b, HostConfig::default())?;
//! client.connect("10.0.0.1:1000".parse()?, 1, 7)?;
//! let mut connected = 0;
//! for _ in 0..100 {
//!     if let Some(Event::Connect { .. }) = client.service(Duration::from_millis(1))? {
//!         connected += 1;
//!     }
//!     if let Some(Event::Connect { data, .. }) = server.service(Duration::from_millis(1))? {
//!         assert_eq!(data, 7);
//!         connected += 1;
//!     }
//!     if connected == 2 {
//!         break;
//!     }
//! }
//! assert_eq!(connected, 2);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use enet_proto::Transmit;

use super::socket::{EnetSocket, MAX_UDP_PAYLOAD};
use crate::net;

/// Datagrams one [`MemorySocket`] queues before further ones are dropped (a full kernel
/// buffer, as far as the sender can tell).
pub const MEMORY_QUEUE_CAPACITY: usize = 4096;

/// Datagrams one [`MemorySocket::recv_batch`](EnetSocket::recv_batch) call delivers at most.
const RECV_BATCH: usize = 64;

/// Counters of a [`MemorySocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// `send_batch` calls that carried at least one datagram.
    pub send_calls: u64,
    /// Datagrams delivered to the other end's queue.
    pub datagrams_sent: u64,
    /// Datagrams dropped on send: the other end's queue was full, the destination was not the
    /// other end, the datagram was too large, or the other end was dropped.
    pub datagrams_dropped: u64,
    /// `recv_batch` calls that delivered at least one datagram.
    pub recv_calls: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
}

#[derive(Debug, Default)]
struct QueueState {
    datagrams: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Who to wake when a datagram arrives (the tokio driver's task).
    waker: Option<Waker>,
    /// The receiving end was dropped: its queue accepts nothing.
    closed: bool,
}

/// The receive queue of one end, written by the other end.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    arrived: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every update is a single push/pop, so a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One end of an in-memory datagram link: what one end sends to the other end's address
/// arrives, unchanged and in order, in the other end's receive queue; datagrams to any other
/// address are dropped. Nothing is lost unless a queue holds [`MEMORY_QUEUE_CAPACITY`]
/// datagrams already.
///
/// It implements every readiness hook of [`EnetSocket`] without a descriptor: a `Condvar`
/// for [`wait_readable`](EnetSocket::wait_readable) (blocking driver) and a stored waker for
/// [`poll_recv_ready`](EnetSocket::poll_recv_ready) (tokio driver). The ends may live on
/// different threads.
#[derive(Debug)]
pub struct MemorySocket {
    local: SocketAddr,
    remote: SocketAddr,
    inbox: Arc<Queue>,
    outbox: Arc<Queue>,
    max_datagram: usize,
    drained: bool,
    stats: MemoryStats,
}

impl MemorySocket {
    /// Two connected ends, bound to `a` and `b` (IPv4-mapped addresses are normalised to
    /// IPv4). The first end's datagrams to `b` arrive at the second end from `a`, and the other
    /// way round.
    pub fn pair(a: SocketAddr, b: SocketAddr) -> (MemorySocket, MemorySocket) {
        let (a, b) = (net::normalize(a), net::normalize(b));
        let qa = Arc::new(Queue::default());
        let qb = Arc::new(Queue::default());
        let end = |local, remote, inbox: &Arc<Queue>, outbox: &Arc<Queue>| MemorySocket {
            local,
            remote,
            inbox: Arc::clone(inbox),
            outbox: Arc::clone(outbox),
            max_datagram: MAX_UDP_PAYLOAD,
            drained: false,
            stats: MemoryStats::default(),
        };
        (end(a, b, &qa, &qb), end(b, a, &qb, &qa))
    }

    /// Sets the largest datagram this end sends (and reports as
    /// [`max_datagram_size`](EnetSocket::max_datagram_size), which caps a host's MTU); larger
    /// ones are dropped. The default is [`MAX_UDP_PAYLOAD`].
    pub fn set_max_datagram_size(&mut self, size: usize) {
        self.max_datagram = size;
    }

    /// The other end's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Datagrams waiting in this end's receive queue.
    pub fn queued(&self) -> usize {
        self.inbox.lock().datagrams.len()
    }

    /// Send/receive counters.
    pub fn stats(&self) -> MemoryStats {
        self.stats
    }
}

impl Drop for MemorySocket {
    fn drop(&mut self) {
        let mut state = self.inbox.lock();
        state.closed = true;
        state.datagrams.clear();
    }
}

impl EnetSocket for MemorySocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn max_datagram_size(&self) -> usize {
        self.max_datagram
    }

    fn send_batch(&mut self, _now: Instant, batch: &[Transmit]) -> io::Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.stats.send_calls += 1;
        let mut sent = 0;
        let waker = {
            let mut state = self.outbox.lock();
            for t in batch {
                let deliver = !state.closed
                    && net::normalize(t.destination) == self.remote
                    && t.data.len() <= self.max_datagram
                    && state.datagrams.len() < MEMORY_QUEUE_CAPACITY;
                if deliver {
                    state.datagrams.push_back((self.local, t.data.clone()));
                    sent += 1;
                }
            }
            if sent > 0 {
                state.waker.take()
            } else {
                None
            }
        };
        if sent > 0 {
            self.outbox.arrived.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
        self.stats.datagrams_sent += sent as u64;
        self.stats.datagrams_dropped += (batch.len() - sent) as u64;
        Ok(sent)
    }

    fn recv_batch(
        &mut self,
        _now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        // Taken out under the lock, delivered after it, so that `sink` may do anything.
        let (batch, drained): (Vec<(SocketAddr, Vec<u8>)>, bool) = {
            let mut state = self.inbox.lock();
            let n = state.datagrams.len().min(RECV_BATCH);
            let batch = state.datagrams.drain(..n).collect();
            (batch, state.datagrams.is_empty())
        };
        self.drained = drained;
        for (from, data) in &batch {
            sink(*from, data);
        }
        if !batch.is_empty() {
            self.stats.recv_calls += 1;
            self.stats.datagrams_received += batch.len() as u64;
        }
        Ok(batch.len())
    }

    fn recv_drained(&self) -> bool {
        self.drained
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.inbox.lock();
        loop {
            if !state.datagrams.is_empty() {
                return Ok(true);
            }
            state = match (timeout, deadline) {
                (None, _) | (Some(_), None) => self
                    .inbox
                    .arrived
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner()),
                (Some(_), Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    self.inbox
                        .arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    fn poll_recv_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.inbox.lock();
        if state.datagrams.is_empty() {
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

/// An [`EnetSocket`] on a wire that the caller carries by hand: what it sends waits in
/// [`outbox`](Self::outbox) for the caller to take, and it receives what the caller puts in
/// [`inbox`](Self::inbox). For a simulator or a fuzz target that moves, delays, drops or
/// corrupts datagrams itself, typically under a socket that wraps another one
/// (`DtlsEnetSocket::client_over(WireSocket::new(addr), ..)`). A [`MemorySocket`] pair, by
/// contrast, connects two ends directly.
///
/// It reports [`MAX_UDP_PAYLOAD`] as its largest datagram and sends whatever size it is given;
/// [`largest_sent`](Self::largest_sent) tells what the largest was. The outbox holds at most
/// [`MEMORY_QUEUE_CAPACITY`] datagrams; later ones are dropped (a full socket buffer), and
/// [`send_batch`](EnetSocket::send_batch) still reports the whole batch as sent.
/// [`wait_readable`](EnetSocket::wait_readable) never blocks: it tells whether the inbox holds
/// anything.
///
/// ```
/// use std::time::Instant;
/// use enet_dtls::enet::testing::WireSocket;
/// use enet_dtls::enet::EnetSocket;
/// use enet_dtls::enet_proto::Transmit;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let peer = "10.0.0.2:2000".parse()?;
/// let mut wire = WireSocket::new("10.0.0.1:1000".parse()?);
/// let now = Instant::now();
/// wire.send_batch(now, &[Transmit { destination: peer, data: b"out".to_vec() }])?;
/// assert_eq!(wire.outbox.pop_front(), Some((peer, b"out".to_vec())));
/// wire.inbox.push_back((peer, b"in".to_vec()));
/// let mut got = Vec::new();
/// wire.recv_batch(now, &mut |from, data| got.push((from, data.to_vec())))?;
/// assert_eq!(got, [(peer, b"in".to_vec())]);
/// assert!(wire.recv_drained());
/// assert_eq!(wire.largest_sent(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WireSocket {
    addr: SocketAddr,
    /// Datagrams to receive, with their source, oldest first.
    pub inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Datagrams sent, with their destination, oldest first.
    pub outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    largest_sent: usize,
}

impl WireSocket {
    /// A socket bound to `addr`, both queues empty.
    pub fn new(addr: SocketAddr) -> WireSocket {
        WireSocket {
            addr,
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            largest_sent: 0,
        }
    }

    /// The size of the largest datagram handed to `send_batch` so far (dropped ones included),
    /// 0 before any.
    pub fn largest_sent(&self) -> usize {
        self.largest_sent
    }
}

impl EnetSocket for WireSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn max_datagram_size(&self) -> usize {
        MAX_UDP_PAYLOAD
    }

    fn send_batch(&mut self, _now: Instant, batch: &[Transmit]) -> io::Result<usize> {
        for t in batch {
            self.largest_sent = self.largest_sent.max(t.data.len());
            if self.outbox.len() < MEMORY_QUEUE_CAPACITY {
                self.outbox.push_back((t.destination, t.data.clone()));
            }
        }
        Ok(batch.len())
    }

    fn recv_batch(
        &mut self,
        _now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let mut n = 0;
        while let Some((from, data)) = self.inbox.pop_front() {
            sink(from, &data);
            n += 1;
        }
        Ok(n)
    }

    fn recv_drained(&self) -> bool {
        self.inbox.is_empty()
    }

    fn wait_readable(&mut self, _timeout: Option<Duration>) -> io::Result<bool> {
        Ok(!self.inbox.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(to: SocketAddr, data: &[u8]) -> Transmit {
        Transmit {
            destination: to,
            data: data.to_vec(),
        }
    }

    #[test]
    fn datagrams_cross_in_order_and_strangers_are_dropped() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::ffff:10.0.0.2]:2".parse().unwrap();
        let (mut x, mut y) = MemorySocket::pair(a, b);
        let now = Instant::now();
        let b4: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let stranger: SocketAddr = "10.0.0.3:3".parse().unwrap();
        let sent = x
            .send_batch(now, &[t(b4, b"one"), t(stranger, b"lost"), t(b, b"two")])
            .unwrap();
        assert_eq!(sent, 2);
        assert!(y.wait_readable(Some(Duration::ZERO)).unwrap());
        let mut got = Vec::new();
        let n = y
            .recv_batch(now, &mut |from, d| got.push((from, d.to_vec())))
            .unwrap();
        assert_eq!(n, 2);
        assert!(y.recv_drained());
        assert_eq!(got, vec![(a, b"one".to_vec()), (a, b"two".to_vec())]);
        assert_eq!(x.stats().datagrams_dropped, 1);
        assert!(!y.wait_readable(Some(Duration::from_millis(1))).unwrap());
    }

    #[test]
    fn a_full_queue_drops_and_a_dropped_end_takes_nothing() {
        let (mut x, y) =
            MemorySocket::pair("1.1.1.1:1".parse().unwrap(), "2.2.2.2:2".parse().unwrap());
        let to = y.local_addr().unwrap();
        let batch: Vec<Transmit> = (0..MEMORY_QUEUE_CAPACITY + 10)
            .map(|_| t(to, b"x"))
            .collect();
        assert_eq!(
            x.send_batch(Instant::now(), &batch).unwrap(),
            MEMORY_QUEUE_CAPACITY
        );
        assert_eq!(y.queued(), MEMORY_QUEUE_CAPACITY);
        drop(y);
        assert_eq!(x.send_batch(Instant::now(), &[t(to, b"x")]).unwrap(), 0);
    }
}
