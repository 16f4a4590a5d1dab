@testable import EdshimCore
import Testing

/// The registry snapshots the encoder tests share: each names its golden files.
enum EnvoyScenario: String, CaseIterable, Sendable {
    /// `ServiceName=nginx EnvironmentName=prod`, `-p 8080:80`, HTTP mode.
    case httpSinglePort = "http-single-port"
    /// A database in TCP mode.
    case tcpMode = "tcp-mode"
    /// dockerd's `0.0.0.0` and `::` twins of one port: two listeners, one cluster.
    case dualStackTwins = "dual-stack-twins"
    /// The twins of a dockerd run with `--ipv6`: the `::` one goes to the container's
    /// IPv6 address. One cluster, each listener sending to its own address.
    case dualStackContainer = "dual-stack-container"
    /// Two services, one per mode, one of them without labels.
    case twoServices = "two-services"
    /// The same two, with the access log in a file (`--access-log /var/log/envoy/access.log`).
    case accessLogFile = "access-log-file"
    /// The same two, without an access log (`--access-log off`).
    case accessLogOff = "access-log-off"
    /// The same two, traced (`--tracing-otlp http://127.0.0.1:4318`): the HTTP one only.
    case tracing = "tracing"

    func registrations() throws -> [Registration] {
        switch self {
        case .httpSinglePort:
            [try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http)]
        case .tcpMode:
            [try Fixture.registration(host: "127.0.0.1", 5432, container: "172.17.0.3", 5432, service: "postgres", mode: .tcp)]
        case .dualStackTwins:
            [
                try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http),
                try Fixture.registration(host: "::", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http),
            ]
        case .dualStackContainer:
            [
                try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http),
                try Fixture.registration(host: "::", 8080, container: "fd00::242:ac11:2", 80, service: "nginx", environment: "prod", mode: .http),
            ]
        case .twoServices, .accessLogFile, .accessLogOff, .tracing:
            [
                try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http),
                try Fixture.registration(host: "0.0.0.0", 9000, container: "172.17.0.4", 9000, mode: .tcp),
            ]
        }
    }

    /// The server's settings: its defaults except where the scenario is about them.
    var telemetry: Telemetry {
        switch self {
        case .accessLogFile: Telemetry(accessLog: .file("/var/log/envoy/access.log"))
        case .accessLogOff: Telemetry(accessLog: .off)
        case .tracing: Telemetry(tracing: TracingCollector(parsing: "http://127.0.0.1:4318"))
        default: .standard
        }
    }

    func configuration() throws -> EnvoyConfiguration {
        EnvoyConfiguration(registrations: try registrations(), telemetry: telemetry)
    }
}
