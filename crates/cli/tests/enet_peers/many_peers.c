/*
 * many_peers: one C ENet 1.3 client host with many peers, for the load tests of enet-dtls.
 *
 * Compiled by the tests at run time (`gcc many_peers.c -lenet`), never shipped.
 *
 *   many_peers HOST PORT PEERS SECONDS INTERVAL_MS
 *       Connects PEERS peers (one host, one socket) to the echo host at HOST:PORT, then, once all
 *       are connected, makes every peer send one small reliable packet at once and again every
 *       INTERVAL_MS, for SECONDS seconds, then waits until every echo is back (20 s at most), counting them.
 *       The service loop is C ENet's own (enet_host_service), as a game client would run it.
 *       Prints (flushed):
 *         CONNECTED <n> <ms>      when all PEERS are connected (or after 30 s: how many were)
 *         RESULT connected=<n> echoes=<n> sent=<n> dropped=<n> refused=<n>
 *       dropped = peers that got a disconnect event (a timeout) after they were connected,
 *       refused = peers that never connected. Exit status 0 if the run completed.
 */
#include <enet/enet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: many_peers HOST PORT PEERS SECONDS INTERVAL_MS\n");
        return 2;
    }
    int peers = atoi(argv[3]);
    int seconds = atoi(argv[4]);
    int interval = atoi(argv[5]);
    if (peers < 1 || peers > 4095 || seconds < 1 || interval < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    if (enet_initialize() != 0) {
        fprintf(stderr, "enet_initialize failed\n");
        return 1;
    }
    ENetHost *host = enet_host_create(NULL, (size_t)peers, 1, 0, 0);
    if (host == NULL) {
        fprintf(stderr, "enet_host_create failed\n");
        return 1;
    }
    ENetAddress address;
    if (enet_address_set_host(&address, argv[1]) != 0) {
        fprintf(stderr, "bad host %s\n", argv[1]);
        return 1;
    }
    address.port = (enet_uint16)atoi(argv[2]);
    char *state = calloc((size_t)peers, 1); /* 0 connecting, 1 connected, 2 dropped, 3 refused */
    for (int i = 0; i < peers; i++) {
        ENetPeer *p = enet_host_connect(host, &address, 1, 0);
        if (p == NULL) {
            fprintf(stderr, "enet_host_connect failed at %d\n", i);
            return 1;
        }
        p->data = (void *)(size_t)i;
    }
    enet_uint32 start = enet_time_get();
    int connected = 0, dropped = 0, refused = 0;
    long echoes = 0, sent = 0;
    enet_uint32 burst_start = 0, next_burst = 0, end = 0;
    ENetEvent ev;
    for (;;) {
        enet_uint32 now = enet_time_get();
        if (burst_start == 0 && (connected + refused == peers || now - start > 30000)) {
            printf("CONNECTED %d %u\n", connected, now - start);
            fflush(stdout);
            burst_start = now;
            next_burst = now;
            end = now + (enet_uint32)seconds * 1000;
        }
        if (burst_start != 0 && (int)(now - next_burst) >= 0 && (int)(now - end) < 0) {
            for (size_t i = 0; i < host->peerCount; i++) {
                ENetPeer *p = &host->peers[i];
                if (p->state != ENET_PEER_STATE_CONNECTED) {
                    continue;
                }
                ENetPacket *pk = enet_packet_create("echo-me-please", 14, ENET_PACKET_FLAG_RELIABLE);
                if (enet_peer_send(p, 0, pk) == 0) {
                    sent++;
                }
            }
            next_burst += (enet_uint32)interval;
        }
        /* After the bursts: stop once every echo is back (retransmissions after a dropped burst
         * datagram can take seconds under load), or after 20 s at the most. */
        if (burst_start != 0 && (int)(now - end) >= 0 && (echoes >= sent || (int)(now - end) >= 20000)) {
            break;
        }
        int r = enet_host_service(host, &ev, 10);
        while (r > 0) {
            int i = (int)(size_t)ev.peer->data;
            switch (ev.type) {
            case ENET_EVENT_TYPE_CONNECT:
                state[i] = 1;
                connected++;
                break;
            case ENET_EVENT_TYPE_DISCONNECT:
                if (state[i] == 1) {
                    state[i] = 2;
                    dropped++;
                    connected--;
                } else if (state[i] == 0) {
                    state[i] = 3;
                    refused++;
                    if (getenv("MANY_PEERS_DEBUG") != NULL) {
                        fprintf(stderr, "refused peer %d after %u ms\n", i,
                                enet_time_get() - start);
                    }
                }
                break;
            case ENET_EVENT_TYPE_RECEIVE:
                echoes++;
                enet_packet_destroy(ev.packet);
                break;
            default:
                break;
            }
            r = enet_host_check_events(host, &ev);
        }
        if (r < 0) {
            fprintf(stderr, "enet_host_service failed\n");
            return 1;
        }
    }
    printf("RESULT connected=%d echoes=%ld sent=%ld dropped=%d refused=%d\n", connected, echoes,
           sent, dropped, refused);
    fflush(stdout);
    enet_host_destroy(host);
    enet_deinitialize();
    free(state);
    return 0;
}
