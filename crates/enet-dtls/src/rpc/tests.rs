//! The drivers pack the answers to the calls handled together: one datagram per client.
//!
//! A client sends several calls in one datagram (its flushes deferred while it queues them);
//! the server handles them in one batch and answers each with a call to every client. A
//! capture under the server's socket shows how many datagrams left for each client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use godot_proto::{ApiEvent, MultiplayerApi, RpcMode, Variant};

use super::RpcPeer;
use crate::capture::{Capture, CaptureSocket, Direction};
use crate::enet::UdpEnetSocket;
use crate::multiplayer::MultiplayerPeer;

/// Calls sent in one datagram.
const CALLS: i64 = 10;

/// Room.call(n) bumps the server's count and calls Room.answer(n) on every client.
fn server_api() -> MultiplayerApi<i64> {
    let mut api = MultiplayerApi::with_state(0i64);
    api.register("Room", "call", RpcMode::Remote, |ctx, (n,): (i64,)| {
        *ctx.state_mut() += 1;
        ctx.rpc("Room", "answer", (n,)).unwrap();
    });
    api
}

fn client(port: u16) -> RpcPeer {
    let mut api = MultiplayerApi::new();
    api.register_event("Room", "answer", RpcMode::Puppet);
    let peer = MultiplayerPeer::client("127.0.0.1", port).create().unwrap();
    RpcPeer::new(peer, api)
}

fn capturing_socket(capture: &Capture) -> CaptureSocket<UdpEnetSocket> {
    let udp = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    CaptureSocket::new(udp, capture.clone()).unwrap()
}

/// Sends `first..first + CALLS` from `client` to the server in one datagram.
fn send_packed_calls(client: &mut RpcPeer, first: i64) {
    client.peer.enet_mut().defer_flushes(true);
    for n in first..first + CALLS {
        client.rpc_id(1, "Room", "call", (n,)).unwrap();
    }
    client.peer.enet_mut().defer_flushes(false);
    client.peer.enet_mut().flush().unwrap();
}

/// The answers a client got so far (the `n` of each Room.answer), keeping other events out.
fn answers(client: &mut RpcPeer, into: &mut Vec<i64>) {
    client.poll().unwrap();
    while let Some(event) = client.next_event() {
        if let ApiEvent::Call { method, args, .. } = event {
            assert_eq!(method, "answer");
            match args.as_slice() {
                [Variant::Int(n)] => into.push(*n),
                other => panic!("answer{other:?}"),
            }
        }
    }
}

/// Datagrams the server sent to `to` among `captured`.
fn sent_to(captured: &[crate::capture::CapturedDatagram], to: SocketAddr) -> usize {
    captured
        .iter()
        .filter(|d| d.direction == Direction::Sent && d.remote.port() == to.port())
        .count()
}

/// A server driver under test.
trait Server {
    /// Waits up to `d` for traffic or a timer, then services the server without waiting (the
    /// clients are not serviced meanwhile, so a longer service would see ENet retransmit).
    fn step(&mut self, d: Duration);
    /// Calls the server handled so far.
    fn handled(&self) -> i64;
}

impl Server for RpcPeer<i64, CaptureSocket<UdpEnetSocket>> {
    fn step(&mut self, d: Duration) {
        self.wait(Some(d)).unwrap();
        self.poll().unwrap();
    }
    fn handled(&self) -> i64 {
        *self.api().state()
    }
}

/// Connects two clients to `server`, warms the path caches up with one batch, lets the
/// acknowledgements settle, then sends the measured batch from the first client and checks
/// what the server sent for it.
fn packs_one_batch(server: &mut dyn Server, capture: &Capture, port: u16) {
    let mut clients = [client(port), client(port)];
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut ignored = Vec::new();
    while !clients
        .iter()
        .all(|c| c.api().is_connected() && c.api().peers().count() == 2)
    {
        assert!(Instant::now() < give_up, "no connection");
        server.step(Duration::from_millis(1));
        for c in &mut clients {
            answers(c, &mut ignored);
        }
    }
    // A first batch: the path is announced and confirmed both ways.
    send_packed_calls(&mut clients[0], 0);
    let settled = Instant::now() + Duration::from_millis(100);
    while server.handled() < CALLS || Instant::now() < settled {
        assert!(
            Instant::now() < give_up,
            "calls handled: {}",
            server.handled()
        );
        server.step(Duration::from_millis(1));
        for c in &mut clients {
            answers(c, &mut ignored);
        }
    }
    assert_eq!(ignored.len(), 2 * CALLS as usize, "{ignored:?}");
    // The measured batch: nothing else is in flight.
    capture.take();
    send_packed_calls(&mut clients[0], 100);
    while server.handled() < 2 * CALLS {
        assert!(
            Instant::now() < give_up,
            "calls handled: {}",
            server.handled()
        );
        server.step(Duration::from_millis(5));
    }
    let captured = capture.take();
    let seen: Vec<_> = captured
        .iter()
        .map(|d| (d.direction, d.remote.port(), d.data.len()))
        .collect();
    // The caller's datagram is acknowledged as it is received, before the calls run; the
    // answers follow in one more datagram. The other client gets the answers only.
    let caller = clients[0].peer().local_addr().unwrap();
    let other = clients[1].peer().local_addr().unwrap();
    assert!(sent_to(&captured, caller) <= 2, "caller {caller}: {seen:?}");
    assert_eq!(sent_to(&captured, other), 1, "other {other}: {seen:?}");
    for c in &mut clients {
        let mut got = Vec::new();
        while got.len() < CALLS as usize {
            assert!(Instant::now() < give_up, "answers so far: {got:?}");
            c.wait(Some(Duration::from_millis(5))).unwrap();
            answers(c, &mut got);
        }
        assert_eq!(got, (100..100 + CALLS).collect::<Vec<_>>());
    }
}

#[test]
fn polled_answers_of_one_poll_leave_in_one_datagram_per_client() {
    let capture = Capture::new();
    let peer = MultiplayerPeer::server(0)
        .create_with_socket(capturing_socket(&capture))
        .unwrap();
    let port = peer.local_addr().unwrap().port();
    packs_one_batch(&mut RpcPeer::new(peer, server_api()), &capture, port);
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;
    use crate::rpc::TokioRpcPeer;

    struct TokioServer {
        rt: tokio::runtime::Runtime,
        peer: TokioRpcPeer<i64, CaptureSocket<UdpEnetSocket>>,
    }

    impl Server for TokioServer {
        fn step(&mut self, d: Duration) {
            let peer = &mut self.peer;
            self.rt.block_on(async {
                peer.peer_mut().wait(Some(d)).await.unwrap();
                peer.service(Duration::ZERO).await.unwrap();
            });
        }
        fn handled(&self) -> i64 {
            *self.peer.api().state()
        }
    }

    #[test]
    fn tokio_answers_received_together_leave_in_one_datagram_per_client() {
        let capture = Capture::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let peer = {
            let _inside = rt.enter();
            MultiplayerPeer::server(0)
                .create_tokio_with_socket(capturing_socket(&capture))
                .unwrap()
        };
        let port = peer.local_addr().unwrap().port();
        let peer = TokioRpcPeer::new(peer, server_api());
        packs_one_batch(&mut TokioServer { rt, peer }, &capture, port);
    }
}
