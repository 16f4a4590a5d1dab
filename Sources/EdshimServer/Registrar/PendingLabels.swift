import EdshimCore

/// The registrations made while Docker could not be asked about their containers'
/// labels (`MetadataAnswer.unreachable`): the registrar asks again once Docker
/// answers (`LabelRefresher`), so that a port dockerd republished while restoring its
/// containers, before it opened its API, is not left named `unknown-<port>`.
struct PendingLabels: Sendable {
    private(set) var keys: Set<RegistrationKey>
    /// Yields when a key is noted as waiting (the newest notice only).
    let notices: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    /// Starts with every restored registration: the state file does not say which
    /// were waiting (a registration that took a predecessor's labels has labels), so
    /// each is asked about once; only what changed is published again.
    init(restoring registrations: [Registration]) {
        (notices, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        keys = Set(registrations.map(\.key))
        if !keys.isEmpty { continuation.yield() }
    }

    /// Records how the lookup for `key`'s registration went.
    mutating func note(_ key: RegistrationKey, answer: MetadataAnswer) {
        guard answer == .unreachable else {
            keys.remove(key)
            return
        }
        // Every time, not only for a first key: a key can linger from a registration
        // that went (it is dropped at the next refresh), and the refresher, which
        // sleeps while no registered key waits, must hear of the one that takes its
        // place.
        keys.insert(key)
        continuation.yield()
    }

    /// Every key, leaving none: each is noted again as it is asked about.
    mutating func takeAll() -> Set<RegistrationKey> {
        defer { keys = [] }
        return keys
    }

    /// The labels a registration gets: the answer's; while Docker cannot be asked,
    /// those of the registration it replaces for the same container (dockerd
    /// restarting with live restore republishes running containers' ports before it
    /// answers: their names, and Envoy's listeners, stay as they were).
    static func labels(from answer: MetadataAnswer, replacing replaced: Registration?, for container: SocketEndpoint) -> ContainerMetadata {
        switch answer {
        case .known(let metadata): metadata
        case .unreachable: replaced?.container == container ? replaced?.metadata ?? .unknown : .unknown
        }
    }
}
