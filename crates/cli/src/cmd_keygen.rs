//! `enet-dtls keygen`: a private key and a self-signed certificate for a DTLS server.
//!
//! Writes `DIR/key.pem` and `DIR/cert.pem` with `dtls_proto::keys`. The defaults (RSA 2048, PKCS#1
//! key, CN `localhost`, 365 days) load in Godot 3's `CryptoKey`/`X509Certificate` and
//! `DTLSServer.setup`. The certificate is CA:TRUE, so clients can use `cert.pem` as their
//! `--ca` (a pinned trust anchor). Its subject alternative names are the CN (when it is a host
//! name or an address) plus every `--san`.
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dtls_proto::keys::{
    Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey, SubjectAltName, RSA_KEY_SIZES,
};

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Directory to write key.pem and cert.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Subject common name; also the first subject alternative name when it is a host name or
    /// an IP address.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    cn: String,
    /// Extra subject alternative name: a DNS name, or an IPv4/IPv6 address (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// RSA key of this many bits: 2048 (default, what Godot generates), 3072 or 4096.
    #[arg(long, value_name = "BITS", conflicts_with = "ec")]
    rsa: Option<u32>,
    /// ECDSA P-256 key instead of RSA (faster handshakes; Godot 3 loads it too).
    #[arg(long)]
    ec: bool,
    /// Validity in days from now.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u32,
    /// Overwrite key.pem and cert.pem if they exist.
    #[arg(long)]
    force: bool,
}

/// A `--san`/`--cn` value as a subject alternative name: an IP address if it parses as one
/// (IPv6 may be written in brackets), a DNS name otherwise.
fn parse_san(name: &str) -> Result<SubjectAltName, String> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SubjectAltName::Ip(ip));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '_'));
    if valid {
        Ok(SubjectAltName::Dns(name.to_string()))
    } else {
        Err(format!(
            "invalid subject alternative name {name:?}: use a DNS name (letters, digits, '-', '.', \
             '*') or an IP address"
        ))
    }
}

fn key_type(a: &KeygenArgs) -> Result<KeyType, String> {
    if a.ec {
        return Ok(KeyType::EcP256);
    }
    let bits = a.rsa.unwrap_or(2048);
    if !RSA_KEY_SIZES.contains(&bits) {
        return Err(format!(
            "unsupported RSA key size {bits}: use --rsa with one of {} (or --ec)",
            RSA_KEY_SIZES.map(|b| b.to_string()).join(", ")
        ));
    }
    Ok(KeyType::Rsa(bits))
}

/// Writes `data` to `path` (mode 0600 for the key on Unix), refusing to overwrite unless `force`.
fn write_new(path: &Path, data: &[u8], private: bool, force: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} already exists (use --force to overwrite it)",
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    #[cfg(unix)]
    if private && force {
        // An existing file keeps its old mode when truncated: tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    }
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn run(a: KeygenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Check every argument before touching the file system.
    let kind = key_type(&a)?;
    if a.days == 0 {
        return Err("--days must be at least 1".into());
    }
    let mut params = CertificateParams::new(a.cn.clone()).validity_days(a.days);
    let mut seen = BTreeSet::new();
    // The CN becomes the first SAN when it is a host name or an address (a free-form CN such as
    // "My Game" stays CN-only); every --san must be valid.
    let cn_san = parse_san(&a.cn).ok();
    let extra: Vec<SubjectAltName> = a
        .sans
        .iter()
        .map(|n| parse_san(n))
        .collect::<Result<_, _>>()?;
    for san in cn_san.into_iter().chain(extra) {
        if seen.insert(format!("{san:?}")) {
            params = params.subject_alt_name(san);
        }
    }
    let key_path = a.out.join("key.pem");
    let cert_path = a.out.join("cert.pem");
    if !a.force {
        for p in [&key_path, &cert_path] {
            if p.exists() {
                return Err(format!(
                    "{} already exists (use --force to overwrite it)",
                    p.display()
                )
                .into());
            }
        }
    }

    let key = PrivateKey::generate(kind)?;
    let cert = Certificate::self_signed(&key, &params)?;
    let format = key.default_format();
    let key_pem = key.to_pem(format)?;
    let cert_pem = cert.to_pem()?;

    std::fs::create_dir_all(&a.out)
        .map_err(|e| format!("cannot create directory {}: {e}", a.out.display()))?;
    write_new(&key_path, &key_pem, true, a.force)?;
    write_new(&cert_path, &cert_pem, false, a.force)?;

    let format_name = match format {
        KeyFormat::Pkcs1 => "PKCS#1",
        KeyFormat::Sec1 => "SEC1",
        KeyFormat::Pkcs8 => "PKCS#8",
        _ => "PEM",
    };
    println!(
        "wrote {} ({} private key, {format_name} PEM, mode 0600)",
        key_path.display(),
        key.describe()
    );
    println!(
        "wrote {} (self-signed, {}, SAN {}, valid until {}, SHA-256 {})",
        cert_path.display(),
        cert.subject(),
        cert.subject_alt_names().join(" "),
        cert.not_after(),
        cert.sha256_fingerprint()?
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_are_ip_addresses_or_dns_names() {
        assert_eq!(
            parse_san("127.0.0.1"),
            Ok(SubjectAltName::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_san("[::1]"),
            Ok(SubjectAltName::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            parse_san("game.example"),
            Ok(SubjectAltName::Dns("game.example".into()))
        );
        assert_eq!(
            parse_san("*.example"),
            Ok(SubjectAltName::Dns("*.example".into()))
        );
        let err = parse_san("bad name").unwrap_err();
        assert!(err.contains("\"bad name\""), "{err}");
        assert!(parse_san("").is_err());
    }
}
