import EdshimCore
import Foundation
import Synchronization

/// Registers shims on a few threads at once (the client is blocking; the server
/// answers each registration once Envoy serves it, and coalesces them).
struct ResyncWorkers {
    enum Outcome: Sendable {
        case registered
        /// Registered; the server keeps it for Envoy, which is not running.
        case awaitingEnvoy(String)
        /// Gone, or replaced by a newer shim holding the port: not counted.
        case vanished
        case failed(String)
    }

    let client: ServerClient
    let parallel: Int

    func register(_ shims: [ShimProcesses.Shim]) -> [Outcome] {
        let work = ResyncWork(count: shims.count)
        let group = DispatchGroup()
        for _ in 0..<min(parallel, max(shims.count, 1)) {
            group.enter()
            Thread.detachNewThread {
                while let index = work.take() { work.record(index, registerOne(shims[index])) }
                group.leave()
            }
        }
        group.wait()
        return work.outcomes
    }

    private func registerOne(_ shim: ShimProcesses.Shim) -> Outcome {
        let request = RegisterRequest(
            key: shim.arguments.key,
            container: shim.arguments.container,
            heldSocketInode: ShimProcesses.ownListeningSocket(of: shim.owner.pid, on: shim.arguments.host),
            onBehalfOf: shim.owner.pid
        )
        let deadline = Deadline.after(milliseconds: 30_000)
        while true {
            do {
                switch try client.exchange(.register(request), deadline: .after(milliseconds: 15_000)) {
                case .ok, .registrations: return .registered
                case .failure(let error) where error.code == .rateLimited && !deadline.hasPassed:
                    Thread.sleep(forTimeInterval: 0.05)
                case .failure(let error) where error.code == .envoyAbsent:
                    return .awaitingEnvoy(error.message)
                case .failure(let error) where error.code == .notOwner || error.code == .notRegistered:
                    // A newer shim holds the port (a dockerd restarted with live restore:
                    // the old shim lingers for its grace), or the shim deregistered while
                    // this registration waited (it is stopping): nothing of it to restore.
                    return .vanished
                case .failure(let error):
                    return ProcessTable.owner(of: shim.owner.pid) == shim.owner ? .failed(error.message) : .vanished
                }
            } catch {
                return .failed(error.description)
            }
        }
    }
}

/// The workers' shared state: the next shim to take, and each shim's outcome.
final class ResyncWork: Sendable {
    private let state: Mutex<(next: Int, outcomes: [ResyncWorkers.Outcome])>

    init(count: Int) {
        state = Mutex((0, Array(repeating: .failed("not attempted"), count: count)))
    }

    /// The index of a shim no worker has taken yet.
    func take() -> Int? {
        state.withLock { state in
            guard state.next < state.outcomes.count else { return nil }
            state.next += 1
            return state.next - 1
        }
    }

    func record(_ index: Int, _ outcome: ResyncWorkers.Outcome) {
        state.withLock { $0.outcomes[index] = outcome }
    }

    var outcomes: [ResyncWorkers.Outcome] { state.withLock { $0.outcomes } }
}
