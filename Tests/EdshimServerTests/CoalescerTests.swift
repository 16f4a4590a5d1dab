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
        #expect(attempts.values.withLock { $0 } == [7], "returned after the first write")
        let deadline = ContinuousClock.now + .seconds(10)
        while attempts.values.withLock({ $0.count }) < 3, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(attempts.values.withLock { $0 } == [7, 7, 7], "retried until written")
        #expect(await coalescer.attempt(7, revision: 1), "written by now")
        #expect(await coalescer.attempt(8, revision: 2))
    }
}
