//! The in-memory "BIO" under every SSL object: each write is one outgoing datagram, each read takes one
//! incoming datagram, and an empty inbox reads as `WouldBlock` so OpenSSL asks for more input.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

/// Most datagrams kept in either direction; beyond that the oldest is dropped, as a full UDP socket
/// buffer would. Bounds memory whatever the peer or the application does.
pub(crate) const MAX_QUEUED: usize = 1024;

/// Most buffers the per-thread pool keeps (see [`take_buffer`]).
const POOL_BUFFERS: usize = 128;

/// Buffers with more capacity than this are not kept by the pool: at most
/// `POOL_BUFFERS * POOL_CAPACITY` = 512 KiB per thread stay allocated.
const POOL_CAPACITY: usize = 4096;

thread_local! {
    /// Datagram buffers handed back by the application ([`recycle`]), reused for the next
    /// outgoing record and the next decrypted datagram, so a steady stream of records allocates
    /// nothing per datagram.
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: a recycled one when the pool has one, else a new one.
pub(crate) fn take_buffer() -> Vec<u8> {
    POOL.try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `buf` for [`take_buffer`] (bounded in count and size; otherwise it is freed).
pub(crate) fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > POOL_CAPACITY {
        return;
    }
    buf.clear();
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < POOL_BUFFERS {
                p.push(buf);
            }
        }
    });
}

/// A pair of datagram queues standing in for a UDP socket.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    /// Datagrams received from the network, waiting for OpenSSL to read them.
    pub(crate) incoming: VecDeque<Vec<u8>>,
    /// Datagrams OpenSSL wrote, waiting for `poll_transmit`.
    pub(crate) outgoing: VecDeque<Vec<u8>>,
    /// Buffers of incoming datagrams OpenSSL has read, reused by `push_incoming` (at most
    /// [`SPARE`]), so a steady stream of records allocates nothing here.
    spare: Vec<Vec<u8>>,
}

/// Incoming datagram buffers kept for reuse.
const SPARE: usize = 4;

impl Channel {
    /// Queues one received datagram for OpenSSL.
    pub(crate) fn push_incoming(&mut self, data: &[u8]) {
        if self.incoming.len() >= MAX_QUEUED {
            self.incoming.pop_front();
            tracing::trace!("dtls inbox full, dropped the oldest datagram");
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.incoming.push_back(buf);
    }

    /// Bytes currently held in both queues.
    pub(crate) fn queued(&self) -> usize {
        self.incoming.len() + self.outgoing.len()
    }
}

impl io::Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.pop_front() {
            Some(datagram) => {
                // A datagram larger than the reader's buffer is truncated, as recv() would.
                let n = datagram.len().min(buf.len());
                buf[..n].copy_from_slice(&datagram[..n]);
                if self.spare.len() < SPARE {
                    self.spare.push(datagram);
                }
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl io::Write for Channel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outgoing.len() >= MAX_QUEUED {
            self.outgoing.pop_front();
            tracing::trace!("dtls outbox full, dropped the oldest datagram");
        }
        let mut datagram = take_buffer();
        datagram.extend_from_slice(buf);
        self.outgoing.push_back(datagram);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
