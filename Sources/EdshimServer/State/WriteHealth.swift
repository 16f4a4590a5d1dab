import Synchronization

/// What the server cannot write at the moment (a full or failing disk), for
/// `GET /healthz`: each write that fails is retried (`Coalescer`) and logged, and a
/// probe should see it too, not `ok` while nothing reaches the disk.
final class WriteHealth: Sendable {
    /// What is written: the state file, Envoy's configuration; and the shims' socket,
    /// bound again when its path lost it.
    enum Target: String, Sendable, CaseIterable {
        case stateFile = "write the state file"
        case envoyConfiguration = "write Envoy's configuration (the xds files)"
        case socket = "put the shims' socket back at its path (--socket)"
    }

    private struct Failure {
        var since: ContinuousClock.Instant
        var error: String
    }

    private let failures = Mutex<[Target: Failure]>([:])

    /// A write of `target` failed with `error`; returns whether that is news: the
    /// first failure since a write succeeded, or another reason than the last one.
    /// Writes are retried every few seconds, and a log line for each repeat would
    /// flood the log for as long as a disk stays full.
    @discardableResult
    func failed(_ target: Target, _ error: String) -> Bool {
        failures.withLock { failures in
            let news = failures[target]?.error != error
            failures[target] = Failure(since: failures[target]?.since ?? .now, error: error)
            return news
        }
    }

    /// A write of `target` succeeded; returns for how long it had failed (nil when it
    /// had not), so that the caller says it recovered.
    @discardableResult
    func succeeded(_ target: Target) -> Duration? {
        failures.withLock { $0.removeValue(forKey: target) }.map { .now - $0.since }
    }

    /// Why the last write of `target` failed; nil when it succeeded.
    func failure(of target: Target) -> String? {
        failures.withLock { $0[target]?.error }
    }

    /// One line per target that cannot be written, saying for how long and why; none
    /// when every write succeeds.
    func problems(now: ContinuousClock.Instant = .now) -> [String] {
        failures.withLock { failures in
            Target.allCases.compactMap { target in
                failures[target].map { failure in
                    let seconds = Int((now - failure.since).components.seconds)
                    return "cannot \(target.rawValue) for \(seconds) s, retrying: \(failure.error)"
                }
            }
        }
    }
}
