/*
 * enet_anchor: the C ENet 1.3 anchor of `enet-dtls bench`.
 *
 * Built by scripts/bench (and the bench CLI test) with `gcc -O2 enet_anchor.c -lenet -pthread`;
 * never shipped. It runs the same workload as the Rust ENet workload of `enet-dtls bench`, with
 * both ends in C ENet: an echo host on a second thread and a client on the main thread, on
 * 127.0.0.1 with a kernel-chosen port.
 *
 *   enet_anchor MESSAGES SIZE WINDOW PINGS
 *
 *   1. the client connects (1 channel) and waits for the connect event;
 *   2. throughput: MESSAGES reliable packets of SIZE bytes on channel 0, at most WINDOW of them
 *      waiting for their echo at any time; timed from the first send to the last echo;
 *   3. latency: PINGS reliable packets one at a time (send, wait for the echo); mean round trip;
 *   4. disconnect, stop the echo thread.
 *
 * On success it prints one line on stdout and exits 0:
 *
 *   C_ENET messages=<n> size=<bytes> window=<w> pings=<p> elapsed_s=<s> msgs_per_s=<x> rtt_us=<y>
 *
 *   and, unless PINGS > 100000, every ping's round trip in microseconds:
 *
 *   C_ENET_RTT <us> <us> ...
 *
 * Other modes (the first argument names them):
 *
 *   enet_anchor transfer TOTAL_BYTES PACKET_BYTES WINDOW
 *       bulk transfer: the client sends TOTAL_BYTES in reliable packets of PACKET_BYTES (C ENet
 *       fragments them), at most WINDOW packets not yet acknowledged by the server (which
 *       answers every packet with a 4-byte reliable ack); timed from the first send to the
 *       last ack. Prints `C_ENET_TRANSFER bytes=<n> packets=<n> elapsed_s=<s> mb_per_s=<x>`.
 *   enet_anchor server MAX_PEERS
 *       C ENet's echo host alone, sized for MAX_PEERS (1..=4095), on 127.0.0.1 with a free port:
 *       prints `LISTENING 127.0.0.1:<port>` and serves (enet_host_service, 100 ms timeout)
 *       until it is killed. The bench measures its memory and CPU from /proc.
 *   enet_anchor peers HOST PORT N
 *       one client host with N peers (1..=4095) connecting to HOST:PORT; prints
 *       `CONNECTED <n> <ms>` once all are connected (or after STALL_MS: how many were), then
 *       keeps servicing them (100 ms timeout) until it is killed.
 *
 * On failure it prints `C_ENET_ERROR <why>` on stderr and exits 1. Every wait is bounded by
 * STALL_MS without progress, so it cannot hang (the server and peers modes run until killed).
 */
#include <enet/enet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STALL_MS 10000

static atomic_int stop_server = 0;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *why)
{
    fprintf(stderr, "C_ENET_ERROR %s\n", why);
    exit(1);
}

static long parse_arg(const char *text, const char *name, long min, long max)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "C_ENET_ERROR %s must be an integer in %ld..=%ld, got '%s'\n", name, min,
                max, text);
        exit(2);
    }
    return v;
}

/* The echo host: every received packet goes back to its sender on the same channel. */
static void *echo_server(void *arg)
{
    ENetHost *server = arg;
    ENetEvent event;
    while (!atomic_load(&stop_server)) {
        int r = enet_host_service(server, &event, 50);
        if (r < 0) {
            fail("server: enet_host_service failed");
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            if (enet_peer_send(event.peer, event.channelID, event.packet) < 0) {
                enet_packet_destroy(event.packet);
            }
        }
    }
    enet_host_flush(server);
    return NULL;
}

static void await_echo(ENetHost *client, size_t size);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted values (nearest rank). */
static double quantile(const double *sorted, long n, double q)
{
    if (n <= 0) {
        return 0.0;
    }
    long i = (long)(q * (double)n + 0.999999) - 1;
    if (i < 0) {
        i = 0;
    }
    if (i >= n) {
        i = n - 1;
    }
    return sorted[i];
}

