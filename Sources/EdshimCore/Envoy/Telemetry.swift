/// What every listener reports about the traffic it carries, beyond Envoy's stats:
/// settings of `edshim server`, the same for all published ports.
public struct Telemetry: Hashable, Sendable {
    /// Where the access log goes.
    public var accessLog: AccessLogDestination

    /// Creates the settings.
    public init(accessLog: AccessLogDestination = .standard) {
        self.accessLog = accessLog
    }

    /// The server's defaults: an access log on Envoy's stdout.
    public static let standard = Telemetry()
}
