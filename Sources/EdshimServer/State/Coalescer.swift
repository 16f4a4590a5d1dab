/// Writes the newest of a stream of numbered snapshots, one write at a time.
///
/// `submit` returns once a write of the submitted snapshot, or of a newer one, has
/// finished. While a write runs, newer submissions only replace the pending snapshot,
/// so a burst of changes costs one or two writes, not one each. Snapshots are ordered
/// by their revision, not by when they arrive: the registrar hands each one to the
/// publisher and the state store from tasks of its own, which may arrive in either
/// order, and an older snapshot arriving late must never be written over a newer one.
///
/// A write that fails (a full disk) is tried again, after 250 ms and then up to every
/// 5 s, with the newest snapshot by then; its submitters wait until one succeeds.
actor Coalescer<Snapshot: Sendable> {
    static var firstRetryDelay: Duration { .milliseconds(250) }
    static var longestRetryDelay: Duration { .seconds(5) }

    private let write: @Sendable (Snapshot) async -> Bool
    private var pending: (revision: Int, snapshot: Snapshot)?
    /// The newest snapshot submitted (also for `rewrite`), and the newest revision
    /// written (-1: none yet).
    private var latest: (revision: Int, snapshot: Snapshot)?
    private var written = -1
    private var writing = false
    private var waiters: [(revision: Int, continuation: CheckedContinuation<Void, Never>)] = []

    /// A coalescer that hands snapshots to `write` (never two calls at once), which
    /// returns whether the snapshot is written.
    init(write: @escaping @Sendable (Snapshot) async -> Bool) {
        self.write = write
    }

    /// Submits `snapshot`, numbered `revision` (higher is newer); returns once it, or
    /// a newer snapshot, is written. An older one than already submitted is not written.
    func submit(_ snapshot: Snapshot, revision: Int) async {
        post(snapshot, revision: revision)
        guard written < revision else { return }
        await withCheckedContinuation { continuation in
            waiters.append((revision, continuation))
        }
    }

    /// Submits `snapshot` as `submit` does, without waiting for it to be written.
    func post(_ snapshot: Snapshot, revision: Int) {
        if revision > latest?.revision ?? -1 {
            pending = (revision, snapshot)
            latest = (revision, snapshot)
        }
        guard written < revision, !writing else { return }
        writing = true
        Task { await drain() }
    }

    /// Writes the newest snapshot again, for a writer whose output also depends on
    /// something besides the snapshot (the time, `RetiringClusters`; files lost on
    /// disk, `XDSPublisher.restoreIfLost`); returns at once.
    func rewrite() {
        guard let latest else { return }
        if pending == nil { pending = latest }
        if !writing {
            writing = true
            Task { await drain() }
        }
    }

    private func drain() async {
        var retryDelay = Self.firstRetryDelay
        while let next = pending {
            pending = nil
            guard await write(next.snapshot) else {
                // Unless a newer snapshot came meanwhile, this one is tried again.
                if pending == nil { pending = next }
                try? await Task.sleep(for: retryDelay)
                retryDelay = min(retryDelay * 2, Self.longestRetryDelay)
                continue
            }
            retryDelay = Self.firstRetryDelay
            written = next.revision
            let done = waiters.filter { $0.revision <= written }
            waiters.removeAll { $0.revision <= written }
            for waiter in done { waiter.continuation.resume() }
        }
        writing = false
    }
}
