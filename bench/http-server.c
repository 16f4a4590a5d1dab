// http-server: the "container" of the HTTP benchmark. HTTP/1.1 with keep-alive, one
// thread per connection, the same short answer to every request (GET, no body), so
// that it costs little next to the proxies in front of it.
//   http-server HOST PORT     runs until killed; prints "ready" once listening
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-address.h"

static const char answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";

static int send_all(int fd, const char *bytes, size_t count) {
    while (count > 0) {
        ssize_t sent = send(fd, bytes, count, MSG_NOSIGNAL);
        if (sent <= 0) return -1;
        bytes += sent;
        count -= (size_t)sent;
    }
    return 0;
}

// Answers every complete request head that arrives, until the client closes.
static void *serve(void *argument) {
    int fd = (int)(intptr_t)argument;
    char buffer[16384];
    size_t used = 0;
    for (;;) {
        ssize_t received = recv(fd, buffer + used, sizeof buffer - used, 0);
        if (received <= 0) break;
        used += (size_t)received;
        char *start = buffer, *end;
        while ((end = memmem(start, (size_t)(buffer + used - start), "\r\n\r\n", 4)) != NULL) {
            if (send_all(fd, answer, sizeof answer - 1) < 0) goto done;
            start = end + 4;
        }
        used -= (size_t)(start - buffer);
        memmove(buffer, start, used);
        if (used == sizeof buffer) break;  // a head larger than the buffer: not from wrk
    }
done:
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    struct sockaddr_storage address;
    socklen_t length;
    int family = bench_server_address(argc, argv, &address, &length);
    int listener = socket(family, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&address, length) != 0 || listen(listener, 1024) != 0) {
        perror("http-server: bind/listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t thread;
        if (pthread_create(&thread, &detached, serve, (void *)(intptr_t)fd) != 0) close(fd);
    }
}
