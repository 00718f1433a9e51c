//! ENet over DTLS next to plain ENet, beyond wall-clock rates: the CPU time each side spends
//! per unit of work (per echoed message, per MiB), and the **cipher bound**: how close ENet
//! over DTLS could come to plain ENet if the only added cost were the AEAD itself (sealing
//! each datagram on one side and opening it on the other), from `openssl speed -evp <the
//! negotiated cipher> -bytes <the mean datagram size>` run in the same bench.
//!
//! Both hosts run in one process (the client on the bench's main thread, the server on its
//! own thread), so the CPU times are per thread: `/proc/self/task/TID/schedstat` (nanoseconds
//! on a CPU), read just before and just after the throughput phase. The datagram counts and
//! sizes are the client host's ENet statistics over the same phase (loopback loses nothing,
//! so what the client sent is what the server received, and the other way round).

use std::process::{Command, Stdio};

use enet_dtls::enet_proto::HostStats;
use serde_json::{json, Value};

use super::scale::schedstat_ns;
use super::{median_of, num};

/// This thread's id (Linux: from the `/proc/thread-self` link, `PID/task/TID`).
pub(super) fn current_tid() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Nanoseconds thread `tid` of this process has spent on a CPU.
pub(super) fn thread_cpu_ns(tid: u64) -> Option<u64> {
    schedstat_ns(format!("/proc/self/task/{tid}/schedstat"))
}

/// What one throughput phase cost: wall time, both threads' CPU, the units of work done
/// (messages or MiB) and the datagrams both ways.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cost {
    pub(super) wall_s: f64,
    pub(super) server_cpu_s: f64,
    pub(super) client_cpu_s: f64,
    pub(super) units: f64,
    /// Datagrams client to server, and their bytes (ENet datagram sizes, before DTLS).
    pub(super) c2s: f64,
    pub(super) c2s_bytes: f64,
    /// Datagrams server to client, and their bytes.
    pub(super) s2c: f64,
    pub(super) s2c_bytes: f64,
    /// The negotiated DTLS suite (ENet over DTLS only).
    pub(super) suite: Option<&'static str>,
}

impl Cost {
    /// Per-field median of several rounds.
    pub(super) fn median(rounds: &[Cost]) -> Option<Cost> {
        if rounds.is_empty() {
            return None;
        }
        let m = |f: fn(&Cost) -> f64| median_of(rounds.iter().map(f).collect());
        Some(Cost {
            wall_s: m(|c| c.wall_s),
            server_cpu_s: m(|c| c.server_cpu_s),
            client_cpu_s: m(|c| c.client_cpu_s),
            units: m(|c| c.units),
            c2s: m(|c| c.c2s),
            c2s_bytes: m(|c| c.c2s_bytes),
            s2c: m(|c| c.s2c),
            s2c_bytes: m(|c| c.s2c_bytes),
            suite: rounds.iter().find_map(|c| c.suite),
        })
    }

    fn rate(&self) -> f64 {
        self.units / self.wall_s
    }

    fn mean_c2s(&self) -> f64 {
        self.c2s_bytes / self.c2s.max(1.0)
    }

    fn mean_s2c(&self) -> f64 {
        self.s2c_bytes / self.s2c.max(1.0)
    }
}

/// Measures one phase: [`Probe::start`] before it, [`Probe::finish`] after.
pub(super) struct Probe {
    server_tid: Option<u64>,
    client_tid: Option<u64>,
    server_cpu: Option<u64>,
    client_cpu: Option<u64>,
    stats: HostStats,
    start: std::time::Instant,
}

impl Probe {
    /// `server_tid`: the server thread; `client`: the client host's statistics now.
    pub(super) fn start(server_tid: Option<u64>, client: HostStats) -> Probe {
        let client_tid = current_tid();
        Probe {
            server_tid,
            client_tid,
            server_cpu: server_tid.and_then(thread_cpu_ns),
            client_cpu: client_tid.and_then(thread_cpu_ns),
            stats: client,
            start: std::time::Instant::now(),
        }
    }

    /// The cost of the phase that did `units` of work; `client`: the client host's statistics now.
    pub(super) fn finish(self, units: f64, client: HostStats) -> Cost {
        let wall_s = self.start.elapsed().as_secs_f64();
        let cpu =
            |tid: Option<u64>, before: Option<u64>| match (tid.and_then(thread_cpu_ns), before) {
                (Some(after), Some(before)) => after.saturating_sub(before) as f64 / 1e9,
                _ => f64::NAN,
            };
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        Cost {
            wall_s,
            server_cpu_s: cpu(self.server_tid, self.server_cpu),
            client_cpu_s: cpu(self.client_tid, self.client_cpu),
            units,
            c2s: d(client.packets_sent, self.stats.packets_sent),
            c2s_bytes: d(client.bytes_sent, self.stats.bytes_sent),
            s2c: d(client.packets_received, self.stats.packets_received),
            s2c_bytes: d(client.bytes_received, self.stats.bytes_received),
            suite: None,
        }
    }
}

