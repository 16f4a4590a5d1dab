// A file changed through a handle on the file itself rather than by path, so that a
// symlink put in its place is never followed, and moved into place without replacing
// another: O_PATH, fchownat(AT_EMPTY_PATH), chmod through /proc/self/fd and renameat2
// live behind _GNU_SOURCE.
#define _GNU_SOURCE
#include "CEdshimLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int edshim_open_file_itself(const char *path) {
    return open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

int edshim_chmod_handle(int fd, mode_t mode) {
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return chmod(path, mode);
}

int edshim_chown_handle(int fd, uid_t owner, gid_t group) {
    return fchownat(fd, "", owner, group, AT_EMPTY_PATH);
}

int edshim_rename_without_replacing(const char *from, const char *to) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    // A filesystem without RENAME_NOREPLACE: a second name, then the first one gone.
    if (link(from, to) != 0) return -1;
    unlink(from);
    return 0;
}
