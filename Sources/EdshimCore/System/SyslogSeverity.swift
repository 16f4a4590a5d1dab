/// Syslog severities (RFC 5424), as the shim's syslog lines and the server's journal
/// prefixes carry them, so that `journalctl -p` picks out what went wrong.
public enum SyslogSeverity: Int, Sendable {
    /// The server cannot go on.
    case critical = 2
    /// Something failed.
    case error = 3
    /// Something is amiss, and is coped with.
    case warning = 4
    /// Worth an operator's notice, not wrong.
    case notice = 5
    /// What was done.
    case info = 6
    /// Detail for debugging.
    case debug = 7
}
