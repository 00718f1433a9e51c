//! Rust <-> Rust ENet over real loopback sockets: our client (the library's blocking
//! `EnetHost`) runs the full interop scenario against `enet-dtls enet-echo`, over IPv4 and
//! IPv6 (`::1`), plain and with checksum + range coder.

mod common;
#[path = "enet_peers/scenario.rs"]
mod scenario;

use std::process::Command;
use std::time::Duration;

use common::{bin, listening_addr, Proc};
use scenario::{Options, CONNECT_DATA};

fn run(listen: &str, bind: &str, opts: Options) {
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", listen])
        .args(opts.echo_flags());
    let mut echo = Proc::spawn("enet-echo", cmd);
    let addr = listening_addr(&echo.expect_line("LISTENING", Duration::from_secs(10)));
    assert_ne!(addr.port(), 0, "LISTENING must print the real port");
    let lines = scenario::run_client(bind.parse().unwrap(), addr, opts)
        .unwrap_or_else(|e| panic!("our client against our echo on {addr}: {e}"));
    assert_eq!(
        lines,
        [
            "CONNECTED",
            "OK basic 48",
            "OK big 1048576",
            "OK ordered 10000",
            "DISCONNECTED",
            "PASS"
        ]
    );
    let connect = echo.expect_line("CONNECT ", Duration::from_secs(10));
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "{connect}"
    );
    let client = connect.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        echo.expect_line("DISCONNECT", Duration::from_secs(10)),
        format!("DISCONNECT {client}")
    );
}

#[test]
fn ipv4_plain() {
    run("127.0.0.1:0", "127.0.0.1:0", Options::default());
}

#[test]
fn ipv6_plain() {
    run("[::1]:0", "[::1]:0", Options::default());
}

#[test]
fn ipv4_checksum_and_range_coder() {
    run(
        "127.0.0.1:0",
        "127.0.0.1:0",
        Options {
            checksum: true,
            compress: true,
        },
    );
}

#[test]
fn ipv6_checksum_and_range_coder() {
    run(
        "[::1]:0",
        "[::1]:0",
        Options {
            checksum: true,
            compress: true,
        },
    );
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--listen", "127.0.0.1:0", "--max-peers", "0"],
            "--max-peers",
        ),
        (
            &["--listen", "127.0.0.1:0", "--max-peers-per-address", "0"],
            "--max-peers-per-address",
        ),
        (
            &["--listen", "127.0.0.1:0", "--channels", "256"],
            "--channels",
        ),
        (
            &["--listen", "127.0.0.1:0", "--compress", "zstd"],
            "range-coder",
        ),
        (&["--listen", "not-an-address"], "--listen"),
    ];
    for (args, needle) in cases {
        let out = Command::new(bin())
            .arg("enet-echo")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: stderr does not mention {needle}: {err}"
        );
    }
}

#[test]
fn listen_on_a_busy_port_fails_with_the_address() {
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(bin())
        .args(["enet-echo", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}
