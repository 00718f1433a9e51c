//! `enet-dtls dtls-server` and `dtls-client`.
//!
//! Both print one machine-greppable line per event on stdout (flushed at once), so tests and
//! scripts can wait for a line instead of sleeping:
//!
//! * server: `LISTENING <addr:port>`, `CONNECTED <addr>`, `RECV <addr> <len>`, `CLOSED <addr>`
//!   (peer close_notify, idle timeout, reconnection, shutdown), and `ERROR <addr> <why>` when a
//!   session fails (handshake timeout, alert from the peer...). On SIGINT or SIGTERM it sends
//!   close_notify to every peer, prints `SHUTDOWN` and exits 0; a second signal exits at once
//!   (status 130).
//! * client: `CONNECTED <cipher>`, then `RECV <text>` per echo. Failures print one line on
//!   stderr starting with the cause (`error: untrusted certificate: ...`,
//!   `error: hostname mismatch: ...`, `error: certificate expired: ...`, `error: timeout: ...`)
//!   and exit with a status per cause (see [`exit`]).
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enet_dtls::dtls::{
    ClientConfig, DtlsError, DtlsListener, EndpointConfig, ListenerEvent, PacketPeerDtls,
    ServerConfig, Status,
};
use enet_dtls::dtls_proto::keys::{Certificate, PrivateKey};
use enet_dtls::udp::PacketPeerUdp;

/// Arguments of `dtls-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on, e.g. `127.0.0.1:4433` (port 0 picks a free port, printed on the
    /// `LISTENING` line).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// PEM private key (PKCS#1 or PKCS#8; RSA or EC).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// PEM certificate; more certificates after the first one in the same file are sent as the
    /// chain.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = crate::args::seconds)]
    timeout: Option<f64>,
    /// Maximum number of simultaneous DTLS sessions, handshaking and established (at least 1).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_sessions: usize,
    /// Maximum number of sessions from one source address (one IPv4 address or IPv6 /64), so
    /// one address cannot take the whole table. Default: max(N/8, min(N, 16)) for
    /// --max-sessions N.
    #[arg(long, value_name = "N")]
    max_sessions_per_address: Option<usize>,
    /// Close established sessions whose peer sent nothing for this many seconds (default 30).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    idle_timeout: Option<f64>,
}

/// Arguments of `dtls-client`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 every echo came back; 1 other failure; 2 untrusted certificate; \
3 hostname mismatch; 4 certificate expired or not yet valid; 5 timeout; 6 alert or protocol error."
)]
pub(crate) struct ClientArgs {
    /// Server to connect to, `HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// PEM certificate to trust (a CA, or the server's own self-signed certificate). Without it
    /// the system trust store is used.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Name the server certificate must carry (default: the HOST part of --connect).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Do not verify the server certificate at all.
    #[arg(long)]
    insecure: bool,
    /// Text to send in each datagram.
    #[arg(long, value_name = "TEXT")]
    send: String,
    /// How many datagrams to send (each one must come back).
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u32,
    /// Give up after this many seconds (handshake plus all echoes).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, allow_negative_numbers = true, value_parser = crate::args::seconds)]
    timeout: f64,
}

/// Prints one event line on stdout and flushes it.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill the server: ignore write errors.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn secs(s: f64, what: &str) -> Result<Duration, Box<dyn std::error::Error>> {
    Duration::try_from_secs_f64(s)
        .map_err(|e| format!("{what}: {s} is not a valid duration: {e}").into())
}

/// Exit status of `dtls-client`, one per failure cause so scripts can tell them apart.
mod exit {
    /// Generic failure (bad arguments, socket error, missing or wrong echo).
    pub(super) const FAILURE: u8 = 1;
    /// The server certificate does not chain to a trusted certificate.
    pub(super) const UNTRUSTED: u8 = 2;
    /// The certificate is trusted but for other names.
    pub(super) const HOSTNAME_MISMATCH: u8 = 3;
    /// The certificate expired (or is not valid yet).
    pub(super) const EXPIRED: u8 = 4;
    /// The handshake or the echoes did not complete in time.
    pub(super) const TIMEOUT: u8 = 5;
    /// The server sent a fatal alert or the protocol failed.
    pub(super) const PROTOCOL: u8 = 6;
}

/// Shutdown signal plumbing: the returned flag turns true on the first SIGINT or SIGTERM; a
/// second signal ends the process at once with status 130. (Kept behind this one function so a
/// shared CLI shutdown module can replace it.)
fn shutdown_flag() -> Result<Arc<AtomicBool>, Box<dyn std::error::Error>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    Ok(flag)
}

/// One stderr line per burst of refusals (at most one per 10 s), visible whatever `RUST_LOG` says.
#[derive(Default)]
struct RefusalReport {
    table_full: u64,
    address_share: u64,
    last: Option<Instant>,
}

