//! `enet-dtls serve --metrics`: Prometheus metrics scraped over HTTP and parsed.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, keygen, listening_addr, Proc};

const WAIT: Duration = Duration::from_secs(20);

/// GET /metrics; returns (status line, content type, body).
fn scrape(addr: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.lines().next().unwrap_or_default().to_string();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_string();
    (status, ctype, body.to_string())
}

/// Parses the OpenMetrics text format: every sample line `name{labels} value` into a map
/// keyed by `name{labels}` (labels as written). Comment lines must be `# TYPE`, `# HELP`,
/// `# UNIT` or the final `# EOF`.
fn parse(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut lines = body.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap_or_default();
            assert!(
                ["TYPE", "HELP", "UNIT", "EOF"].contains(&kind),
                "bad comment line {line:?}"
            );
            if kind == "EOF" {
                assert!(lines.peek().is_none(), "text after # EOF");
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            series
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
            "bad name in {line:?}"
        );
        out.insert(series.to_string(), value);
    }
    assert!(body.ends_with("# EOF\n"), "no # EOF at the end");
    out
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {:?}", m.keys().collect::<Vec<_>>()))
}

/// Scrapes until `ready` holds (the game loop updates the metrics as it runs).
fn scrape_until(addr: &str, ready: impl Fn(&HashMap<String, f64>) -> bool) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, ctype, body) = scrape(addr);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        let m = parse(&body);
        if ready(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "metrics never got there: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(extra: &[&str]) -> (Proc, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ])
    .args(extra);
    let mut p = Proc::spawn("serve", cmd);
    let listening = p.expect_line("LISTENING", WAIT);
    let metrics = p.expect_line("METRICS", WAIT);
    let game = listening_addr(&listening).to_string();
    let http = metrics.split_whitespace().nth(1).unwrap().to_string();
    (p, game, http)
}

fn client(addr: &str, extra: &[&str]) -> (Proc, u32) {
    let mut cmd = Command::new(bin());
    cmd.args(["connect", "--connect", addr]).args(extra);
    let mut p = Proc::spawn("connect", cmd);
    let line = p.expect_line("CONNECTED", WAIT);
    (p, line.split_whitespace().nth(1).unwrap().parse().unwrap())
}

#[test]
fn plain_room_metrics_count_peers_rpcs_traffic_and_rtt() {
    let (_server, game, http) = start(&["--max-clients", "2"]);
    let m = parse(&scrape(&http).2);
    assert_eq!(get(&m, "enet_dtls_peers_connected"), 0.0);

    let (mut a, id) = client(&game, &[]);
    let (_b, _) = client(&game, &[]);
    for text in ["one", "two", "three"] {
        writeln!(a.child.stdin.as_mut().unwrap(), "{text}").unwrap();
    }
    a.expect_line(&format!("{id}: three"), WAIT);
    // A third client is refused at the ENet level (the room holds 2).
    let out = Command::new(bin())
        .args(["connect", "--connect", &game, "--timeout", "3"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let m = scrape_until(&http, |m| {
        m.get("enet_dtls_rtt_seconds_count").copied().unwrap_or(0.0) >= 2.0
            && m.get("enet_dtls_connects_refused_total{cause=\"enet\"}")
                .copied()
                .unwrap_or(0.0)
                >= 1.0
    });
    assert_eq!(get(&m, "enet_dtls_peers_connected"), 2.0);
    assert_eq!(
        get(&m, "enet_dtls_rpcs_total{method=\"send_message\"}"),
        3.0
    );
    let din = get(&m, "enet_dtls_datagrams_total{direction=\"in\"}");
    let dout = get(&m, "enet_dtls_datagrams_total{direction=\"out\"}");
    // At least: 2 CONNECTs, 3 calls in; 3 x 2 relayed calls out.
    assert!(din >= 5.0 && dout >= 6.0, "in {din} out {dout}");
    assert!(get(&m, "enet_dtls_bytes_total{direction=\"in\"}") > din * 4.0);
    // RTT samples are loopback-small and counted in the buckets.
    let count = get(&m, "enet_dtls_rtt_seconds_count");
    let sum = get(&m, "enet_dtls_rtt_seconds_sum");
    assert!(sum >= 0.0 && sum / count < 1.0, "mean RTT {}", sum / count);
    assert_eq!(get(&m, "enet_dtls_rtt_seconds_bucket{le=\"+Inf\"}"), count);
    // No DTLS here.
    assert_eq!(get(&m, "enet_dtls_dtls_handshakes_completed_total"), 0.0);
}

#[test]
fn dtls_room_metrics_count_handshakes_cookies_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path());
    let (_server, game, http) = start(&[
        "--dtls",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ]);
    let ca = cert.to_str().unwrap();
    let (mut a, id) = client(&game, &["--dtls", "--ca", ca, "--hostname", "localhost"]);
    writeln!(a.child.stdin.as_mut().unwrap(), "secret").unwrap();
    a.expect_line(&format!("{id}: secret"), WAIT);
    // A client that does not trust the server aborts its handshake with an alert.
    let other = tempfile::tempdir().unwrap();
    let (_, other_cert) = keygen(other.path());
    let out = Command::new(bin())
        .args([
            "connect",
            "--connect",
            &game,
            "--dtls",
            "--hostname",
            "localhost",
            "--timeout",
            "5",
        ])
        .arg("--ca")
        .arg(&other_cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let m = scrape_until(&http, |m| {
        m.keys()
            .any(|k| k.starts_with("enet_dtls_dtls_handshakes_failed_total"))
            && m.contains_key("enet_dtls_dtls_failures_total{cause=\"peer_alert\"}")
    });
    assert_eq!(get(&m, "enet_dtls_peers_connected"), 1.0);
    assert!(get(&m, "enet_dtls_dtls_handshakes_completed_total") >= 1.0);
    // Two clients, each through the cookie exchange.
    assert!(get(&m, "enet_dtls_dtls_cookies_sent_total") >= 2.0);
    assert_eq!(
        get(&m, "enet_dtls_rpcs_total{method=\"send_message\"}"),
        1.0
    );
    let failed: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("enet_dtls_dtls_handshakes_failed_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(failed >= 1.0, "{m:?}");
}

/// A full DTLS room (`--max-clients 1`) answers a newcomer nothing: its join fails and the
/// server did no handshake for it (one completed handshake in all, the member's).
#[test]
fn full_dtls_room_does_no_handshake_for_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path());
    let (_server, game, http) = start(&[
        "--dtls",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--max-clients",
        "1",
    ]);
    let ca = cert.to_str().unwrap();
    let (mut a, id) = client(&game, &["--dtls", "--ca", ca, "--hostname", "localhost"]);
    writeln!(a.child.stdin.as_mut().unwrap(), "still here").unwrap();
    a.expect_line(&format!("{id}: still here"), WAIT);
    let out = Command::new(bin())
        .args(["connect", "--connect", &game, "--dtls", "--ca", ca])
        .args(["--hostname", "localhost", "--timeout", "3"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let m = parse(&scrape(&http).2);
    assert_eq!(get(&m, "enet_dtls_peers_connected"), 1.0);
    assert_eq!(get(&m, "enet_dtls_dtls_handshakes_completed_total"), 1.0);
    // The member still chats.
    writeln!(a.child.stdin.as_mut().unwrap(), "after").unwrap();
    a.expect_line(&format!("{id}: after"), WAIT);
}
