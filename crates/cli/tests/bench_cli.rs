//! `enet-dtls bench`: the command runs every workload (with the real C ENet anchor built from
//! `bench_peers/enet_anchor.c` by gcc against libenet) and reports them as a table or as JSON.
//!
//! These are not timed tests: they check that every workload ran and that the report is well
//! formed (positive, finite numbers), never how fast anything was.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::bin;
use serde_json::Value;

/// Small runs of the small-message part: the point is the report, not the numbers.
const QUICK: [&str; 10] = [
    "--messages",
    "300",
    "--pings",
    "20",
    "--window",
    "16",
    "--rounds",
    "1",
    "--parts",
    "small",
];

/// The C anchor, compiled once per test run with `gcc ... -lenet -pthread`, or `None` (SKIP)
/// when gcc is missing outside CI.
fn c_anchor() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| common::build_c_enet_program("bench_peers/enet_anchor.c"))
        .clone()
}

fn bench(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("bench")
        .args(args)
        .env_remove("ENET_DTLS_C_ANCHOR")
        .output()
        .expect("run enet-dtls bench")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "bench failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The whitespace-separated fields of the line starting with `label` followed by a space.
fn row<'a>(table: &'a str, label: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| {
            l.strip_prefix(label)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no line for {label:?} in:\n{table}"));
    line[label.len()..].split_whitespace().collect()
}

fn positive(field: &str, what: &str) -> f64 {
    let x: f64 = field
        .parse()
        .unwrap_or_else(|e| panic!("{what}: {field:?} is not a number: {e}"));
    assert!(x.is_finite() && x > 0.0, "{what}: {x} is not positive");
    x
}

#[test]
fn table_has_every_workload_and_positive_ratios() {
    let Some(anchor) = c_anchor() else { return };
    let anchor = anchor.to_str().expect("utf-8 path");
    // Two rounds, so the median path runs too.
    let mut args = QUICK[..6].to_vec();
    args.extend(["--rounds", "2", "--parts", "small", "--c-anchor", anchor]);
    let stdout = ok_stdout(&bench(&args));

    assert!(
        stdout.contains("300 messages of 64 bytes, window 16, 20 pings, median of 2 rounds"),
        "header names the parameters:\n{stdout}"
    );
    for workload in ["raw-udp", "enet", "c-enet", "dtls", "enet+dtls"] {
        let fields = row(&stdout, workload);
        assert_eq!(
            fields.len(),
            4,
            "{workload}: msgs/s, rtt p50, rtt p99, lost:\n{stdout}"
        );
        positive(fields[0], &format!("{workload} msgs/s"));
        let p50 = positive(fields[1], &format!("{workload} rtt p50"));
        let p99 = positive(fields[2], &format!("{workload} rtt p99"));
        assert!(p50 <= p99, "{workload}: p50 {p50} > p99 {p99}");
        let lost: u64 = fields[3].parse().expect("lost is an integer");
        assert!(lost < 600, "{workload}: lost {lost} of 2 x 300 messages");
    }
    for ratio in ["enet / c-enet", "enet / raw-udp", "dtls / raw-udp"] {
        let fields = row(&stdout, ratio);
        positive(fields[0], &format!("{ratio} msgs/s ratio"));
        positive(fields[1], &format!("{ratio} rtt p50 ratio"));
        positive(fields[2], &format!("{ratio} rtt p99 ratio"));
    }
    // ENet over DTLS, with its ratio to plain ENet.
    let fields = row(&stdout, "enet+dtls");
    positive(fields[0], "enet+dtls msgs/s");
    positive(
        row(&stdout, "enet+dtls / enet")[0],
        "enet+dtls / enet msgs/s ratio",
    );
}

#[test]
fn json_is_one_object_with_every_workload_and_ratio() {
    let Some(anchor) = c_anchor() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let json_out = dir.path().join("bench.json");
    let mut args = QUICK.to_vec();
    args.extend(["--size", "200", "--json", "--c-anchor"]);
    args.push(anchor.to_str().expect("utf-8 path"));
    args.extend(["--json-out", json_out.to_str().expect("utf-8 path")]);
    let stdout = ok_stdout(&bench(&args));

    let line = stdout.trim();
    assert_eq!(line.lines().count(), 1, "one JSON line:\n{stdout}");
    let top: Value = serde_json::from_str(line).expect("valid JSON");
    assert_eq!(top["messages"], 300);
    assert_eq!(top["size"], 200);
    assert_eq!(top["window"], 16);
    assert_eq!(top["pings"], 20);
    assert_eq!(top["rounds"], 1);
    for name in ["raw-udp", "enet", "c-enet", "dtls"] {
        for key in ["msgs_per_s", "rtt_us", "rtt_p50_us", "rtt_p99_us"] {
            let x = top["workloads"][name][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}.{key} is not a number: {line}"));
            assert!(x > 0.0, "{name}.{key} = {x}");
        }
    }
    for name in ["enet/c-enet", "enet/raw-udp", "dtls/raw-udp"] {
        for key in ["msgs_per_s", "rtt", "rtt_p50", "rtt_p99"] {
            let x = top["ratios"][name][key]
                .as_f64()
                .unwrap_or_else(|| panic!("ratio {name}.{key} is not a number: {line}"));
            assert!(x > 0.0, "ratio {name}.{key} = {x}");
        }
    }
    // Only the asked part ran.
    assert!(
        top.get("transfer").is_none() && top.get("peers").is_none(),
        "{line}"
    );
    let file = std::fs::read_to_string(&json_out).expect("--json-out file written");
    assert_eq!(file.trim(), line, "--json-out holds the same object");
}

#[test]
fn without_an_anchor_the_c_row_is_skipped_and_its_ratio_is_na() {
    let stdout = ok_stdout(&bench(&QUICK));
    let c_row = row(&stdout, "c-enet").join(" ");
    assert!(
        c_row.starts_with("skipped:") && c_row.contains("ENET_DTLS_C_ANCHOR"),
        "c-enet row says why it was skipped:\n{stdout}"
    );
    assert_eq!(row(&stdout, "enet / c-enet"), ["n/a", "n/a", "n/a"]);
    // The workloads that need no anchor still ran.
    positive(row(&stdout, "enet")[0], "enet msgs/s");
    positive(row(&stdout, "enet / raw-udp")[0], "enet / raw-udp");

    let json = ok_stdout(&bench(&[&QUICK[..], &["--json"]].concat()));
    let top: Value = serde_json::from_str(json.trim()).expect("valid JSON");
    assert_eq!(top["ratios"]["enet/c-enet"], Value::Null, "{json}");
    assert!(top["workloads"]["c-enet"]["skipped"].is_string(), "{json}");
}

#[test]
fn a_missing_anchor_binary_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-anchor");
    let out = bench(&[&QUICK[..], &["--c-anchor", missing.to_str().unwrap()]].concat());
    assert!(!out.status.success(), "must fail: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-anchor") && stderr.contains("cannot start"),
        "stderr names the anchor and why: {stderr}"
    );
}

