//! [`forward_enet_socket!`](crate::forward_enet_socket): the one way a socket wrapper forwards
//! the [`EnetSocket`](super::EnetSocket) methods it does not change.

/// Writes the [`EnetSocket`](crate::enet::EnetSocket) methods of a wrapper socket that forward
/// to the socket it wraps, every method except the ones the wrapper writes itself (listed after
/// `except:`). Used inside `impl EnetSocket for Wrapper { ... }`.
///
/// A wrapper that writes the forwarding by hand and misses a method (say
/// [`set_accepting_new_peers`](crate::enet::EnetSocket::set_accepting_new_peers), or one added
/// to the trait later) silently gets the trait's default instead of the inner socket's
/// behaviour; with this macro every method is forwarded unless the wrapper says otherwise. A
/// name in the `except:` list that is not a method of the trait is a compile error, and a
/// method listed there but not written by the wrapper falls back to the trait's default, as
/// the list says.
///
/// The inner socket is reached through a field (`field: name`) or through two methods returning
/// `&T` and `&mut T` for some `T: EnetSocket`, `dyn EnetSocket` included (`via: get, get_mut`).
///
/// ```
/// use std::io;
/// use std::time::Instant;
/// use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
/// use enet_dtls::enet_proto::Transmit;
///
/// /// Counts the datagrams sent; everything else is the inner socket's.
/// struct Counting<S> {
///     inner: S,
///     sent: usize,
/// }
///
/// impl<S: EnetSocket> EnetSocket for Counting<S> {
///     enet_dtls::forward_enet_socket!(field: inner, except: [send_batch]);
///
///     fn send_batch(&mut self, now: Instant, batch: &[Transmit]) -> io::Result<usize> {
///         let n = self.inner.send_batch(now, batch)?;
///         self.sent += n;
///         Ok(n)
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let socket = Counting { inner: UdpEnetSocket::bind("127.0.0.1:0")?, sent: 0 };
/// assert_eq!(socket.local_addr()?, socket.inner.local_addr()?);
/// # Ok(())
/// # }
/// ```
///
/// A name that is not a method of the trait does not compile:
///
/// ```compile_fail
/// # use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
/// struct Named { inner: UdpEnetSocket }
/// impl EnetSocket for Named {
///     enet_dtls::forward_enet_socket!(field: inner, except: [send_batches]);
/// }
/// ```
#[macro_export]
macro_rules! forward_enet_socket {
    (field: $f:ident $(, except: [$($skip:ident),* $(,)?])? $(,)?) => {
        $crate::forward_enet_socket!(@all (field $f) [$($($skip)*)?]);
    };
    (via: $get:ident, $get_mut:ident $(, except: [$($skip:ident),* $(,)?])? $(,)?) => {
        $crate::forward_enet_socket!(@all (via $get $get_mut) [$($($skip)*)?]);
    };
    (@all $to:tt [$($skip:ident)*]) => {
        $($crate::forward_enet_socket!(@known $skip);)*
        $crate::forward_enet_socket!(@each $to [$($skip)*]
            local_addr max_datagram_size send_batch recv_batch recv_drained wait_readable
            poll_recv_ready poll_timeout handle_timeout poll_failure peer_gone
            set_accepting_new_peers);
    };
    (@each $to:tt $skip:tt $($m:ident)*) => {
        $($crate::forward_enet_socket!(@check $to $skip $m);)*
    };

    // Is `$m` in the list? Listed: the wrapper writes it.
    (@check $to:tt [local_addr $($r:ident)*] local_addr) => {};
    (@check $to:tt [max_datagram_size $($r:ident)*] max_datagram_size) => {};
    (@check $to:tt [send_batch $($r:ident)*] send_batch) => {};
    (@check $to:tt [recv_batch $($r:ident)*] recv_batch) => {};
    (@check $to:tt [recv_drained $($r:ident)*] recv_drained) => {};
    (@check $to:tt [wait_readable $($r:ident)*] wait_readable) => {};
    (@check $to:tt [poll_recv_ready $($r:ident)*] poll_recv_ready) => {};
    (@check $to:tt [poll_timeout $($r:ident)*] poll_timeout) => {};
    (@check $to:tt [handle_timeout $($r:ident)*] handle_timeout) => {};
    (@check $to:tt [poll_failure $($r:ident)*] poll_failure) => {};
    (@check $to:tt [peer_gone $($r:ident)*] peer_gone) => {};
    (@check $to:tt [set_accepting_new_peers $($r:ident)*] set_accepting_new_peers) => {};
    (@check $to:tt [$h:ident $($r:ident)*] $m:ident) => {
        $crate::forward_enet_socket!(@check $to [$($r)*] $m);
    };
    (@check $to:tt [] $m:ident) => {
        $crate::forward_enet_socket!(@fn $to $m);
    };

    (@known local_addr) => {};
    (@known max_datagram_size) => {};
    (@known send_batch) => {};
    (@known recv_batch) => {};
    (@known recv_drained) => {};
    (@known wait_readable) => {};
    (@known poll_recv_ready) => {};
    (@known poll_timeout) => {};
    (@known handle_timeout) => {};
    (@known poll_failure) => {};
    (@known peer_gone) => {};
    (@known set_accepting_new_peers) => {};
    (@known $other:ident) => {
        compile_error!(concat!(
            "forward_enet_socket!: `",
            stringify!($other),
            "` is not a method of EnetSocket"
        ));
    };

    // The inner socket, shared and mutable.
    (@ref $s:tt (field $f:ident)) => { &$s.$f };
    (@ref $s:tt (via $get:ident $get_mut:ident)) => { $s.$get() };
    (@mut $s:tt (field $f:ident)) => { &mut $s.$f };
    (@mut $s:tt (via $get:ident $get_mut:ident)) => { $s.$get_mut() };

    (@fn $to:tt local_addr) => {
        fn local_addr(&self) -> ::std::io::Result<::std::net::SocketAddr> {
            $crate::enet::EnetSocket::local_addr($crate::forward_enet_socket!(@ref self $to))
        }
    };
    (@fn $to:tt max_datagram_size) => {
        fn max_datagram_size(&self) -> usize {
            $crate::enet::EnetSocket::max_datagram_size(
                $crate::forward_enet_socket!(@ref self $to),
            )
        }
    };
    (@fn $to:tt send_batch) => {
        fn send_batch(
            &mut self,
            now: ::std::time::Instant,
            batch: &[$crate::enet_proto::Transmit],
        ) -> ::std::io::Result<usize> {
            $crate::enet::EnetSocket::send_batch(
                $crate::forward_enet_socket!(@mut self $to),
                now,
                batch,
            )
        }
    };
    (@fn $to:tt recv_batch) => {
        fn recv_batch(
            &mut self,
            now: ::std::time::Instant,
            sink: &mut dyn FnMut(::std::net::SocketAddr, &[u8]),
        ) -> ::std::io::Result<usize> {
            $crate::enet::EnetSocket::recv_batch(
                $crate::forward_enet_socket!(@mut self $to),
                now,
                sink,
            )
        }
    };
    (@fn $to:tt recv_drained) => {
        fn recv_drained(&self) -> bool {
            $crate::enet::EnetSocket::recv_drained($crate::forward_enet_socket!(@ref self $to))
        }
    };
    (@fn $to:tt wait_readable) => {
        fn wait_readable(
            &mut self,
            timeout: ::std::option::Option<::std::time::Duration>,
        ) -> ::std::io::Result<bool> {
            $crate::enet::EnetSocket::wait_readable(
                $crate::forward_enet_socket!(@mut self $to),
                timeout,
            )
        }
    };
    (@fn $to:tt poll_recv_ready) => {
        fn poll_recv_ready(
            &mut self,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::io::Result<()>> {
            $crate::enet::EnetSocket::poll_recv_ready(
                $crate::forward_enet_socket!(@mut self $to),
                cx,
            )
        }
    };
    (@fn $to:tt poll_timeout) => {
        fn poll_timeout(&self) -> ::std::option::Option<::std::time::Instant> {
            $crate::enet::EnetSocket::poll_timeout($crate::forward_enet_socket!(@ref self $to))
        }
    };
    (@fn $to:tt handle_timeout) => {
        fn handle_timeout(&mut self, now: ::std::time::Instant) -> ::std::io::Result<()> {
            $crate::enet::EnetSocket::handle_timeout(
                $crate::forward_enet_socket!(@mut self $to),
                now,
            )
        }
    };
    (@fn $to:tt poll_failure) => {
        fn poll_failure(
            &mut self,
        ) -> ::std::option::Option<$crate::enet::ConnectionFailure> {
            $crate::enet::EnetSocket::poll_failure($crate::forward_enet_socket!(@mut self $to))
        }
    };
    (@fn $to:tt peer_gone) => {
        fn peer_gone(
            &mut self,
            now: ::std::time::Instant,
            addr: ::std::net::SocketAddr,
        ) -> ::std::option::Option<$crate::enet::ConnectionFailure> {
            $crate::enet::EnetSocket::peer_gone(
                $crate::forward_enet_socket!(@mut self $to),
                now,
                addr,
            )
        }
    };
    (@fn $to:tt set_accepting_new_peers) => {
        fn set_accepting_new_peers(&mut self, accept: bool) {
            $crate::enet::EnetSocket::set_accepting_new_peers(
                $crate::forward_enet_socket!(@mut self $to),
                accept,
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use enet_proto::Transmit;

    use crate::enet::{ConnectionFailure, EnetSocket, FailureCause};

    /// Records every call that reaches it, with its arguments.
    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    impl Recorder {
        fn note(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
    }

    // Written out by hand: the inner end of the forwarding under test.
    impl EnetSocket for Recorder {
        fn local_addr(&self) -> io::Result<SocketAddr> {
            self.note("local_addr".into());
            Ok(addr())
        }
        fn max_datagram_size(&self) -> usize {
            self.note("max_datagram_size".into());
            1234
        }
        fn send_batch(&mut self, _now: Instant, batch: &[Transmit]) -> io::Result<usize> {
            self.note(format!("send_batch {}", batch.len()));
            Ok(batch.len())
        }
        fn recv_batch(
            &mut self,
            _now: Instant,
            sink: &mut dyn FnMut(SocketAddr, &[u8]),
        ) -> io::Result<usize> {
            self.note("recv_batch".into());
            sink(addr(), b"x");
            Ok(1)
        }
        fn recv_drained(&self) -> bool {
            self.note("recv_drained".into());
            true
        }
        fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
            self.note(format!("wait_readable {timeout:?}"));
            Ok(true)
        }
        fn poll_recv_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.note("poll_recv_ready".into());
            Poll::Ready(Ok(()))
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.note("poll_timeout".into());
            None
        }
        fn handle_timeout(&mut self, _now: Instant) -> io::Result<()> {
            self.note("handle_timeout".into());
            Ok(())
        }
        fn poll_failure(&mut self) -> Option<ConnectionFailure> {
            self.note("poll_failure".into());
            None
        }
        fn peer_gone(&mut self, _now: Instant, addr: SocketAddr) -> Option<ConnectionFailure> {
            self.note(format!("peer_gone {addr}"));
            Some(ConnectionFailure::new(
                addr,
                FailureCause::Closed(dtls_proto::CloseReason::Remote),
            ))
        }
        fn set_accepting_new_peers(&mut self, accept: bool) {
            self.note(format!("set_accepting_new_peers {accept}"));
        }
    }

    /// Forwards everything.
    struct All {
        inner: Recorder,
    }

    impl EnetSocket for All {
        forward_enet_socket!(field: inner);
    }

    /// Writes two methods itself, reaches the inner socket through methods (as `dyn`).
    struct Some2 {
        inner: Recorder,
    }

    impl Some2 {
        fn get(&self) -> &dyn EnetSocket {
            &self.inner
        }
        fn get_mut(&mut self) -> &mut dyn EnetSocket {
            &mut self.inner
        }
    }

    impl EnetSocket for Some2 {
        forward_enet_socket!(via: get, get_mut, except: [max_datagram_size, set_accepting_new_peers]);

        fn max_datagram_size(&self) -> usize {
            7
        }
        fn set_accepting_new_peers(&mut self, _accept: bool) {}
    }

    /// Calls every method once through `socket`.
    fn call_all(socket: &mut dyn EnetSocket) -> usize {
        let now = Instant::now();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        socket.local_addr().unwrap();
        let mtu = socket.max_datagram_size();
        let t = Transmit {
            destination: addr(),
            data: vec![1],
        };
        socket.send_batch(now, &[t]).unwrap();
        let mut got = 0;
        socket.recv_batch(now, &mut |_, _| got += 1).unwrap();
        assert_eq!(got, 1);
        socket.recv_drained();
        socket.wait_readable(Some(Duration::ZERO)).unwrap();
        assert!(socket.poll_recv_ready(&mut cx).is_ready());
        socket.poll_timeout();
        socket.handle_timeout(now).unwrap();
        socket.poll_failure();
        assert!(socket.peer_gone(now, addr()).is_some());
        socket.set_accepting_new_peers(false);
        mtu
    }

    #[test]
    fn every_method_is_forwarded() {
        let inner = Recorder::default();
        let calls = Arc::clone(&inner.calls);
        let mut all = All { inner };
        assert_eq!(call_all(&mut all), 1234);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "local_addr",
                "max_datagram_size",
                "send_batch 1",
                "recv_batch",
                "recv_drained",
                "wait_readable Some(0ns)",
                "poll_recv_ready",
                "poll_timeout",
                "handle_timeout",
                "poll_failure",
                "peer_gone 127.0.0.1:4000",
                "set_accepting_new_peers false",
            ]
        );
    }

    /// The crate's own wrapper: what it does not record, it forwards (set_accepting_new_peers
    /// included, which tells a DTLS server under it to start no handshake).
    #[test]
    fn capture_socket_forwards_every_method() {
        let inner = Recorder::default();
        let calls = Arc::clone(&inner.calls);
        let capture = crate::capture::Capture::new();
        let mut socket = crate::capture::CaptureSocket::new(inner, capture.clone()).unwrap();
        calls.lock().unwrap().clear(); // CaptureSocket::new asked for the local address
        assert_eq!(call_all(&mut socket), 1234);
        assert_eq!(calls.lock().unwrap().len(), 12);
        assert!(calls
            .lock()
            .unwrap()
            .contains(&"set_accepting_new_peers false".to_owned()));
        assert_eq!(capture.len(), 2, "one datagram sent, one received");
    }

    #[test]
    fn listed_methods_are_the_wrappers_own() {
        let inner = Recorder::default();
        let calls = Arc::clone(&inner.calls);
        let mut some = Some2 { inner };
        assert_eq!(call_all(&mut some), 7);
        let calls = calls.lock().unwrap();
        assert!(!calls.iter().any(|c| c.starts_with("max_datagram_size")));
        assert!(!calls.iter().any(|c| c.starts_with("set_accepting")));
        assert_eq!(calls.len(), 10, "{calls:?}");
    }
}
