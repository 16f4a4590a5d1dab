// The kernel's socket diagnostics (NETLINK_SOCK_DIAG, as `ss` uses them): the
// listening TCP sockets of this network namespace, without reading /proc/net/tcp,
// which walks the whole connection hash table on every read (milliseconds on a
// host with much memory, however few sockets it has).
#include "CEdshimLinux.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// TCP's states, which the kernel uses for UDP sockets too: an unconnected one is CLOSE.
enum { TCP_STATE_ESTABLISHED = 1, TCP_STATE_CLOSE = 7, TCP_STATE_CLOSE_WAIT = 8, TCP_STATE_LISTEN = 10, RECEIVE_BUFFER_SIZE = 65536 };

static int finish(int fd, void *buffer, int result) {
    free(buffer);
    close(fd);
    return result;
}

// The kernel attaches INET_DIAG_SKV6ONLY to every AF_INET6 socket's answer. Without
// it (an older kernel) the socket counts as v6-only, as edshim's own listeners are.
static int takes_ipv4(const struct nlmsghdr *header, const struct inet_diag_msg *socket_info) {
    int remaining = (int)header->nlmsg_len - (int)NLMSG_LENGTH(sizeof *socket_info);
    for (const struct rtattr *attribute = (const struct rtattr *)(socket_info + 1); RTA_OK(attribute, remaining);
         attribute = RTA_NEXT(attribute, remaining)) {
        if (attribute->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(attribute) >= 1) {
            return *(const unsigned char *)RTA_DATA(attribute) == 0;
        }
    }
    return 0;
}

// A filter for the kernel (INET_DIAG_REQ_BYTECODE) that keeps the sockets whose
// local port is one of `ports`, as `ss 'sport = :A or sport = :B'` compiles it: for
// each port but the last, "port equal" (on a match, on to a jump to the end: kept;
// else past the jump, to the next port), the last port's mismatch jumping past the
// end: left out. Written into `code` (12 bytes a port); returns its length.
static int port_filter(const unsigned short *ports, int count, unsigned char *code) {
    int length = 0;
    for (int index = 0; index < count; index++) {
        int last = index == count - 1;
        struct inet_diag_bc_op compare = {INET_DIAG_BC_S_EQ, 8, 12};
        struct inet_diag_bc_op port = {0, 0, ports[index]};
        memcpy(code + length, &compare, sizeof compare);
        memcpy(code + length + 4, &port, sizeof port);
        length += 8;
        if (!last) {
            // Reached on a match: jumps over the ports left, to the end.
            int rest = (count - index - 1) * 12 - 4;
            struct inet_diag_bc_op jump = {INET_DIAG_BC_JMP, 4, (unsigned short)(rest + 4)};
            memcpy(code + length, &jump, sizeof jump);
            length += 4;
        }
    }
    return length;
}

// The sockets of `family` and `protocol` in one of `states` (a mask of 1 << state),
// as the public calls below describe them; only those on `ports` when `port_count` > 0.
static int sockets_in_states(int family, int protocol, unsigned int states, const unsigned short *ports, int port_count,
                            struct edshim_listening_socket *sockets, int capacity) {
    if (family != AF_INET && family != AF_INET6) return -EAFNOSUPPORT;
    if (port_count < 0 || port_count > EDSHIM_DIAG_MOST_PORTS) return -EINVAL;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return -errno;
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
        struct rtattr filter;
        unsigned char code[EDSHIM_DIAG_MOST_PORTS * 12];
    } message;
    memset(&message, 0, sizeof message);
    int code_length = port_count > 0 ? port_filter(ports, port_count, message.code) : 0;
    size_t length = NLMSG_ALIGN(NLMSG_LENGTH(sizeof message.request));
    if (code_length > 0) {
        message.filter.rta_type = INET_DIAG_REQ_BYTECODE;
        message.filter.rta_len = (unsigned short)RTA_LENGTH(code_length);
        length += RTA_SPACE(code_length);
    }
    message.header.nlmsg_len = (unsigned int)length;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.nlmsg_seq = 1;
    message.request.sdiag_family = (unsigned char)family;
    message.request.sdiag_protocol = (unsigned char)protocol;
    message.request.idiag_states = states;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, &message, length, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return finish(fd, NULL, -errno);

    void *buffer = malloc(RECEIVE_BUFFER_SIZE);
    if (buffer == NULL) return finish(fd, NULL, -ENOMEM);
    int count = 0;
    for (;;) {
        ssize_t length = recv(fd, buffer, RECEIVE_BUFFER_SIZE, 0);
        if (length < 0 && errno == EINTR) continue;
        if (length <= 0) return finish(fd, buffer, length < 0 ? -errno : -EIO);
        int remaining = (int)length;
        for (struct nlmsghdr *header = buffer; NLMSG_OK(header, remaining); header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type == NLMSG_DONE) return finish(fd, buffer, count);
            if (header->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *error = NLMSG_DATA(header);
                return finish(fd, buffer, error->error < 0 ? error->error : -EIO);
            }
            if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY || header->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
            const struct inet_diag_msg *socket_info = NLMSG_DATA(header);
            if (socket_info->idiag_state >= 32 || !(states & (1u << socket_info->idiag_state))) continue;
            if (count < capacity) {
                struct edshim_listening_socket *entry = &sockets[count];
                memset(entry->address, 0, sizeof entry->address);
                memcpy(entry->address, socket_info->id.idiag_src, family == AF_INET ? 4 : 16);
                entry->port = ntohs(socket_info->id.idiag_sport);
                entry->inode = socket_info->idiag_inode;
                entry->accepts_ipv4 = family == AF_INET6 && takes_ipv4(header, socket_info);
                entry->accept_queue = socket_info->idiag_rqueue;
                entry->cookie = ((unsigned long long)socket_info->id.idiag_cookie[1] << 32) | socket_info->id.idiag_cookie[0];
                memset(entry->peer_address, 0, sizeof entry->peer_address);
                memcpy(entry->peer_address, socket_info->id.idiag_dst, family == AF_INET ? 4 : 16);
                entry->peer_port = ntohs(socket_info->id.idiag_dport);
            }
            count++;
        }
    }
}

int edshim_tcp_listening_sockets(int family, struct edshim_listening_socket *sockets, int capacity) {
    return sockets_in_states(family, IPPROTO_TCP, 1u << TCP_STATE_LISTEN, NULL, 0, sockets, capacity);
}

int edshim_tcp_listening_sockets_on(int family, const unsigned short *ports, int port_count, struct edshim_listening_socket *sockets, int capacity) {
    if (port_count <= 0) return 0;
    return sockets_in_states(family, IPPROTO_TCP, 1u << TCP_STATE_LISTEN, ports, port_count, sockets, capacity);
}

int edshim_tcp_established_sockets(int family, struct edshim_listening_socket *sockets, int capacity) {
    return sockets_in_states(family, IPPROTO_TCP, (1u << TCP_STATE_ESTABLISHED) | (1u << TCP_STATE_CLOSE_WAIT), NULL, 0, sockets, capacity);
}

int edshim_udp_unconnected_sockets(int family, struct edshim_listening_socket *sockets, int capacity) {
    return sockets_in_states(family, IPPROTO_UDP, 1u << TCP_STATE_CLOSE, NULL, 0, sockets, capacity);
}

int edshim_udp_connected_sockets(int family, struct edshim_listening_socket *sockets, int capacity) {
    return sockets_in_states(family, IPPROTO_UDP, 1u << TCP_STATE_ESTABLISHED, NULL, 0, sockets, capacity);
}
