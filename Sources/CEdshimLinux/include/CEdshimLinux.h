// Linux interfaces Swift's Glibc module does not export: signalfd, pidfd,
// recvmmsg/sendmmsg. The header stays free of _GNU_SOURCE (it must agree with
// Swift's Glibc module); GNU-only calls are wrapped in CEdshimLinux.c.
#ifndef CEDSHIM_LINUX_H
#define CEDSHIM_LINUX_H

#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>

/// pidfd_open(2): a descriptor that becomes readable when the process exits.
int edshim_pidfd_open(pid_t pid);

/// Layout-compatible with `struct ucred` (SO_PEERCRED).
struct edshim_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/// Layout-compatible with glibc's `struct mmsghdr`.
struct edshim_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg(2) with MSG_DONTWAIT semantics given in `flags`.
int edshim_recvmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags);

/// sendmmsg(2).
int edshim_sendmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags);

#endif
