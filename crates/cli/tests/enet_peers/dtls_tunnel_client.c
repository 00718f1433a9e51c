/*
 * dtls_tunnel_client: a small C ENet 1.3 client for the DTLS tunnel test (enet_dtls_cli.rs).
 *
 * Compiled by the test at run time (`gcc dtls_tunnel_client.c -lenet`), never shipped.
 *
 *   dtls_tunnel_client HOST PORT
 *       Connects (2 channels, data 0xD7150001) to an ENet echo host at HOST:PORT (in the test:
 *       the local end of fixtures/godot/dtls_tunnel.gd, which relays every datagram as one DTLS
 *       record to `enet-dtls enet-echo --dtls`), then
 *         1. sends 50 reliable messages of 1..2000 bytes on channel 0 (the larger ones are
 *            fragmented by ENet) and waits for each echo, in order and byte for byte;
 *         2. sends one 64 KiB reliable message on channel 1 and waits for its echo;
 *         3. disconnects and waits for the disconnect event.
 *       Prints (flushed): CONNECTED mtu=<negotiated peer MTU>, ECHOED <n>, BIG_OK, PASS; or a
 *       FAIL line and exits 1. Every wait gives up after 20 s.
 */
#include <enet/enet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_DATA 0xD7150001u
#define SMALL_COUNT 50
#define BIG_SIZE (64 * 1024)
#define WAIT_MS 20000

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

static size_t small_size(int i) { return 1 + (size_t)(i * 41) % 2000; }

static void fill(unsigned char *buf, size_t len, int seed) {
    for (size_t j = 0; j < len; j++)
        buf[j] = (unsigned char)(seed * 31 + j * 7);
}

/* Waits for the next event of `type`; fails on a disconnect or after WAIT_MS. */
static void wait_for(ENetHost *host, ENetEventType type, ENetEvent *event, const char *what) {
    enet_uint32 start = enet_time_get();
    while (enet_time_get() - start < WAIT_MS) {
        int r = enet_host_service(host, event, 50);
        if (r < 0)
            fail("enet_host_service failed while waiting for %s", what);
        if (r == 0)
            continue;
        if (event->type == type)
            return;
        if (event->type == ENET_EVENT_TYPE_DISCONNECT)
            fail("disconnected while waiting for %s", what);
        if (event->type == ENET_EVENT_TYPE_RECEIVE)
            fail("unexpected packet of %u bytes while waiting for %s",
                 (unsigned)event->packet->dataLength, what);
    }
    fail("no %s within %d ms", what, WAIT_MS);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    if (enet_initialize() != 0)
        fail("enet_initialize");
    ENetHost *host = enet_host_create(NULL, 1, 2, 0, 0);
    if (!host)
        fail("enet_host_create");
    ENetAddress address;
    if (enet_address_set_host(&address, argv[1]) != 0)
        fail("cannot resolve %s", argv[1]);
    address.port = (enet_uint16)atoi(argv[2]);
    ENetPeer *peer = enet_host_connect(host, &address, 2, CONNECT_DATA);
    if (!peer)
        fail("enet_host_connect");
    ENetEvent event;
    wait_for(host, ENET_EVENT_TYPE_CONNECT, &event, "the connection");
    say("CONNECTED mtu=%u", (unsigned)peer->mtu);

    unsigned char *buf = malloc(BIG_SIZE);
    if (!buf)
        fail("malloc");
    for (int i = 0; i < SMALL_COUNT; i++) {
        fill(buf, small_size(i), i);
        enet_peer_send(peer, 0, enet_packet_create(buf, small_size(i), ENET_PACKET_FLAG_RELIABLE));
    }
    for (int i = 0; i < SMALL_COUNT; i++) {
        wait_for(host, ENET_EVENT_TYPE_RECEIVE, &event, "an echo");
        fill(buf, small_size(i), i);
        if (event.channelID != 0 || event.packet->dataLength != small_size(i) ||
            memcmp(event.packet->data, buf, small_size(i)) != 0)
            fail("echo %d differs (channel %u, %u bytes)", i, (unsigned)event.channelID,
                 (unsigned)event.packet->dataLength);
        enet_packet_destroy(event.packet);
    }
    say("ECHOED %d", SMALL_COUNT);

    fill(buf, BIG_SIZE, 99);
    enet_peer_send(peer, 1, enet_packet_create(buf, BIG_SIZE, ENET_PACKET_FLAG_RELIABLE));
    wait_for(host, ENET_EVENT_TYPE_RECEIVE, &event, "the big echo");
    if (event.channelID != 1 || event.packet->dataLength != BIG_SIZE ||
        memcmp(event.packet->data, buf, BIG_SIZE) != 0)
        fail("big echo differs (channel %u, %u bytes)", (unsigned)event.channelID,
             (unsigned)event.packet->dataLength);
    enet_packet_destroy(event.packet);
    say("BIG_OK");

    enet_peer_disconnect(peer, 0);
    wait_for(host, ENET_EVENT_TYPE_DISCONNECT, &event, "the disconnect");
    free(buf);
    enet_host_destroy(host);
    enet_deinitialize();
    say("PASS");
    return 0;
}
