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
 * On failure it prints `C_ENET_ERROR <why>` on stderr and exits 1. Every wait is bounded by
 * STALL_MS without progress, so it cannot hang.
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
    for (long i = 0; i < pings; i++) {
        double t0 = now_s();
        ENetPacket *p = enet_packet_create(payload, (size_t)size, ENET_PACKET_FLAG_RELIABLE);
        if (p == NULL || enet_peer_send(peer, 0, p) < 0) {
            fail("client: enet_peer_send failed");
        }
        await_echo(client, (size_t)size);
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
    printf("C_ENET messages=%ld size=%ld window=%ld pings=%ld elapsed_s=%.6f msgs_per_s=%.1f "
           "rtt_us=%.2f\n",
           messages, size, window, pings, elapsed, (double)messages / elapsed, rtt_us);
    fflush(stdout);
    return 0;
}
