//! Value parsers shared by the subcommands' arguments (`clap` `value_parser`s).
//!
//! A bad value is refused while the command line is parsed, before a command prints or writes
//! anything, with a message that names the allowed range: `error: invalid value 'nan' for
//! '--timeout <SECS>': ...` and exit status 2.

use std::net::IpAddr;

/// The longest duration accepted in seconds (365 days): longer is surely a typo, and every
/// deadline computed from it stays far from `Instant`'s overflow.
pub(crate) const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// The longest certificate validity accepted by `keygen --days` (100 years).
pub(crate) const MAX_DAYS: u32 = 36_500;

/// A duration in seconds (`--timeout SECS`): a finite number greater than 0 and at most
/// [`MAX_SECONDS`]; fractions are allowed (`0.5`). Returned as `f64` seconds.
pub(crate) fn seconds(text: &str) -> Result<f64, String> {
    let range = format!("a number of seconds greater than 0 and at most {MAX_SECONDS} (365 days)");
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number: expected {range}"))?;
    if !value.is_finite() || value <= 0.0 || value > MAX_SECONDS {
        return Err(format!("out of range: expected {range}"));
    }
    Ok(value)
}

/// A certificate validity in whole days (`keygen --days N`): 1 to [`MAX_DAYS`].
pub(crate) fn days(text: &str) -> Result<u32, String> {
    let range = format!("a whole number of days from 1 to {MAX_DAYS}");
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number: expected {range}"))?;
    u32::try_from(value)
        .ok()
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .ok_or_else(|| format!("out of range: expected {range}"))
}

/// The longest delay accepted in milliseconds (`netsim --delay` and friends): 60 s.
pub(crate) const MAX_MILLIS: u64 = 60_000;

/// A probability (`netsim --loss P`): a number from 0 to 1 (`0.1`, `1e-3`).
pub(crate) fn probability(text: &str) -> Result<f64, String> {
    let range = "a probability from 0 to 1 (0.1 is 10%)";
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number: expected {range}"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("out of range: expected {range}"));
    }
    Ok(value)
}

/// A delay in whole milliseconds (`netsim --delay MS`): 0 to [`MAX_MILLIS`].
pub(crate) fn millis(text: &str) -> Result<u64, String> {
    let range = format!("a whole number of milliseconds from 0 to {MAX_MILLIS}");
    let value: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number: expected {range}"))?;
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_MILLIS)
        .ok_or_else(|| format!("out of range: expected {range}"))
}

/// A socket address `ADDR:PORT` (`127.0.0.1:7777`, `[::1]:0`, `localhost:7777`); a host name
/// is resolved and its first address taken. Port 0 is allowed (a listening address).
pub(crate) fn socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected ADDR:PORT (e.g. 127.0.0.1:7777 or [::1]:7777): no port".into());
    };
    if host.is_empty() {
        return Err("expected ADDR:PORT: the address is empty".into());
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "expected ADDR:PORT: {port:?} is not a port (0 to 65535)"
        ));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// [`socket_addr`] with a real port (not 0): where datagrams are sent.
