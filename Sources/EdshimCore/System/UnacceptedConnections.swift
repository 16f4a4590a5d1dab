/// Registered ports where Envoy listens but does not accept: connections that wait in
/// the accept queue between two looks (the same connection, by its socket cookie; a
/// busy port's queue is seldom empty, but no connection stays in it while Envoy
/// accepts). Shared by the server's checks and `edshim status --check`.
public enum UnacceptedConnections {
    /// The registrations whose address has a listening socket with connections
    /// queued: the only ones worth a look at the connections (that lookup walks every
    /// established connection of the host).
    public static func queued(_ registrations: [Registration], listening: [ListeningSocket]) -> [Registration] {
        let waiting = Set(listening.filter { $0.acceptQueue > 0 }.map(\.endpoint))
        return waiting.isEmpty ? [] : registrations.filter { waiting.contains($0.key.host) }
    }

    /// Of `queued`, those with one of `connections` (`ListenTable.unacceptedConnections`)
    /// that was unaccepted at the earlier look too (`earlier`, by cookie).
    public static func stalled(_ queued: [Registration], connections: [(local: SocketEndpoint, cookie: UInt64)], earlier: Set<UInt64>) -> Set<RegistrationKey> {
        Set(queued.filter { registration in
            connections.contains { earlier.contains($0.cookie) && registration.key.host.bindConflicts(with: $0.local) }
        }.map(\.key))
    }
}
