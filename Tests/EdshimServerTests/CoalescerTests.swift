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
        let coalescer = Coalescer<Int> { value in written.values.withLock { $0.append(value) } }
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
}
