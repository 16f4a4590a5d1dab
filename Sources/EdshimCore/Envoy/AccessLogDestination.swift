/// Where Envoy writes the access log of every published port: `edshim server
/// --access-log`, the same for all listeners.
public enum AccessLogDestination: Hashable, Sendable, CustomStringConvertible {
    /// No access log.
    case off
    /// Envoy's standard output (the journal under systemd, `docker logs` in a container).
    case stdout
    /// Envoy's standard error.
    case stderr
    /// A file Envoy opens and appends to (an absolute path: Envoy's working directory
    /// is not the server's); reopened on `SIGUSR1` to Envoy, for log rotation.
    case file(String)

    /// What `edshim server` writes when not told otherwise.
    public static let standard = AccessLogDestination.stdout

    /// `off`, `stdout`, `stderr` or an absolute path; nil for anything else.
    public init?(parsing text: String) {
        switch text {
        case "off": self = .off
        case "stdout": self = .stdout
        case "stderr": self = .stderr
        default:
            guard text.hasPrefix("/"), text.count > 1, !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
            self = .file(text)
        }
    }

    /// The flag's spelling.
    public var description: String {
        switch self {
        case .off: "off"
        case .stdout: "stdout"
        case .stderr: "stderr"
        case .file(let path): path
        }
    }
}
