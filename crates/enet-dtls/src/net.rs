//! The one place where this crate creates UDP sockets and interprets socket errors, shared by
//! the UDP peers ([`crate::udp`]), the DTLS drivers ([`crate::dtls`]) and the ENet socket
//! layer ([`crate::enet`]).
//!
//! | need | call |
//! |---|---|
//! | bind (first resolved address that binds, dual-stack for `[::]`, non-blocking, buffer sizes) | [`bind_udp`] with [`BindOptions`] |
//! | an IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`) as plain IPv4 | [`normalize`] |
//! | a destination as the socket needs it (IPv4 on an IPv6 socket becomes v4-mapped) | [`to_socket_family`], [`map_destination`] |
//! | sleep until readable, with a timeout | [`wait_readable`] |
//! | "nothing to read now / try again", not a broken socket | [`is_transient`], [`is_icmp_report`] |
//! | a send error that means the socket itself is unusable | [`is_fatal_send_error`] |
//!
//! Addresses leave this crate normalised: every source address a driver reports went through
//! [`normalize`], so an IPv4 peer has one identity whether the socket is IPv4 or dual-stack.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::debug;

/// Socket options applied by [`bind_udp`] before binding. The default asks nothing of the
/// kernel beyond a non-blocking socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BindOptions {
    /// `SO_RCVBUF` to ask for (best effort: Linux caps it at `net.core.rmem_max`).
    pub(crate) recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` to ask for (best effort: Linux caps it at `net.core.wmem_max`).
    pub(crate) send_buffer_size: Option<usize>,
}

impl BindOptions {
    /// Both kernel buffers set to `size`.
    pub(crate) fn buffers(size: usize) -> BindOptions {
        BindOptions {
            recv_buffer_size: Some(size),
            send_buffer_size: Some(size),
        }
    }
}

/// Resolves `addr`; an address that resolves to nothing is `InvalidInput`.
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// Binds a non-blocking UDP socket to the first address `addr` resolves to that binds
/// (`"host:port"`, a `SocketAddr`, ...). The unspecified IPv6 address `[::]` gives a
/// dual-stack socket; any other IPv6 address an IPv6-only one. Buffer sizes in `opts` are
/// asked for before binding (best effort, a refusal is logged).
///
/// # Errors
///
/// Resolution errors, or the kernel's error for the last address tried (`AddrInUse`, ...).
pub(crate) fn bind_udp<A: ToSocketAddrs>(addr: A, opts: &BindOptions) -> io::Result<UdpSocket> {
    let mut last_err = None;
    for a in resolve(addr)? {
        match bind_one(a, opts) {
            Ok(socket) => return Ok(socket),
            Err(e) => {
                debug!(addr = %a, error = %e, "udp bind failed");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "nothing to bind")))
}

/// [`bind_udp`] for exactly one address.
fn bind_one(addr: SocketAddr, opts: &BindOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let SocketAddr::V6(v6) = addr {
        socket.set_only_v6(!v6.ip().is_unspecified())?;
    }
    if let Some(size) = opts.recv_buffer_size {
        if let Err(e) = socket.set_recv_buffer_size(size) {
            debug!(error = %e, size, "could not set SO_RCVBUF");
        }
    }
    if let Some(size) = opts.send_buffer_size {
        if let Err(e) = socket.set_send_buffer_size(size) {
            debug!(error = %e, size, "could not set SO_SNDBUF");
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    debug!(local = ?socket.local_addr().ok(), "udp socket bound");
    Ok(socket)
}

/// The wildcard address of `addr`'s family, port 0 (where a client binds before connecting).
pub(crate) fn wildcard_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack socket reports IPv4
/// peers) as plain IPv4; every other address unchanged.
pub(crate) fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// `dest` as a socket of the family of `local` needs it: an IPv4 destination on an IPv6
/// socket becomes v4-mapped (`::ffff:a.b.c.d`); anything else is unchanged. This never fails:
/// an IPv6 destination on an IPv4 socket is left for the kernel to refuse (see
/// [`to_socket_family`] for the checked form).
pub(crate) fn map_destination(local_is_ipv6: bool, dest: SocketAddr) -> SocketAddr {
    match dest {
        SocketAddr::V4(v4) if local_is_ipv6 => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        other => other,
    }
}

/// [`map_destination`] for a socket bound to `local`, with an error that says what is wrong
/// for an IPv6 destination on an IPv4 socket.
///
/// # Errors
///
/// `InvalidInput` when `local` is IPv4 and `dest` is IPv6 (other than v4-mapped).
pub(crate) fn to_socket_family(local: SocketAddr, dest: SocketAddr) -> io::Result<SocketAddr> {
    match (local, normalize(dest)) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot send to IPv6 address {dest} from IPv4 socket {local}"),
        )),
        (_, d) => Ok(map_destination(local.is_ipv6(), d)),
    }
}

/// Errors a socket reports on a later call because of an ICMP message about an earlier
/// datagram (port or host unreachable, "fragmentation needed"). Linux does this on connected
/// sockets and, for some of them, on unconnected ones too. UDP peers come and go, so these
/// never mean the socket is broken: the datagram that caused them is lost, nothing more.
pub(crate) fn is_icmp_report(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    ) || e.raw_os_error().is_some_and(|c| {
        c == libc::EHOSTUNREACH
            || c == libc::ENETUNREACH
            || c == libc::EMSGSIZE
            || c == libc::ECONNREFUSED
    })
}

/// Whether `e` is transient, from a receive or a send on a UDP socket: nothing to do right now
/// (`WouldBlock`), a signal (`Interrupted`), or an ICMP report ([`is_icmp_report`]). Callers
/// treat it as "no datagram" (receive) or "datagram dropped" (send) and carry on; anything
/// else is a real error of the socket.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || is_icmp_report(e)
}

/// Send errors that mean the socket itself is unusable (a closed descriptor), as opposed to
/// one bad destination or datagram.
pub(crate) fn is_fatal_send_error(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| c == libc::EBADF || c == libc::ENOTSOCK)
}

/// Waits with `poll(2)` until `socket` is readable or `timeout` has passed (`None`: no limit),
/// retrying on `EINTR`. Returns whether it is readable (a spurious `true` is possible: a
/// datagram that failed its checksum, for example). `Some(Duration::ZERO)` only looks.
///
/// # Errors
///
/// `InvalidInput` for a timeout too large for `poll(2)`; the kernel's errors.
pub(crate) fn wait_readable(socket: &impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    if timeout.is_some() && deadline.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("timeout {timeout:?} is too large"),
        ));
    }
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let spec = match left {
            Some(l) => Some(Timespec::try_from(l).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("timeout {l:?} is too large for poll(2)"),
                )
            })?),
            None => None,
        };
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        match rustix::event::poll(&mut fds, spec.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Gives the socket back the kernel's default path-MTU behaviour (`IP_PMTUDISC_WANT`, as C
/// ENet has): quinn-udp sets "don't fragment" probing for QUIC, but an ENet datagram larger
/// than the path MTU must be fragmented by IP, not dropped. Best effort (IPv6 keeps
/// `IPV6_DONTFRAG`).
pub(crate) fn allow_fragmentation(socket: &impl AsFd, local: SocketAddr) {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt;
        let v4 = match local {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(v6) => v6.ip().is_unspecified(),
        };
        if v4 {
            if let Err(e) =
                sockopt::set_ip_mtu_discover(socket, sockopt::Ipv4PathMtuDiscovery::WANT)
            {
                debug!(error = %e, "could not set IP_MTU_DISCOVER");
            }
        }
        if local.is_ipv6() {
            if let Err(e) =
                sockopt::set_ipv6_mtu_discover(socket, sockopt::Ipv6PathMtuDiscovery::WANT)
            {
                debug!(error = %e, "could not set IPV6_MTU_DISCOVER");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, local);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn normalize_unmaps_ipv4_mapped_and_keeps_the_rest() {
        assert_eq!(normalize(a("[::ffff:127.0.0.2]:9")), a("127.0.0.2:9"));
        assert_eq!(normalize(a("[::ffff:10.1.2.3]:65535")), a("10.1.2.3:65535"));
        // Not mapped: plain IPv6, IPv4-compatible (deprecated ::a.b.c.d), IPv4.
        assert_eq!(normalize(a("[::1]:9")), a("[::1]:9"));
        assert_eq!(normalize(a("[::7f00:1]:9")), a("[::7f00:1]:9"));
        assert_eq!(normalize(a("[2001:db8::1]:9")), a("[2001:db8::1]:9"));
        assert_eq!(normalize(a("127.0.0.1:9")), a("127.0.0.1:9"));
        // Idempotent.
        let once = normalize(a("[::ffff:1.2.3.4]:5"));
        assert_eq!(normalize(once), once);
    }

    #[test]
    fn destinations_follow_the_socket_family() {
        assert_eq!(
            map_destination(true, a("1.2.3.4:5")),
            a("[::ffff:1.2.3.4]:5")
        );
        assert_eq!(map_destination(false, a("1.2.3.4:5")), a("1.2.3.4:5"));
        assert_eq!(map_destination(true, a("[::1]:5")), a("[::1]:5"));
        let v4 = a("0.0.0.0:1");
        let v6 = a("[::]:1");
        assert_eq!(
            to_socket_family(v6, a("1.2.3.4:5")).unwrap(),
            a("[::ffff:1.2.3.4]:5")
        );
        assert_eq!(
            to_socket_family(v4, a("1.2.3.4:5")).unwrap(),
            a("1.2.3.4:5")
        );
        // A v4-mapped destination on an IPv4 socket is really IPv4.
        assert_eq!(
            to_socket_family(v4, a("[::ffff:1.2.3.4]:5")).unwrap(),
            a("1.2.3.4:5")
        );
        let err = to_socket_family(v4, a("[::1]:5")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("[::1]:5"), "{err}");
    }

    #[test]
    fn transient_errors_are_classified() {
        use io::ErrorKind as K;
        for kind in [
            K::WouldBlock,
            K::Interrupted,
            K::ConnectionRefused,
            K::ConnectionReset,
        ] {
            assert!(is_transient(&io::Error::from(kind)), "{kind:?}");
        }
        for code in [
            libc::EAGAIN,
            libc::EINTR,
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::EMSGSIZE,
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_transient(&e), "{e}");
        }
        for code in [libc::EAGAIN, libc::EINTR] {
            assert!(!is_icmp_report(&io::Error::from_raw_os_error(code)));
        }
        for code in [libc::EBADF, libc::ENOTSOCK, libc::EINVAL, libc::EACCES] {
            let e = io::Error::from_raw_os_error(code);
            assert!(!is_transient(&e), "{e}");
        }
        for kind in [
            K::PermissionDenied,
            K::InvalidInput,
            K::NotConnected,
            K::Other,
        ] {
            assert!(!is_transient(&io::Error::from(kind)), "{kind:?}");
        }
        assert!(is_fatal_send_error(&io::Error::from_raw_os_error(
            libc::EBADF
        )));
        assert!(is_fatal_send_error(&io::Error::from_raw_os_error(
            libc::ENOTSOCK
        )));
        assert!(!is_fatal_send_error(&io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
        assert!(!is_fatal_send_error(&io::Error::from(K::WouldBlock)));
    }

    #[test]
    fn bind_udp_tries_every_resolved_address_and_sets_options() {
        // The first address is taken (bound by `busy`), the second is free.
        let busy = bind_udp("127.0.0.1:0", &BindOptions::default()).unwrap();
        let taken = busy.local_addr().unwrap();
        let free = a("127.0.0.1:0");
        let s = bind_udp(&[taken, free][..], &BindOptions::buffers(8192)).unwrap();
        assert_ne!(s.local_addr().unwrap(), taken);
        // Linux doubles the asked size (bookkeeping); an untouched socket has the (much
        // larger) system default.
        let default = socket2::SockRef::from(&busy).recv_buffer_size().unwrap();
        let sock = socket2::SockRef::from(&s);
        for size in [
            sock.recv_buffer_size().unwrap(),
            sock.send_buffer_size().unwrap(),
        ] {
            assert!(
                size <= 2 * 8192 && size != default,
                "{size} (default {default})"
            );
        }
        // Non-blocking: a receive on an empty socket returns at once.
        let mut buf = [0; 8];
        assert_eq!(
            s.recv_from(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Only the taken address: the kernel's error comes back.
        assert_eq!(
            bind_udp(taken, &BindOptions::default()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }

    #[test]
    fn dual_stack_bind_reports_ipv4_peers_as_ipv4_after_normalize() {
        let server = bind_udp("[::]:0", &BindOptions::default()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = bind_udp("127.0.0.1:0", &BindOptions::default()).unwrap();
        client.send_to(b"x", ("127.0.0.1", port)).unwrap();
        assert!(wait_readable(&server, Some(Duration::from_secs(5))).unwrap());
        let mut buf = [0; 8];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        assert!(from.is_ipv6(), "the kernel reports {from}");
        assert_eq!(normalize(from), client.local_addr().unwrap());
    }

    #[test]
    fn wait_readable_times_out_and_wakes() {
        let s = bind_udp("127.0.0.1:0", &BindOptions::default()).unwrap();
        assert!(!wait_readable(&s, Some(Duration::ZERO)).unwrap());
        assert!(!wait_readable(&s, Some(Duration::from_millis(5))).unwrap());
        s.send_to(b"x", s.local_addr().unwrap()).unwrap();
        assert!(wait_readable(&s, Some(Duration::from_secs(5))).unwrap());
        assert_eq!(
            wait_readable(&s, Some(Duration::MAX)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
