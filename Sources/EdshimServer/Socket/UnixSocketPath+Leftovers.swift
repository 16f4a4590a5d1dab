import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension UnixSocketPath {
    /// Removes the temporary sockets that servers killed between their bind and the
    /// move into place (SIGKILL, a crash) left beside the path: named as
    /// `temporaryPath` names them, for a process that no longer exists, and nothing
    /// listening on them. A server still starting is alive, and listens on its own.
    func removeLeftovers(logger: Logger) {
        let directory = AtomicFile.parent(of: temporaryPath) ?? "."
        for name in ShimProcesses.entryNames(in: directory) {
            guard let pid = Self.temporaryNamePID(name), pid != getpid() else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let leftover = directory + "/" + name
            var info = stat()
            guard lstat(leftover, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else { continue }
            guard case .nobodyListens = Self.probe(leftover), unlink(leftover) == 0 else { continue }
            logger.notice("removed a temporary socket a server killed while starting left behind", metadata: ["path": "\(leftover)"])
        }
    }

    /// The PID in a temporary socket's name (`.edshim-` + five base-36 digits + `.` +
    /// one), or nil for any other name.
    static func temporaryNamePID(_ name: String) -> Int32? {
        let prefix = ".edshim-"
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard rest.count == 2, rest[0].count == 5, rest[1].count == 1, Int(rest[1], radix: 36) != nil else { return nil }
        return Int32(rest[0], radix: 36).flatMap { $0 > 0 ? $0 : nil }
    }
}
