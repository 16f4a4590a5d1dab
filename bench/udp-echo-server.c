// udp-echo-server: the "container" of the UDP benchmark. Echoes every datagram to
// its sender, in batches (recvmmsg/sendmmsg) so it is never the bottleneck.
//   udp-echo-server HOST PORT [--gro]   runs until killed; prints "ready" once bound
// With --gro it takes bursts the kernel coalesced (UDP_GRO) and echoes each as one
// UDP GSO send, as QUIC servers do: the datagrams go back as they came.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-address.h"

#define BATCH 64
#define SIZE 65536
#define CONTROL 64

int main(int argc, char **argv) {
    int coalescing = argc == 4 && !strcmp(argv[3], "--gro");
    if (coalescing) argc = 3;
    struct sockaddr_storage address;
    socklen_t length;
    int family = bench_server_address(argc, argv, &address, &length);
    int fd = socket(family, SOCK_DGRAM, 0);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    int one = 1;
    if (coalescing && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0) {
        perror("udp-echo-server: UDP_GRO");
        return 1;
    }
    if (bind(fd, (struct sockaddr *)&address, length) != 0) {
        perror("udp-echo-server: bind");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    static char buffers[BATCH][SIZE];
    static struct sockaddr_storage names[BATCH];
    static struct iovec vectors[BATCH];
    static struct mmsghdr messages[BATCH];
    static char controls[BATCH][CONTROL] __attribute__((aligned(8)));
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            vectors[i].iov_base = buffers[i];
            vectors[i].iov_len = SIZE;
            memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &names[i];
            messages[i].msg_hdr.msg_namelen = sizeof names[i];
            messages[i].msg_hdr.msg_control = coalescing ? controls[i] : NULL;
            messages[i].msg_hdr.msg_controllen = coalescing ? CONTROL : 0;
        }
        // Block for the first datagram, take whatever else is already queued.
        int count = recvmmsg(fd, messages, BATCH, MSG_WAITFORONE, NULL);
        if (count <= 0) continue;
        for (int i = 0; i < count; i++) {
            vectors[i].iov_len = messages[i].msg_len;
            if (!coalescing) continue;
            // A coalesced burst goes back as one GSO send cut at the same size.
            int segment = 0;
            struct msghdr *header = &messages[i].msg_hdr;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(header); c; c = CMSG_NXTHDR(header, c))
                if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) memcpy(&segment, CMSG_DATA(c), sizeof segment);
            header->msg_controllen = 0;
            if (segment > 0 && (size_t)segment < vectors[i].iov_len) {
                struct cmsghdr *c = (struct cmsghdr *)controls[i];
                memset(c, 0, CMSG_SPACE(sizeof(uint16_t)));
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t value = (uint16_t)segment;
                memcpy(CMSG_DATA(c), &value, sizeof value);
                header->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            }
        }
        int sent = 0;
        while (sent < count) {
            int n = sendmmsg(fd, messages + sent, (unsigned)(count - sent), 0);
            sent += n > 0 ? n : 1;
        }
    }
}
