// udp-reference-proxy: the least a UDP proxy built on kernel sockets can do, as a
// yardstick for edshim in bench/udp-bench.sh. Same batching as edshim — recvmmsg,
// sendmmsg, UDP GSO for runs of equal-sized datagrams, bursts the kernel coalesced
// (UDP_GRO) sent on as one GSO send, one connected upstream socket per client — and
// nothing else: no flow expiry or limit, no IP_PKTINFO (replies leave from
// whatever address the kernel picks), no error handling beyond exiting. Not a
// product; never put it in front of anything.
//   udp-reference-proxy -proto udp -host-ip IP -host-port P -container-ip IP -container-port P
// Started like docker-proxy, it reports "0\n" on fd 3 once bound. With
// UDP_REFERENCE_POLL_US=N it keeps polling, without sleeping or yielding, for N µs
// after the last datagram (the most a proxy can get out of burning a vCPU).
#define _GNU_SOURCE
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench-address.h"

#define BATCH 64
#define MAX_FLOWS 256
#define SLOT_BYTES 65536
#define REPLY_SLOTS 256
#define CONTROL 32

struct flow { struct sockaddr_storage client; socklen_t length; int fd; };

// Datagrams with their lengths and destinations (NULL: the socket's connected peer).
struct batch {
    int count;
    struct mmsghdr messages[REPLY_SLOTS];
    struct iovec vectors[REPLY_SLOTS];
    struct sockaddr_storage sources[REPLY_SLOTS];
    char bytes[REPLY_SLOTS][SLOT_BYTES];
    char controls[REPLY_SLOTS][CONTROL] __attribute__((aligned(8)));
    // The segment size of a coalesced receive, 0 for one datagram.
    int segments[REPLY_SLOTS];
};

static struct flow flows[MAX_FLOWS];
static int flow_count;
static struct batch received, replies;
static char segmented[60000];

static void fail(const char *what) { perror(what); exit(1); }

static void prepare(struct batch *batch, int first, int count) {
    for (int i = first; i < first + count; i++) {
        batch->vectors[i] = (struct iovec){ batch->bytes[i], SLOT_BYTES };
        batch->messages[i].msg_hdr = (struct msghdr){
            .msg_name = &batch->sources[i], .msg_namelen = sizeof batch->sources[i],
            .msg_iov = &batch->vectors[i], .msg_iovlen = 1,
            .msg_control = batch->controls[i], .msg_controllen = CONTROL };
    }
}

static int receive(int fd, struct batch *batch, int first) {
    int room = REPLY_SLOTS - first < BATCH ? REPLY_SLOTS - first : BATCH;
    prepare(batch, first, room);
    int count = recvmmsg(fd, &batch->messages[first], room, MSG_DONTWAIT, NULL);
    for (int i = first; i < first + (count > 0 ? count : 0); i++) {
        batch->vectors[i].iov_len = batch->messages[i].msg_len;
        struct msghdr *header = &batch->messages[i].msg_hdr;
        batch->segments[i] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(header); c; c = CMSG_NXTHDR(header, c))
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) memcpy(&batch->segments[i], CMSG_DATA(c), sizeof(int));
        if ((size_t)batch->segments[i] >= batch->vectors[i].iov_len) batch->segments[i] = 0;
        header->msg_control = NULL;
        header->msg_controllen = 0;
    }
    return count > 0 ? count : 0;
}

// Sends messages[first ..< first+count] (all to `to`, NULL for connected) as one GSO
// send when they are several of one size, else with one sendmmsg.
static void send_segmented(int fd, char *bytes, size_t total, uint16_t segment, struct sockaddr_storage *to, socklen_t length) {
    char control[CMSG_SPACE(sizeof(uint16_t))] = { 0 };
    struct iovec vector = { bytes, total };
    struct msghdr message = { .msg_name = to, .msg_namelen = to ? length : 0, .msg_iov = &vector, .msg_iovlen = 1,
                              .msg_control = control, .msg_controllen = sizeof control };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_UDP;
    header->cmsg_type = UDP_SEGMENT;
    header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(header), &segment, sizeof segment);
    sendmsg(fd, &message, 0);
}

static void send_run(int fd, struct batch *batch, int first, int count, struct sockaddr_storage *to, socklen_t length) {
    // A coalesced burst goes on as it came, one GSO send (the bench's are small).
    for (int i = first; i < first + count; i++) {
        if (!batch->segments[i]) continue;
        if (i > first) send_run(fd, batch, first, i - first, to, length);
        send_segmented(fd, batch->bytes[i], batch->vectors[i].iov_len, (uint16_t)batch->segments[i], to, length);
        if (i + 1 < first + count) send_run(fd, batch, i + 1, first + count - i - 1, to, length);
        return;
    }
    // GSO like edshim's: segments that fit any path MTU, at most 64 KiB in all.
    int same = count > 1 && batch->vectors[first].iov_len <= 1200 && count * batch->vectors[first].iov_len <= 60000;
    for (int i = first + 1; same && i < first + count; i++) same = batch->vectors[i].iov_len == batch->vectors[first].iov_len;
    if (same) {
        size_t total = 0;
        for (int i = first; i < first + count; i++) {
            memcpy(segmented + total, batch->bytes[i], batch->vectors[i].iov_len);
            total += batch->vectors[i].iov_len;
        }
        send_segmented(fd, segmented, total, (uint16_t)batch->vectors[first].iov_len, to, length);
        return;
    }
    for (int i = first; i < first + count; i++) {
        batch->messages[i].msg_hdr.msg_name = to;
        batch->messages[i].msg_hdr.msg_namelen = to ? length : 0;
    }
    sendmmsg(fd, &batch->messages[first], count, 0);
}

