//! `enet-dtls bench`: the command runs every workload (with the real C ENet anchor built from
//! `bench_peers/enet_anchor.c` by gcc against libenet) and reports them as a table or as JSON.
//!
//! These are not timed tests: they check that every workload ran and that the report is well
//! formed (positive, finite numbers), never how fast anything was.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::bin;

/// Small runs: the point is the report, not the numbers.
const QUICK: [&str; 8] = [
    "--messages",
    "300",
    "--pings",
    "20",
    "--window",
    "16",
    "--rounds",
    "1",
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
    args.extend(["--rounds", "2", "--c-anchor", anchor]);
    let stdout = ok_stdout(&bench(&args));

    assert!(
        stdout.contains("300 messages of 64 bytes, window 16, 20 pings, median of 2 rounds"),
        "header names the parameters:\n{stdout}"
    );
    for workload in ["raw-udp", "enet", "c-enet", "dtls"] {
        let fields = row(&stdout, workload);
        assert_eq!(fields.len(), 3, "{workload}: msgs/s, rtt, lost:\n{stdout}");
        positive(fields[0], &format!("{workload} msgs/s"));
        positive(fields[1], &format!("{workload} rtt"));
        let lost: u64 = fields[2].parse().expect("lost is an integer");
        assert!(lost < 600, "{workload}: lost {lost} of 2 x 300 messages");
    }
    for ratio in ["enet / c-enet", "enet / raw-udp", "dtls / raw-udp"] {
        let fields = row(&stdout, ratio);
        positive(fields[0], &format!("{ratio} msgs/s ratio"));
        positive(fields[1], &format!("{ratio} rtt ratio"));
    }
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
    let Json::Object(top) = parse_json(line) else {
        panic!("not an object: {line}")
    };
    assert_eq!(top["messages"], Json::Number(300.0));
    assert_eq!(top["size"], Json::Number(200.0));
    assert_eq!(top["window"], Json::Number(16.0));
    assert_eq!(top["pings"], Json::Number(20.0));
    assert_eq!(top["rounds"], Json::Number(1.0));
    let Json::Object(workloads) = &top["workloads"] else {
        panic!("workloads is not an object: {line}")
    };
    for name in ["raw-udp", "enet", "c-enet", "dtls"] {
        let Json::Object(w) = &workloads[name] else {
            panic!("{name} is not an object: {line}")
        };
        for key in ["msgs_per_s", "rtt_us"] {
            let Json::Number(x) = w[key] else {
                panic!("{name}.{key} is not a number: {line}")
            };
            assert!(x > 0.0, "{name}.{key} = {x}");
        }
    }
    let Json::Object(ratios) = &top["ratios"] else {
        panic!("ratios is not an object: {line}")
    };
    for name in ["enet/c-enet", "enet/raw-udp", "dtls/raw-udp"] {
        let Json::Object(r) = &ratios[name] else {
            panic!("ratio {name} is not an object: {line}")
        };
        for key in ["msgs_per_s", "rtt"] {
            let Json::Number(x) = r[key] else {
                panic!("{name}.{key} is not a number: {line}")
            };
            assert!(x > 0.0, "ratio {name}.{key} = {x}");
        }
    }
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
    assert_eq!(row(&stdout, "enet / c-enet"), ["n/a", "n/a"]);
    // The workloads that need no anchor still ran.
    positive(row(&stdout, "enet")[0], "enet msgs/s");
    positive(row(&stdout, "enet / raw-udp")[0], "enet / raw-udp");

    let json = ok_stdout(&bench(&[&QUICK[..], &["--json"]].concat()));
    let Json::Object(top) = parse_json(json.trim()) else {
        panic!("not an object: {json}")
    };
    let Json::Object(ratios) = &top["ratios"] else {
        panic!("no ratios: {json}")
    };
    assert_eq!(ratios["enet/c-enet"], Json::Null);
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

// A minimal JSON reader (objects, strings, numbers, null), enough to check the report's
// structure without a JSON dependency.

#[derive(Debug, PartialEq)]
enum Json {
    Object(BTreeMap<String, Json>),
    String(String),
    Number(f64),
    Null,
}

fn parse_json(text: &str) -> Json {
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, p.s.len(), "trailing data after JSON value: {text}");
    v
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i).copied(),
            Some(c),
            "expected {:?} at byte {} of {}",
            c as char,
            self.i,
            String::from_utf8_lossy(self.s)
        );
        self.i += 1;
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Json {
        match self.peek() {
            Some(b'{') => {
                self.eat(b'{');
                let mut map = BTreeMap::new();
                if self.peek() == Some(b'}') {
                    self.eat(b'}');
                    return Json::Object(map);
                }
                loop {
                    let key = self.string();
                    self.eat(b':');
                    let v = self.value();
                    assert!(map.insert(key.clone(), v).is_none(), "duplicate key {key}");
                    if self.peek() == Some(b',') {
                        self.eat(b',');
                    } else {
                        self.eat(b'}');
                        return Json::Object(map);
                    }
                }
            }
            Some(b'"') => Json::String(self.string()),
            Some(b'n') => {
                assert!(self.s[self.i..].starts_with(b"null"), "bad literal");
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                let num = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Number(
                    num.parse()
                        .unwrap_or_else(|e| panic!("bad number {num:?} at byte {start}: {e}")),
                )
            }
        }
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i).expect("unterminated string");
            self.i += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = *self.s.get(self.i).expect("unterminated escape");
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e as char),
                        b'n' => out.push('\n'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            let code = u32::from_str_radix(hex, 16).expect("hex escape");
                            out.push(char::from_u32(code).expect("valid escape"));
                            self.i += 4;
                        }
                        other => panic!("unexpected escape \\{}", other as char),
                    }
                }
                c => {
                    // Multi-byte UTF-8: copy the raw bytes through.
                    let len = match c {
                        0xF0.. => 4,
                        0xE0.. => 3,
                        0xC0.. => 2,
                        _ => 1,
                    };
                    let start = self.i - 1;
                    self.i = start + len;
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).expect("utf-8"));
                }
            }
        }
    }
}
