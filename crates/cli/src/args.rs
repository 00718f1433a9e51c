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
