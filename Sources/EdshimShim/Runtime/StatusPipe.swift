#if canImport(Glibc)
import Glibc
#endif

/// dockerd's status pipe on fd 3: `0\n` once the port is served, or `1\n<reason>`.
/// When fd 3 is not a pipe (edshim run by hand), reports only go to the log.
struct StatusPipe {
    static let descriptor: Int32 = 3

    private var open: Bool
    /// Whether a missing pipe is worth saying: dockerd gives every shim one, while
    /// `edshim udp-proxy` run by hand has none, and its next line says what it serves.
    private let expected: Bool

    /// Looks at fd 3 once, at start: only a FIFO is taken as the status pipe.
    /// `expected`: false for a mode that is usually run without one.
    static func detect(expected: Bool = true) -> StatusPipe {
        var info = stat()
        let isPipe = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO
        if isPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return StatusPipe(open: isPipe, expected: expected)
    }

    /// Reports the port as served and closes the pipe, so dockerd stops waiting.
    mutating func reportReady() {
        guard open else {
            if expected { ShimLog.info("ready (no status pipe on fd 3)") }
            return
        }
        send("0\n")
    }

    /// Reports the reason on one line and closes the pipe; logs it too, unless the
    /// caller prints it itself (`logged: false`).
    mutating func reportFailure(_ reason: String, logged: Bool = true) {
        let line = Self.oneLine(reason)
        // dockerd first: it is waiting, and logging may be slow.
        if open { send("1\n\(line)") }
        if logged { ShimLog.error("failed: \(line)") }
    }

    /// `reason` on one line that shows as it reads: every run of control characters
    /// (`\r\n`, escape sequences' ESC, NUL, C1) and line or paragraph separators
    /// becomes one space. dockerd shows the line to whoever ran `docker run`, and logs
    /// it: a process name or a server's message must not forge lines or colours there.
    static func oneLine(_ reason: String) -> String {
        var line = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in reason.unicodeScalars {
            switch scalar.value {
            case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029:
                pendingSpace = !line.isEmpty
            default:
                if pendingSpace { line.append(" ") }
                pendingSpace = false
                line.append(scalar)
            }
        }
        return String(line)
    }

    private mutating func send(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(Self.descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { break }
            bytes = bytes.dropFirst(written)
        }
        close(Self.descriptor)
        open = false
    }
}
