//! Prometheus metrics for `enet-dtls serve --metrics ADDR:PORT`.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): the metric types
//! are lock-free handles, the registry is encoded as OpenMetrics text on every scrape. The HTTP
//! side is a small std thread ([`MetricsServer`]) that answers `GET /metrics`; it handles one
//! connection at a time with short I/O timeouts and reads at most [`MAX_REQUEST`] bytes of a
//! request, so a slow or hostile scraper costs a bounded amount of memory and cannot hang the
//! game server (which never waits for it).
//!
//! The game loop owns a [`ServerMetrics`] and feeds it: cumulative counters of the ENet host
//! and of the DTLS endpoint are turned into increments ([`ServerMetrics::observe_enet`],
//! [`ServerMetrics::observe_dtls`]), events are counted as they happen (RPCs, refusals), and
//! every peer's smoothed RTT is sampled into a histogram.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dtls_proto::EndpointStats;
use enet_dtls::enet::{ConnectionFailure, EnetSocket};
use enet_proto::HostStats;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Largest HTTP request head read from a scraper.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// Read and write timeout of one scrape connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Content type of the OpenMetrics text format that `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label, as `prometheus-client` encodes a label set.
type Label = [(&'static str, &'static str); 1];

/// RPC method names counted under their own label; any other name counts as `other` (the
/// names come from the network, so they must not create label values without bound).
type MethodLabel = [(&'static str, &'static str); 1];

/// The metrics of one `serve` process. Cheap handles: clone-free updates from the game loop.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    registry: Arc<Registry>,
    peers_connected: Gauge,
    connects_refused: Family<Label, Counter>,
    handshakes_completed: Counter,
    handshakes_failed: Family<Label, Counter>,
    dtls_failures: Family<Label, Counter>,
    cookies_sent: Counter,
    datagrams: Family<Label, Counter>,
    bytes: Family<Label, Counter>,
    rpcs: Family<MethodLabel, Counter>,
    rtt: Histogram,
    known_methods: &'static [&'static str],
    last_enet: HostStats,
    last_dtls: EndpointStats,
    last_mp_refused: u64,
}

