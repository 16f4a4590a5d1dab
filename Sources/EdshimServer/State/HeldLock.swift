#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on an open file or directory, held until the lock is released
/// with the process (or deinit): how a server claims what only one server may use.
final class HeldLock: Sendable {
    private let descriptor: Int32

    /// Opens `path` with `flags` (O_CLOEXEC added) and locks it without waiting.
    /// `taken` is thrown's text when another process holds the lock; `name` starts
    /// every message (the flag and path the operator gave).
    init(_ path: String, flags: Int32, name: String, taken: String) throws(ServerStartupError) {
        let descriptor = open(path, flags | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw ServerStartupError(name.hasSuffix(path) ? "\(name): \(reason)" : "\(name): opening \(path): \(reason)")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? taken : String(cString: strerror(errno))
            close(descriptor)
            throw ServerStartupError("\(name): \(reason)")
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
