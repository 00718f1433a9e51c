//! Shared helpers for the dtls-proto integration tests: identities and an in-memory pump.
#![allow(dead_code)]

use std::thread;
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use dtls_proto::{DtlsSession, Status};

/// A P-256 key and a Godot-shaped (CA:TRUE, CN-only) certificate for `cn`.
pub(crate) fn ec_identity(cn: &str) -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(KeyType::EcP256).expect("P-256 key");
    let cert = Certificate::self_signed(&key, &CertificateParams::new(cn)).expect("certificate");
    (key, cert)
}

/// An RSA-2048 key and a Godot-shaped certificate for `cn`.
pub(crate) fn rsa_identity(cn: &str) -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(KeyType::Rsa(2048)).expect("RSA key");
    let cert = Certificate::self_signed(&key, &CertificateParams::new(cn)).expect("certificate");
    (key, cert)
}

/// Direction of a batch of datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

fn settled(s: &DtlsSession) -> bool {
    s.status() != Status::Handshaking
}

/// Moves datagrams between `client` and `server` on the real clock until neither is handshaking.
/// Each time a side has produced datagrams, the whole batch (one flight, as far as the pump can tell)
/// goes through `filter`, which returns what is actually delivered. When nothing moves, the pump
/// waits until the earliest `poll_timeout` and calls `handle_timeout` on both sides (OpenSSL's
/// retransmission timers run on the real clock). Returns the number of datagrams delivered.
/// Panics after `limit`.
pub(crate) fn drive(
    client: &mut DtlsSession,
    server: &mut DtlsSession,
    limit: Duration,
    mut filter: impl FnMut(Dir, Vec<Vec<u8>>) -> Vec<Vec<u8>>,
) -> usize {
    let start = Instant::now();
    let mut delivered = 0;
    loop {
        let mut moved = false;
        let batch: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_transmit()).collect();
        if !batch.is_empty() {
            moved = true;
            for d in filter(Dir::ToServer, batch) {
                server.handle_datagram(Instant::now(), &d);
                delivered += 1;
            }
        }
        let batch: Vec<Vec<u8>> = std::iter::from_fn(|| server.poll_transmit()).collect();
        if !batch.is_empty() {
            moved = true;
            for d in filter(Dir::ToClient, batch) {
                client.handle_datagram(Instant::now(), &d);
                delivered += 1;
            }
        }
        if settled(client) && settled(server) {
            // Deliver whatever is still queued (e.g. the server's last flight) once more.
            if !moved {
                return delivered;
            }
            continue;
        }
        assert!(
            start.elapsed() < limit,
            "handshake did not settle within {limit:?}: client {:?} server {:?}",
            client.status(),
            server.status()
        );
        if moved {
            continue;
        }
        let next = [client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a handshaking session always has a deadline");
        let now = Instant::now();
        if next > now {
            // Waiting for a protocol timer, not synchronising on a guess.
            thread::sleep(next - now);
        }
        let now = Instant::now();
        client.handle_timeout(now);
        server.handle_timeout(now);
    }
}

/// [`drive`] with a perfect link.
pub(crate) fn drive_clean(client: &mut DtlsSession, server: &mut DtlsSession) -> usize {
    drive(client, server, Duration::from_secs(10), |_, b| b)
}

/// Sends `data` from `from` and delivers every resulting datagram to `to`; returns what `to` received.
pub(crate) fn transfer(from: &mut DtlsSession, to: &mut DtlsSession, data: &[u8]) -> Vec<Vec<u8>> {
    from.send(data).expect("send");
    let now = Instant::now();
    while let Some(d) = from.poll_transmit() {
        to.handle_datagram(now, &d);
    }
    std::iter::from_fn(|| to.recv()).collect()
}