impl ServerMetrics {
    /// Registers every metric (names prefixed `enet_dtls_`). RPCs of `known_methods` are counted
    /// by name, others as `other`.
    pub(crate) fn new(known_methods: &'static [&'static str]) -> ServerMetrics {
        let mut registry = Registry::with_prefix("enet_dtls");
        let peers_connected = Gauge::default();
        registry.register(
            "peers_connected",
            "Multiplayer peers connected now",
            peers_connected.clone(),
        );
        let connects_refused = Family::<Label, Counter>::default();
        registry.register(
            "connects_refused",
            "Connection attempts refused, by cause (enet: no slot or per-address share; dtls_table_full, dtls_address_share: DTLS session limits; multiplayer: id refused or refuse_new_connections)",
            connects_refused.clone(),
        );
        let handshakes_completed = Counter::default();
        registry.register(
            "dtls_handshakes_completed",
            "DTLS handshakes that completed",
            handshakes_completed.clone(),
        );
        let handshakes_failed = Family::<Label, Counter>::default();
        registry.register(
            "dtls_handshakes_failed",
            "DTLS handshakes that failed, by cause",
            handshakes_failed.clone(),
        );
        let dtls_failures = Family::<Label, Counter>::default();
        registry.register(
            "dtls_failures",
            "DTLS connections that failed (during or after the handshake), by cause as the DTLS socket reported it",
            dtls_failures.clone(),
        );
        let cookies_sent = Counter::default();
        registry.register(
            "dtls_cookies_sent",
            "DTLS HelloVerifyRequests (stateless cookies) sent",
            cookies_sent.clone(),
        );
        let datagrams = Family::<Label, Counter>::default();
        registry.register(
            "datagrams",
            "ENet datagrams by direction (in, out)",
            datagrams.clone(),
        );
        let bytes = Family::<Label, Counter>::default();
        registry.register(
            "bytes",
            "ENet datagram bytes by direction (in, out)",
            bytes.clone(),
        );
        let rpcs = Family::<MethodLabel, Counter>::default();
        registry.register("rpcs", "RPCs received, by method", rpcs.clone());
        let rtt = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register(
            "rtt_seconds",
            "Smoothed ENet round-trip time of each connected peer, sampled once a second",
            rtt.clone(),
        );
        ServerMetrics {
            registry: Arc::new(registry),
            peers_connected,
            connects_refused,
            handshakes_completed,
            handshakes_failed,
            dtls_failures,
            cookies_sent,
            datagrams,
            bytes,
            rpcs,
            rtt,
            known_methods,
            last_enet: HostStats::default(),
            last_dtls: EndpointStats::default(),
            last_mp_refused: 0,
        }
    }

    /// The registry, for [`MetricsServer::start`].
    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Sets the number of connected multiplayer peers.
    pub(crate) fn set_peers(&self, n: usize) {
        self.peers_connected
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a refused connection attempt with `cause` (a fixed label value).
    pub(crate) fn refused(&self, cause: &'static str, n: u64) {
        if n > 0 {
            self.connects_refused
                .get_or_create(&[("cause", cause)])
                .inc_by(n);
        }
    }

    /// Adds the multiplayer layer's refusals (a cumulative count: ids below 2 or taken,
    /// `refuse_new_connections`) since the last call.
    pub(crate) fn refused_multiplayer(&mut self, total: u64) {
        let new = total.saturating_sub(self.last_mp_refused);
        self.last_mp_refused = total;
        self.refused("multiplayer", new);
    }

    /// Counts one received RPC.
    pub(crate) fn rpc(&self, method: &str) {
        let name = self
            .known_methods
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.rpcs.get_or_create(&[("method", name)]).inc();
    }

    /// Records one RTT sample.
    pub(crate) fn rtt(&self, rtt: Duration) {
        self.rtt.observe(rtt.as_secs_f64());
    }

    /// The counters of DTLS connection failures by cause, for a [`FailureTap`].
    pub(crate) fn failure_counter(&self) -> Family<Label, Counter> {
        self.dtls_failures.clone()
    }

    /// Adds what the ENet host counted since the last call (datagrams and bytes both ways,
    /// refused CONNECTs).
    pub(crate) fn observe_enet(&mut self, now: &HostStats) {
        let last = &self.last_enet;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.datagrams
            .get_or_create(&[("direction", "in")])
            .inc_by(d(now.packets_received, last.packets_received));
        self.datagrams
            .get_or_create(&[("direction", "out")])
            .inc_by(d(now.packets_sent, last.packets_sent));
        self.bytes
            .get_or_create(&[("direction", "in")])
            .inc_by(d(now.bytes_received, last.bytes_received));
        self.bytes
            .get_or_create(&[("direction", "out")])
            .inc_by(d(now.bytes_sent, last.bytes_sent));
        self.refused("enet", d(now.connects_refused, last.connects_refused));
        self.last_enet = *now;
    }

    /// Adds what the DTLS endpoint counted since the last call: completed handshakes, cookies,
    /// refusals at the session limits, and failed handshakes when the failures are not counted
    /// from events (`failures_from_stats`): then expired ones as `timeout`, the rest as `other`.
    pub(crate) fn observe_dtls(&mut self, now: &EndpointStats, failures_from_stats: bool) {
        let last = &self.last_dtls;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.handshakes_completed
            .inc_by(d(now.handshakes_completed, last.handshakes_completed));
        self.cookies_sent
            .inc_by(d(now.cookies_sent, last.cookies_sent));
        let table = d(now.refused_table_full, last.refused_table_full);
        let share = d(now.refused_address_share, last.refused_address_share);
        if failures_from_stats {
            let expired = d(now.expired_handshake, last.expired_handshake);
            let failed = d(now.handshakes_failed, last.handshakes_failed);
            if expired > 0 {
                self.handshakes_failed
                    .get_or_create(&[("cause", "timeout")])
                    .inc_by(expired);
            }
            if failed > expired {
                self.handshakes_failed
                    .get_or_create(&[("cause", "other")])
                    .inc_by(failed - expired);
            }
        }
        self.refused("dtls_table_full", table);
        self.refused("dtls_address_share", share);
        self.last_dtls = *now;
    }
}

/// The label value of a DTLS failure.
pub(crate) fn failure_cause(error: &dtls_proto::DtlsError) -> &'static str {
    use dtls_proto::DtlsError as E;
    match error {
        E::UntrustedCertificate { .. } => "untrusted_certificate",
        E::HostnameMismatch { .. } => "hostname_mismatch",
        E::CertificateExpired { .. } => "certificate_expired",
        E::PeerAlert { .. } => "peer_alert",
        E::HandshakeTimeout { .. } => "timeout",
        _ => "other",
    }
}

