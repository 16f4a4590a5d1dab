import EdshimCore

/// Watches the kernel's table of listening TCP sockets for the conditions the
/// registrar waits on: "Envoy listens on this address" and "nobody listens any more".
///
/// One read of the table (`ListenTable`) serves every waiter, and polling runs only
/// while someone waits.
actor ListenWatcher {
    typealias Condition = @Sendable ([ListeningSocket]) -> Bool

    private struct Waiter {
        let condition: Condition
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let readTable: @Sendable () -> [ListeningSocket]
    private let interval: Duration
    private var waiters: [Int: Waiter] = [:]
    private var nextID = 0
    private var polling = false

    init(interval: Duration = .milliseconds(5), readTable: @escaping @Sendable () -> [ListeningSocket] = { ListenTable.read() }) {
        self.interval = interval
        self.readTable = readTable
    }

    /// The listening sockets right now.
    func snapshot() -> [ListeningSocket] {
        readTable()
    }

    /// Waits until a socket listens on `endpoint` that is none of `excluded`.
    func waitUntilListening(on endpoint: SocketEndpoint, excluding excluded: Set<UInt64>, timeout: Duration) async -> Bool {
        await wait(timeout: timeout) { table in
            table.contains { $0.endpoint == endpoint && !excluded.contains($0.inode) }
        }
    }

    /// Waits until none of the sockets `inodes` listens any more.
    func waitUntilClosed(_ inodes: Set<UInt64>, timeout: Duration) async -> Bool {
        guard !inodes.isEmpty else { return true }
        return await wait(timeout: timeout) { table in
            !table.contains { inodes.contains($0.inode) }
        }
    }

    private func wait(timeout: Duration, until condition: @escaping Condition) async -> Bool {
        if condition(readTable()) { return true }
        let id = nextID
        nextID += 1
        let deadline = ContinuousClock.now + timeout
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[id] = Waiter(condition: condition, deadline: deadline, continuation: continuation)
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
            try? await Task.sleep(for: interval)
            let table = readTable()
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
}