static ENetHost *make_host(int server, size_t peers)
{
    ENetAddress bind_addr;
    memset(&bind_addr, 0, sizeof bind_addr);
    enet_address_set_host_ip(&bind_addr, "127.0.0.1");
    bind_addr.port = 0;
    ENetHost *host = enet_host_create(&bind_addr, peers, 1, 0, 0);
    if (host == NULL) {
        fail(server ? "cannot create the server host" : "cannot create the client host");
    }
    return host;
}

static ENetAddress host_address(ENetHost *host)
{
    ENetAddress addr;
    if (enet_socket_get_address(host->socket, &addr) != 0) {
        fail("cannot read the host's port");
    }
    enet_address_set_host_ip(&addr, "127.0.0.1");
    return addr;
}

static ENetPeer *connect_one(ENetHost *client, ENetAddress *to)
{
    ENetPeer *peer = enet_host_connect(client, to, 1, 0);
    if (peer == NULL) {
        fail("enet_host_connect failed");
    }
    ENetEvent event;
    int r = enet_host_service(client, &event, STALL_MS);
    if (r <= 0 || event.type != ENET_EVENT_TYPE_CONNECT) {
        fail("client: no connect event");
    }
    return peer;
}

/* The transfer server: a 4-byte reliable ack for every received packet. */
static void *ack_server(void *arg)
{
    ENetHost *server = arg;
    ENetEvent event;
    while (!atomic_load(&stop_server)) {
        int r = enet_host_service(server, &event, 50);
        if (r < 0) {
            fail("server: enet_host_service failed");
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            unsigned char ack[4] = {1, 2, 3, 4};
            enet_packet_destroy(event.packet);
            ENetPacket *p = enet_packet_create(ack, sizeof ack, ENET_PACKET_FLAG_RELIABLE);
            if (p == NULL || enet_peer_send(event.peer, event.channelID, p) < 0) {
                fail("server: cannot send an ack");
            }
        }
    }
    enet_host_flush(server);
    return NULL;
}

static void disconnect_and_stop(ENetHost *client, ENetPeer *peer, pthread_t thread)
{
    ENetEvent event;
    enet_peer_disconnect(peer, 0);
    double until = now_s() + STALL_MS / 1000.0;
    while (now_s() < until) {
        int r = enet_host_service(client, &event, 100);
        if (r < 0 || (r > 0 && event.type == ENET_EVENT_TYPE_DISCONNECT)) {
            break;
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            enet_packet_destroy(event.packet);
        }
    }
    atomic_store(&stop_server, 1);
    pthread_join(thread, NULL);
}

static int run_transfer(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s transfer TOTAL_BYTES PACKET_BYTES WINDOW\n", argv[0]);
        return 2;
    }
    long total = parse_arg(argv[2], "TOTAL_BYTES", 1, 1L << 34);
    long size = parse_arg(argv[3], "PACKET_BYTES", 1, 32L << 20);
    long window = parse_arg(argv[4], "WINDOW", 1, 65536);
    long packets = (total + size - 1) / size;
    ENetHost *server = make_host(1, 4);
    ENetAddress server_addr = host_address(server);
    pthread_t thread;
    if (pthread_create(&thread, NULL, ack_server, server) != 0) {
        fail("cannot start the server thread");
    }
    ENetHost *client = make_host(0, 1);
    ENetPeer *peer = connect_one(client, &server_addr);
    unsigned char *payload = malloc((size_t)size);
    if (payload == NULL) {
        fail("out of memory");
    }
    for (long i = 0; i < size; i++) {
        payload[i] = (unsigned char)(i * 31 + 7);
    }
    long sent = 0, acked = 0;
    double start = now_s();
    while (acked < packets) {
        while (sent < packets && sent - acked < window) {
            ENetPacket *p = enet_packet_create(payload, (size_t)size, ENET_PACKET_FLAG_RELIABLE);
            if (p == NULL || enet_peer_send(peer, 0, p) < 0) {
                fail("client: enet_peer_send failed");
            }
            sent++;
        }
        await_echo(client, 4);
        acked++;
    }
    double elapsed = now_s() - start;
    disconnect_and_stop(client, peer, thread);
    enet_host_destroy(client);
    enet_host_destroy(server);
    free(payload);
    double bytes = (double)packets * (double)size;
    printf("C_ENET_TRANSFER bytes=%.0f packets=%ld elapsed_s=%.6f mb_per_s=%.3f\n", bytes,
           packets, elapsed, bytes / elapsed / 1e6);
    fflush(stdout);
    return 0;
}

