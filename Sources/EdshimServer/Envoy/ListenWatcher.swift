import EdshimCore

/// Watches the kernel's table of listening TCP sockets for the conditions the
/// registrar waits on: "Envoy listens on this address" and "nobody listens any more".
///
/// One read of the table (`ListenTable`) serves every waiter, and polling runs only
/// while someone waits. Each read asks the kernel for the waiters' ports alone: a
/// host with thousands of published ports would otherwise have all of them copied
/// out every millisecond while a registration waits (a third of the server's CPU
/// time at 300 ports).
actor ListenWatcher {
    typealias Condition = @Sendable ([ListeningSocket]) -> Bool

    private struct Waiter {
        let ports: Set<UInt16>
        let condition: Condition
        let started: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Bool, Never>
    }

    /// Reads the listening sockets on the given ports (nil: all of them).
    private let readTable: @Sendable (Set<UInt16>?) -> [ListeningSocket]
    private let interval: Duration
    private var waiters: [Int: Waiter] = [:]
    private var nextID = 0
    private var polling = false

    init(interval: Duration = .milliseconds(5), readTable: @escaping @Sendable (Set<UInt16>?) -> [ListeningSocket] = { ports in ports.map(ListenTable.read(onPorts:)) ?? ListenTable.read() }) {
        self.interval = interval
        self.readTable = readTable
    }

    /// The listening sockets right now: on `ports`, or all of them (nil).
    func snapshot(ports: Set<UInt16>? = nil) -> [ListeningSocket] {
        readTable(ports)
    }

    /// Waits until a socket listens on `endpoint` that is none of `excluded`.
    func waitUntilListening(on endpoint: SocketEndpoint, excluding excluded: Set<UInt64>, timeout: Duration) async -> Bool {
        await wait(on: [endpoint.port], timeout: timeout) { table in
            table.contains { $0.endpoint == endpoint && !excluded.contains($0.inode) }
        }
    }

    /// Waits until none of `sockets` listens any more.
    func waitUntilClosed(_ sockets: [ListeningSocket], timeout: Duration) async -> Bool {
        guard !sockets.isEmpty else { return true }
        let inodes = Set(sockets.map(\.inode))
        return await wait(on: Set(sockets.map(\.endpoint.port)), timeout: timeout) { table in
            !table.contains { inodes.contains($0.inode) }
        }
    }

    private func wait(on ports: Set<UInt16>, timeout: Duration, until condition: @escaping Condition) async -> Bool {
        if condition(readTable(ports)) { return true }
        let id = nextID
        nextID += 1
        let started = ContinuousClock.now
        let deadline = started + timeout
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[id] = Waiter(ports: ports, condition: condition, started: started, deadline: deadline, continuation: continuation)
                startPolling()
            }
        } onCancel: {
            Task { await self.resume(id, with: false) }
        }
    }

    private func resume(_ id: Int, with result: Bool) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: result)
    }

    private func startPolling() {
        guard !polling else { return }
        polling = true
        Task { await pollWhileWaited() }
    }

    private func pollWhileWaited() async {
        while !waiters.isEmpty {
            try? await Task.sleep(for: delay(now: ContinuousClock.now))
            let table = readTable(waiters.values.reduce(into: Set()) { $0.formUnion($1.ports) })
            let now = ContinuousClock.now
            for (id, waiter) in waiters {
                if waiter.condition(table) {
                    resume(id, with: true)
                } else if now >= waiter.deadline {
                    resume(id, with: false)
                }
            }
        }
        polling = false
    }

    /// How long to wait before the next read: `interval` for 20 intervals,
    /// then a twentieth of the time the newest waiter has waited, up to 10 ms. A port
    /// Envoy opens at once is seen within `interval`; one that takes Envoy a while (it
    /// reads every listener again on each change: ~110 ms at 400 published ports) is
    /// seen at most 5 % late, with a third of the reads.
    private func delay(now: ContinuousClock.Instant) -> Duration {
        Self.delay(interval: interval, newestWaitStarted: waiters.values.map(\.started).max(), now: now)
    }

    static func delay(interval: Duration, newestWaitStarted newest: ContinuousClock.Instant?, now: ContinuousClock.Instant) -> Duration {
        guard let newest else { return interval }
        return max(interval, min(longestDelay, (now - newest) / 20))
    }

    static let longestDelay = Duration.milliseconds(10)
}
