// bench-address.h: the HOST PORT arguments of the bench tools as a socket address,
// and the UDP socket options the tools share.
#ifndef BENCH_ADDRESS_H
#define BENCH_ADDRESS_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

// UDP GSO and GRO (Linux 4.18, 5.0), for C libraries whose headers lack them.
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

// Fills `address` and `length` from HOST (IPv4 or IPv6) and PORT; returns the
// address family, or -1 when HOST is not an address.
static int bench_address(const char *host, const char *port, struct sockaddr_storage *address, socklen_t *length) {
    memset(address, 0, sizeof *address);
    struct sockaddr_in *v4 = (struct sockaddr_in *)address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)atoi(port));
        *length = sizeof *v4;
        return AF_INET;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)atoi(port));
        *length = sizeof *v6;
        return AF_INET6;
    }
    return -1;
}

// The HOST PORT arguments of a server tool (argv[1], argv[2]) as an address; prints
// the usage or the error and exits with 2 when they are not that.
static inline int bench_server_address(int argc, char **argv, struct sockaddr_storage *address, socklen_t *length) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        exit(2);
    }
    int family = bench_address(argv[1], argv[2], address, length);
    if (family < 0) {
        fprintf(stderr, "%s: %s is not an address\n", argv[0], argv[1]);
        exit(2);
    }
    return family;
}
#endif
