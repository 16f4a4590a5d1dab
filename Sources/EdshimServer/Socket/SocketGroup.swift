import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Who owns the server's sockets and their directory: root, and the socket group
/// (`--socket-group`, docker by default) whose members' shims may register.
enum SocketGroup {
    /// Gives `path` (a socket or its directory) to root and the socket group, through
    /// `change` (chown(2)'s owner and group; -1 keeps one). A server not run as root
    /// can give it only to a group it is a member of: it keeps its own user, and its
    /// own group when the socket group is not one of its groups (then only its own
    /// user and root may use the socket, which the log says).
    static func give(_ path: String, policy: PeerPolicy, logger: Logger, change: (uid_t, gid_t) -> Int32) throws {
        let group = policy.group?.gid ?? 0
        if geteuid() == 0 {
            guard change(0, group) == 0 else {
                throw ServerError("cannot set owner root:\(policy.group?.name ?? "root") on \(path): \(ErrorText.describe(errno))")
            }
            return
        }
        guard let socketGroup = policy.group, change(uid_t.max, socketGroup.gid) != 0 else { return }
        logger.warning("not run as root, and not a member of the socket group: only this user and root may use the socket", metadata: [
            "path": "\(path)", "uid": "\(geteuid())", "group": "\(socketGroup.name)",
            "error": "\(ErrorText.describe(errno))",
        ])
    }

    /// Whether this process has `gid` as its group or one of its supplementary groups.
    static func isMember(of gid: gid_t) -> Bool {
        if getegid() == gid { return true }
        var groups = [gid_t](repeating: 0, count: Int(max(getgroups(0, nil), 0)))
        let count = getgroups(Int32(groups.count), &groups)
        return count > 0 && groups.prefix(Int(count)).contains(gid)
    }
}
