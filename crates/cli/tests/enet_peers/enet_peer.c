/*
 * enet_peer: a C ENet 1.3 interop peer for the enet-dtls tests.
 *
 * Compiled by the tests at run time (`gcc enet_peer.c -lenet`), never shipped.
 *
 *   enet_peer server [--port P] [--checksum] [--compress]
 *       Echo host on 127.0.0.1:P (P = 0: any free port). Every received packet goes back to its
 *       sender on the same channel with the same reliability flags. Prints (flushed):
 *         LISTENING 127.0.0.1:<port>
 *         CONNECT <ip:port> data=<u32>
 *         DISCONNECT <ip:port> data=<u32>
 *       Runs until killed (or until stdin closes).
 *
 *   enet_peer client HOST PORT [--checksum] [--compress]
 *       Connects to an echo host and runs the scenario shared by every client in these tests:
 *         1. connect with 4 channels and data 0x1234ABCD
 *         2. "basic": 4 messages of each kind (reliable, unreliable, unsequenced) on each channel;
 *            each echo must come back on its channel with its kind, every reliable one in order
 *         3. "big": one 1 MiB reliable packet (fragmented), echoed byte for byte
 *         4. "ordered": 10000 small reliable messages on channel 3, echoed in order
 *         5. disconnect with data 0xD15C0 and wait for the disconnect event
 *       Prints one OK line per step and PASS at the end; exits 1 with a FAIL line otherwise.
 */
#include <enet/enet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHANNELS 4
#define CONNECT_DATA 0x1234ABCDu
#define DISCONNECT_DATA 0xD15C0u
#define PER_KIND 4
#define BIG_SIZE (1024 * 1024)
#define ORDERED_COUNT 10000
#define ORDERED_CHANNEL 3
#define STEP_TIMEOUT_MS 30000

static const char *KINDS[3] = {"reliable", "unreliable", "unsequenced"};

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    exit(1);
}

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void addr_str(const ENetAddress *a, char *out, size_t n) {
    char ip[64];
    if (enet_address_get_host_ip(a, ip, sizeof ip) != 0)
        snprintf(ip, sizeof ip, "?");
    snprintf(out, n, "%s:%u", ip, (unsigned) a->port);
}

static enet_uint32 kind_flags(int kind) {
    switch (kind) {
    case 0: return ENET_PACKET_FLAG_RELIABLE;
    case 1: return 0;
    default: return ENET_PACKET_FLAG_UNSEQUENCED;
    }
}

static int flags_kind(enet_uint32 flags) {
    if (flags & ENET_PACKET_FLAG_RELIABLE) return 0;
    if (flags & ENET_PACKET_FLAG_UNSEQUENCED) return 2;
    return 1;
}

static void setup(ENetHost *host, int checksum, int compress) {
    if (checksum) host->checksum = enet_crc32;
    if (compress && enet_host_compress_with_range_coder(host) != 0) fail("range coder setup");
}

static int run_server(int port, int checksum, int compress) {
    ENetAddress address;
    enet_address_set_host_ip(&address, "127.0.0.1");
    address.port = (enet_uint16) port;
    ENetHost *host = enet_host_create(&address, 32, ENET_PROTOCOL_MAXIMUM_CHANNEL_COUNT, 0, 0);
    if (host == NULL) fail("enet_host_create");
    setup(host, checksum, compress);
    ENetAddress bound;
    if (enet_socket_get_address(host->socket, &bound) != 0) fail("enet_socket_get_address");
    say("LISTENING 127.0.0.1:%u", (unsigned) bound.port);
    struct pollfd stdin_fd = {.fd = 0, .events = POLLIN};
    for (;;) {
        /* Exit when the test harness goes away (stdin closed). */
        if (poll(&stdin_fd, 1, 0) > 0 && (stdin_fd.revents & (POLLHUP | POLLIN))) {
            char c;
            if (read(0, &c, 1) <= 0) break;
        }
        ENetEvent ev;
        int r = enet_host_service(host, &ev, 50);
        if (r < 0) fail("enet_host_service");
        if (r == 0) continue;
        char a[96];
        addr_str(&ev.peer->address, a, sizeof a);
        switch (ev.type) {
        case ENET_EVENT_TYPE_CONNECT:
            say("CONNECT %s data=%u", a, (unsigned) ev.data);
            break;
        case ENET_EVENT_TYPE_DISCONNECT:
            say("DISCONNECT %s data=%u", a, (unsigned) ev.data);
            break;
        case ENET_EVENT_TYPE_RECEIVE: {
            enet_uint32 keep = ENET_PACKET_FLAG_RELIABLE | ENET_PACKET_FLAG_UNSEQUENCED |
                               ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT;
            ENetPacket *echo = enet_packet_create(ev.packet->data, ev.packet->dataLength,
                                                  ev.packet->flags & keep);
            enet_packet_destroy(ev.packet);
            if (echo == NULL || enet_peer_send(ev.peer, ev.channelID, echo) != 0)
                fail("echo send");
            break;
        }
        default:
            break;
        }
    }
    enet_host_destroy(host);
    return 0;
}

