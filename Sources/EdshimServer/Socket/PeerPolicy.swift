import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// Who may use the socket: root, the server's own user (a server not run as root,
/// as `make demo` runs it without root), and members of the socket's group (`docker`
/// by default), as the kernel reports them (SO_PEERCRED, SO_PEERGROUPS; /proc/PID/status
/// where those cannot tell). Everyone else is refused with the reason, even if the
/// socket's mode was loosened by hand.
struct PeerPolicy: Sendable {
    /// The group whose members may use the socket; nil: root only.
    let group: (name: String, gid: UInt32)?
    /// The server's own user.
    var serverUser: UInt32 = geteuid()

    /// Resolves `--socket-group`: the given name (must be in /etc/group) or number, or
    /// `docker` when /etc/group has it, else root only. Groups are looked up in
    /// /etc/group only (`BuiltInNameServices`).
    static func resolve(groupName: String?) throws -> PeerPolicy {
        let name = groupName ?? "docker"
        if name.isEmpty { throw ServerError("--socket-group must name a group in /etc/group, or give a group number") }
        if let gid = try groupID(named: name) { return PeerPolicy(group: (name, gid)) }
        let digits = name.hasPrefix("-") ? name.dropFirst() : Substring(name)
        if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) {
            throw ServerError("--socket-group \(name): a group number goes from 0 to \(UInt32.max - 1)")
        }
        if groupName != nil {
            throw ServerError("--socket-group \(name): no such group in /etc/group (edshim looks nowhere else); create it (groupadd \(name)), or give another group or a group number")
        }
        return PeerPolicy(group: nil)
    }

    /// The group named `name` in /etc/group, or the number `name` spells.
    static func groupID(named name: String) throws -> UInt32? {
        if let number = UInt32(name), number != UInt32.max { return number }
        var entry = Glibc.group()
        // A group line longer than the buffer (hundreds of members) asks for more.
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        var result: UnsafeMutablePointer<Glibc.group>?
        while true {
            let code = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
            if code == ERANGE, buffer.count < 16 * 1024 * 1024 {
                buffer = [CChar](repeating: 0, count: buffer.count * 4)
                continue
            }
            // Not found, as some sources say it (getgrnam_r(3)).
            if [ENOENT, ESRCH, EBADF, EPERM].contains(code) { return nil }
            guard code == 0 else { throw ServerError("--socket-group \(name): cannot read /etc/group: \(ErrorText.describe(code))") }
            return result == nil ? nil : entry.gr_gid
        }
    }

    /// Whether `gid` is among the peer's supplementary groups: as the kernel took them
    /// at connect (SO_PEERGROUPS), else (an old kernel, more groups than fit, or root's
    /// group, which that list cannot show) as /proc says now.
    private func supplementaryGroups(of peer: PeerCredentials, include gid: UInt32) -> Bool {
        if let groups = peer.groups, gid != 0 { return groups.contains(gid) }
        return ProcessTable.supplementaryGroups(of: peer.pid).contains(gid)
    }

    /// nil when `peer` may use the socket, else the refusal.
    func refusal(for peer: PeerCredentials) -> WireError? {
        if peer.uid == 0 || peer.uid == serverUser { return nil }
        if let group, peer.gid == group.gid || supplementaryGroups(of: peer, include: group.gid) { return nil }
        let root = serverUser == 0 ? "root" : "root, uid \(serverUser)"
        let who = group.map { "\(root) or members of group \($0.name)" } ?? root
        return WireError(.permissionDenied, "uid \(peer.uid) may not use this socket: only \(who) may (see --socket-group)")
    }
}
