#define _GNU_SOURCE
#include "CEdshimLinux.h"

#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct edshim_ucred) == sizeof(struct ucred), "ucred layout");
_Static_assert(sizeof(struct edshim_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");

int edshim_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int edshim_recvmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int edshim_sendmmsg(int fd, struct edshim_mmsghdr *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}