/// The `openssl speed -evp` name of an OpenSSL DTLS suite's AEAD (`None` for other suites).
pub(super) fn speed_name(suite: &str) -> Option<&'static str> {
    if suite.contains("AES128-GCM") {
        Some("aes-128-gcm")
    } else if suite.contains("AES256-GCM") {
        Some("aes-256-gcm")
    } else if suite.contains("CHACHA20-POLY1305") {
        Some("chacha20-poly1305")
    } else {
        None
    }
}

/// Nanoseconds per AEAD operation on `bytes` bytes, from `openssl speed -seconds 1 -evp NAME
/// -bytes N` (its last line: `AES-128-GCM  2706775.40k`, thousands of bytes per second).
pub(super) fn aead_ns(name: &str, bytes: usize) -> Result<f64, String> {
    let bytes = bytes.max(16);
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "1", "-evp", name, "-bytes"])
        .arg(bytes.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl speed exited with {}", out.status));
    }
    parse_speed_line(&String::from_utf8_lossy(&out.stdout), bytes)
}

/// ns per operation from `openssl speed -evp`'s last non-empty line (one block size).
fn parse_speed_line(text: &str, bytes: usize) -> Result<f64, String> {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("openssl speed printed nothing")?;
    let k = line
        .split_whitespace()
        .last()
        .and_then(|w| w.strip_suffix('k'))
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|k| k.is_finite() && *k > 0.0)
        .ok_or_else(|| format!("no rate in {line:?}"))?;
    Ok(bytes as f64 / (k * 1000.0) * 1e9)
}

/// One part (small messages or transfer): plain ENet and ENet over DTLS, and the AEAD costs at
/// the plain run's mean datagram sizes.
#[derive(Debug, Clone)]
pub(super) struct PartCost {
    pub(super) plain: Cost,
    pub(super) dtls: Cost,
    /// ns per AEAD operation at the mean client-to-server and server-to-client datagram sizes.
    pub(super) aead: Result<(f64, f64), String>,
}

/// What the report derives from a [`PartCost`].
struct Derived {
    rate_ratio: f64,
    server_cpu_ratio: f64,
    client_cpu_ratio: f64,
    /// Server CPU per unit if the only added cost were the AEAD (plain + seal/open), and the
    /// resulting floor of the server CPU ratio.
    server_floor_ratio: f64,
    client_floor_ratio: f64,
    /// The best rate ratio if the only added cost were the AEAD of the busier side.
    rate_bound: f64,
}

impl PartCost {
    /// Measures the AEAD of the suite the DTLS run negotiated at the plain run's mean
    /// datagram sizes.
    pub(super) fn new(plain: Cost, dtls: Cost) -> PartCost {
        let suite = dtls.suite;
        let aead = match suite.and_then(speed_name) {
            Some(name) => aead_ns(name, plain.mean_c2s() as usize)
                .and_then(|c2s| Ok((c2s, aead_ns(name, plain.mean_s2c() as usize)?))),
            None => Err(format!("no AEAD to time for suite {suite:?}")),
        };
        PartCost { plain, dtls, aead }
    }

    fn derived(&self) -> Option<Derived> {
        let (p, d) = (&self.plain, &self.dtls);
        let (c2s_ns, s2c_ns) = *self.aead.as_ref().ok()?;
        // Each datagram is sealed by its sender and opened by its receiver (GCM and
        // ChaCha20-Poly1305 open at about the speed they seal): each side seals what it
        // sends and opens what it receives, the same AEAD work on both sides.
        let aead_s = (p.c2s * c2s_ns + p.s2c * s2c_ns) / 1e9;
        let (server_aead_s, client_aead_s) = (aead_s, aead_s);
        Some(Derived {
            rate_ratio: d.rate() / p.rate(),
            server_cpu_ratio: (d.server_cpu_s / d.units) / (p.server_cpu_s / p.units),
            client_cpu_ratio: (d.client_cpu_s / d.units) / (p.client_cpu_s / p.units),
            server_floor_ratio: (p.server_cpu_s + server_aead_s) / p.server_cpu_s,
            client_floor_ratio: (p.client_cpu_s + client_aead_s) / p.client_cpu_s,
            rate_bound: p.wall_s / (p.wall_s + server_aead_s.max(client_aead_s)),
        })
    }
}