static int run_server(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s server MAX_PEERS\n", argv[0]);
        return 2;
    }
    long max_peers = parse_arg(argv[2], "MAX_PEERS", 1, 4095);
    ENetHost *server = make_host(1, (size_t)max_peers);
    ENetAddress addr = host_address(server);
    printf("LISTENING 127.0.0.1:%u\n", (unsigned)addr.port);
    fflush(stdout);
    ENetEvent event;
    for (;;) {
        int r = enet_host_service(server, &event, 100);
        if (r < 0) {
            fail("server: enet_host_service failed");
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            if (enet_peer_send(event.peer, event.channelID, event.packet) < 0) {
                enet_packet_destroy(event.packet);
            }
        }
    }
}

static int run_peers(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s peers HOST PORT N\n", argv[0]);
        return 2;
    }
    long port = parse_arg(argv[3], "PORT", 1, 65535);
    long n = parse_arg(argv[4], "N", 1, 4095);
    ENetAddress to;
    if (enet_address_set_host(&to, argv[2]) != 0) {
        fail("bad HOST");
    }
    to.port = (enet_uint16)port;
    ENetHost *client = enet_host_create(NULL, (size_t)n, 1, 0, 0);
    if (client == NULL) {
        fail("cannot create the client host");
    }
    for (long i = 0; i < n; i++) {
        if (enet_host_connect(client, &to, 1, 0) == NULL) {
            fail("enet_host_connect failed");
        }
    }
    double start = now_s(), last_progress = start;
    long connected = 0;
    ENetEvent event;
    while (connected < n && now_s() - last_progress < STALL_MS / 1000.0) {
        int r = enet_host_service(client, &event, 100);
        if (r < 0) {
            fail("client: enet_host_service failed");
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_CONNECT) {
            connected++;
            last_progress = now_s();
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            enet_packet_destroy(event.packet);
        }
    }
    printf("CONNECTED %ld %.1f\n", connected, (now_s() - start) * 1000.0);
    fflush(stdout);
    for (;;) {
        int r = enet_host_service(client, &event, 100);
        if (r < 0) {
            fail("client: enet_host_service failed");
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            enet_packet_destroy(event.packet);
        }
    }
}

