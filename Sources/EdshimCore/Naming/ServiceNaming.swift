/// The names edshim gives Envoy resources.
///
/// Service name: `{ServiceName}-{EnvironmentName}-{hostPort}`, empty parts left out,
/// `unknown` when there is no service label. The cluster is named after the service,
/// so the `0.0.0.0` and `::` twins of a port share it. A port published on one
/// specific host address gets that address too (`web-prod-8080-127_0_0_1`): two
/// containers published on `127.0.0.1:8080` and `10.0.0.5:8080` with the same labels
/// must not share a cluster. For the same reason a twin that serves another container
/// than its twin gets its container's short id too (`web-prod-8080-3f2a9c1b7d0e`): the
/// registry decides that (`Registration.namedApart`). Listener names come from the registration key alone: a
/// relabelled container updates its listener in place instead of making Envoy rebind
/// the port under a new name.
public enum ServiceNaming {
    /// The service part used when no label names the service.
    public static let unknownService = "unknown"

    /// The sanitized service label, or `unknown`: the tracing operation name.
    public static func service(_ metadata: ContainerMetadata) -> String {
        metadata.service.flatMap(LabelSanitizer.sanitize) ?? unknownService
    }

    /// `web-prod-8080`: the name the contract gives a port's cluster and stat prefix.
    public static func serviceName(for key: RegistrationKey, metadata: ContainerMetadata) -> String {
        var parts = [service(metadata)]
        if let environment = metadata.environment.flatMap(LabelSanitizer.sanitize) {
            parts.append(environment)
        }
        parts.append(String(key.host.port))
        let host = key.host.ip
        if !host.isUnspecified, let address = LabelSanitizer.sanitize(host.description) {
            parts.append(address)
        }
        return parts.joined(separator: "-")
    }

    /// `web-prod-8080-3f2a9c1b7d0e`: the name of a twin that serves another
    /// container than the twin holding the contract's name, told apart by its
    /// container's short id (`docker ps` shows it), else by its container address.
    public static func separateServiceName(for registration: Registration) -> String {
        let container = registration.metadata.containerID.flatMap { LabelSanitizer.sanitize(String($0.prefix(12))) }
            ?? LabelSanitizer.sanitize(registration.container.description)
        let name = registration.contractServiceName
        return container.map { "\(name)-\($0)" } ?? name
    }

    /// `tcp_0.0.0.0_8080`, `tcp_[::]_8080`.
    public static func listenerName(for key: RegistrationKey) -> String {
        let host = key.host.ip.isIPv6 ? "[\(key.host.ip)]" : key.host.ip.description
        return "\(key.proto.rawValue)_\(host)_\(key.host.port)"
    }
}
