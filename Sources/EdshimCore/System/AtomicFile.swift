#if canImport(Glibc)
import Glibc
#endif

/// Replaces files atomically: readers (Envoy, a restarted server) see the old
/// contents or the new, never a mix. Write a temporary file beside the target, then
/// rename it over the target.
public enum AtomicFile {
    /// Why a write failed.
    public struct Failure: Error, CustomStringConvertible {
        /// `writing /path: reason`.
        public var description: String
        /// The errno.
        public var code: Int32 = 0

        /// Whether the disk may take the write later: full (ENOSPC, EDQUOT) or failing
        /// (EIO), not refusing it (permissions, a read-only file system).
        public var mayPass: Bool { [ENOSPC, EDQUOT, EIO].contains(code) }
    }

    /// Writes `bytes` to `path` atomically, with permission `mode`. With `durable`, the
    /// data and the rename reach the disk before this returns.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, durable: Bool = false) throws(Failure) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(name).tmp-\(getpid())"
        // A file left by a process that died mid-write (its PID now this one's) goes;
        // a symlink planted there is never followed: the file is created anew.
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure(temporary) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else {
                let error = failure(temporary)
                close(fd)
                unlink(temporary)
                throw error
            }
            offset += written
        }
        if durable, fsync(fd) != 0 {
            let error = failure(temporary)
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = failure(path)
            unlink(temporary)
            throw error
        }
        if durable {
            let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if directoryFD >= 0 {
                fsync(directoryFD)
                close(directoryFD)
            }
        }
    }

    /// The directory part of `path` (nil for a bare name or a path directly under `/`).
    public static func parent(of path: String) -> String? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        return String(path[..<slash])
    }

    /// Creates `path` and its missing parents with `mode` (like `mkdir -p`).
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0, errno != EEXIST { throw failure(current, action: "creating") }
        }
    }

    private static func failure(_ path: String, action: String = "writing") -> Failure {
        Failure(description: "\(action) \(path): \(ErrorText.describe(errno))", code: errno)
    }
}
