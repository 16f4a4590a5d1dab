import EdshimCore

/// The UDP proxy's warnings, at traffic rates: one throttle per kind, so that a fault
/// of one kind never hides the first report of another, and what each held back gets
/// a line of its own once its minute is over, or when the proxy stops.
struct UDPProxyWarnings {
    /// What went wrong.
    enum Kind {
        /// A flow's socket could not be opened or watched: the datagram was dropped.
        case openFailure
        /// The kernel refused datagrams just sent.
        case refusedSend
        /// Bursts whose control messages were cut short, dropped.
        case cutShortBurst
        /// The flow limit made a new client take the least recently used flow.
        case eviction
        /// Out of descriptors or local ports, likewise.
        case shortage
    }

    /// `udp HOST → CONTAINER: `, before every line.
    private let prefix: String
    private var openFailures = LogThrottle()
    private var refusedSends = LogThrottle()
    private var cutShortBursts = LogThrottle()
    private var evictions = LogThrottle()
    private var shortages = LogThrottle()

    /// The warnings of the proxy from `host` to `container`.
    init(host: SocketEndpoint, container: SocketEndpoint) {
        prefix = "udp \(host) → \(container): "
    }

    /// Logs `message` unless its kind had a line within the minute (then it is
    /// counted, `count` times: datagrams, not events).
    mutating func warn(_ kind: Kind, _ message: @autoclosure () -> String, now: Int64, count: Int = 1) {
        let line: String?
        switch kind {
        case .openFailure: line = openFailures.line(prefix + message(), now: now, count: count)
        case .refusedSend: line = refusedSends.line(prefix + message(), now: now, count: count)
        case .cutShortBurst: line = cutShortBursts.line(prefix + message(), now: now, count: count)
        case .eviction: line = evictions.line(prefix + message(), now: now, count: count)
        case .shortage: line = shortages.line(prefix + message(), now: now, count: count)
        }
        if let line { ShimLog.warning(line) }
    }

    /// Milliseconds until a warning held back is owed its line (the flood that caused
    /// it may have stopped), or -1.
    func millisecondsToHeldBackLines(now: Int64) -> Int32 {
        let due = heldBackDue
        return due == .max ? -1 : Int32(clamping: max(0, due - now))
    }

    /// When the first warning held back is owed its line; `.max` when none is held back.
    /// (Nested `min`s: nothing is allocated on a wakeup.)
    private var heldBackDue: Int64 {
        min(min(min(openFailures.overdueAt ?? .max, refusedSends.overdueAt ?? .max),
                min(cutShortBursts.overdueAt ?? .max, evictions.overdueAt ?? .max)),
            shortages.overdueAt ?? .max)
    }

    /// Logs what each kind held back once its minute is over (at once when the proxy
    /// stops, `final`), so that the count is never lost.
    mutating func logHeldBack(now: Int64, final: Bool = false) {
        let due = heldBackDue
        guard due != .max, final || due <= now else { return }
        func emit(_ line: String?) { if let line { ShimLog.warning(line) } }
        emit(openFailures.overdueLine(now: now, final: final))
        emit(refusedSends.overdueLine(now: now, final: final))
        emit(cutShortBursts.overdueLine(now: now, final: final))
        emit(evictions.overdueLine(now: now, final: final))
        emit(shortages.overdueLine(now: now, final: final))
    }
}