/* Waits for the next receive event on the client; counts it, fails after STALL_MS of silence. */
static void await_echo(ENetHost *client, size_t size)
{
    ENetEvent event;
    for (;;) {
        int r = enet_host_service(client, &event, STALL_MS);
        if (r < 0) {
            fail("client: enet_host_service failed");
        }
        if (r == 0) {
            fail("client: no echo within the stall limit");
        }
        if (event.type == ENET_EVENT_TYPE_RECEIVE) {
            if (event.packet->dataLength != size) {
                fail("client: echo has the wrong length");
            }
            enet_packet_destroy(event.packet);
            return;
        }
        if (event.type == ENET_EVENT_TYPE_DISCONNECT) {
            fail("client: disconnected during the run");
        }
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "transfer") == 0 || strcmp(argv[1], "server") == 0 ||
                      strcmp(argv[1], "peers") == 0)) {
        if (enet_initialize() != 0) {
            fail("enet_initialize failed");
        }
        if (strcmp(argv[1], "transfer") == 0) {
            return run_transfer(argc, argv);
        }
        if (strcmp(argv[1], "server") == 0) {
            return run_server(argc, argv);
        }
        return run_peers(argc, argv);
    }
    if (argc != 5) {
        fprintf(stderr, "usage: %s MESSAGES SIZE WINDOW PINGS\n", argv[0]);
        return 2;
    }
    long messages = parse_arg(argv[1], "MESSAGES", 1, 100000000L);
    long size = parse_arg(argv[2], "SIZE", 1, 65536);
    long window = parse_arg(argv[3], "WINDOW", 1, 65536);
    long pings = parse_arg(argv[4], "PINGS", 0, 100000000L);

    if (enet_initialize() != 0) {
        fail("enet_initialize failed");
    }

    ENetAddress bind_addr;
    memset(&bind_addr, 0, sizeof bind_addr);
    enet_address_set_host_ip(&bind_addr, "127.0.0.1");
    bind_addr.port = 0;
    ENetHost *server = enet_host_create(&bind_addr, 4, 1, 0, 0);
    if (server == NULL) {
        fail("cannot create the server host");
    }
    ENetAddress server_addr;
    if (enet_socket_get_address(server->socket, &server_addr) != 0) {
        fail("cannot read the server port");
    }
    enet_address_set_host_ip(&server_addr, "127.0.0.1");

    pthread_t thread;
    if (pthread_create(&thread, NULL, echo_server, server) != 0) {
        fail("cannot start the server thread");
    }

    ENetAddress client_bind;
    memset(&client_bind, 0, sizeof client_bind);
    enet_address_set_host_ip(&client_bind, "127.0.0.1");
    client_bind.port = 0;
    ENetHost *client = enet_host_create(&client_bind, 1, 1, 0, 0);
    if (client == NULL) {
        fail("cannot create the client host");
    }
    ENetPeer *peer = enet_host_connect(client, &server_addr, 1, 0);
    if (peer == NULL) {
        fail("enet_host_connect failed");
    }
    ENetEvent event;
    int r = enet_host_service(client, &event, STALL_MS);
    if (r <= 0 || event.type != ENET_EVENT_TYPE_CONNECT) {
        fail("client: no connect event");
    }

    unsigned char *payload = malloc((size_t)size);
    if (payload == NULL) {
        fail("out of memory");
    }
    for (long i = 0; i < size; i++) {
        payload[i] = (unsigned char)(i * 31 + 7);
    }

    /* Throughput: a window of reliable packets in flight. */
    long sent = 0, received = 0;
    double start = now_s();
    while (received < messages) {
        while (sent < messages && sent - received < window) {
            ENetPacket *p = enet_packet_create(payload, (size_t)size, ENET_PACKET_FLAG_RELIABLE);
            if (p == NULL || enet_peer_send(peer, 0, p) < 0) {
                fail("client: enet_peer_send failed");
            }
            sent++;
        }
        await_echo(client, (size_t)size);
        received++;
    }
    double elapsed = now_s() - start;

    /* Latency: one packet at a time. */
    double rtt_total = 0.0;
    double *rtts = malloc(sizeof(double) * (size_t)(pings > 0 ? pings : 1));
    if (rtts == NULL) {
        fail("out of memory");
    }
    for (long i = 0; i < pings; i++) {
        double t0 = now_s();
        ENetPacket *p = enet_packet_create(payload, (size_t)size, ENET_PACKET_FLAG_RELIABLE);
        if (p == NULL || enet_peer_send(peer, 0, p) < 0) {
            fail("client: enet_peer_send failed");
        }
        await_echo(client, (size_t)size);
        rtts[i] = (now_s() - t0) * 1e6;
        rtt_total += now_s() - t0;
    }

    enet_peer_disconnect(peer, 0);
    double until = now_s() + STALL_MS / 1000.0;
    while (now_s() < until) {
        r = enet_host_service(client, &event, 100);
        if (r < 0 || (r > 0 && event.type == ENET_EVENT_TYPE_DISCONNECT)) {
            break;
        }
        if (r > 0 && event.type == ENET_EVENT_TYPE_RECEIVE) {
            enet_packet_destroy(event.packet);
        }
    }

    atomic_store(&stop_server, 1);
    pthread_join(thread, NULL);
    enet_host_destroy(client);
    enet_host_destroy(server);
    enet_deinitialize();
    free(payload);

    double rtt_us = pings > 0 ? rtt_total / (double)pings * 1e6 : 0.0;
    if (pings <= 100000) {
        printf("C_ENET_RTT");
        for (long i = 0; i < pings; i++) {
            printf(" %.2f", rtts[i]);
        }
        printf("\n");
    }
    qsort(rtts, (size_t)pings, sizeof(double), cmp_double);
    printf("C_ENET messages=%ld size=%ld window=%ld pings=%ld elapsed_s=%.6f msgs_per_s=%.1f "
           "rtt_us=%.2f rtt_p50_us=%.2f rtt_p99_us=%.2f\n",
           messages, size, window, pings, elapsed, (double)messages / elapsed, rtt_us,
           quantile(rtts, pings, 0.50), quantile(rtts, pings, 0.99));
    free(rtts);
    fflush(stdout);
    return 0;
}
