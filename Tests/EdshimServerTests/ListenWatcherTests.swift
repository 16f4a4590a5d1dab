import EdshimCore
@testable import EdshimServer
import Synchronization
import Testing

@Suite("ListenWatcher")
struct ListenWatcherTests {
    /// A listen table that gains `socket` once `opensAfter` has passed, and records the
    /// ports each read asked for.
    private final class FakeTable: Sendable {
        let socket: ListeningSocket
        let opensAt: ContinuousClock.Instant
        let asked = Mutex<[Set<UInt16>?]>([])

        init(_ socket: ListeningSocket, opensAfter delay: Duration) {
            self.socket = socket
            opensAt = .now + delay
        }

        func read(_ ports: Set<UInt16>?) -> [ListeningSocket] {
            asked.withLock { $0.append(ports) }
            return ContinuousClock.now >= opensAt ? [socket] : []
        }
    }

    static let endpoint = SocketEndpoint(ip: .loopbackIPv4, port: 8080)

    @Test("a wait reads the waited port alone, every millisecond at first and less often the longer it waits")
    func readsLessOftenTheLongerItWaits() async {
        let table = FakeTable(ListeningSocket(endpoint: Self.endpoint, inode: 7), opensAfter: .milliseconds(400))
        let watcher = ListenWatcher(interval: .milliseconds(1), readTable: table.read)
        #expect(await watcher.waitUntilListening(on: Self.endpoint, excluding: [], timeout: .seconds(10)))
        let asked = table.asked.withLock { $0 }
        #expect(asked.allSatisfy { $0 == [8080] }, "\(Set(asked.map { $0.map { $0.sorted() } }))")
        // Every millisecond for 400 ms would be 400 reads (fewer on a busy machine);
        // 20 at 1 ms, then a twentieth of the time waited: about 20 + 20 ln(400 / 20) ≈ 80.
        #expect(asked.count > 1 && asked.count < 120, "\(asked.count) reads")
    }

    @Test("the delay between reads: the interval, a twentieth of the newest waiter's wait, 10 ms at most")
    func delayFollowsTheNewestWaiter() {
        let start = ContinuousClock.now
        func delay(after elapsed: Duration?) -> Duration {
            ListenWatcher.delay(interval: .milliseconds(2), newestWaitStarted: elapsed.map { _ in start }, now: start + (elapsed ?? .zero))
        }
        #expect(delay(after: nil) == .milliseconds(2), "nobody waits")
        #expect(delay(after: .zero) == .milliseconds(2))
        #expect(delay(after: .milliseconds(10)) == .milliseconds(2))
        #expect(delay(after: .milliseconds(100)) == .milliseconds(5))
        #expect(delay(after: .milliseconds(150)) == .milliseconds(7.5))
        #expect(delay(after: .seconds(60)) == .milliseconds(10))
    }
}