static int flow_for(struct sockaddr_storage *client, socklen_t length, const struct sockaddr_storage *container,
                    socklen_t container_length, int epoll_fd) {
    for (int i = 0; i < flow_count; i++)
        if (flows[i].length == length && !memcmp(&flows[i].client, client, length)) return i;
    if (flow_count == MAX_FLOWS) return -1;
    int fd = socket(container->ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)container, container_length)) fail("upstream socket");
    int one = 1;
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    struct epoll_event event = { .events = EPOLLIN, .data.u32 = (uint32_t)flow_count + 1 };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event)) fail("epoll_ctl");
    flows[flow_count] = (struct flow){ .client = *client, .length = length, .fd = fd };
    return flow_count++;
}

static const char *flag(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    fprintf(stderr, "udp-reference-proxy: missing %s\n", name);
    exit(2);
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    struct sockaddr_storage host, container;
    socklen_t host_length, container_length;
    if (bench_address(flag(argc, argv, "-host-ip"), flag(argc, argv, "-host-port"), &host, &host_length) < 0 ||
        bench_address(flag(argc, argv, "-container-ip"), flag(argc, argv, "-container-port"), &container, &container_length) < 0) {
        fprintf(stderr, "udp-reference-proxy: -host-ip and -container-ip must be IP addresses\n");
        return 2;
    }
    const char *poll_setting = getenv("UDP_REFERENCE_POLL_US");
    double poll_us = poll_setting ? atof(poll_setting) : 0;

    int listener = socket(host.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&host, host_length)) fail("bind");
    int one = 1;
    setsockopt(listener, SOL_UDP, UDP_GRO, &one, sizeof one);
    int epoll_fd = epoll_create1(0);
    struct epoll_event event = { .events = EPOLLIN, .data.u32 = 0 };
    if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event)) fail("epoll");
    if (write(3, "0\n", 2) == 2) close(3);

    struct epoll_event ready[MAX_FLOWS + 1];
    double last_datagram = 0;
    for (;;) {
        int timeout = poll_us > 0 && now_us() - last_datagram < poll_us ? 0 : -1;
        int count = epoll_wait(epoll_fd, ready, MAX_FLOWS + 1, timeout);
        replies.count = 0;
        for (int r = 0; r < count; r++) {
            if (ready[r].data.u32 == 0) {
                // Client → container: each run of one client's datagrams to its flow.
                int n = receive(listener, &received, 0);
                for (int start = 0, end; start < n; start = end) {
                    socklen_t length = received.messages[start].msg_hdr.msg_namelen;
                    for (end = start + 1; end < n && received.messages[end].msg_hdr.msg_namelen == length &&
                                          !memcmp(&received.sources[end], &received.sources[start], length); end++) {}
                    int f = flow_for(&received.sources[start], length, &container, container_length, epoll_fd);
                    if (f >= 0) send_run(flows[f].fd, &received, start, end - start, NULL, 0);
                }
                if (n) last_datagram = now_us();
            } else {
                // Container → client: collect every flow's replies, send them below.
                struct flow *f = &flows[ready[r].data.u32 - 1];
                int first = replies.count;
                int n = receive(f->fd, &replies, first);
                for (int i = first; i < first + n; i++) {
                    memcpy(&replies.sources[i], &f->client, f->length);
                    replies.messages[i].msg_hdr.msg_namelen = f->length;
                }
                replies.count += n;
                if (n) last_datagram = now_us();
            }
        }
        // Replies: runs for one client as one GSO send, the rest in one sendmmsg.
        for (int start = 0, end; start < replies.count; start = end) {
            socklen_t length = replies.messages[start].msg_hdr.msg_namelen;
            for (end = start + 1; end < replies.count && replies.messages[end].msg_hdr.msg_namelen == length &&
                                  !memcmp(&replies.sources[end], &replies.sources[start], length); end++) {}
            if (end - start == 1 && !replies.segments[start]) {
                // Gather the following single-datagram runs into one sendmmsg.
                while (end < replies.count && !replies.segments[end] && (end + 1 == replies.count ||
                       memcmp(&replies.sources[end], &replies.sources[end + 1], length))) end++;
                for (int i = start; i < end; i++) replies.messages[i].msg_hdr.msg_name = &replies.sources[i];
                sendmmsg(listener, &replies.messages[start], end - start, 0);
            } else {
                send_run(listener, &replies, start, end - start, &replies.sources[start], length);
            }
        }
    }
}
