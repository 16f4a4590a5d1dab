#if canImport(Glibc)
import Glibc
#endif

/// Facts about a process read from `/proc/PID`.
public enum ProcessTable {
    /// The process start time in clock ticks since boot (field 22 of `/proc/PID/stat`),
    /// or nil when the process does not exist.
    public static func startTime(of pid: Int32, root: String = "/proc") -> UInt64? {
        guard let stat = SystemFile.read("\(root)/\(pid)/stat") else { return nil }
        return parseStartTime(stat)
    }

    /// Parses `/proc/PID/stat` for the start time.
    public static func parseStartTime(_ stat: [UInt8]) -> UInt64? {
        fieldsAfterCommand(stat).flatMap(startTime(in:))
    }

    /// The start time among `fieldsAfterCommand`: fields[0] is field 3 (state), field
    /// 22 is fields[19].
    private static func startTime(in fields: [ArraySlice<UInt8>]) -> UInt64? {
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// The fields of `/proc/PID/stat` from field 3 (state) on. The command name (field
    /// 2) is in parentheses and may itself hold spaces and parentheses, so fields are
    /// counted after the last `)`.
    static func fieldsAfterCommand(_ stat: [UInt8]) -> [ArraySlice<UInt8>]? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        return stat[(close + 1)...].split(separator: UInt8(ascii: " "))
    }

    /// Whether process `pid` is stopped, or stopping, by SIGSTOP (state `T`), by
    /// `/proc/PID/task/*/stat`: a stop reaches its threads one by one, as each gets to
    /// run (on a loaded host, not at once). A debugger's stop (`t`) does not count:
    /// SIGCONT does not end it, and a tracer (strace) stops threads at every system
    /// call. False when it cannot be read.
    public static func isStopped(_ pid: Int32, root: String = "/proc") -> Bool {
        ShimProcesses.entryNames(in: "\(root)/\(pid)/task").contains { thread in
            guard let stat = SystemFile.read("\(root)/\(pid)/task/\(thread)/stat"), let state = fieldsAfterCommand(stat)?.first?.first else { return false }
            return state == UInt8(ascii: "T")
        }
    }

    /// The owner of a live process: its pid and start time.
    public static func owner(of pid: Int32, root: String = "/proc") -> Owner? {
        startTime(of: pid, root: root).map { Owner(pid: pid, startTime: $0) }
    }

    /// What /proc says of a process.
    public enum Liveness: Sendable, Equatable {
        /// Its PID names the same process (same start time), which has not exited.
        case running
        /// Gone, its PID taken by another process, or exited and not reaped yet (a
        /// zombie still has its `/proc/PID`).
        case exited
        /// /proc could not be read for another reason (no descriptor or memory left):
        /// nothing can be told.
        case unknown
    }

