// Linux interfaces Swift's Glibc module does not export: signalfd, pidfd,
// recvmmsg/sendmmsg, socket diagnostics. The header stays free of _GNU_SOURCE (it
// must agree with Swift's Glibc module); GNU-only calls are wrapped in the .c files.
#ifndef CEDSHIM_LINUX_H
#define CEDSHIM_LINUX_H

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>

/// pidfd_open(2): a descriptor that becomes readable when the process exits.
int edshim_pidfd_open(pid_t pid);

/// pidfd_send_signal(2): `signal` to the process `pidfd` pins (never to another
/// that took its pid since).
int edshim_pidfd_send_signal(int pidfd, int signal);

/// Layout-compatible with `struct ucred` (SO_PEERCRED).
struct edshim_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/// Room for the peer's supplementary groups (SO_PEERGROUPS), as the kernel took them
/// when the peer connected: in ascending order, the rest left zero. More than fit
/// make getsockopt fail with ERANGE.
struct edshim_peer_groups {
    gid_t groups[256];
};

/// SO_PEERGROUPS (Linux 4.13), which older headers lack.
#define EDSHIM_SO_PEERGROUPS 59

/// Layout-compatible with glibc's `struct mmsghdr`.
struct edshim_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg(2) with MSG_DONTWAIT semantics given in `flags`.
int edshim_recvmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags);

/// sendmmsg(2).
int edshim_sendmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags);

// UDP proxy: epoll, and the packet-info control messages that let a socket bound
// to 0.0.0.0 or :: answer from the address each datagram was sent to. The structs
// and CMSG macros live behind _GNU_SOURCE or are macros Swift cannot call, so the
// work happens in CEdshimLinux.c and the interface is plain types.

/// Bytes of control buffer a datagram needs: an IPV6_PKTINFO message, on a dual-stack
/// socket (dockerd may pass one on fd 4) an IP_PKTINFO one besides, and the segment
/// size of a coalesced receive (UDP_GRO); or, to send, a packet info and a UDP segment
/// size. With room to spare for options turned on on dockerd's socket (timestamps),
/// whose messages come first.
#define EDSHIM_UDP_CONTROL_SPACE 256

/// epoll_create1(EPOLL_CLOEXEC).
int edshim_epoll_create(void);

/// Watches `fd` for readability (level-triggered); `token` comes back from edshim_epoll_wait.
int edshim_epoll_watch(int epoll_fd, int fd, unsigned long long token);

/// epoll_ctl: `operation` is EPOLL_CTL_ADD, EPOLL_CTL_MOD or EPOLL_CTL_DEL; `events`
/// (EPOLLIN, EPOLLOUT; level-triggered) and `token` as epoll_event's.
int edshim_epoll_control(int epoll_fd, int operation, int fd, unsigned int events, unsigned long long token);

/// epoll_wait: fills up to `capacity` tokens of ready descriptors; returns their count, or -1.
int edshim_epoll_wait(int epoll_fd, unsigned long long *tokens, int capacity, int timeout_ms);

/// epoll_wait that also gives each ready descriptor's events (`events` may be NULL).
int edshim_epoll_wait_events(int epoll_fd, unsigned long long *tokens, unsigned int *events, int capacity, int timeout_ms);

/// Asks the kernel to report each datagram's local address (IP_PKTINFO for AF_INET,
/// IPV6_RECVPKTINFO for AF_INET6 and, on a dual-stack socket, IP_PKTINFO too).
int edshim_enable_packet_info(int fd, int family);

/// The local address a received datagram was sent to, from its control messages:
/// writes 4 (AF_INET: ipi_spec_dst) or 16 (AF_INET6: ipi6_addr) bytes to `address`
/// and the arrival interface to `ifindex`; returns AF_INET, AF_INET6, or 0 when absent.
int edshim_packet_destination(const struct msghdr *message, unsigned char address[16], unsigned int *ifindex);

/// Writes the control message that makes a datagram leave from `address` (4 bytes for
/// AF_INET, 16 for AF_INET6) into `control`; returns its length for msg_controllen,
/// or 0 when `capacity` is too small.
size_t edshim_packet_source(void *control, size_t capacity, int family, const unsigned char *address, unsigned int ifindex);

/// Appends a UDP_SEGMENT control message (UDP GSO: the kernel cuts the payload into
/// datagrams of `segment_size` bytes, the last one possibly shorter) after the `used`
/// bytes already in `control`; returns the new length, or 0 when `capacity` is too small.
size_t edshim_append_segment_size(void *control, size_t used, size_t capacity, unsigned short segment_size);

/// Whether the kernel segments UDP sends itself (UDP GSO, Linux 4.18): it knows the
/// UDP_SEGMENT option of UDP socket `fd`. Older kernels ignore the control message and
/// send the whole buffer list as one datagram, so they must never be given one.
int edshim_udp_segmentation_supported(int fd);

/// Asks the kernel to hand `fd` a burst of datagrams from one sender as one coalesced
/// receive (UDP_GRO, Linux 5.0) where it has them coalesced: from a sender using UDP
/// GSO, or from a NIC's GRO. Returns 0, or -1 where the kernel cannot.
int edshim_enable_receive_coalescing(int fd);

