import Logging
import Synchronization

/// The client connections open on the server's socket, and how many it keeps at
/// once: each holds a descriptor, and a server out of descriptors can neither
/// register a port nor see which ports listen. A connection past the limit gets
/// `rate_limited` to its first request (a shim serves its port itself and registers
/// again later) and is closed; the limit reached and left are logged.
final class ConnectionCount: Sendable {
    let limit: Int
    private let logger: Logger
    /// Logged when the limit is reached; nil: the shims' connections' words.
    private let fullMessage: String?
    private let state = Mutex((open: 0, full: false))

    /// A count kept under `limit` connections; `fullMessage` says what reaching it means.
    init(limit: Int, logger: Logger, fullMessage: String? = nil) {
        self.limit = limit
        self.logger = logger
        self.fullMessage = fullMessage
    }

    /// The most connections a server with `descriptors` (its soft open-files limit)
    /// keeps: a quarter of them, at least 64 and at most 4,096 (far above what
    /// dockerd starts at once).
    static func limit(forDescriptors descriptors: Int) -> Int {
        min(4096, max(64, descriptors / 4))
    }

    /// Counts a new connection in; false when it is one past the limit (counted all
    /// the same, until `leave`).
    func enter() -> Bool {
        let (admitted, nowFull) = state.withLock { state -> (Bool, Bool) in
            state.open += 1
            let admitted = state.open <= limit
            let nowFull = !admitted && !state.full
            if nowFull { state.full = true }
            return (admitted, nowFull)
        }
        if nowFull {
            logger.warning("\(fullMessage ?? "\(limit) client connections are open on the socket, the most the server keeps: a new one is answered rate_limited and closed (shims serve their ports themselves and register later); does a client open connections and not close them? (edshim status names registrations, not connections: see ss -xp for the socket)")")
        }
        return admitted
    }

    /// Counts a connection out.
    func leave() {
        let backUnder = state.withLock { state -> Bool in
            state.open -= 1
            guard state.full, state.open <= limit / 2 else { return false }
            state.full = false
            return true
        }
        if backUnder {
            logger.notice("client connections are back under half the server's limit", metadata: ["limit": "\(limit)"])
        }
    }
}
