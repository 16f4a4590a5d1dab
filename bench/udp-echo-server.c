// udp-echo-server: the "container" of the UDP benchmark. Echoes every datagram to
// its sender, in batches (recvmmsg/sendmmsg) so it is never the bottleneck.
//   udp-echo-server HOST PORT     runs until killed; prints "ready" once bound
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-address.h"

#define BATCH 64
#define SIZE 65536

int main(int argc, char **argv) {
    struct sockaddr_storage address;
    socklen_t length;
    int family = bench_server_address(argc, argv, &address, &length);
    int fd = socket(family, SOCK_DGRAM, 0);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
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
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            vectors[i].iov_base = buffers[i];
            vectors[i].iov_len = SIZE;
            memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &names[i];
            messages[i].msg_hdr.msg_namelen = sizeof names[i];
        }
        // Block for the first datagram, take whatever else is already queued.
        int count = recvmmsg(fd, messages, BATCH, MSG_WAITFORONE, NULL);
        if (count <= 0) continue;
        for (int i = 0; i < count; i++) vectors[i].iov_len = messages[i].msg_len;
        int sent = 0;
        while (sent < count) {
            int n = sendmmsg(fd, messages + sent, (unsigned)(count - sent), 0);
            sent += n > 0 ? n : 1;
        }
    }
}
