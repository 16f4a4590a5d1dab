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
/// 5 s, with the newest snapshot by then; `submit`'s callers wait until one succeeds,
/// `attempt`'s only until the first write that covers their snapshot has ended, and
/// not at all while writes keep failing (the retry waiting out its delay).
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
    private var waiters: [Waiter] = []

    /// A caller waiting for its revision to be written; with `untilWritten` false,
    /// only for a write of it to end, also in failure.
    private struct Waiter {
        let revision: Int
        let untilWritten: Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    /// A coalescer that hands snapshots to `write` (never two calls at once), which
    /// returns whether the snapshot is written.
    init(write: @escaping @Sendable (Snapshot) async -> Bool) {
        self.write = write
    }

    /// Submits `snapshot`, numbered `revision` (higher is newer); returns once it, or
    /// a newer snapshot, is written. An older one than already submitted is not written.
    func submit(_ snapshot: Snapshot, revision: Int) async {
        _ = await wait(for: snapshot, revision: revision, untilWritten: true)
    }

    /// Submits `snapshot` as `submit` does; returns true once it (or a newer one) is
    /// written, false once a write of it (or of a newer one) failed. A failed one is
    /// tried again all the same, without the caller.
    func attempt(_ snapshot: Snapshot, revision: Int) async -> Bool {
        await wait(for: snapshot, revision: revision, untilWritten: false)
    }

    private func wait(for snapshot: Snapshot, revision: Int, untilWritten: Bool) async -> Bool {
        post(snapshot, revision: revision)
        guard written < revision else { return true }
        // The next try comes only after the retry delay (up to 5 s): a caller that
        // asked to wait for a try alone need not sit through it to hear that the disk
        // still refuses. The retry writes this snapshot, or a newer one, all the same.
        if !untilWritten, failing { return false }
        return await withCheckedContinuation { continuation in
            waiters.append(Waiter(revision: revision, untilWritten: untilWritten, continuation: continuation))
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
                failing = true
                release { !$0.untilWritten && $0.revision <= next.revision }
                // Unless a newer snapshot came meanwhile, this one is tried again.
                if pending == nil { pending = next }
                try? await Task.sleep(for: retryDelay)
                retryDelay = min(retryDelay * 2, Self.longestRetryDelay)
                continue
            }
            retryDelay = Self.firstRetryDelay
            failing = false
            written = next.revision
            release(written: true) { $0.revision <= next.revision }
        }
        writing = false
    }

    /// Resumes the waiters `done` picks, with whether their snapshot is written.
    private func release(written: Bool = false, _ done: (Waiter) -> Bool) {
        let resumed = waiters.filter(done)
        waiters.removeAll(where: done)
        for waiter in resumed { waiter.continuation.resume(returning: written) }
    }
}
