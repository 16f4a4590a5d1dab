import EdshimCore
import Foundation
import Synchronization
import Testing

/// Opens connections to an endpoint one after another on its own thread, each an
/// HTTP request, counting answers and failures, until stopped.
final class ConnectionLoop: @unchecked Sendable {
    private struct Tally {
        var succeeded = 0
        var failures: [String] = []
        var stopped = false
    }

    private final class Box: Sendable {
        let mutex = Mutex(Tally())
    }

    private let box = Box()
    private let done: Thread.Completion

    init(_ endpoint: SocketEndpoint) {
        let loopStart = ContinuousClock.now
        done = Thread.run { [box] in
            while !box.mutex.withLock({ $0.stopped }) {
                let started = ContinuousClock.now - loopStart
                do {
                    let response = try TestHTTP.get(endpoint, path: "/loop")
                    box.mutex.withLock { response.status == 200 ? ($0.succeeded += 1) : $0.failures.append("HTTP \(response.status) \(response.headers) \(response.body)") }
                } catch {
                    box.mutex.withLock { $0.failures.append("\(error) (started \(started) into the loop)") }
                }
                usleep(5000)
            }
        }
    }

    @discardableResult
    func stop() -> (succeeded: Int, failures: [String]) {
        let first = box.mutex.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { done.wait() }
        return box.mutex.withLock { ($0.succeeded, $0.failures) }
    }
}
