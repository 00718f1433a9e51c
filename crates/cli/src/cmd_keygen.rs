//! `enet-dtls keygen`: a private key and a self-signed certificate for a DTLS server.
//!
//! Writes `DIR/key.pem` and `DIR/cert.pem` with `dtls_proto::keys`. The defaults (RSA 2048, PKCS#1
//! key, CN `localhost`, 365 days) load in Godot 3's `CryptoKey`/`X509Certificate` and
//! `DTLSServer.setup`. The certificate is CA:TRUE, so clients can use `cert.pem` as their
//! `--ca` (a pinned trust anchor). Its subject alternative names are the CN (when it is a host
//! name or an address) plus every `--san`. A CN that is neither (free text such as "My Game")
//! needs at least one `--san`, and a `--san` that is neither (`bad name!`, or `1.2.3.999`, a
//! mistyped address) is refused, so a certificate always names a host clients can verify.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::args::{self, HostName};
use dtls_proto::keys::{
    Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey, SubjectAltName, RSA_KEY_SIZES,
};

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Directory to write key.pem and cert.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Subject common name (1 to 64 bytes). When it is a DNS name or an IP address it is also
    /// the first subject alternative name; any other text (e.g. "My Game") stays CN-only and
    /// then at least one --san is required.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    cn: String,
    /// Extra subject alternative name: a DNS name, or an IPv4/IPv6 address (repeatable).
    #[arg(long = "san", value_name = "NAME", value_parser = args::host_name)]
    sans: Vec<HostName>,
    /// RSA key of this many bits: 2048 (default, what Godot generates), 3072 or 4096.
    #[arg(long, value_name = "BITS", conflicts_with = "ec")]
    rsa: Option<u32>,
    /// ECDSA P-256 key instead of RSA (faster handshakes; Godot 3 loads it too).
    #[arg(long)]
    ec: bool,
    /// Validity in days from now, 1 to 36500.
    #[arg(long, value_name = "N", default_value_t = 365, allow_negative_numbers = true,
          value_parser = args::days)]
    days: u32,
    /// Overwrite key.pem and cert.pem if they exist.
    #[arg(long)]
    force: bool,
}

fn san(name: &HostName) -> SubjectAltName {
    match name {
        HostName::Dns(dns) => SubjectAltName::Dns(dns.clone()),
        HostName::Ip(ip) => SubjectAltName::Ip(*ip),
    }
}

/// The subject alternative names: the CN first when it is a DNS name or an IP address, then
/// every `--san`, without duplicates. A CN that is neither must come with a `--san`, since a
/// certificate without any name clients can verify is a mistake (clients check the SANs).
fn subject_alt_names(cn: &str, sans: &[HostName]) -> Result<Vec<SubjectAltName>, String> {
    if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
        return Err(format!(
            "--cn {cn:?}: a common name is 1 to 64 bytes of printable text"
        ));
    }
    let mut names = Vec::new();
    match args::host_name(cn) {
        Ok(name) => names.push(san(&name)),
        Err(why) if sans.is_empty() => {
            return Err(format!(
                "--cn {cn:?} names no host ({why}), so clients could not verify the \
                 certificate: use a host name or an IP address as --cn, or add --san NAME"
            ))
        }
        Err(_) => {}
    }
    for name in sans.iter().map(san) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
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
    let mut params = CertificateParams::new(a.cn.clone()).validity_days(a.days);
    for name in subject_alt_names(&a.cn, &a.sans)? {
        params = params.subject_alt_name(name);
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

    fn dns(name: &str) -> HostName {
        HostName::Dns(name.into())
    }

    #[test]
    fn the_cn_is_the_first_san_when_it_is_a_host_name() {
        assert_eq!(
            subject_alt_names("game.example", &[dns("alt.example"), dns("game.example")]),
            Ok(vec![
                SubjectAltName::Dns("game.example".into()),
                SubjectAltName::Dns("alt.example".into())
            ])
        );
        assert_eq!(
            subject_alt_names("127.0.0.1", &[]),
            Ok(vec![SubjectAltName::Ip("127.0.0.1".parse().unwrap())])
        );
    }

    #[test]
    fn a_free_form_cn_needs_a_san() {
        assert_eq!(
            subject_alt_names("My Game", &[dns("game.example")]),
            Ok(vec![SubjectAltName::Dns("game.example".into())])
        );
        let err = subject_alt_names("bad name!", &[]).unwrap_err();
        assert!(
            err.contains("\"bad name!\"") && err.contains("--san"),
            "{err}"
        );
        let err = subject_alt_names("1.2.3.999", &[]).unwrap_err();
        assert!(err.contains("IPv4"), "{err}");
        for bad in ["", "tab\there", &"x".repeat(65)] {
            assert!(
                subject_alt_names(bad, &[dns("ok.example")]).is_err(),
                "{bad:?}"
            );
        }
    }
}
