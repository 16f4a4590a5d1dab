import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The server's log lines on stderr when stderr is the systemd journal: each line
/// starts with its syslog priority (`<3>` for an error, `<4>` for a warning), which
/// journald takes as the entry's level (`SyslogLevelPrefix=`, on by default), so
/// `journalctl -u edshim -p warning` shows the server's warnings and errors. The
/// journal stamps each entry itself, so the line carries no time. Elsewhere the
/// server logs with swift-log's `StreamLogHandler`, in the same words.
struct JournalLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private let label: String

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to its
    /// device and inode, and they match only while stderr was not redirected.
    static var stderrIsTheJournal: Bool {
        guard let stream = ProcessEnvironment.value("JOURNAL_STREAM") else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return stream == "\(info.st_dev):\(info.st_ino)"
    }

    /// The syslog priority of `level` (RFC 5424).
    static func priority(of level: Logger.Level) -> Int {
        let severity: SyslogSeverity = switch level {
        case .trace, .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
        return severity.rawValue
    }

    func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }
            .sorted { $0.key < $1.key }
            .map { " \($0.key)=\($0.value)" }
            .joined()
        let line = "<\(Self.priority(of: event.level))>\(event.level) \(label):\(fields) [\(event.source)] \(event.message)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}
