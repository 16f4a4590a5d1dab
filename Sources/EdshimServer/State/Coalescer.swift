/// Writes the latest of a stream of snapshots, one write at a time.
///
/// `submit` returns once a write that includes the submitted snapshot (or a newer
/// one) has finished. While a write runs, newer submissions only replace the pending
/// snapshot, so a burst of changes costs one or two writes, not one each.
actor Coalescer<Snapshot: Sendable> {
    private let write: @Sendable (Snapshot) async -> Void
    private var pending: Snapshot?
    private var requested = 0
    private var written = 0
    private var writing = false
    private var waiters: [(generation: Int, continuation: CheckedContinuation<Void, Never>)] = []

    /// A coalescer that hands snapshots to `write` (never two calls at once).
    init(write: @escaping @Sendable (Snapshot) async -> Void) {
        self.write = write
    }

    /// Submits `snapshot`; returns once it, or a newer snapshot, is written.
    func submit(_ snapshot: Snapshot) async {
        pending = snapshot
        requested += 1
        let generation = requested
        if !writing {
            writing = true
            Task { await drain() }
        }
        await withCheckedContinuation { continuation in
            waiters.append((generation, continuation))
        }
    }

    private func drain() async {
        while written < requested, let snapshot = pending {
            let generation = requested
            pending = nil
            await write(snapshot)
            written = generation
            let done = waiters.filter { $0.generation <= generation }
            waiters.removeAll { $0.generation <= generation }
            for waiter in done { waiter.continuation.resume() }
        }
        writing = false
    }
}