pub(crate) fn socket_addr_with_port(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr = socket_addr(text)?;
    if addr.port() == 0 {
        return Err("port 0 cannot be sent to: give the server's real port".into());
    }
    if addr.ip().is_unspecified() {
        return Err(format!(
            "{} is the unspecified address, not a destination: give the server's address",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// A host name for a certificate, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostName {
    /// A DNS name (`localhost`, `game.example`, `*.game.example`), as given.
    Dns(String),
    /// An IPv4 or IPv6 address (IPv6 may be written in brackets).
    Ip(IpAddr),
}

/// Parses a DNS name or an IP address, as a certificate's subject alternative name.
///
/// A DNS name is at most 253 bytes of dot-separated labels of 1 to 63 letters, digits and
/// hyphens (no hyphen first or last); the first label may be `*` (a wildcard). A name whose
/// last label is all digits (`1.2.3.999`) or that contains `:` is taken as a mistyped IP
/// address and refused as such, never as a DNS name.
pub(crate) fn host_name(text: &str) -> Result<HostName, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(HostName::Ip(ip));
    }
    if bare.contains(':') {
        return Err("not a valid IPv6 address".into());
    }
    if text.is_empty() {
        return Err("empty: expected a DNS name or an IP address".into());
    }
    if text.len() > 253 {
        return Err(format!(
            "a DNS name is at most 253 bytes, this one has {}",
            text.len()
        ));
    }
    let labels: Vec<&str> = text.split('.').collect();
    if labels
        .last()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("not a valid IPv4 address (and a DNS name cannot end in a number)".into());
    }
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" && labels.len() > 1 {
            continue;
        }
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "not a DNS name or an IP address: the label {label:?} must be 1 to 63 letters, \
                 digits or '-' (not first or last), and only a whole first label may be '*'"
            ));
        }
    }
    Ok(HostName::Dns(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_positive_and_bounded() {
        assert_eq!(seconds("0.5"), Ok(0.5));
        assert_eq!(seconds("30"), Ok(30.0));
        assert_eq!(seconds("31536000"), Ok(MAX_SECONDS));
        for bad in [
            "0", "-1", "nan", "NaN", "inf", "-inf", "1e30", "31536001", "", "ten",
        ] {
            let err = seconds(bad).unwrap_err();
            assert!(err.contains("greater than 0 and at most"), "{bad}: {err}");
        }
    }

    #[test]
    fn days_are_whole_and_in_range() {
        assert_eq!(days("1"), Ok(1));
        assert_eq!(days("36500"), Ok(MAX_DAYS));
        for bad in ["0", "-1", "36501", "99999999999", "1.5", "", "a year"] {
            let err = days(bad).unwrap_err();
            assert!(err.contains("from 1 to 36500"), "{bad}: {err}");
        }
    }

    #[test]
    fn probabilities_millis_and_addresses() {
        assert_eq!(probability("0"), Ok(0.0));
        assert_eq!(probability("0.1"), Ok(0.1));
        assert_eq!(probability("1"), Ok(1.0));
        for bad in ["-0.1", "1.5", "nan", "inf", "", "ten"] {
            assert!(
                probability(bad).unwrap_err().contains("from 0 to 1"),
                "{bad}"
            );
        }
        assert_eq!(millis("0"), Ok(0));
        assert_eq!(millis("60000"), Ok(MAX_MILLIS));
        for bad in ["-1", "60001", "1.5", "", "99999999999999999999999"] {
            assert!(millis(bad).unwrap_err().contains("milliseconds"), "{bad}");
        }
        assert_eq!(
            socket_addr("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(socket_addr("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(socket_addr("localhost:80").is_ok());
        assert!(socket_addr("127.0.0.1").unwrap_err().contains("no port"));
        assert!(socket_addr("127.0.0.1:99999")
            .unwrap_err()
            .contains("not a port"));
        assert!(socket_addr(":80").unwrap_err().contains("empty"));
        assert!(socket_addr_with_port("127.0.0.1:0")
            .unwrap_err()
            .contains("port 0"));
        assert!(socket_addr_with_port("0.0.0.0:9")
            .unwrap_err()
            .contains("unspecified"));
    }

    #[test]
    fn host_names_are_dns_names_or_ip_addresses() {
        assert_eq!(
            host_name("127.0.0.1"),
            Ok(HostName::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(host_name("[::1]"), Ok(HostName::Ip("::1".parse().unwrap())));
        assert_eq!(host_name("::1"), Ok(HostName::Ip("::1".parse().unwrap())));
        for dns in [
            "localhost",
            "game.example",
            "*.game.example",
            "a-b.c0",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(host_name(dns), Ok(HostName::Dns(dns.into())), "{dns}");
        }
        let ip_like = ["1.2.3.999", "256.0.0.1", "1.2.3", "999"];
        for bad in ip_like {
            assert!(host_name(bad).unwrap_err().contains("IPv4"), "{bad}");
        }
        assert!(host_name("fe80::zz").unwrap_err().contains("IPv6"));
        for bad in [
            "bad name!",
            "",
            "a..b",
            "-a.example",
            "a-.example",
            "*",
            "a.*.example",
            "x_y.example",
            "trailing.dot.",
        ] {
            assert!(host_name(bad).is_err(), "{bad} must be refused");
        }
        assert!(host_name(&"a".repeat(64)).is_err());
        assert!(host_name(&["a"; 127].join(".")).is_ok(), "253 bytes");
        assert!(host_name(&["a"; 128].join(".")).is_err(), "255 bytes");
    }
}
