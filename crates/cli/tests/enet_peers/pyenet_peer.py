"""pyenet_peer: a python3-enet (pyenet over C ENet 1.3) interop peer for the enet-dtls tests.

Run with /usr/bin/python3 (Debian's python3-enet). Same command line and output as enet_peer.c:

    pyenet_peer.py server [--port P] [--checksum] [--compress]
        Echo host on 127.0.0.1:P (0 = any free port): every packet goes back to its sender on the
        same channel with the same reliability flags. Prints LISTENING 127.0.0.1:<port>,
        CONNECT <ip:port> data=<u32>, DISCONNECT <ip:port> data=<u32>. Exits when stdin closes.

    pyenet_peer.py client HOST PORT [--checksum] [--compress]
        connect (4 channels, data 0x1234ABCD); "basic": 4 messages of each kind (reliable,
        unreliable, unsequenced) per channel, each echoed on its channel with its kind and the
        reliable ones in order; "big": one 1 MiB reliable packet; "ordered": 10000 small reliable
        messages on channel 3 echoed in order; disconnect with data 0xD15C0. One OK line per step,
        PASS at the end; FAIL <why> and exit status 1 otherwise.

--checksum sets the host's checksum to enet.ENET_CRC32 (enet_crc32); --compress calls
Host.compress_with_range_coder().
"""

import select
import sys
import time

import enet

CHANNELS = 4
CONNECT_DATA = 0x1234ABCD
DISCONNECT_DATA = 0xD15C0
PER_KIND = 4
BIG_SIZE = 1024 * 1024
ORDERED_COUNT = 10000
ORDERED_CHANNEL = 3
STEP_TIMEOUT = 30.0

KINDS = ["reliable", "unreliable", "unsequenced"]
KIND_FLAGS = [enet.PACKET_FLAG_RELIABLE, 0, enet.PACKET_FLAG_UNSEQUENCED]
KEEP_FLAGS = (
    enet.PACKET_FLAG_RELIABLE | enet.PACKET_FLAG_UNSEQUENCED | enet.PACKET_FLAG_UNRELIABLE_FRAGMENT
)


def say(line):
    print(line, flush=True)


def fail(why):
    say("FAIL " + why)
    sys.exit(1)


def flags_kind(flags):
    if flags & enet.PACKET_FLAG_RELIABLE:
        return 0
    if flags & enet.PACKET_FLAG_UNSEQUENCED:
        return 2
    return 1


def addr_str(address):
    return "%s:%d" % (address.host, address.port)


def setup(host, checksum, compress):
    if checksum:
        host.checksum = enet.ENET_CRC32
    if compress and host.compress_with_range_coder() != 0:
        fail("range coder setup")


def run_server(port, checksum, compress):
    host = enet.Host(enet.Address(b"127.0.0.1", port), 32, 255, 0, 0)
    setup(host, checksum, compress)
    say("LISTENING 127.0.0.1:%d" % host.address.port)
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if readable and not sys.stdin.buffer.read1(1):
            return 0
        ev = host.service(50)
        if ev is None or ev.type == enet.EVENT_TYPE_NONE:
            continue
        if ev.type == enet.EVENT_TYPE_CONNECT:
            say("CONNECT %s data=%d" % (addr_str(ev.peer.address), ev.data))
        elif ev.type == enet.EVENT_TYPE_DISCONNECT:
            say("DISCONNECT %s data=%d" % (addr_str(ev.peer.address), ev.data))
        elif ev.type == enet.EVENT_TYPE_RECEIVE:
            packet = enet.Packet(ev.packet.data, ev.packet.flags & KEEP_FLAGS)
            if ev.peer.send(ev.channelID, packet) < 0:
                fail("echo send")