/// The last connection failure a [`FailureTap`] saw, shared with the application.
pub(crate) type LastFailure = Arc<Mutex<Option<ConnectionFailure>>>;

/// An [`EnetSocket`] wrapper that counts the connection failures its socket reports (by cause)
/// on their way to the driver, which keeps them for the application, and remembers the last
/// one (so a client can print the DTLS cause of a failed join).
#[derive(Debug)]
pub(crate) struct FailureTap<S> {
    inner: S,
    counter: Option<Family<Label, Counter>>,
    last: LastFailure,
}

impl<S: EnetSocket> FailureTap<S> {
    /// Wraps `inner`; counts into `counter` when given.
    pub(crate) fn new(inner: S, counter: Option<Family<Label, Counter>>) -> FailureTap<S> {
        FailureTap {
            inner,
            counter,
            last: LastFailure::default(),
        }
    }

    /// The wrapped socket.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A handle on the last failure seen.
    pub(crate) fn last_failure(&self) -> LastFailure {
        Arc::clone(&self.last)
    }

    fn count(&self, failure: &Option<ConnectionFailure>) {
        let Some(f) = failure else {
            return;
        };
        if let (Some(c), Some(e)) = (&self.counter, f.dtls_error()) {
            c.get_or_create(&[("cause", failure_cause(e))]).inc();
        }
        if f.dtls_error().is_some() {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(f.clone());
        }
    }
}

impl<S: EnetSocket> EnetSocket for FailureTap<S> {
    enet_dtls::forward_enet_socket!(field: inner, except: [poll_failure, peer_gone]);

    fn poll_failure(&mut self) -> Option<ConnectionFailure> {
        let failure = self.inner.poll_failure();
        self.count(&failure);
        failure
    }

