extension StatusReport {
    /// The TCP ports not served by Envoy as registered, one `HOST (why)` each, for
    /// `edshim status --check`: registered ports served by their shim, by nothing or
    /// by another program, or where Envoy listens but does not accept
    /// (`notAccepting`), then the TCP shims the server does not list. Ports being
    /// registered (`registering`) are not: dockerd waits on them, and the server
    /// answers within the shim's 12 s.
    public static func notServedByEnvoy(_ registrations: [Registration], serving: [RegistrationKey: Serving], unregistered: [UnregisteredShim], notAccepting: Set<RegistrationKey> = [], registering: Set<RegistrationKey> = []) -> [String] {
        portsNotServedByEnvoy(registrations, serving: serving, unregistered: unregistered, notAccepting: notAccepting, registering: registering).map(\.line)
    }

    /// `notServedByEnvoy`, each line with the port it is about.
    public static func portsNotServedByEnvoy(_ registrations: [Registration], serving: [RegistrationKey: Serving], unregistered: [UnregisteredShim], notAccepting: Set<RegistrationKey> = [], registering: Set<RegistrationKey> = []) -> [(key: RegistrationKey, line: String)] {
        let registered = registrations.sorted { $0.key < $1.key }.compactMap { registration -> (key: RegistrationKey, line: String)? in
            note(for: registration.key, serving: serving, notAccepting: notAccepting, registering: registering)
                .flatMap { $0 == registeringNote ? nil : (registration.key, registration.key.host.description + $0) }
        }
        let unlisted = unregistered.filter { $0.mode != .registering }.sorted { $0.shim.arguments.key < $1.shim.arguments.key }.map { entry in
            (key: entry.shim.arguments.key, line: "\(entry.shim.arguments.host) (not registered: " + (entry.unansweredSocket.map { "its shim registers with \($0), where no server answers" } ?? entry.mode.rawValue) + ")")
        }
        return registered + unlisted
    }

    /// The published ports no proxy serves, one `HOST/PROTO (no proxy: CONTAINER)`
    /// each, for `edshim status --check`.
    public static func unproxiedLines(_ unproxied: [PublishedPort]) -> [(key: RegistrationKey, line: String)] {
        unproxied.map { (key: $0.key, line: "\($0.key.host)/\($0.key.proto.rawValue) (no proxy: dockerd publishes it for \($0.container))") }
    }
}
