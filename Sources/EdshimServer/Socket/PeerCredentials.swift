import CEdshimLinux

/// Who is on the other end of a Unix socket connection, as the kernel says (SO_PEERCRED).
struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    /// The peer's process id.
    var pid: Int32
    /// The peer's user id.
    var uid: UInt32
    /// The peer's group id.
    var gid: UInt32
    /// Its supplementary groups when it connected (SO_PEERGROUPS), root's group (0)
    /// left out; nil when the kernel could not say (more than fit, an old kernel).
    var groups: Set<UInt32>?

    /// Creates credentials.
    init(pid: Int32, uid: UInt32, gid: UInt32, groups: Set<UInt32>? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    init(_ credentials: edshim_ucred, groups: edshim_peer_groups?) {
        self.init(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid, groups: groups.map(Self.groups(in:)))
    }

    /// The groups SO_PEERGROUPS wrote: ascending, so the list ends where a value does
    /// not rise (the zeros after it). A 0 first is root's group, which zeros cannot be
    /// told from: it is left out.
    static func groups(in list: edshim_peer_groups) -> Set<UInt32> {
        withUnsafeBytes(of: list.groups) { raw in
            var found: Set<UInt32> = []
            var previous: UInt32 = 0
            for gid in raw.bindMemory(to: UInt32.self) {
                guard gid > previous else {
                    if found.isEmpty, gid == 0 { continue }
                    break
                }
                found.insert(gid)
                previous = gid
            }
            return found
        }
    }

    /// `pid 1234 uid 0`.
    var description: String { "pid \(pid) uid \(uid)" }
}