impl RefusalReport {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn report(&mut self, listener: &DtlsListener) {
        let st = listener.endpoint_stats();
        let (full, share) = (
            st.refused_table_full - self.table_full,
            st.refused_address_share - self.address_share,
        );
        if full + share == 0 || self.last.is_some_and(|t| t.elapsed() < Self::INTERVAL) {
            return;
        }
        let limits = listener.endpoint().config();
        eprintln!(
            "warning: refused {} valid-cookie ClientHello(s): {full} with the table full \
             (--max-sessions {}), {share} from an address at its share \
             (--max-sessions-per-address {})",
            full + share,
            limits.get_max_sessions(),
            limits.get_max_sessions_per_address()
        );
        self.table_full = st.refused_table_full;
        self.address_share = st.refused_address_share;
        self.last = Some(Instant::now());
    }
}

/// The session limits from the command line, checked before anything is bound or printed.
fn server_limits(a: &ServerArgs) -> Result<EndpointConfig, Box<dyn std::error::Error>> {
    if a.max_sessions == 0 {
        return Err("--max-sessions must be at least 1 (0 would refuse every client)".into());
    }
    let mut limits = EndpointConfig::default().max_sessions(a.max_sessions);
    if let Some(n) = a.max_sessions_per_address {
        if n == 0 {
            return Err(
                "--max-sessions-per-address must be at least 1 (0 would refuse every client)"
                    .into(),
            );
        }
        limits = limits.max_sessions_per_address(n);
    }
    if let Some(t) = a.idle_timeout {
        let d = secs(t, "--idle-timeout")?;
        if d.is_zero() {
            return Err("--idle-timeout must be greater than zero".into());
        }
        limits = limits.idle_timeout(Some(d));
    }
    Ok(limits)
}

pub(crate) fn run_server(a: ServerArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let limits = server_limits(&a)?;
    let deadline = a
        .timeout
        .map(|t| secs(t, "--timeout"))
        .transpose()?
        .map(|d| Instant::now() + d);
    let key = PrivateKey::load(&a.key)?;
    let mut certs = Certificate::load_chain(&a.cert)?.into_iter();
    let cert = certs
        .next()
        .ok_or_else(|| format!("{}: no certificate in the file", a.cert.display()))?;
    let config = ServerConfig::builder(key, cert)
        .chain(certs.collect())
        .build()?;
    let mut listener = DtlsListener::bind_with_limits(a.listen, &config, limits)
        .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    let shutdown = shutdown_flag()?;
    say(format_args!("LISTENING {}", listener.local_addr()));
    // Short slices so a signal is acted on within 100 ms.
    const SLICE: Duration = Duration::from_millis(100);
    let mut refusals = RefusalReport::default();
    loop {
        refusals.report(&listener);
        if shutdown.load(Ordering::SeqCst) {
            // close_notify to every peer, flushed by close_all; then report and leave.
            if let Err(e) = listener.close_all() {
                eprintln!("could not send close_notify to every peer: {e}");
            }
            while let Ok(Some(ev)) = listener.poll() {
                if let ListenerEvent::Closed(addr) = ev {
                    say(format_args!("CLOSED {addr}"));
                }
            }
            say(format_args!("SHUTDOWN"));
            return Ok(ExitCode::SUCCESS);
        }
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(ExitCode::SUCCESS);
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        match listener.service(slice)? {
            None => {}
            Some(ListenerEvent::Connected(addr)) => say(format_args!("CONNECTED {addr}")),
            Some(ListenerEvent::Packet(addr, data)) => {
                say(format_args!("RECV {addr} {}", data.len()));
                if let Err(e) = listener.send_to(addr, &data) {
                    eprintln!("echo to {addr} failed: {e}");
                }
            }
            Some(ListenerEvent::Closed(addr)) => say(format_args!("CLOSED {addr}")),
            Some(ListenerEvent::Error(addr, e)) => {
                say(format_args!("ERROR {addr} {e}"));
            }
            Some(other) => say(format_args!("EVENT {other:?}")),
        }
    }
}

/// Splits `HOST:PORT` (or `[V6]:PORT`) and returns the host part without brackets.
fn host_part(connect: &str) -> Result<String, String> {
    let bad = || format!("--connect {connect:?}: expected HOST:PORT");
    if let Some(rest) = connect.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        return Ok(host.to_string());
    }
    let (host, port) = connect.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.contains(':') {
        return Err(bad());
    }
    Ok(host.to_string())
}

