@testable import EdshimServer
import Testing

@Suite("Rate limiter")
struct RateLimiterTests {
    @Test("peers whose buckets have refilled are forgotten once many are tracked")
    func forgetsRefilledPeers() async throws {
        let limiter = RateLimiter(capacity: 2, perSecond: 1000)
        for pid in 1...Int32(RateLimiter.pruneThreshold) { _ = await limiter.admit(pid) }
        #expect(await limiter.trackedPeers == RateLimiter.pruneThreshold)
        try await Task.sleep(for: .milliseconds(20))
        _ = await limiter.admit(999_999)
        #expect(await limiter.trackedPeers <= 1)
    }

    @Test("a peer past its burst is refused")
    func refusesBurst() async {
        let limiter = RateLimiter(capacity: 2, perSecond: 0.001)
        #expect(await limiter.admit(7))
        #expect(await limiter.admit(7))
        #expect(await !limiter.admit(7))
    }
}
