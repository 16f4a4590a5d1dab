import CEdshimLinux

/// Who is on the other end of a Unix socket connection, as the kernel says (SO_PEERCRED).
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    /// The peer's process id.
    public var pid: Int32
    /// The peer's user id.
    public var uid: UInt32
    /// The peer's group id.
    public var gid: UInt32

    /// Creates credentials.
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    init(_ credentials: edshim_ucred) {
        self.init(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
    }

    /// `pid 1234 uid 0`.
    public var description: String { "pid \(pid) uid \(uid)" }
}