    /// Whether `owner` still runs, by `/proc/PID/stat`.
    public static func liveness(of owner: Owner, root: String = "/proc") -> Liveness {
        // Read here rather than with SystemFile: the error must be the open's or the
        // read's own (ESRCH when the process was reaped in between), not what a close
        // or a free left in errno.
        let fd = open("\(root)/\(owner.pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno == ENOENT || errno == ESRCH ? .exited : .unknown }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        let readError = errno
        close(fd)
        guard count > 0 else { return count == 0 || readError == ESRCH ? .exited : .unknown }
        guard let fields = fieldsAfterCommand(Array(buffer[0..<count])), startTime(in: fields) == owner.startTime,
              let state = fields.first?.first
        else { return .exited }
        return state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") ? .exited : .running
    }

    /// The file a process runs (`/proc/PID/exe`).
    public struct Executable: Equatable, Sendable {
        /// Its path as the kernel shows it, less the ` (deleted)` of a file replaced
        /// or removed since the process started it.
        public var path: String
        /// Its device and inode: the same file, wherever it is linked.
        public var device: UInt64
        public var inode: UInt64
    }

    /// The file process `pid` runs, or nil when `/proc/PID/exe` cannot be read (gone,
    /// or not this user's to look at: another user's process, unless run as root).
    public static func executable(of pid: Int32, root: String = "/proc") -> Executable? {
        executable(at: "\(root)/\(pid)/exe")
    }

    /// The file this process runs.
    public static func ownExecutable(root: String = "/proc") -> Executable? {
        executable(at: "\(root)/self/exe")
    }

    private static func executable(at link: String) -> Executable? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(link, &buffer, buffer.count - 1)
        var status = stat()
        guard length > 0, stat(link, &status) == 0 else { return nil }
        var path = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let deleted = " (deleted)"
        if path.hasSuffix(deleted) { path.removeLast(deleted.count) }
        return Executable(path: path, device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// The thread-group id of `pid` (`Tgid:`): `pid` itself for a process, its
    /// process's id for a thread (whose id /proc shows too).
    public static func threadGroup(of pid: Int32, root: String = "/proc") -> Int32? {
        statusNumbers("Tgid", of: pid, root: root)?.first.map { Int32(bitPattern: $0) }
    }

    /// The parent of a process (`PPid:`): 1, or a subreaper, once the process that
    /// started it has exited; 0 for a process of another PID namespace's init.
    private static func parent(of pid: Int32, root: String) -> Int32? {
        statusNumbers("PPid", of: pid, root: root)?.first.map { Int32(bitPattern: $0) }
    }

    /// The running process that started `pid` and is still its parent: nil once that
    /// one exited and the kernel gave `pid` to init (PID 1, or 0 for the init of
    /// another PID namespace).
    public static func starter(of pid: Int32, root: String = "/proc") -> Owner? {
        guard let parent = parent(of: pid, root: root), parent > 1 else { return nil }
        return owner(of: parent, root: root)
    }

    /// A process's name (`/proc/PID/comm`), or nil when it cannot be read. Any
    /// program may name itself anything (`prctl(PR_SET_NAME)`): control characters
    /// show as `?`, as `ps` shows them, since the name goes into messages and logs.
    public static func name(of pid: Int32, root: String = "/proc") -> String? {
        SystemFile.read("\(root)/\(pid)/comm").map { bytes in
            let name = String(decoding: bytes, as: UTF8.self).trimmingASCIIWhitespace()
            return String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
                switch scalar.properties.generalCategory {
                case .control, .lineSeparator, .paragraphSeparator: "?"
                default: scalar
                }
            }))
        }
    }

    /// The real user id of a process (`Uid:` in `/proc/PID/status`).
    public static func userID(of pid: Int32, root: String = "/proc") -> UInt32? {
        statusNumbers("Uid", of: pid, root: root)?.first
    }

    /// The supplementary groups of a process (`Groups:` in `/proc/PID/status`); empty
    /// when it cannot be read.
    public static func supplementaryGroups(of pid: Int32, root: String = "/proc") -> Set<UInt32> {
        Set(statusNumbers("Groups", of: pid, root: root) ?? [])
    }

    /// The numbers on the `field:` line of `/proc/PID/status`, or nil when the process
    /// or the line is not there.
    static func statusNumbers(_ field: String, of pid: Int32, root: String) -> [UInt32]? {
        guard let status = SystemFile.read("\(root)/\(pid)/status") else { return nil }
        let prefix = Array((field + ":").utf8)
        for line in status.split(separator: UInt8(ascii: "\n")) where line.starts(with: prefix) {
            let fields = line.dropFirst(prefix.count).split(whereSeparator: { $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: " ") })
            return fields.compactMap { UInt32(String(decoding: $0, as: UTF8.self)) }
        }
        return nil
    }

    /// The process's command line (argv), or nil when it cannot be read.
    public static func commandLine(of pid: Int32, root: String = "/proc") -> [String]? {
        guard let raw = SystemFile.read("\(root)/\(pid)/cmdline"), !raw.isEmpty else { return nil }
        var arguments = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if arguments.last == "" { arguments.removeLast() }
        return arguments
    }
}
