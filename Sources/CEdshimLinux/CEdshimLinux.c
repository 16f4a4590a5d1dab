#define _GNU_SOURCE
#include "CEdshimLinux.h"

#include <errno.h>
#include <signal.h>
#include <netinet/udp.h>
#include <nss.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct edshim_ucred) == sizeof(struct ucred), "ucred layout");
_Static_assert(sizeof(struct edshim_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");

int edshim_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int edshim_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int edshim_recvmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int edshim_sendmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) <= EDSHIM_UDP_CONTROL_SPACE, "pktinfo control space");
_Static_assert(CMSG_SPACE(sizeof(struct in_pktinfo)) <= EDSHIM_UDP_CONTROL_SPACE, "pktinfo control space");
_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) <= EDSHIM_UDP_CONTROL_SPACE, "both pktinfo messages of a dual-stack socket");

int edshim_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int edshim_epoll_watch(int epoll_fd, int fd, unsigned long long token) {
    return edshim_epoll_control(epoll_fd, EPOLL_CTL_ADD, fd, EPOLLIN, token);
}

int edshim_epoll_control(int epoll_fd, int operation, int fd, unsigned int events, unsigned long long token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = token;
    return epoll_ctl(epoll_fd, operation, fd, &event);
}

int edshim_epoll_wait(int epoll_fd, unsigned long long *tokens, int capacity, int timeout_ms) {
    return edshim_epoll_wait_events(epoll_fd, tokens, NULL, capacity, timeout_ms);
}

int edshim_epoll_wait_events(int epoll_fd, unsigned long long *tokens, unsigned int *events, int capacity, int timeout_ms) {
    // epoll_event is packed on x86-64, which Swift cannot lay out: copied out here.
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epoll_fd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        if (events != NULL) events[i] = ready[i].events;
    }
    return count;
}

int edshim_enable_packet_info(int fd, int family) {
    int one = 1;
    if (family == AF_INET) return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) != 0) return -1;
    int v6only = 0;
    socklen_t length = sizeof v6only;
    if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &length) == 0 && !v6only) {
        // IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d.
        (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    }
    return 0;
}

int edshim_packet_destination(const struct msghdr *message, unsigned char address[16], unsigned int *ifindex) {
    // An IPv4 datagram on a dual-stack socket carries both messages, IPV6_PKTINFO
    // first, with the datagram's destination (for a broadcast, the broadcast
    // address, which no reply may leave from). IP_PKTINFO's ipi_spec_dst is the
    // local address to answer from: it wins wherever it is. A message the kernel cut
    // short (a control area filled by other options turned on on dockerd's socket,
    // MSG_CTRUNC) is passed over: its stale bytes would become a reply's source.
    int family = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)message); c != NULL; c = CMSG_NXTHDR((struct msghdr *)message, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            memcpy(address, &info.ipi_spec_dst, 4);
            *ifindex = (unsigned int)info.ipi_ifindex;
            return AF_INET;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            memcpy(address, &info.ipi6_addr, 16);
            *ifindex = info.ipi6_ifindex;
            family = AF_INET6;
        }
    }
    return family;
}

size_t edshim_packet_source(void *control, size_t capacity, int family, const unsigned char *address, unsigned int ifindex) {
    size_t length = family == AF_INET ? CMSG_SPACE(sizeof(struct in_pktinfo)) : CMSG_SPACE(sizeof(struct in6_pktinfo));
    if (capacity < length) return 0;
    memset(control, 0, length);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_control = control;
    message.msg_controllen = length;
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    if (family == AF_INET) {
        struct in_pktinfo info;
        memset(&info, 0, sizeof info);
        memcpy(&info.ipi_spec_dst, address, 4);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
    } else {
        struct in6_pktinfo info;
        memset(&info, 0, sizeof info);
        memcpy(&info.ipi6_addr, address, 16);
        info.ipi6_ifindex = ifindex;
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
    }
    return length;
}

_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t)) <= EDSHIM_UDP_CONTROL_SPACE, "pktinfo and segment size");

size_t edshim_append_segment_size(void *control, size_t used, size_t capacity, unsigned short segment_size) {
    size_t length = used + CMSG_SPACE(sizeof(uint16_t));
    if (capacity < length) return 0;
    struct cmsghdr *c = (struct cmsghdr *)((char *)control + used);
    memset(c, 0, CMSG_SPACE(sizeof(uint16_t)));
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t value = segment_size;
    memcpy(CMSG_DATA(c), &value, sizeof value);
    return length;
}

_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int)) <= EDSHIM_UDP_CONTROL_SPACE, "both pktinfo messages and a segment size");

int edshim_enable_receive_coalescing(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
}

int edshim_received_segment_size(const struct msghdr *message) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c != NULL; c = CMSG_NXTHDR((struct msghdr *)message, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof size);
            return size > 0 ? size : 0;
        }
    }
    return (message->msg_flags & MSG_CTRUNC) ? -1 : 0;
}

int edshim_udp_segmentation_supported(int fd) {
    int size = 0;
    socklen_t length = sizeof size;
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, &length) == 0;
}

int edshim_unread_bytes(int fd) {
    int pending = 0;
    return ioctl(fd, SIOCOUTQ, &pending) == 0 ? pending : -1;
}

void edshim_socket_buffer(int fd, int receive, int bytes) {
    int forced = receive ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
    int capped = receive ? SO_RCVBUF : SO_SNDBUF;
    if (setsockopt(fd, SOL_SOCKET, forced, &bytes, sizeof bytes) != 0) {
        setsockopt(fd, SOL_SOCKET, capped, &bytes, sizeof bytes);
    }
}

int edshim_stop_ignoring(int signo) {
    struct sigaction current;
    if (sigaction(signo, NULL, &current) != 0) return -1;
    if (current.sa_handler != SIG_IGN) return 0;
    return signal(signo, SIG_DFL) == SIG_ERR ? -1 : 0;
}

int edshim_use_built_in_name_services(void) {
    int refused = 0;
    refused |= __nss_configure_lookup("passwd", "files");
    refused |= __nss_configure_lookup("group", "files");
    refused |= __nss_configure_lookup("hosts", "files dns");
    return refused ? -1 : 0;
}