/// The segment size of a coalesced receive, from its UDP_GRO control message: every
/// `segment size` bytes of the payload is one datagram, the last one possibly shorter.
/// 0 when the message carries none: one datagram. -1 when the control messages were
/// cut short (MSG_CTRUNC) before one was found: how the payload divides is unknown.
int edshim_received_segment_size(const struct msghdr *message);

/// Sets the receive (`receive` != 0) or send buffer of `fd` to `bytes`: beyond
/// net.core.rmem_max / wmem_max where the caller may (CAP_NET_ADMIN, as under dockerd),
/// else up to them.
void edshim_socket_buffer(int fd, int receive, int bytes);

/// The bytes written on the stream socket `fd` that its peer has not read yet
/// (SIOCOUTQ; for a Unix socket, what waits in the peer's receive queue), or -1.
int edshim_unread_bytes(int fd);

/// A listening TCP socket, from the kernel's socket diagnostics.
struct edshim_listening_socket {
    /// The local address: 4 bytes for AF_INET (the rest zero), 16 for AF_INET6.
    unsigned char address[16];
    /// The local port, in host byte order.
    unsigned short port;
    /// The socket's inode: what fstat gives for its descriptor.
    unsigned long long inode;
    /// 1 for an AF_INET6 socket that takes IPv4 too (IPV6_V6ONLY off, the Linux
    /// default): bound to `::`, it keeps every IPv4 address of its port from binding.
    unsigned char accepts_ipv4;
    /// Connections established and waiting for the program to accept them (a
    /// listening socket's receive queue).
    unsigned int accept_queue;
    /// The kernel's cookie for the socket: it names one socket for as long as it lives.
    unsigned long long cookie;
    /// A connected socket's peer address, as `address` (zero for a listening one).
    unsigned char peer_address[16];
    /// A connected socket's peer port, in host byte order (0 for a listening one).
    unsigned short peer_port;
};

/// The listening TCP sockets of `family` (AF_INET or AF_INET6) in this network
/// namespace, through NETLINK_SOCK_DIAG as `ss -lt` lists them. Writes up to
/// `capacity` into `sockets` and returns how many there are (more than `capacity`:
/// ask again with more room), or -errno.
int edshim_tcp_listening_sockets(int family, struct edshim_listening_socket *sockets, int capacity);

/// The most ports `edshim_tcp_listening_sockets_on` filters on.
#define EDSHIM_DIAG_MOST_PORTS 256

/// The same, only those whose local port is one of `ports` (1 to
/// EDSHIM_DIAG_MOST_PORTS of them, host byte order; none: 0 sockets): the kernel
/// leaves the others out (a filter, as `ss 'sport = :80'` has it apply), so a read
/// costs little however many ports listen.
int edshim_tcp_listening_sockets_on(int family, const unsigned short *ports, int port_count, struct edshim_listening_socket *sockets, int capacity);

/// The same for connected TCP sockets, established or closed by the peer only
/// (CLOSE_WAIT: a client that gave up on a connection still waiting to be accepted)
/// (local address and port, inode: 0 for one no program has accepted yet, or closed).
int edshim_tcp_established_sockets(int family, struct edshim_listening_socket *sockets, int capacity);

/// The same for UDP sockets that are bound and not connected (a port's socket, not a
/// flow's): the sockets that receive a port's datagrams.
int edshim_udp_unconnected_sockets(int family, struct edshim_listening_socket *sockets, int capacity);

/// The same for connected UDP sockets (a UDP proxy's flow, a client's), with their
/// peer: each holds its local port as a bound socket does.
int edshim_udp_connected_sockets(int family, struct edshim_listening_socket *sockets, int capacity);

/// Sets `signo`'s disposition back to the default if it is ignored; a handler stays.
int edshim_stop_ignoring(int signo);

/// A handle on the file at `path` itself (O_PATH | O_NOFOLLOW): a symlink there is
/// the symlink, not its target. For fstat and the two calls below.
int edshim_open_file_itself(const char *path);

/// chmod(2) of the file a handle from edshim_open_file_itself names.
int edshim_chmod_handle(int fd, mode_t mode);

/// chown(2) of the file a handle from edshim_open_file_itself names; -1 keeps a side.
int edshim_chown_handle(int fd, uid_t owner, gid_t group);

/// rename(2) that fails with EEXIST instead of replacing what is at `to`
/// (RENAME_NOREPLACE; link and unlink where the filesystem lacks it).
int edshim_rename_without_replacing(const char *from, const char *to);

/// Confines the process's user, group and host name lookups to the sources built into
/// glibc (/etc/passwd, /etc/group, /etc/hosts and DNS), whatever nsswitch.conf names
/// besides: a fully static executable cannot load the others (libnss_systemd makes it
/// crash). 0, or -1 when glibc refused one of them.
int edshim_use_built_in_name_services(void);

/// The GNU build ID of the running executable into `bytes` (at most `capacity`):
/// its length, 0 when it has none.
int edshim_build_id(unsigned char *bytes, int capacity);

#endif