/// The exit status and a short cause for a DTLS failure.
fn exit_for(e: &DtlsError) -> (u8, &'static str) {
    match e {
        DtlsError::UntrustedCertificate { .. } => (exit::UNTRUSTED, "untrusted certificate"),
        DtlsError::HostnameMismatch { .. } => (exit::HOSTNAME_MISMATCH, "hostname mismatch"),
        DtlsError::CertificateExpired { .. } => (exit::EXPIRED, "certificate expired"),
        DtlsError::CertificateNotYetValid { .. } => (exit::EXPIRED, "certificate not yet valid"),
        DtlsError::HandshakeTimeout { .. } => (exit::TIMEOUT, "timeout"),
        DtlsError::PeerAlert { .. } => (exit::PROTOCOL, "alert from the server"),
        _ => (exit::PROTOCOL, "DTLS failure"),
    }
}

fn fail(code: u8, msg: std::fmt::Arguments<'_>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    eprintln!("error: {msg}");
    Ok(ExitCode::from(code))
}

/// The largest `--send` checked before the handshake: what one datagram carries at `mtu` with the
/// AEAD suites DTLS 1.2 negotiates here (13-byte record header, 8-byte explicit nonce, 16-byte tag
/// for AES-GCM; ChaCha20-Poly1305 carries 8 bytes more). The session checks the exact limit again.
fn max_send_len(mtu: usize) -> usize {
    mtu.saturating_sub(13 + 8 + 16)
}

pub(crate) fn run_client(a: ClientArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let host = host_part(&a.connect)?;
    let timeout = secs(a.timeout, "--timeout")?;
    if timeout.is_zero() {
        return Err("--timeout must be greater than zero".into());
    }
    if a.send.is_empty() {
        return Err(
            "--send must not be empty: DTLS cannot carry an empty datagram (nothing would be sent)"
                .into(),
        );
    }
    let hostname = a.hostname.clone().unwrap_or_else(|| host.clone());
    let mut builder = ClientConfig::builder()
        .verify(!a.insecure)
        .handshake_timeout(timeout);
    if !a.insecure {
        builder = builder.hostname(hostname.clone());
    }
    if let Some(ca) = &a.ca {
        builder = builder.trusted_certificates(Certificate::load_chain(ca)?);
    }
    let config = builder.build()?;
    let max = max_send_len(config.mtu());
    if a.send.len() > max {
        return Err(format!(
            "--send is {} bytes; at most {max} fit one DTLS datagram at MTU {}",
            a.send.len(),
            config.mtu()
        )
        .into());
    }
    let addr: SocketAddr = a
        .connect
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", a.connect))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", a.connect))?;
    let udp = PacketPeerUdp::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut dtls = PacketPeerDtls::connect_to_peer(udp, &config)?;

    // Handshake.
    while dtls.status() == Status::Handshaking {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail(
                exit::TIMEOUT,
                format_args!(
                    "timeout: DTLS handshake with {addr} did not complete within {timeout:?}"
                ),
            );
        }
        dtls.wait(Some(left))?;
        dtls.poll()?;
    }
    if dtls.status() != Status::Connected {
        return match dtls.error() {
            Some(e) => {
                let (code, cause) = exit_for(e);
                fail(
                    code,
                    format_args!("{cause}: DTLS handshake with {addr} failed: {e}"),
                )
            }
            None => fail(
                exit::PROTOCOL,
                format_args!("DTLS handshake with {addr} ended: {:?}", dtls.status()),
            ),
        };
    }
    say(format_args!(
        "CONNECTED {}",
        dtls.cipher().unwrap_or("unknown")
    ));

    // Echoes.
    let text = a.send.as_bytes();
    for _ in 0..a.count {
        dtls.put_packet(text)?;
    }
    let mut got = 0u32;
    while got < a.count {
        while let Some(d) = dtls.get_packet()? {
            let shown = String::from_utf8_lossy(&d);
            say(format_args!(
                "RECV {}",
                shown.trim_end_matches(['\r', '\n'])
            ));
            if d != text {
                return fail(
                    exit::FAILURE,
                    format_args!(
                        "unexpected reply of {} bytes (not the echo of --send)",
                        d.len()
                    ),
                );
            }
            got += 1;
        }
        if got >= a.count {
            break;
        }
        match dtls.status() {
            Status::Connected => {}
            Status::Disconnected => {
                return fail(
                    exit::FAILURE,
                    format_args!(
                        "the server closed the connection after {got} of {} echoes",
                        a.count
                    ),
                );
            }
            _ => {
                let why = dtls
                    .error()
                    .map_or_else(|| "unknown error".to_string(), ToString::to_string);
                return fail(
                    exit::PROTOCOL,
                    format_args!("connection failed after {got} of {} echoes: {why}", a.count),
                );
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail(
                exit::TIMEOUT,
                format_args!(
                    "timeout: got {got} of {} echoes within {timeout:?}",
                    a.count
                ),
            );
        }
        dtls.wait(Some(left))?;
        dtls.poll()?;
    }
    dtls.disconnect_from_peer();
    Ok(ExitCode::SUCCESS)
}
