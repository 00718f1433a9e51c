//! Runs the real C ENet library (libenet-dev) through `codec_helper.c`, compiled with gcc at
//! test time, and builds the shared input corpus for the `c_compat_*` tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Is this run in CI (`CI=true`)? Then a missing C toolchain or libenet is a failure, never a
/// skip. (Same rule as `crates/cli/tests/common/mod.rs`.)
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

fn missing(what: &str) -> Option<PathBuf> {
    if in_ci() {
        panic!("C ENet interop test needs {what} (CI=true): install gcc and libenet-dev");
    }
    eprintln!("SKIP: C ENet interop test needs {what}; install gcc and libenet-dev");
    None
}

fn build() -> Option<PathBuf> {
    let gcc_found = Command::new("gcc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !gcc_found {
        return missing("gcc");
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/codec_helper.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("enet-c-helper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create helper build dir");
    let exe = dir.join("codec_helper");
    let out = Command::new("gcc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&exe)
        .arg(&source)
        .arg("-lenet")
        .output()
        .expect("run gcc");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("enet/enet.h") || stderr.contains("-lenet") {
            return missing(&format!("libenet-dev (gcc said: {})", stderr.trim()));
        }
        panic!("compiling {} failed:\n{stderr}", source.display());
    }
    Some(exe)
}

/// Path of the compiled helper, built once per test binary; `None` = skip (outside CI only).
pub fn helper() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(build).as_deref()
}

/// Runs the helper in `mode` over `(limit, input)` records; returns one output per record
/// (empty where the C function returned 0).
pub fn run(exe: &Path, mode: &str, records: &[(usize, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut framed = Vec::new();
    for (limit, data) in records {
        framed.extend_from_slice(&u32::try_from(*limit).unwrap().to_be_bytes());
        framed.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(data);
    }
    let mut child = Command::new(exe)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn C helper");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&framed).expect("write to C helper");
    });
    let mut raw = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut raw)
        .expect("read C helper output");
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "C helper `{mode}` failed: {status}");
    let mut outputs = Vec::with_capacity(records.len());
    let mut rest = &raw[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        outputs.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    assert_eq!(
        outputs.len(),
        records.len(),
        "C helper `{mode}` answered too few records"
    );
    outputs
}

/// Varied inputs, each with a name for failure messages: random bytes of many lengths
/// (fixed seeds), English text, zeros, every single byte value, small-alphabet data like ENet
/// command streams, long runs (rescaling) and inputs long enough to refill the symbol arena.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let mut cases = Vec::new();
    for len in (1..=64).chain([100, 255, 256, 500, 1000, 1400, 4096]) {
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        cases.push((format!("random{len}"), data));
    }
    let text = "ENet provides a relatively thin, simple and robust network communication layer \
                on top of UDP. The primary feature it provides is optional reliable, in-order \
                delivery of packets. ";
    for len in [1, 2, 10, 60, 300, 1400, 4096] {
        let data: Vec<u8> = text.bytes().cycle().take(len).collect();
        cases.push((format!("text{len}"), data));
    }
    for len in [1, 2, 3, 10, 100, 1000, 4096] {
        cases.push((format!("zeros{len}"), vec![0; len]));
        cases.push((format!("ones{len}"), vec![0xFF; len]));
    }
    for b in 0..=255u8 {
        cases.push((format!("byte{b:02x}"), vec![b]));
    }
    for (i, alphabet) in [2u8, 4, 16, 40].into_iter().enumerate() {
        for len in [20, 200, 1200, 4096] {
            let data: Vec<u8> = (0..len)
                .map(|_| 0x40 + rng.gen_range(0..alphabet))
                .collect();
            cases.push((format!("alphabet{i}-{len}"), data));
        }
    }
    // Structured, header-like data: counters, small fields and payload.
    let mut structured = Vec::new();
    for seq in 0u16..300 {
        structured.extend_from_slice(&[0x86, 0x01]);
        structured.extend_from_slice(&seq.to_be_bytes());
        structured.extend_from_slice(&[0x00, 0x05]);
        structured.extend_from_slice(b"hello");
    }
    cases.push(("structured".into(), structured));
    // Long runs push counts and totals past the rescale thresholds; long random input makes
    // the model restart when its 4096-node arena fills.
    let mut runs = Vec::new();
    for b in 0..40u8 {
        runs.extend_from_slice(&[b.wrapping_mul(37); 300]);
    }
    cases.push(("runs".into(), runs));
    for (i, len) in [8000usize, 20000].into_iter().enumerate() {
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        cases.push((format!("long-random{i}"), data));
    }
    let long_text: Vec<u8> = text.bytes().cycle().take(30000).collect();
    cases.push(("long-text".into(), long_text));
    cases
}
