/*
 * enet_cpu: C ENet 1.3 programs for server_cpu.py (scripts/bench step 4: server CPU, memory and latency
 * against C ENet).
 *
 * Built by server_cpu.py with `gcc -O2 enet_cpu.c -lenet`; never shipped. Separate processes, so
 * the script can read the server's CPU time and RSS from /proc/PID/stat while the same C client
 * drives either C ENet's echo host or `enet-dtls enet-echo`.
 *
 *   enet_cpu server PORT PEERS            C ENet echo host on 127.0.0.1:PORT (0: any) with PEERS slots;
 *                                         prints "LISTENING 127.0.0.1:<port>", runs until killed
 *   enet_cpu echo HOST PORT MSGS SIZE WIN one peer; MSGS reliable SIZE-byte packets, at most WIN unechoed
 *   enet_cpu bulk HOST PORT COUNT SIZE    one peer; COUNT reliable SIZE-byte packets one at a time (echoed)
 *   enet_cpu ping HOST PORT COUNT         one peer; COUNT 64-byte reliable packets one at a time
 *   enet_cpu idle HOST PORT PEERS SECONDS PEERS peers on one host; connect all, then idle SECONDS
 *   enet_cpu udpecho PORT                 raw UDP echo on 127.0.0.1:PORT
 *   enet_cpu udpping HOST PORT COUNT      raw UDP ping-pong, 64 bytes
 *
 * Client modes print one line "RESULT key=value ..." (elapsed_s, msgs_per_s, rtt_p50_us, rtt_p99_us,
 * connect_ms, ...) and exit 0; "ERROR <why>" on stderr and exit 1 on failure. Waits are bounded.
 */
#include <enet/enet.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define STALL_MS 15000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *why)
{
    fprintf(stderr, "ERROR %s\n", why);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *v, long n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static int run_server(int port, int peers)
{
    ENetAddress address;
    enet_address_set_host(&address, "127.0.0.1");
    address.port = (enet_uint16)port;
    ENetHost *host = enet_host_create(&address, (size_t)peers, 255, 0, 0);
    if (host == NULL) {
        fail("enet_host_create");
    }
    printf("LISTENING 127.0.0.1:%u\n", host->address.port);
    fflush(stdout);
    ENetEvent event;
    for (;;) {
        int r = enet_host_service(host, &event, 1000);
        while (r > 0) {
            if (event.type == ENET_EVENT_TYPE_RECEIVE) {
                if (enet_peer_send(event.peer, event.channelID, event.packet) < 0) {
                    enet_packet_destroy(event.packet);
                }
            }
            r = enet_host_check_events(host, &event);
        }
        if (r < 0) {
            fail("enet_host_service");
        }
    }
    return 0;
}

static ENetHost *client_host(size_t peers)
{
    ENetHost *host = enet_host_create(NULL, peers, 1, 0, 0);
    if (host == NULL) {
        fail("enet_host_create");
    }
    return host;
}

static ENetPeer *connect_one(ENetHost *host, const char *h, int port)
{
    ENetAddress a;
    if (enet_address_set_host(&a, h) != 0) {
        fail("bad host");
    }
    a.port = (enet_uint16)port;
    ENetPeer *peer = enet_host_connect(host, &a, 1, 0);
    ENetEvent ev;
    double start = now_s();
    while (now_s() - start < STALL_MS / 1000.0) {
        if (enet_host_service(host, &ev, 100) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) {
            return peer;
        }
    }
    fail("connect timed out");
    return NULL;
}

/* Sends `n` packets (at most `window` unechoed) and waits for every echo; returns elapsed seconds.
 * With rtts != NULL, window is 1 and each round trip is recorded. */
static double echo_run(ENetHost *host, ENetPeer *peer, long n, long size, long window, double *rtts)
{
    unsigned char *buf = calloc(1, (size_t)size);
    long sent = 0, got = 0;
    double start = now_s(), last = start, t0 = 0;
    ENetEvent ev;
    while (got < n) {
        while (sent < n && sent - got < window) {
            ENetPacket *p = enet_packet_create(buf, (size_t)size, ENET_PACKET_FLAG_RELIABLE);
            if (rtts) {
                t0 = now_s();
            }
            enet_peer_send(peer, 0, p);
            sent++;
        }
        int r = enet_host_service(host, &ev, 1);
        while (r > 0) {
            if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
                got++;
                if (rtts) {
                    rtts[got - 1] = (now_s() - t0) * 1e6;
                }
                enet_packet_destroy(ev.packet);
                last = now_s();
            } else if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
                fail("disconnected");
            }
            r = enet_host_check_events(host, &ev);
        }
        if (now_s() - last > STALL_MS / 1000.0) {
            fail("stalled");
        }
    }
    free(buf);
    return now_s() - start;
}