#[test]
fn out_of_range_arguments_are_refused() {
    for (flag, value) in [
        ("--size", "0"),
        ("--size", "5000"),
        ("--messages", "0"),
        ("--window", "0"),
        ("--peers", "4096"),
        ("--transfer-mib", "0"),
        ("--rpc-clients", "0"),
        ("--rpc-window", "0"),
        ("--parts", "everything"),
    ] {
        let out = bench(&[flag, value]);
        assert!(!out.status.success(), "{flag} {value} must be refused");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: the error names the argument: {stderr}"
        );
    }
}

/// `bench --quick` runs every part to completion (the C anchor as the peers' client and
/// anchor), prints one JSON object with every section, and draws the SVG plot.
#[test]
fn quick_runs_every_part_and_writes_json_and_svg() {
    let Some(anchor) = c_anchor() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("bench.svg");
    let out = bench(&[
        "--quick",
        "--json",
        "--c-anchor",
        anchor.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let stdout = ok_stdout(&out);
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["quick"], true);
    let cpus = v["machine"]["cpus"].as_u64().expect("cpus");
    assert!(cpus >= 1);
    let pos = |x: &Value, what: &str| {
        let n = x
            .as_f64()
            .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
        assert!(n.is_finite() && n > 0.0, "{what} = {n}");
        n
    };
    for w in ["raw-udp", "enet", "c-enet", "dtls"] {
        pos(&v["workloads"][w]["msgs_per_s"], &format!("{w} msgs/s"));
        pos(&v["workloads"][w]["rtt_p99_us"], &format!("{w} p99"));
    }
    pos(
        &v["workloads"]["enet+dtls"]["msgs_per_s"],
        "enet+dtls msgs/s",
    );
    pos(
        &v["ratios"]["enet+dtls/enet"]["msgs_per_s"],
        "enet+dtls/enet",
    );
    for w in ["enet", "c-enet", "enet+dtls"] {
        pos(
            &v["transfer"]["workloads"][w]["mb_per_s"],
            &format!("{w} MB/s"),
        );
    }
    pos(&v["transfer"]["ratios"]["enet/c-enet"], "transfer ratio");
    pos(
        &v["transfer"]["ratios"]["enet+dtls/enet"],
        "transfer DTLS ratio",
    );
    for (cert, clients) in [
        ("rsa2048", 1),
        ("p256", 1),
        ("rsa2048-concurrent", 2),
        ("p256-concurrent", 2),
    ] {
        assert_eq!(
            v["handshakes"][cert]["clients"].as_u64(),
            Some(clients),
            "{cert}: clients (--quick runs 2 at once): {v}"
        );
        pos(
            &v["handshakes"][cert]["per_s"],
            &format!("{cert} handshakes/s"),
        );
        pos(
            &v["handshakes"][cert]["server_cpu_us"],
            &format!("{cert} cpu"),
        );
    }
    pos(
        &v["handshakes"]["openssl_speed"]["rsa2048_sign_per_s"],
        "openssl rsa2048 sign/s",
    );
    let peers = v["peers"]["peers"].as_u64().expect("peer count");
    for side in ["enet", "c-enet"] {
        let s = &v["peers"]["servers"][side];
        assert_eq!(
            s["connected"].as_u64(),
            Some(peers),
            "{side}: every peer: {v}"
        );
        pos(&s["rss_kib"], &format!("{side} rss"));
        assert!(s["idle_cpu_cores"].as_f64().is_some_and(|c| c >= 0.0));
    }
    pos(&v["netsim"]["datagrams_per_s"], "netsim datagrams/s");
    pos(
        &v["netsim"]["cpu_ns_per_datagram"],
        "netsim CPU per datagram",
    );
    // The rpc part: our `serve` (plain and --dtls) and, when Godot runs here (always in CI),
    // Godot 3.2.3's server, with the same clients.
    let rpc = &v["rpc"];
    assert_eq!(rpc["clients"], 4, "{v}");
    let mut servers = vec!["serve", "serve+dtls"];
    if common::require_program("godot3-server") {
        servers.push("godot-3.2.3");
        pos(
            &rpc["ratios"]["serve/godot-3.2.3"]["calls_per_s"],
            "serve/godot calls/s",
        );
        pos(
            &rpc["ratios"]["serve/godot-3.2.3"]["cpu_per_call"],
            "serve/godot CPU per call",
        );
    }
    for server in servers {
        for key in [
            "calls_per_s",
            "receives_per_s",
            "cpu_us_per_call",
            "server_cores",
        ] {
            pos(&rpc["servers"][server][key], &format!("rpc {server} {key}"));
        }
    }

    let svg = std::fs::read_to_string(&svg).expect("--plot wrote the SVG");
    assert!(svg.starts_with("<svg"), "an SVG document");
    for caption in [
        "ping-pong RTT distribution",
        "small reliable messages/s",
        "MB/s",
        "Godot RPCs: send_message calls/s",
    ] {
        assert!(svg.contains(caption), "the plot has {caption:?}");
    }
    for w in ["raw-udp", "c-enet", "dtls", "serve+dtls"] {
        assert!(svg.contains(w), "the plot names {w}");
    }
}

/// A short run of the rpc part only: the rows of `enet-dtls serve` (plain and --dtls) and of
/// Godot 3.2.3's own chat server, each a separate process driven by the same clients.
#[test]
fn rpc_part_has_serve_and_godot_rows_with_positive_figures() {
    if !common::require_program("godot3-server") {
        return;
    }
    let out = bench(&[
        "--quick",
        "--parts",
        "rpc",
        "--messages",
        "300",
        "--rpc-clients",
        "3",
        "--rpc-window",
        "8",
    ]);
    let stdout = ok_stdout(&out);
    assert!(
        stdout.contains("3 clients x 300 send_message(text), 8 in flight each"),
        "the header names the load:\n{stdout}"
    );
    for server in ["serve", "godot-3.2.3", "serve+dtls"] {
        let fields = row(&stdout, server);
        assert_eq!(
            fields.len(),
            4,
            "{server}: calls/s, receives/s, CPU us per call, server cores:\n{stdout}"
        );
        let calls = positive(fields[0], &format!("{server} calls/s"));
        let receives = positive(fields[1], &format!("{server} receives/s"));
        assert!(
            (receives / calls - 3.0).abs() < 0.01,
            "{server}: every call reaches the 3 clients:\n{stdout}"
        );
        positive(fields[2], &format!("{server} CPU per call"));
        positive(fields[3], &format!("{server} server cores"));
    }
    let ratio = row(&stdout, "rpc serve / godot-3.2.3:");
    assert_eq!(ratio[0], "calls/s", "{stdout}");
    positive(ratio[1].trim_end_matches(','), "serve / godot calls/s");
    positive(ratio[6], "serve / godot CPU per call");
    // Only the asked part ran.
    assert!(!stdout.contains("== small"), "{stdout}");
}

/// Without `godot3-server` in `$PATH` the Godot row is skipped with the reason (our rows still
/// run), and with `CI=true` that is an error.
#[test]
fn without_godot_the_rpc_row_is_skipped_and_in_ci_the_part_fails() {
    let empty = tempfile::tempdir().expect("tempdir");
    let run = |ci: bool| {
        let mut c = Command::new(bin());
        c.args(["bench", "--quick", "--parts", "rpc", "--messages", "100"])
            .env("PATH", empty.path())
            .env_remove("CI");
        if ci {
            c.env("CI", "true");
        }
        c.output().expect("run enet-dtls bench")
    };
    let stdout = ok_stdout(&run(false));
    let godot = row(&stdout, "godot-3.2.3").join(" ");
    assert!(
        godot.starts_with("skipped:") && godot.contains("godot3-server is not installed"),
        "the Godot row says why it was skipped:\n{stdout}"
    );
    positive(row(&stdout, "serve")[0], "serve calls/s");
    positive(row(&stdout, "serve+dtls")[0], "serve+dtls calls/s");
    assert_eq!(
        row(&stdout, "rpc serve / godot-3.2.3:"),
        ["n/a"],
        "{stdout}"
    );

    let out = run(true);
    assert!(!out.status.success(), "CI=true without Godot must fail");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("godot3-server") && stderr.contains("CI=true"),
        "the error names the missing peer: {stderr}"
    );
}
