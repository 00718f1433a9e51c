//! Helpers shared by the interop tests: real peers, free ports, processes with deadlines.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Path of the `enet-dtls` binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_enet-dtls"))
}

/// Runs `enet-dtls keygen --out DIR` (RSA 2048, CN localhost) and returns the key and
/// certificate paths it wrote.
pub fn keygen(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let status = Command::new(bin())
        .arg("keygen")
        .arg("--out")
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "keygen failed");
    (dir.join("key.pem"), dir.join("cert.pem"))
}

/// The repository's test fixtures (`fixtures/` at the repository root).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The Godot project the interop tests run (`fixtures/godot`: `project.godot` and the GDScript
/// peers, see `fixtures/README.md`).
pub fn godot_dir() -> PathBuf {
    let dir = fixtures_dir().join("godot");
    assert!(
        dir.join("project.godot").is_file(),
        "the Godot fixtures are missing: {} has no project.godot",
        dir.display()
    );
    dir
}

/// Is this run in CI (`CI=true`)? Then a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Checks that an external peer program exists. Returns `false` (and prints a loud SKIP line)
/// when it is missing outside CI; panics in CI, where a missing peer is a failure.
pub fn require_program(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if in_ci() {
            panic!("required interop peer `{name}` is missing (CI=true): run scripts/test to install it");
        }
        note_skip(&format!(
            "interop peer `{name}` is missing; run scripts/test to install it"
        ));
    }
    found
}

/// Reports a skipped test (outside CI only; in CI a missing peer must panic instead): prints a
/// loud `SKIP:` line and, when `ENET_DTLS_SKIP_LOG` names a file (scripts/test sets it), appends
/// `SKIP <test name>: <reason>` there, so the summary counts skipped tests even though cargo
/// reports them as passed and hides their output.
pub fn note_skip(reason: &str) {
    eprintln!("SKIP: {reason}");
    if let Ok(path) = std::env::var("ENET_DTLS_SKIP_LOG") {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            use std::io::Write;
            let _ = writeln!(f, "SKIP {test}: {reason}");
        }
    }
}

/// A free UDP port on 127.0.0.1 (bind to port 0, read it back, release it).
/// Prefer letting the program under test bind port 0 and print its port; use this only for
/// peers that cannot do that (openssl s_server, Godot fixtures).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind port 0");
    s.local_addr().unwrap().port()
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with piped stdout (stderr inherited so failures are visible).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
            name: name.to_string(),
        }
    }

    /// Waits until a stdout line contains `needle`; returns that line. Panics with everything
    /// seen so far after `timeout`.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // drain remaining lines
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                    self.seen.push(l);
                }
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                while let Ok(l) = self.lines.try_recv() {
                    self.seen.push(l);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line seen so far, plus whatever is waiting.
    /// Like [`expect_line`](Self::expect_line), but a line already taken in by an earlier
    /// [`drain`](Self::drain) or `expect_line` counts too (the first one containing `needle`).
    pub fn seen_or_expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        match self.seen.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.expect_line(needle, timeout),
        }
    }

    pub fn drain(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `godot3-server` command running `script` from `fixtures/godot` with `name=value` args.
pub fn godot(script: &str, args: &[String]) -> Command {
    let mut c = Command::new("godot3-server");
    c.env("LANG", "en_US.UTF-8")
        .arg("--path")
        .arg(godot_dir())
        .arg("-s")
        .arg(script)
        .args(args);
    c
}

/// Parses the address out of a `LISTENING <addr:port>` line.
pub fn listening_addr(line: &str) -> SocketAddr {
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad LISTENING line: {line}"))
}

/// Compiles the C ENet program `source` (relative to the cli crate) with
/// `gcc -O2 -Wall -Wextra ... -lenet -pthread` into a per-process folder under the cargo target
/// dir, and returns the executable. `None` (a counted SKIP) when gcc is missing outside CI; a
/// failed build always fails the test, since it means libenet-dev is missing or the source is broken.
pub fn build_c_enet_program(source: &str) -> Option<PathBuf> {
    if !require_program("gcc") {
        return None;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(source);
    let name = src
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("C source file name")
        .to_string();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the build dir for a C peer");
    let exe = dir.join(&name);
    let out = Command::new("gcc")
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(["-lenet", "-pthread"])
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {} -lenet failed (is libenet-dev installed?):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}