static void disconnect_all(ENetHost *host)
{
    for (size_t i = 0; i < host->peerCount; i++) {
        if (host->peers[i].state == ENET_PEER_STATE_CONNECTED) {
            enet_peer_disconnect(&host->peers[i], 0);
        }
    }
    ENetEvent ev;
    double start = now_s();
    while (now_s() - start < 1.0) {
        if (enet_host_service(host, &ev, 50) < 0) {
            break;
        }
    }
}

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        fail("socket");
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of enet_cpu.c\n");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "udpecho") == 0) {
        int fd = udp_socket();
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            fail("bind");
        }
        socklen_t len = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &len);
        printf("LISTENING 127.0.0.1:%u\n", ntohs(a.sin_port));
        fflush(stdout);
        unsigned char buf[2048];
        for (;;) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            if (n >= 0) {
                sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
            }
        }
    }
    if (strcmp(mode, "udpping") == 0 && argc == 5) {
        int fd = udp_socket();
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        long n = atol(argv[4]);
        double *rtts = calloc((size_t)n, sizeof(double));
        unsigned char buf[64] = {0};
        long ok = 0;
        for (long i = 0; i < n; i++) {
            double t0 = now_s();
            sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&a, sizeof a);
            if (recv(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf) {
                rtts[ok++] = (now_s() - t0) * 1e6;
            }
        }
        printf("RESULT count=%ld rtt_p50_us=%.1f rtt_p99_us=%.1f\n", ok, percentile(rtts, ok, 0.5),
               percentile(rtts, ok, 0.99));
        return ok == n ? 0 : 1;
    }
    if (enet_initialize() != 0) {
        fail("enet_initialize");
    }
    if (strcmp(mode, "server") == 0 && argc == 4) {
        return run_server(atoi(argv[2]), atoi(argv[3]));
    }
    if (argc < 5) {
        fprintf(stderr, "usage: see the comment at the top of enet_cpu.c\n");
        return 2;
    }
    const char *h = argv[2];
    int port = atoi(argv[3]);
    if (strcmp(mode, "echo") == 0 && argc == 7) {
        long n = atol(argv[4]), size = atol(argv[5]), window = atol(argv[6]);
        ENetHost *host = client_host(1);
        ENetPeer *peer = connect_one(host, h, port);
        double el = echo_run(host, peer, n, size, window, NULL);
        printf("RESULT messages=%ld elapsed_s=%.4f msgs_per_s=%.1f\n", n, el, (double)n / el);
        disconnect_all(host);
        return 0;
    }
    if (strcmp(mode, "bulk") == 0 && argc == 6) {
        long n = atol(argv[4]), size = atol(argv[5]);
        ENetHost *host = client_host(1);
        ENetPeer *peer = connect_one(host, h, port);
        double el = echo_run(host, peer, n, size, 1, NULL);
        double mib = (double)n * (double)size / 1048576.0;
        printf("RESULT packets=%ld size=%ld elapsed_s=%.4f mib_per_s=%.2f\n", n, size, el, mib / el);
        disconnect_all(host);
        return 0;
    }
    if (strcmp(mode, "ping") == 0 && argc == 5) {
        long n = atol(argv[4]);
        ENetHost *host = client_host(1);
        ENetPeer *peer = connect_one(host, h, port);
        double *rtts = calloc((size_t)n, sizeof(double));
        echo_run(host, peer, n, 64, 1, rtts);
        printf("RESULT count=%ld rtt_p50_us=%.1f rtt_p99_us=%.1f\n", n, percentile(rtts, n, 0.5),
               percentile(rtts, n, 0.99));
        disconnect_all(host);
        return 0;
    }
    if (strcmp(mode, "idle") == 0 && argc == 6) {
        long peers = atol(argv[4]);
        double seconds = atof(argv[5]);
        if (peers < 1 || peers > 4095) {
            fail("PEERS must be in 1..=4095");
        }
        ENetHost *host = client_host((size_t)peers);
        ENetAddress a;
        enet_address_set_host(&a, h);
        a.port = (enet_uint16)port;
        double start = now_s();
        long connected = 0;
        ENetEvent ev;
        for (long i = 0; i < peers; i++) {
            enet_host_connect(host, &a, 1, 0);
            /* Service between connects so the socket buffers never overflow. */
            if (i % 64 == 63) {
                while (enet_host_service(host, &ev, 0) > 0) {
                    connected += ev.type == ENET_EVENT_TYPE_CONNECT;
                }
            }
        }
        while (connected < peers && now_s() - start < 60) {
            if (enet_host_service(host, &ev, 5) > 0) {
                connected += ev.type == ENET_EVENT_TYPE_CONNECT;
                while (enet_host_check_events(host, &ev) > 0) {
                    connected += ev.type == ENET_EVENT_TYPE_CONNECT;
                }
            }
        }
        double connect_ms = (now_s() - start) * 1e3;
        printf("CONNECTED %ld %.1f\n", connected, connect_ms);
        fflush(stdout);
        long dropped = 0;
        double idle_start = now_s();
        while (now_s() - idle_start < seconds) {
            if (enet_host_service(host, &ev, 10) > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) {
                dropped++;
            }
        }
        printf("RESULT peers=%ld connected=%ld connect_ms=%.1f dropped=%ld\n", peers, connected,
               connect_ms, dropped);
        fflush(stdout);
        disconnect_all(host);
        return connected == peers ? 0 : 1;
    }
    fprintf(stderr, "usage: see the comment at the top of enet_cpu.c\n");
    return 2;
}