/// The table section: `unit` is `msg` or `MiB`, `scale`/`scale_unit` turn seconds per unit
/// into what is printed (1e6 and `us`, 1e3 and `ms`).
pub(super) fn table(
    title: &str,
    part: &PartCost,
    unit: &str,
    rate_unit: &str,
    scale: f64,
    scale_unit: &str,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "\n== {title}: CPU per {unit} and the cipher bound");
    let _ = writeln!(
        s,
        "{:<10} {:>12} {:>16} {:>16} {:>10} {:>10} {:>10}",
        "WORKLOAD",
        rate_unit,
        format!("SERVER {scale_unit}/{unit}"),
        format!("CLIENT {scale_unit}/{unit}"),
        "DGRAMS",
        "C2S_BYTES",
        "S2C_BYTES"
    );
    for (name, c) in [("enet", &part.plain), ("enet+dtls", &part.dtls)] {
        let _ = writeln!(
            s,
            "{name:<10} {:>12.1} {:>16.3} {:>16.3} {:>10.0} {:>10.0} {:>10.0}",
            c.rate(),
            c.server_cpu_s / c.units * scale,
            c.client_cpu_s / c.units * scale,
            c.c2s + c.s2c,
            c.mean_c2s(),
            c.mean_s2c()
        );
    }
    match (&part.aead, part.derived()) {
        (Ok((c2s, s2c)), Some(d)) => {
            let _ = writeln!(
                s,
                "AEAD {} (openssl speed, same run): {c2s:.0} ns per {:.0}-byte datagram, {s2c:.0} ns per {:.0}-byte one",
                part.dtls.suite.unwrap_or("?"),
                part.plain.mean_c2s(),
                part.plain.mean_s2c()
            );
            let _ = writeln!(
                s,
                "enet+dtls / enet: rate {:.3} (cipher bound {:.3}), server CPU/{unit} {:.3} (cipher floor {:.3}), client CPU/{unit} {:.3} (floor {:.3})",
                d.rate_ratio,
                d.rate_bound,
                d.server_cpu_ratio,
                d.server_floor_ratio,
                d.client_cpu_ratio,
                d.client_floor_ratio
            );
        }
        (Err(why), _) => {
            let _ = writeln!(s, "cipher bound: n/a ({why})");
        }
        (Ok(_), None) => {
            let _ = writeln!(s, "cipher bound: n/a");
        }
    }
    s
}

/// The JSON of one part.
pub(super) fn json(part: &PartCost) -> Value {
    let cost = |c: &Cost| {
        json!({
            "wall_s": num(c.wall_s),
            "units": num(c.units),
            "server_cpu_s": num(c.server_cpu_s),
            "client_cpu_s": num(c.client_cpu_s),
            "datagrams_c2s": num(c.c2s),
            "datagrams_s2c": num(c.s2c),
            "mean_bytes_c2s": num(c.mean_c2s()),
            "mean_bytes_s2c": num(c.mean_s2c()),
        })
    };
    let mut v = json!({
        "enet": cost(&part.plain),
        "enet+dtls": cost(&part.dtls),
        "suite": part.dtls.suite,
    });
    match (&part.aead, part.derived()) {
        (Ok((c2s, s2c)), Some(d)) => {
            v["aead_ns_c2s"] = num(*c2s);
            v["aead_ns_s2c"] = num(*s2c);
            v["rate_ratio"] = num(d.rate_ratio);
            v["rate_cipher_bound"] = num(d.rate_bound);
            v["server_cpu_ratio"] = num(d.server_cpu_ratio);
            v["server_cpu_cipher_floor"] = num(d.server_floor_ratio);
            v["client_cpu_ratio"] = num(d.client_cpu_ratio);
            v["client_cpu_cipher_floor"] = num(d.client_floor_ratio);
        }
        (Err(why), _) => v["cipher_bound_skipped"] = json!(why),
        (Ok(_), None) => v["cipher_bound_skipped"] = json!("incomplete"),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_lines_are_parsed() {
        let text = "The 'numbers' are in 1000s of bytes per second processed.\n\
                    type           1200 bytes\n\
                    AES-128-GCM    2400000.00k\n";
        // 1200 bytes at 2.4e9 bytes/s: 500 ns.
        assert!((parse_speed_line(text, 1200).unwrap() - 500.0).abs() < 1e-6);
        assert!(parse_speed_line("", 10).is_err());
        assert!(parse_speed_line("AES-128-GCM 0.00k\n", 10).is_err());
    }

    #[test]
    fn suites_map_to_their_aead() {
        assert_eq!(
            speed_name("ECDHE-ECDSA-AES128-GCM-SHA256"),
            Some("aes-128-gcm")
        );
        assert_eq!(
            speed_name("ECDHE-RSA-AES256-GCM-SHA384"),
            Some("aes-256-gcm")
        );
        assert_eq!(
            speed_name("ECDHE-RSA-CHACHA20-POLY1305"),
            Some("chacha20-poly1305")
        );
        assert_eq!(speed_name("ECDHE-RSA-AES256-SHA384"), None);
    }

    #[test]
    fn the_bound_adds_only_the_aead() {
        let plain = Cost {
            wall_s: 1.0,
            server_cpu_s: 0.5,
            client_cpu_s: 0.8,
            units: 100.0,
            c2s: 1000.0,
            c2s_bytes: 1_000_000.0,
            s2c: 1000.0,
            s2c_bytes: 100_000.0,
            suite: Some("ECDHE-ECDSA-AES128-GCM-SHA256"),
        };
        let part = PartCost {
            plain,
            dtls: Cost {
                wall_s: 2.0,
                ..plain
            },
            aead: Ok((200_000.0, 100_000.0)),
        };
        let d = part.derived().unwrap();
        // 1000 x 200 us + 1000 x 100 us = 0.3 s of AEAD on each side.
        assert!((d.server_floor_ratio - 1.6).abs() < 1e-9);
        assert!((d.rate_bound - 1.0 / 1.3).abs() < 1e-9);
        assert!((d.rate_ratio - 0.5).abs() < 1e-9);
    }
}
