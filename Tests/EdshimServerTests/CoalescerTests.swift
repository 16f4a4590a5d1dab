@testable import EdshimServer
import Synchronization
import Testing

@Suite("Coalescer")
struct CoalescerTests {
    /// What the coalescer wrote, in order.
    private final class Written: Sendable {
        let values = Mutex<[Int]>([])
    }

    @Test("an older snapshot arriving after a newer one is never written over it")
    func olderArrivingLateIsNotWritten() async {
        let written = Written()
        let coalescer = Coalescer<Int> { value in
            written.values.withLock { $0.append(value) }
            return true
        }
        await coalescer.submit(20, revision: 2)
        await coalescer.submit(10, revision: 1)
        #expect(written.values.withLock { $0 } == [20])
    }

    @Test("under concurrent submissions in any order, the newest is written last and every submitter returns")
    func newestWinsUnderConcurrency() async {
        for _ in 0..<50 {
            let written = Written()
            let coalescer = Coalescer<Int> { value in
                written.values.withLock { $0.append(value) }
                await Task.yield()
                return true
            }
            await withTaskGroup(of: Void.self) { group in
                for revision in (1...40).shuffled() {
                    group.addTask { await coalescer.submit(revision * 10, revision: revision) }
                }
            }
            let values = written.values.withLock { $0 }
            #expect(values.last == 400, "\(values)")
            #expect(values == values.sorted(), "written out of order: \(values)")
        }
    }

    @Test("a failed write is tried again, and its submitter returns only once it succeeded")
    func failedWriteIsRetried() async {
        let attempts = Written()
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            return attempts.values.withLock { $0.count } >= 3
        }
        let start = ContinuousClock.now
        await coalescer.submit(7, revision: 1)
        #expect(attempts.values.withLock { $0 } == [7, 7, 7])
        #expect(ContinuousClock.now - start >= Coalescer<Int>.firstRetryDelay * 3, "retried after 250 ms, then 500 ms")
    }

    @Test("attempt returns false as soon as a write of its snapshot failed, and the write is retried all the same; true once one succeeded")
    func attemptReturnsOnFailure() async throws {
        let attempts = Written()
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            return attempts.values.withLock { $0.count } >= 3
        }
        #expect(await coalescer.attempt(7, revision: 1) == false)
        #expect(attempts.values.withLock { $0.first } == 7, "returned after the first write")
        let deadline = ContinuousClock.now + .seconds(10)
        while attempts.values.withLock({ $0.count }) < 3, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(attempts.values.withLock { $0 } == [7, 7, 7], "retried until written")
        #expect(await coalescer.attempt(7, revision: 1), "written by now")
        #expect(await coalescer.attempt(8, revision: 2))
    }

    @Test("while writes keep failing, attempt returns false at once instead of sitting through the retry delay; the retry writes its snapshot all the same")
    func attemptWhileFailingReturnsAtOnce() async throws {
        let attempts = Written()
        let disk = Mutex(false)
        let coalescer = Coalescer<Int> { value in
            attempts.values.withLock { $0.append(value) }
            return disk.withLock { $0 }
        }
        #expect(await coalescer.attempt(1, revision: 1) == false)
        // Failed writes double the delay: 250 ms, 500 ms, 1 s, 2 s.
        let deadline = ContinuousClock.now + .seconds(10)
        while attempts.values.withLock({ $0.count }) < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let asked = ContinuousClock.now
        #expect(await coalescer.attempt(2, revision: 2) == false)
        #expect(ContinuousClock.now - asked < .milliseconds(500), "waited \(ContinuousClock.now - asked) for a retry 2 s away")
        disk.withLock { $0 = true }
        await coalescer.submit(2, revision: 2)
        #expect(attempts.values.withLock { $0.last } == 2, "the retry wrote the newest snapshot")
    }

    @Test("a failed write releases the attempts it covered, not a submit of the same snapshot, nor an attempt of a newer one posted meanwhile")
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
        async let submitted: Void = coalescer.submit(1, revision: 1)
        let deadline = ContinuousClock.now + .seconds(10)
        while gate.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Posted while the first write is under way: written by the retry, not failed with it.
        async let newer = coalescer.attempt(2, revision: 2)
        try await Task.sleep(for: .milliseconds(200))
        gate.withLock { $0.forEach { $0.resume() } }
        #expect(await attempted == false)
        #expect(await newer == true)
        await submitted
        #expect(attempts.values.withLock { $0 } == [1, 2])
    }
}
