// udp-load: measures UDP echoes per second through a proxy (or straight to the
// echo server): each of CLIENTS client sockets (one flow each through a proxy)
// keeps IN_FLIGHT datagrams of SIZE bytes in flight, sending a new one for each
// reply, batched with recvmmsg/sendmmsg.
//   udp-load HOST PORT [--size 64] [--in-flight 16] [--clients 1] [--seconds 3] [--warmup 0.5] [--gso 1]
// With --gso 1 each client sends its datagrams as one UDP GSO send and takes
// replies the kernel coalesced (UDP_GRO), as QUIC stacks do.
// Prints one number: echoes per second over the measured interval.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench-address.h"

#define MAX_BATCH 256
#define MAX_CLIENTS 256

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [--size N] [--in-flight N] [--clients N] [--seconds S] [--warmup S] [--gso 1]\n", argv[0]);
        return 2;
    }
    int size = 64, in_flight = 16, clients = 1, gso = 0;
    double seconds = 3, warmup = 0.5;
    int stats = getenv("UDP_LOAD_STATS") != NULL;
    long long receives = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--in-flight")) in_flight = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--gso")) gso = atoi(argv[i + 1]);
        else { fprintf(stderr, "udp-load: unknown option %s\n", argv[i]); return 2; }
    }
    if (size < 1 || size > 65507 || in_flight < 1 || in_flight > MAX_BATCH || clients < 1 || clients > MAX_CLIENTS) {
        fprintf(stderr, "udp-load: --size 1..65507, --in-flight 1..%d, --clients 1..%d\n", MAX_BATCH, MAX_CLIENTS);
        return 2;
    }
    if (gso && (in_flight > 64 || in_flight * size > 65000)) {
        fprintf(stderr, "udp-load: with --gso, at most 64 datagrams and 65,000 bytes in flight per client\n");
        return 2;
    }
    struct sockaddr_storage address;
    socklen_t length;
    int family = bench_address(argv[1], argv[2], &address, &length);
    if (family < 0) {
        fprintf(stderr, "udp-load: %s is not an address\n", argv[1]);
        return 2;
    }
    struct pollfd waiters[MAX_CLIENTS];
    int outstanding[MAX_CLIENTS];
    for (int c = 0; c < clients; c++) {
        int fd = socket(family, SOCK_DGRAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, length) != 0) {
            perror("udp-load: connect");
            return 1;
        }
        int one = 1;
        if (gso && (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) != 0 ||
                    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0)) {
            perror("udp-load: UDP_SEGMENT / UDP_GRO");
            return 1;
        }
        waiters[c] = (struct pollfd){fd, POLLIN, 0};
        outstanding[c] = 0;
    }

    static char payload[65536];
    static char inbox[MAX_BATCH][65536];
    memset(payload, 'x', sizeof payload);
    struct iovec send_vector = {payload, (size_t)size};
    struct mmsghdr outgoing[MAX_BATCH];
    struct iovec receive_vectors[MAX_BATCH];
    struct mmsghdr incoming[MAX_BATCH];
    memset(outgoing, 0, sizeof outgoing);
    memset(incoming, 0, sizeof incoming);
    for (int i = 0; i < MAX_BATCH; i++) {
        outgoing[i].msg_hdr.msg_iov = &send_vector;
        outgoing[i].msg_hdr.msg_iovlen = 1;
        receive_vectors[i].iov_base = inbox[i];
        receive_vectors[i].iov_len = sizeof inbox[i];
        incoming[i].msg_hdr.msg_iov = &receive_vectors[i];
        incoming[i].msg_hdr.msg_iovlen = 1;
    }

    long long echoes = 0, lost = 0;
    double start = now_seconds();
    double measure_from = start + warmup, measure_until = measure_from + seconds;
    long long counted = 0;
    int measuring = 0;
    double last_echo = start;
    for (;;) {
        if (now_seconds() - last_echo > 5) {
            fprintf(stderr, "udp-load: no echo from %s:%s for 5 s\n", argv[1], argv[2]);
            return 1;
        }
        for (int c = 0; c < clients; c++) {
            int deficit = in_flight - outstanding[c];
            if (deficit <= 0) continue;
            if (gso) {
                // One send of `deficit` datagrams, cut by the kernel (UDP_SEGMENT).
                if (send(waiters[c].fd, payload, (size_t)deficit * (size_t)size, 0) > 0) outstanding[c] += deficit;
                continue;
            }
            int sent = sendmmsg(waiters[c].fd, outgoing, (unsigned)deficit, 0);
            if (sent > 0) outstanding[c] += sent;
        }
        // A reply that never comes (a drop) must not stall the pipeline.
        if (poll(waiters, (nfds_t)clients, 100) == 0) {
            for (int c = 0; c < clients; c++) {
                lost += outstanding[c];
                outstanding[c] = 0;
            }
            continue;
        }
        int got = 0;
        for (int c = 0; c < clients; c++) {
            if (!waiters[c].revents) continue;
            int received = recvmmsg(waiters[c].fd, incoming, (unsigned)in_flight, MSG_DONTWAIT, NULL);
            if (received < 0) {
                if (errno == ECONNREFUSED) {
                    fprintf(stderr, "udp-load: nothing answers on %s:%s\n", argv[1], argv[2]);
                    return 1;
                }
                continue;
            }
            receives++;
            // A coalesced receive holds several replies.
            if (gso) {
                int replies = 0;
                for (int i = 0; i < received; i++) replies += ((int)incoming[i].msg_len + size - 1) / size;
                received = replies;
            }
            outstanding[c] -= received;
            if (outstanding[c] < 0) outstanding[c] = 0;
            got += received;
        }
        echoes += got;
        double t = now_seconds();
        if (got > 0) last_echo = t;
        if (!measuring && t >= measure_from) {
            measuring = 1;
            counted = echoes;
            measure_from = t;
            measure_until = t + seconds;
        } else if (measuring && t >= measure_until) {
            double rate = (double)(echoes - counted) / (t - measure_from);
            printf("%.0f\n", rate);
            if (lost) fprintf(stderr, "udp-load: %lld datagrams lost\n", lost);
            if (stats) fprintf(stderr, "udp-load: %.1f echoes per receive\n", (double)echoes / (double)receives);
            return 0;
        }
    }
}
