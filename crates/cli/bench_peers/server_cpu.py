#!/usr/bin/env python3
"""Server CPU, memory and latency of `enet-dtls enet-echo` next to C ENet's echo host, and the
DTLS record cost next to the cipher's own: run by scripts/bench (step 4), or alone:

    crates/cli/bench_peers/server_cpu.py [--rounds N] [--quick] [--only echo,bulk,ping,idle,cipher]
                                         [--bin PATH] [--anchor PATH] [--out FILE]

Both servers are sized for 4,095 peers and driven by the same C ENet 1.3 client programs
(crates/cli/bench_peers/enet_cpu.c, built here with gcc -O2 -lenet), each server in its own process,
so that its CPU time and memory can be read from /proc. The two servers alternate within every
round; each figure is the median over the rounds. Server CPU is the server process's own CPU time
(the sum of /proc/PID/task/*/schedstat, in ns): far less noisy on a shared machine than wall-clock
rates. Resident memory is VmRSS from /proc/PID/status.

Workloads:
  echo    MSGS reliable 64-byte messages, 64 in flight, echoed: server CPU per message, msgs/s
  bulk    64 MiB in 1 MiB reliable packets, one at a time, echoed: server CPU per MiB, MiB/s
  ping    ping-pong of one 64-byte reliable message: RTT p50/p99, and raw UDP's (C UDP echo)
  idle    10 / 100 / 1,000 / 4,000 connected idle peers: connect time, server CPU while idle
          (ENet keeps pinging), server RSS; and the RSS of the library's own `enet_echo` example
          (`--lib`, a plain-ENet server without OpenSSL) beside the same C ENet host
  cipher  DTLS seal+open of one 1,200-byte record with the default suite (criterion's estimate
          of `record/encrypt+decrypt 1200B <suite>` from `cargo bench -p dtls-proto --bench dtls
          -- record`, when it has run) next to `openssl speed -evp <that suite's AEAD> -bytes
          1200` (the same cipher alone, seal only: x2)

Results: a table on stdout, JSON in --out (default <target>/bench/server_cpu.json). A
measurement, not a test: nothing fails because something is slow.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
OUT = os.path.join(TARGET, "bench")
PEERS = 4095


def cpu_ns(pid):
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, kind, binary, anchor, lib=None):
        if kind == "ours":
            cmd = [binary, "enet-echo", "--listen", "127.0.0.1:0", "--max-peers", str(PEERS),
                   "--max-peers-per-address", str(PEERS)]
        elif kind == "lib":
            cmd = [lib, "server", "127.0.0.1:0", str(PEERS)]
        elif kind == "c":
            cmd = [anchor, "server", "0", str(PEERS)]
        else:
            cmd = [anchor, "udpecho", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("LISTENING"):
                self.port = line.split()[1].rsplit(":", 1)[1]
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{kind} server did not print LISTENING")
        # Drain its stdout (CONNECT/DISCONNECT lines) so it never blocks on a full pipe.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def cpu(self):
        return cpu_ns(self.pid)

    def rss(self):
        return rss_kib(self.pid)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        if hasattr(self, "drain"):
            self.drain.wait()


def client(anchor, *args, timeout=300):
    out = subprocess.run([anchor, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"client {args[0]} failed: {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    raise RuntimeError(f"client {args[0]}: no RESULT line")


def run_echo(kind, a, msgs):
    s = Server(kind, a.bin, a.anchor)
    try:
        c0 = s.cpu()
        r = client(a.anchor, "echo", "127.0.0.1", s.port, msgs, 64, 64)
        cpu = s.cpu() - c0
    finally:
        s.stop()
    return {"cpu_ns_per_msg": cpu / msgs, "msgs_per_s": r["msgs_per_s"]}


def run_bulk(kind, a, count):
    s = Server(kind, a.bin, a.anchor)
    try:
        c0 = s.cpu()
        r = client(a.anchor, "bulk", "127.0.0.1", s.port, count, 1 << 20)
        cpu = s.cpu() - c0
    finally:
        s.stop()
    return {"cpu_us_per_mib": cpu / 1e3 / count, "mib_per_s": r["mib_per_s"]}


def run_ping(kind, a, count):
    s = Server(kind, a.bin, a.anchor)
    try:
        if kind == "udp":
            r = client(a.anchor, "udpping", "127.0.0.1", s.port, count)
        else:
            r = client(a.anchor, "ping", "127.0.0.1", s.port, count)
    finally:
        s.stop()
    return {"rtt_p50_us": r["rtt_p50_us"], "rtt_p99_us": r["rtt_p99_us"]}


def run_idle(kind, a, peers, seconds):
    s = Server(kind, a.bin, a.anchor, a.lib)
    try:
        proc = subprocess.Popen([a.anchor, "idle", "127.0.0.1", s.port, str(peers), str(seconds + 3)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.startswith("CONNECTED"):
            proc.kill()
            raise RuntimeError(f"idle client: {line!r} {proc.stderr.read()}")
        connected, connect_ms = int(line.split()[1]), float(line.split()[2])
        time.sleep(1.5)  # the connect burst (bandwidth-limit updates) settles
        c0, t0 = s.cpu(), time.monotonic()
        time.sleep(seconds)
        cpu, dt = s.cpu() - c0, time.monotonic() - t0
        rss = s.rss()
        proc.wait(timeout=seconds + 30)
    finally:
        s.stop()
    return {"connected": connected, "connect_ms": connect_ms,
            "idle_cpu_pct": 100.0 * cpu / 1e9 / dt, "rss_kib": rss}


# The record bench of the suite our endpoints negotiate by default, and the AEAD of each suite
# as `openssl speed -evp` names it.
RECORD_BENCH = "encrypt+decrypt 1200B "
SUITE_AEAD = {"AES128-GCM": "aes-128-gcm", "AES256-GCM": "aes-256-gcm",
              "CHACHA20-POLY1305": "chacha20-poly1305"}


def record_estimate_ns():
    """Criterion's mean estimate (ns) of the DTLS record bench of 1,200 bytes with the default
    suite (`record/encrypt+decrypt 1200B <suite>`), and that bench's name, if it has run."""
    for path in sorted(glob.glob(os.path.join(TARGET, "criterion", "record", "*", "new", "estimates.json"))):
        name = os.path.basename(os.path.dirname(os.path.dirname(path)))
        if name.startswith(RECORD_BENCH) and not name.endswith("recycled"):
            with open(path) as fh:
                return json.load(fh)["mean"]["point_estimate"], name
    return None, None


