#if canImport(Glibc)
import Glibc
#endif

/// Reads whole files with plain system calls: `/proc` files report size 0, and the
/// shim's path must not start Foundation.
public enum SystemFile {
    /// The file's bytes, or nil when it cannot be opened or read. `access`: how it is
    /// opened (`O_RDWR` reads it all the same, and its close is then no
    /// IN_CLOSE_NOWRITE for an inotify watcher of readers).
    public static func read(_ path: String, access: Int32 = O_RDONLY, limit: Int = 64 * 1024 * 1024) -> [UInt8]? {
        let fd = open(path, access | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while output.count < limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            output += chunk[0..<count]
        }
        return output
    }
}