def next_packet(host):
    """Returns (channel, data, flags) of the next receive event; fails on disconnect/timeout."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        ev = host.service(100)
        if ev is None or ev.type == enet.EVENT_TYPE_NONE:
            continue
        if ev.type == enet.EVENT_TYPE_RECEIVE:
            return ev.channelID, ev.packet.data, ev.packet.flags
        if ev.type == enet.EVENT_TYPE_DISCONNECT:
            fail("unexpected disconnect (data=%d)" % ev.data)
    return None


def wait_for(host, event_type, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ev = host.service(100)
        if ev is None or ev.type == enet.EVENT_TYPE_NONE:
            continue
        if ev.type == event_type:
            return ev
        if ev.type == enet.EVENT_TYPE_DISCONNECT:
            fail("disconnected while waiting (data=%d)" % ev.data)
    return None


def run_client(ip, port, checksum, compress):
    host = enet.Host(None, 1, CHANNELS, 0, 0)
    setup(host, checksum, compress)
    peer = host.connect(enet.Address(ip.encode(), port), CHANNELS, CONNECT_DATA)
    if wait_for(host, enet.EVENT_TYPE_CONNECT, 10.0) is None:
        fail("connect timed out")
    say("CONNECTED channels=%d" % peer.channelCount)

    # 1. basic
    total = CHANNELS * 3 * PER_KIND
    for ch in range(CHANNELS):
        for kind in range(3):
            for i in range(PER_KIND):
                msg = ("ch=%d kind=%s i=%d" % (ch, KINDS[kind], i)).encode()
                if peer.send(ch, enet.Packet(msg, KIND_FLAGS[kind])) < 0:
                    fail("send basic")
    host.flush()
    seen = set()
    next_reliable = [0] * CHANNELS
    for got in range(total):
        r = next_packet(host)
        if r is None:
            fail("basic: only %d of %d echoes" % (got, total))
        ch, data, flags = r
        try:
            fields = dict(f.split("=") for f in data.decode().split(" "))
            pch, kind, i = int(fields["ch"]), KINDS.index(fields["kind"]), int(fields["i"])
        except (ValueError, KeyError, UnicodeDecodeError):
            fail("basic: bad echo %r" % data)
        if pch != ch or not 0 <= i < PER_KIND:
            fail("basic: echo %r on channel %d" % (data, ch))
        if flags_kind(flags) != kind:
            fail("basic: echo %r came back with flags %d" % (data, flags))
        if (ch, kind, i) in seen:
            fail("basic: duplicate echo %r" % data)
        seen.add((ch, kind, i))
        if kind == 0:
            if i != next_reliable[ch]:
                fail("basic: reliable echo %r out of order" % data)
            next_reliable[ch] += 1
    say("OK basic %d" % total)

    # 2. big
    big = bytes(((i * 31 + 7) ^ (i >> 11)) & 0xFF for i in range(BIG_SIZE))
    if peer.send(1, enet.Packet(big, enet.PACKET_FLAG_RELIABLE)) < 0:
        fail("send big")
    r = next_packet(host)
    if r is None:
        fail("big: no echo")
    ch, data, flags = r
    if ch != 1 or data != big or not flags & enet.PACKET_FLAG_RELIABLE:
        fail("big: echo differs (channel %d, %d bytes)" % (ch, len(data)))
    say("OK big %d" % BIG_SIZE)

    # 3. ordered
    for i in range(ORDERED_COUNT):
        msg = i.to_bytes(4, "big") + b"\xa5" * 12
        if peer.send(ORDERED_CHANNEL, enet.Packet(msg, enet.PACKET_FLAG_RELIABLE)) < 0:
            fail("send ordered %d" % i)
    for i in range(ORDERED_COUNT):
        r = next_packet(host)
        if r is None:
            fail("ordered: only %d of %d echoes" % (i, ORDERED_COUNT))
        ch, data, _ = r
        if ch != ORDERED_CHANNEL or len(data) != 16:
            fail("ordered: bad echo %d" % i)
        got = int.from_bytes(data[:4], "big")
        if got != i:
            fail("ordered: expected %d, got %d" % (i, got))
    say("OK ordered %d" % ORDERED_COUNT)

    # 4. disconnect
    peer.disconnect(DISCONNECT_DATA)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        ev = host.service(100)
        if ev is not None and ev.type == enet.EVENT_TYPE_DISCONNECT:
            say("DISCONNECTED")
            say("PASS")
            return 0
    fail("disconnect not acknowledged")


def main(argv):
    checksum = "--checksum" in argv
    compress = "--compress" in argv
    port = 0
    positional = []
    args = iter(argv)
    for a in args:
        if a == "--port":
            port = int(next(args))
        elif not a.startswith("--"):
            positional.append(a)
    if positional[:1] == ["server"]:
        return run_server(port, checksum, compress)
    if len(positional) == 3 and positional[0] == "client":
        return run_client(positional[1], int(positional[2]), checksum, compress)
    sys.stderr.write("usage: pyenet_peer.py server [--port P] | client HOST PORT  [--checksum] [--compress]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
