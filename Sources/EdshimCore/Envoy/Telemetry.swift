/// What every listener reports about the traffic it carries, beyond Envoy's stats,
/// and whom it believes about the client: settings of `edshim server`, the same for
/// all published ports.
public struct Telemetry: Hashable, Sendable {
    /// Where the access log goes.
    public var accessLog: AccessLogDestination
    /// Where HTTP listeners send their traces; nil: no tracing.
    public var tracing: TracingCollector?
    /// The percentage of requests traced, chosen at random by Envoy (also for those
    /// that arrive with a trace of their own): 0 to 100.
    public var tracingSamplePercent: Double
    /// How many proxies in front of the host (a TLS-terminating load balancer) HTTP
    /// listeners trust: 0, Envoy is the edge and the client is whoever connected; 1,
    /// the last `X-Forwarded-For` entry is the client and `X-Forwarded-Proto` passes.
    public var trustedProxyHops: UInt32

    /// Creates the settings.
    public init(accessLog: AccessLogDestination = .standard, tracing: TracingCollector? = nil, tracingSamplePercent: Double = 100, trustedProxyHops: UInt32 = 0) {
        self.accessLog = accessLog
        self.tracing = tracing
        self.tracingSamplePercent = tracingSamplePercent
        self.trustedProxyHops = trustedProxyHops
    }

    /// The server's defaults: an access log on Envoy's stdout, no tracing.
    public static let standard = Telemetry()
}
