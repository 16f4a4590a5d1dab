/// Writes the newest of a stream of numbered snapshots, one write at a time.
///
/// `attempt` returns once a write of the submitted snapshot, or of a newer one, has
/// finished. While a write runs, newer submissions only replace the pending snapshot,
/// so a burst of changes costs one or two writes, not one each. Snapshots are ordered
/// by their revision, not by when they arrive: the registrar hands each one to the
/// publisher and the state store from tasks of its own, which may arrive in either
/// order, and an older snapshot arriving late must never be written over a newer one.
///
/// A write that fails (a full disk) is tried again, after 250 ms and then up to every
/// 5 s, with the newest snapshot by then, until one succeeds. Callers wait only until
/// the first write that covers their snapshot has ended, and not at all while writes
/// keep failing (the retry waiting out its delay): a disk that refuses must hold up
/// no request.
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
    /// The last write failed, and none has succeeded since.
    private var failing = false
    /// Callers waiting for a write of their revision to end, with whether it succeeded.
    private var waiters: [(revision: Int, continuation: CheckedContinuation<Bool, Never>)] = []

    /// A coalescer that hands snapshots to `write` (never two calls at once), which
    /// returns whether the snapshot is written.
    init(write: @escaping @Sendable (Snapshot) async -> Bool) {
        self.write = write
    }

    /// Submits `snapshot`, numbered `revision` (higher is newer; an older one than
    /// already submitted is not written); returns true once it, or a newer snapshot,
    /// is written, false once a write of it (or of a newer one) failed, or at once
    /// while writes keep failing. A failed one is tried again all the same, without
    /// the caller.
    func attempt(_ snapshot: Snapshot, revision: Int) async -> Bool {
        post(snapshot, revision: revision)
        guard written < revision else { return true }
        // The next try comes only after the retry delay (up to 5 s): the caller need
        // not sit through it to hear that the disk still refuses.
        if failing { return false }
        return await withCheckedContinuation { continuation in
            waiters.append((revision, continuation))
        }
    }

    /// Submits `snapshot` as `attempt` does, without waiting for it to be written.
    func post(_ snapshot: Snapshot, revision: Int) {
        if revision > latest?.revision ?? -1 {
            pending = (revision, snapshot)
            latest = (revision, snapshot)
        }
        guard written < revision, !writing else { return }
        writing = true
        Task { await drain() }
    }

    /// Takes `snapshot` as written already (what the file holds when the writer
    /// starts), for `rewrite`; a newer snapshot submitted is kept.
    func remember(_ snapshot: Snapshot, revision: Int) {
        guard revision > latest?.revision ?? -1 else { return }
        latest = (revision, snapshot)
        written = max(written, revision)
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
                failing = true
                release(upTo: next.revision, written: false)
                // Unless a newer snapshot came meanwhile, this one is tried again.
                if pending == nil { pending = next }
                try? await Task.sleep(for: retryDelay)
                retryDelay = min(retryDelay * 2, Self.longestRetryDelay)
                continue
            }
            retryDelay = Self.firstRetryDelay
            failing = false
            written = next.revision
            release(upTo: next.revision, written: true)
        }
        writing = false
    }

    /// Resumes the waiters of `revision` and older ones, with whether it is written.
    private func release(upTo revision: Int, written: Bool) {
        let resumed = waiters.filter { $0.revision <= revision }
        waiters.removeAll { $0.revision <= revision }
        for waiter in resumed { waiter.continuation.resume(returning: written) }
    }
}
