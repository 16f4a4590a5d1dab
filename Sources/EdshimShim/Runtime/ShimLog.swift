#if canImport(Glibc)
import Glibc
#endif

/// One-line log messages on stderr, prefixed so they stand out in dockerd's journal.
enum ShimLog {
    static func info(_ message: String) {
        let line = "edshim[\(getpid())]: \(message)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}

/// A failure the shim reports to dockerd: one line saying what is wrong and what to do.
struct ShimFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// `context: strerror(errno)`.
    static func system(_ context: String, _ code: Int32 = errno) -> ShimFailure {
        ShimFailure("\(context): \(String(cString: strerror(code)))")
    }
}