/* Waits for the next receive event from `peer` (failing on disconnect or timeout). */
static ENetPacket *next_packet(ENetHost *host, int *channel) {
    ENetEvent ev;
    enet_uint32 start = enet_time_get();
    for (;;) {
        enet_uint32 waited = enet_time_get() - start;
        if (waited > STEP_TIMEOUT_MS) return NULL;
        int r = enet_host_service(host, &ev, 100);
        if (r < 0) fail("enet_host_service");
        if (r == 0) continue;
        if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
            *channel = ev.channelID;
            return ev.packet;
        }
        if (ev.type == ENET_EVENT_TYPE_DISCONNECT) fail("unexpected disconnect (data=%u)", ev.data);
    }
}

static int run_client(const char *ip, int port, int checksum, int compress) {
    ENetHost *host = enet_host_create(NULL, 1, CHANNELS, 0, 0);
    if (host == NULL) fail("enet_host_create");
    setup(host, checksum, compress);
    ENetAddress address;
    if (enet_address_set_host_ip(&address, ip) != 0) fail("bad ip %s", ip);
    address.port = (enet_uint16) port;
    ENetPeer *peer = enet_host_connect(host, &address, CHANNELS, CONNECT_DATA);
    if (peer == NULL) fail("enet_host_connect");

    ENetEvent ev;
    enet_uint32 start = enet_time_get();
    int connected = 0;
    while (!connected && enet_time_get() - start < 10000) {
        int r = enet_host_service(host, &ev, 100);
        if (r < 0) fail("enet_host_service");
        if (r > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) connected = 1;
        if (r > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) fail("connection refused");
    }
    if (!connected) fail("connect timed out");
    say("CONNECTED channels=%u", (unsigned) peer->channelCount);

    /* 1. basic: every kind on every channel. */
    int total = CHANNELS * 3 * PER_KIND;
    for (int ch = 0; ch < CHANNELS; ch++)
        for (int kind = 0; kind < 3; kind++)
            for (int i = 0; i < PER_KIND; i++) {
                char msg[64];
                int n = snprintf(msg, sizeof msg, "ch=%d kind=%s i=%d", ch, KINDS[kind], i);
                ENetPacket *p = enet_packet_create(msg, (size_t) n, kind_flags(kind));
                if (enet_peer_send(peer, (enet_uint8) ch, p) != 0) fail("send basic");
            }
    enet_host_flush(host);
    int seen[CHANNELS][3][PER_KIND];
    int next_reliable[CHANNELS];
    memset(seen, 0, sizeof seen);
    memset(next_reliable, 0, sizeof next_reliable);
    for (int got = 0; got < total; got++) {
        int ch;
        ENetPacket *p = next_packet(host, &ch);
        if (p == NULL) fail("basic: only %d of %d echoes", got, total);
        char msg[64] = {0};
        memcpy(msg, p->data, p->dataLength < 63 ? p->dataLength : 63);
        int pch, pi;
        char kname[16];
        if (sscanf(msg, "ch=%d kind=%15s i=%d", &pch, kname, &pi) != 3) fail("basic: bad echo %s", msg);
        int kind = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(kname, KINDS[k]) == 0) kind = k;
        if (kind < 0 || pch != ch || pi < 0 || pi >= PER_KIND) fail("basic: echo %s on channel %d", msg, ch);
        if (flags_kind(p->flags) != kind) fail("basic: echo %s came back with flags %u", msg, p->flags);
        if (seen[ch][kind][pi]++) fail("basic: duplicate echo %s", msg);
        if (kind == 0 && pi != next_reliable[ch]++) fail("basic: reliable echo %s out of order", msg);
        enet_packet_destroy(p);
    }
    say("OK basic %d", total);

    /* 2. big: 1 MiB reliable, fragmented. */
    unsigned char *big = malloc(BIG_SIZE);
    if (big == NULL) fail("malloc");
    for (size_t i = 0; i < BIG_SIZE; i++) big[i] = (unsigned char) ((i * 31 + 7) ^ (i >> 11));
    ENetPacket *bp = enet_packet_create(big, BIG_SIZE, ENET_PACKET_FLAG_RELIABLE);
    if (enet_peer_send(peer, 1, bp) != 0) fail("send big");
    int ch;
    ENetPacket *back = next_packet(host, &ch);
    if (back == NULL) fail("big: no echo");
    if (ch != 1 || back->dataLength != BIG_SIZE || memcmp(back->data, big, BIG_SIZE) != 0 ||
        !(back->flags & ENET_PACKET_FLAG_RELIABLE))
        fail("big: echo differs (channel %d, %zu bytes)", ch, back->dataLength);
    enet_packet_destroy(back);
    free(big);
    say("OK big %d", BIG_SIZE);

    /* 3. ordered: 10000 small reliable messages. */
    for (unsigned i = 0; i < ORDERED_COUNT; i++) {
        unsigned char m[16];
        memset(m, 0xA5, sizeof m);
        m[0] = (unsigned char) (i >> 24);
        m[1] = (unsigned char) (i >> 16);
        m[2] = (unsigned char) (i >> 8);
        m[3] = (unsigned char) i;
        ENetPacket *p = enet_packet_create(m, sizeof m, ENET_PACKET_FLAG_RELIABLE);
        if (enet_peer_send(peer, ORDERED_CHANNEL, p) != 0) fail("send ordered %u", i);
    }
    for (unsigned i = 0; i < ORDERED_COUNT; i++) {
        ENetPacket *p = next_packet(host, &ch);
        if (p == NULL) fail("ordered: only %u of %d echoes", i, ORDERED_COUNT);
        if (ch != ORDERED_CHANNEL || p->dataLength != 16) fail("ordered: bad echo %u", i);
        unsigned got = ((unsigned) p->data[0] << 24) | ((unsigned) p->data[1] << 16) |
                       ((unsigned) p->data[2] << 8) | p->data[3];
        if (got != i) fail("ordered: expected %u, got %u", i, got);
        enet_packet_destroy(p);
    }
    say("OK ordered %d", ORDERED_COUNT);

    /* 4. disconnect with data. */
    enet_peer_disconnect(peer, DISCONNECT_DATA);
    start = enet_time_get();
    int gone = 0;
    while (!gone && enet_time_get() - start < 10000) {
        int r = enet_host_service(host, &ev, 100);
        if (r < 0) fail("enet_host_service");
        if (r > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) enet_packet_destroy(ev.packet);
        if (r > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) gone = 1;
    }
    if (!gone) fail("disconnect not acknowledged");
    say("DISCONNECTED");
    say("PASS");
    enet_host_destroy(host);
    return 0;
}

int main(int argc, char **argv) {
    if (enet_initialize() != 0) fail("enet_initialize");
    atexit(enet_deinitialize);
    int checksum = 0, compress = 0, port = 0;
    const char *positional[3] = {NULL, NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--checksum") == 0) checksum = 1;
        else if (strcmp(argv[i], "--compress") == 0) compress = 1;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (npos < 3) positional[npos++] = argv[i];
        else fail("too many arguments");
    }
    if (npos >= 1 && strcmp(positional[0], "server") == 0) return run_server(port, checksum, compress);
    if (npos == 3 && strcmp(positional[0], "client") == 0)
        return run_client(positional[1], atoi(positional[2]), checksum, compress);
    fprintf(stderr, "usage: enet_peer server [--port P] | client HOST PORT  [--checksum] [--compress]\n");
    return 2;
}
