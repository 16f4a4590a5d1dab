import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// One-line log messages, `edshim[PID]: …`, on stderr — or, where stderr is thrown
/// away, in the system log. dockerd starts every proxy with stdout and stderr on
/// /dev/null, so a shim it runs logs to the syslog socket (`/dev/log`, which journald
/// or rsyslog serves; `EDSHIM_SYSLOG_SOCKET` to choose another), facility daemon.
enum ShimLog {
    /// What the shim did: it serves, hands over, stops.
    static func info(_ message: String) { log(.info, message) }

    /// Something is amiss and the shim copes: it serves the port itself, drops
    /// datagrams, evicts flows, runs out of a resource.
    static func warning(_ message: String) { log(.warning, message) }

    /// The shim failed: what it reported to dockerd, or why it stopped.
    static func error(_ message: String) { log(.error, message) }

    private static func log(_ severity: SyslogSeverity, _ message: String) {
        let line = "edshim[\(getpid())]: \(message)"
        if stderrIsDiscarded {
            // Facility daemon (3) × 8 + severity, as syslog(3) writes it: <30> for info.
            let socket = ProcessEnvironment.value("EDSHIM_SYSLOG_SOCKET") ?? "/dev/log"
            UnixDatagram.send(Array("<\(3 * 8 + severity.rawValue)>\(line)".utf8), to: socket)
        } else {
            _ = (line + "\n").utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
        }
    }

    /// Whether stderr is closed or /dev/null, as dockerd leaves it.
    private static let stderrIsDiscarded: Bool = {
        var stderrStatus = stat()
        var null = stat()
        guard fstat(STDERR_FILENO, &stderrStatus) == 0 else { return true }
        return stat("/dev/null", &null) == 0 && stderrStatus.st_mode & S_IFMT == S_IFCHR && stderrStatus.st_rdev == null.st_rdev
    }()
}
