import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// What the shim does when Envoy cannot serve the port yet (`EDSHIM_FALLBACK`, which
/// dockerd passes on from its own environment).
enum FallbackPolicy: String {
    /// Serve the port itself, as docker-proxy does, and hand it to Envoy later (default).
    case proxy
    /// Report `1\n<reason>`: the container does not start.
    case fail

    static let variable = "EDSHIM_FALLBACK"

    static func fromEnvironment() throws(ShimFailure) -> FallbackPolicy {
        guard let value = ProcessEnvironment.value(variable) else { return .proxy }
        guard let policy = FallbackPolicy(rawValue: value) else {
            throw ShimFailure("\(variable)=\(value) is not a fallback edshim knows: use proxy or fail (set in dockerd's environment)")
        }
        return policy
    }

    /// Whether the shim may serve the port itself after `failure`: yes when the server
    /// or Envoy is not there (yet), or cannot serve a port of the shim's network
    /// namespace; no when the server refused for a reason that serving the port would
    /// not fix.
    static func isTransient(_ error: WireError) -> Bool {
        [.envoyTimeout, .envoyAbsent, .unavailable, .rateLimited, .foreignNamespace].contains(error.code)
    }
}
