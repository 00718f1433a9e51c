//! The in-memory "BIO" under every SSL object: each write is one outgoing datagram, each read takes one
//! incoming datagram, and an empty inbox reads as `WouldBlock` so OpenSSL asks for more input.

use std::collections::VecDeque;
use std::io;

/// Most datagrams kept in either direction; beyond that the oldest is dropped, as a full UDP socket
/// buffer would. Bounds memory whatever the peer or the application does.
pub(crate) const MAX_QUEUED: usize = 1024;

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
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
