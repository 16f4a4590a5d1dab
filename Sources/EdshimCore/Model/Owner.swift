/// The process a registration belongs to: the shim dockerd started for the port.
///
/// The start time (clock ticks since boot, field 22 of `/proc/PID/stat`) tells a
/// live owner from a new process that happens to reuse its PID.
public struct Owner: Hashable, Sendable, CustomStringConvertible {
    /// The process id.
    public var pid: Int32
    /// The process start time in clock ticks since boot; 0 when unknown.
    public var startTime: UInt64

    /// Creates an owner.
    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// `pid 1234`.
    public var description: String { "pid \(pid)" }
}
