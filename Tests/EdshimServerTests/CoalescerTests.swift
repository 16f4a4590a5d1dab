@testable import EdshimServer
import Synchronization
import Testing

@Suite("Coalescer")
struct CoalescerTests {
    /// What the coalescer wrote, in order.
    private final class Written: Sendable {
        let values = Mutex<[Int]>([])

        var count: Int { values.withLock { $0.count } }
        var all: [Int] { values.withLock { $0 } }

        /// Waits (10 s at most) until `done` holds.
        func waitUntil(_ done: @Sendable (Written) -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while !done(self), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test("an older snapshot arriving after a newer one is never written over it")
    func olderArrivingLateIsNotWritten() async {
        let written = Written()
        let coalescer = Coalescer<Int> { value in
            written.values.withLock { $0.append(value) }
            return true
        }
        #expect(await coalescer.attempt(20, revision: 2))
        #expect(await coalescer.attempt(10, revision: 1), "covered by the newer one")
        #expect(written.all == [20])
    }

    @Test("a remembered snapshot (what the file held at start) is not written, but is what a rewrite writes; a newer one submitted later wins")
    func rememberedIsRewritten() async throws {
        let written = Written()
        let coalescer = Coalescer<Int> { value in
            written.values.withLock { $0.append(value) }
            return true
        }
        await coalescer.remember(7, revision: 0)
        #expect(await coalescer.attempt(7, revision: 0), "already on disk")
        #expect(written.all.isEmpty)
        await coalescer.rewrite()
        try await written.waitUntil { $0.count == 1 }
        #expect(written.all == [7])
        #expect(await coalescer.attempt(8, revision: 1))
        await coalescer.remember(6, revision: 0)
        await coalescer.rewrite()
        try await written.waitUntil { $0.count == 3 }
        #expect(written.all == [7, 8, 8], "an older remembered snapshot is ignored")
    }

    @Test("under concurrent submissions in any order, the newest is written last and every caller returns, told it is written")
    func newestWinsUnderConcurrency() async {
        for _ in 0..<50 {
            let written = Written()
            let coalescer = Coalescer<Int> { value in
                written.values.withLock { $0.append(value) }
                await Task.yield()
                return true
            }
            let answers = await withTaskGroup(of: Bool.self) { group in
                for revision in (1...40).shuffled() {
                    group.addTask { await coalescer.attempt(revision * 10, revision: revision) }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            let values = written.all
            #expect(values.last == 400, "\(values)")
            #expect(values == values.sorted(), "written out of order: \(values)")
            #expect(answers == Array(repeating: true, count: 40))
        }
    }

    @Test("a failed write returns false to its caller at once and is tried again, after 250 ms, then 500 ms, until it succeeds")
    func failedWriteIsRetried() async throws {
        let attempts = Written()
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            return attempts.count >= 3
        }
        let start = ContinuousClock.now
        #expect(await coalescer.attempt(7, revision: 1) == false)
        #expect(attempts.all.first == 7, "returned after the first write")
        try await attempts.waitUntil { $0.count >= 3 }
        #expect(attempts.all == [7, 7, 7], "retried until written")
        #expect(ContinuousClock.now - start >= Coalescer<Int>.firstRetryDelay * 3, "retried after 250 ms, then 500 ms")
        #expect(await coalescer.attempt(7, revision: 1), "written by now")
        #expect(await coalescer.attempt(8, revision: 2))
    }

    @Test("while writes keep failing, a caller is answered false at once instead of sitting through the retry delay; the retry writes its snapshot all the same")
    func attemptWhileFailingReturnsAtOnce() async throws {
        let attempts = Written()
        let disk = Mutex(false)
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            return disk.withLock { $0 }
        }
        #expect(await coalescer.attempt(1, revision: 1) == false)
        // Failed writes double the delay: 250 ms, 500 ms, 1 s, 2 s.
        try await attempts.waitUntil { $0.count >= 4 }
        let asked = ContinuousClock.now
        #expect(await coalescer.attempt(2, revision: 2) == false)
        #expect(ContinuousClock.now - asked < .milliseconds(500), "waited \(ContinuousClock.now - asked) for a retry 2 s away")
        disk.withLock { $0 = true }
        try await attempts.waitUntil { $0.all.last == 2 }
        #expect(attempts.all.last == 2, "the retry wrote the newest snapshot")
        #expect(await coalescer.attempt(2, revision: 2))
    }

    @Test("a failed write answers the callers it covered, not one of a newer snapshot posted meanwhile, which the retry writes")
    func failureReleasesOnlyWhatItCovered() async throws {
        let attempts = Written()
        let gate = Mutex<[CheckedContinuation<Void, Never>]>([])
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            // The first write waits for the test, then fails; later ones succeed.
            if value == 1 {
                await withCheckedContinuation { continuation in gate.withLock { $0.append(continuation) } }
                return false
            }
            return true
        }
        async let attempted = coalescer.attempt(1, revision: 1)
        try await attempts.waitUntil { _ in !gate.withLock { $0.isEmpty } }
        // Posted while the first write is under way: written by the retry, not failed with it.
        async let newer = coalescer.attempt(2, revision: 2)
        try await Task.sleep(for: .milliseconds(200))
        gate.withLock { $0.forEach { $0.resume() } }
        #expect(await attempted == false)
        #expect(await newer == true)
        #expect(attempts.all == [1, 2])
    }
}
