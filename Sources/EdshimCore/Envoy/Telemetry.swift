/// What every listener reports about the traffic it carries, beyond Envoy's stats:
/// settings of `edshim server`, the same for all published ports.
public struct Telemetry: Hashable, Sendable {
    /// Where the access log goes.
    public var accessLog: AccessLogDestination
    /// Where HTTP listeners send their traces; nil: no tracing.
    public var tracing: TracingCollector?

    /// Creates the settings.
    public init(accessLog: AccessLogDestination = .standard, tracing: TracingCollector? = nil) {
        self.accessLog = accessLog
        self.tracing = tracing
    }

    /// The server's defaults: an access log on Envoy's stdout, no tracing.
    public static let standard = Telemetry()
}