def aead_of(bench_name):
    """The `openssl speed -evp` name of the AEAD in a record bench's suite name."""
    for key, evp in SUITE_AEAD.items():
        if key in bench_name:
            return evp
    raise RuntimeError(f"no known AEAD in {bench_name!r}")


def openssl_aead_ns(evp, size=1200):
    """ns per encryption of `size` bytes with `evp` (e.g. aes-128-gcm), from `openssl speed`."""
    out = subprocess.run(["openssl", "speed", "-seconds", "1", "-evp", evp, "-bytes", str(size)],
                         capture_output=True, text=True, timeout=60)
    for line in out.stdout.splitlines():
        if line.lower().startswith(evp.lower() + " "):
            kbytes = float(line.split()[1].rstrip("k"))  # 1000s of bytes per second
            return size / (kbytes * 1000.0) * 1e9
    raise RuntimeError(f"openssl speed printed no {evp} line")


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--only", default="echo,bulk,ping,idle,cipher")
    ap.add_argument("--out", default=os.path.join(OUT, "server_cpu.json"))
    ap.add_argument("--bin", default=os.path.join(TARGET, "release", "enet-dtls"))
    ap.add_argument("--anchor", default=os.path.join(OUT, "enet_cpu"))
    ap.add_argument("--lib", default=os.path.join(TARGET, "release", "examples", "enet_echo"),
                    help="the enet_echo example (idle part: RSS of a library-only server)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    only = set(a.only.split(","))
    if not os.environ.get("BENCH_CPU_NO_BUILD") and only & {"echo", "bulk", "ping", "idle"}:
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", a.anchor,
                        os.path.join(ROOT, "crates/cli/bench_peers/enet_cpu.c"), "-lenet"], check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "enet-dtls-cli"], check=True, cwd=ROOT)
        subprocess.run(["cargo", "build", "--release", "-p", "enet-dtls", "--example", "enet_echo"],
                       check=True, cwd=ROOT)
    msgs = 20000 if a.quick else 100000
    bulk = 16 if a.quick else 64
    pings = 1000 if a.quick else 5000
    idle_s = 3 if a.quick else 5
    results = {}
    rows = []

    def ratio(x, y):
        return x / y if y else float("nan")

    if "echo" in only:
        res = {"ours": [], "c": []}
        for _ in range(a.rounds):
            for kind in ("ours", "c"):
                res[kind].append(run_echo(kind, a, msgs))
        o, c = ({k: median(res[s], k) for k in res[s][0]} for s in ("ours", "c"))
        results["echo"] = {"ours": o, "c": c, "rounds": res}
        rows.append(("echo 64 B: server CPU ns/msg", o["cpu_ns_per_msg"], c["cpu_ns_per_msg"]))
        rows.append(("echo 64 B: msgs/s", o["msgs_per_s"], c["msgs_per_s"]))
    if "bulk" in only:
        res = {"ours": [], "c": []}
        for _ in range(a.rounds):
            for kind in ("ours", "c"):
                res[kind].append(run_bulk(kind, a, bulk))
        o, c = ({k: median(res[s], k) for k in res[s][0]} for s in ("ours", "c"))
        results["bulk"] = {"ours": o, "c": c, "rounds": res}
        rows.append((f"{bulk} MiB in 1 MiB: server CPU us/MiB", o["cpu_us_per_mib"], c["cpu_us_per_mib"]))
        rows.append((f"{bulk} MiB in 1 MiB: MiB/s", o["mib_per_s"], c["mib_per_s"]))
    if "ping" in only:
        res = {"ours": [], "c": [], "udp": []}
        for _ in range(a.rounds):
            for kind in ("ours", "c", "udp"):
                res[kind].append(run_ping(kind, a, pings))
        o, c, u = ({k: median(res[s], k) for k in res[s][0]} for s in ("ours", "c", "udp"))
        results["ping"] = {"ours": o, "c": c, "udp": u, "rounds": res}
        rows.append(("ping-pong RTT p50 us", o["rtt_p50_us"], c["rtt_p50_us"]))
        rows.append(("ping-pong RTT p99 us", o["rtt_p99_us"], c["rtt_p99_us"]))
        rows.append(("ping-pong RTT p99 us vs raw UDP", o["rtt_p99_us"], u["rtt_p99_us"]))
    if "idle" in only:
        results["idle"] = {}
        kinds = ("ours", "c", "lib") if os.path.exists(a.lib) else ("ours", "c")
        if "lib" not in kinds:
            print(f"idle: no {a.lib}: the library example's row is left out")
        for peers in (10, 100, 1000, 4000):
            res = {k: [] for k in kinds}
            for _ in range(a.rounds):
                for kind in kinds:
                    res[kind].append(run_idle(kind, a, peers, idle_s))
            med = {s: {k: median(res[s], k) for k in res[s][0]} for s in kinds}
            o, c = med["ours"], med["c"]
            results["idle"][peers] = dict(med, rounds=res)
            rows.append((f"{peers} idle peers: server CPU %", o["idle_cpu_pct"], c["idle_cpu_pct"]))
            rows.append((f"{peers} idle peers: server RSS KiB", o["rss_kib"], c["rss_kib"]))
            if "lib" in med:
                rows.append((f"{peers} idle peers: enet_echo example RSS KiB", med["lib"]["rss_kib"],
                             c["rss_kib"]))
            rows.append((f"{peers} peers: connect ms", o["connect_ms"], c["connect_ms"]))
    if "cipher" in only:
        rec, name = record_estimate_ns()
        if rec is None:
            print("cipher: no criterion estimate yet (run cargo bench -p dtls-proto --bench dtls -- record)")
        else:
            evp = aead_of(name)
            aead = openssl_aead_ns(evp)
            results["cipher"] = {"record_seal_open_ns": rec, "record_bench": name,
                                 "aead": evp, "openssl_aead_1200_ns": aead}
            rows.append((f"DTLS seal+open 1,200 B ns vs {evp} x2", rec, 2 * aead))
    print(f"\nmedian of {a.rounds} rounds, both servers sized for {PEERS} peers, same C ENet client")
    print(f"{'WORKLOAD':44} {'OURS':>12} {'ANCHOR':>12} {'RATIO':>7}")
    for name, o, c in rows:
        print(f"{name:44} {o:12.1f} {c:12.1f} {ratio(o, c):7.3f}")
    results["machine"] = {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()}
    with open(a.out, "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    sys.exit(main())