    fn peer_gone(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionFailure> {
        let failure = self.inner.peer_gone(now, addr);
        self.count(&failure);
        failure
    }
}

/// The HTTP endpoint: a thread answering `GET /metrics` (and `GET /`) with the registry.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)) and starts the
    /// thread.
    pub(crate) fn start<A: ToSocketAddrs>(
        addr: A,
        registry: Arc<Registry>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        // Non-blocking accept polled every 100 ms, so that `stop` is seen without a connection.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || serve_http(&listener, &registry, &flag))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address scrapers connect to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_http(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                if let Err(e) = answer(stream, registry) {
                    tracing::debug!(%from, error = %e, "metrics scrape failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head (at most [`MAX_REQUEST`] bytes) and answers it.
fn answer(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    // One deadline for the whole head, so a scraper that trickles bytes cannot hold the
    // (single) metrics thread longer than IO_TIMEOUT.
    let deadline = Instant::now() + IO_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(&mut stream, "408 Request Timeout", "text/plain", "");
        }
        stream.set_read_timeout(Some(left))?;
        if head.len() >= MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return respond(&mut stream, "408 Request Timeout", "text/plain", "");
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n.min(MAX_REQUEST - head.len())]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics" | b"/")) => {
            let mut body = String::new();
            if prometheus_client::encoding::text::encode(&mut body, registry).is_err() {
                return respond(&mut stream, "500 Internal Server Error", "text/plain", "");
            }
            respond(&mut stream, "200 OK", CONTENT_TYPE, &body)
        }
        (Some(b"GET"), _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// `name{labels} value` lines of an OpenMetrics text body.
    fn sample(body: &str, series: &str) -> Option<f64> {
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn scrape_shows_fed_values() {
        let mut m = ServerMetrics::new(&["send_message"]);
        m.set_peers(3);
        m.observe_enet(&HostStats {
            packets_received: 10,
            bytes_received: 1000,
            packets_sent: 7,
            bytes_sent: 700,
            connects_refused: 2,
            ..HostStats::default()
        });
        // Cumulative: only the difference is added.
        m.observe_enet(&HostStats {
            packets_received: 15,
            bytes_received: 1500,
            packets_sent: 7,
            bytes_sent: 700,
            connects_refused: 2,
            ..HostStats::default()
        });
        let mut dtls = EndpointStats::default();
        dtls.handshakes_completed = 4;
        dtls.handshakes_failed = 3;
        dtls.expired_handshake = 1;
        dtls.cookies_sent = 6;
        dtls.refused_table_full = 1;
        m.observe_dtls(&dtls, true);
        m.refused_multiplayer(2);
        m.refused_multiplayer(5);
        m.rpc("send_message");
        m.rpc("send_message");
        m.rpc("evil_method_name_from_the_network");
        m.rtt(Duration::from_millis(1));
        m.rtt(Duration::from_millis(3));
        let server = MetricsServer::start("127.0.0.1:0", m.registry()).unwrap();
        let response = get(
            server.local_addr(),
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.ends_with("# EOF\n"), "{body}");
        let v = |s: &str| sample(body, s).unwrap_or_else(|| panic!("no {s} in {body}"));
        assert_eq!(v("enet_dtls_peers_connected"), 3.0);
        assert_eq!(v("enet_dtls_datagrams_total{direction=\"in\"}"), 15.0);
        assert_eq!(v("enet_dtls_bytes_total{direction=\"out\"}"), 700.0);
        assert_eq!(v("enet_dtls_connects_refused_total{cause=\"enet\"}"), 2.0);
        assert_eq!(
            v("enet_dtls_connects_refused_total{cause=\"dtls_table_full\"}"),
            1.0
        );
        assert_eq!(
            v("enet_dtls_connects_refused_total{cause=\"multiplayer\"}"),
            5.0
        );
        assert_eq!(v("enet_dtls_dtls_handshakes_completed_total"), 4.0);
        assert_eq!(
            v("enet_dtls_dtls_handshakes_failed_total{cause=\"timeout\"}"),
            1.0
        );
        assert_eq!(
            v("enet_dtls_dtls_handshakes_failed_total{cause=\"other\"}"),
            2.0
        );
        assert_eq!(v("enet_dtls_dtls_cookies_sent_total"), 6.0);
        assert_eq!(v("enet_dtls_rpcs_total{method=\"send_message\"}"), 2.0);
        assert_eq!(v("enet_dtls_rpcs_total{method=\"other\"}"), 1.0);
        assert_eq!(v("enet_dtls_rtt_seconds_count"), 2.0);
        assert_eq!(v("enet_dtls_rtt_seconds_bucket{le=\"0.002\"}"), 1.0);
        assert!((v("enet_dtls_rtt_seconds_sum") - 0.004).abs() < 1e-9);
    }

    #[test]
    fn failures_are_counted_by_cause() {
        use dtls_proto::DtlsError;
        let m = ServerMetrics::new(&[]);
        let timeout = DtlsError::HandshakeTimeout {
            timeout: Duration::from_secs(1),
        };
        let mismatch = DtlsError::HostnameMismatch {
            expected: "a".into(),
            presented: vec!["b".into()],
        };
        assert_eq!(failure_cause(&timeout), "timeout");
        assert_eq!(failure_cause(&mismatch), "hostname_mismatch");
        m.failure_counter()
            .get_or_create(&[("cause", failure_cause(&mismatch))])
            .inc();
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &m.registry()).unwrap();
        assert_eq!(
            sample(
                &body,
                "enet_dtls_dtls_failures_total{cause=\"hostname_mismatch\"}"
            ),
            Some(1.0)
        );
    }

    #[test]
    fn bad_requests_get_errors_and_bounded_reads() {
        let m = ServerMetrics::new(&[]);
        let server = MetricsServer::start("127.0.0.1:0", m.registry()).unwrap();
        let r = get(server.local_addr(), "GET /nope HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get(server.local_addr(), "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        // A head that never ends is cut at MAX_REQUEST.
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let junk = vec![b'a'; MAX_REQUEST];
        let _ = s.write_all(&junk);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
        // A scraper that trickles its head is cut off IO_TIMEOUT after it connected, however
        // recently it sent a byte (a per-read timeout alone would wait IO_TIMEOUT after the
        // last one).
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        let started = Instant::now();
        while started.elapsed() < IO_TIMEOUT * 3 / 4 {
            s.write_all(b"G").unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        s.set_read_timeout(Some(IO_TIMEOUT * 3)).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(took < IO_TIMEOUT * 3, "{took:?}");
        // Still serving.
        let r = get(server.local_addr(), "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
}
