import EdshimCore
import Testing

@Suite("Log throttle")
struct LogThrottleTests {
    @Test("the first occurrence is logged, then one a minute with the count held back")
    func onceAMinuteWithTheCount() {
        var throttle = LogThrottle()
        var built = 0
        func occur(at now: Int64) -> String? {
            throttle.line({ built += 1; return "evicted" }(), now: now)
        }
        #expect(occur(at: 1_000) == "evicted (logged at most once a minute)")
        #expect(occur(at: 1_001) == nil)
        #expect(occur(at: 60_999) == nil, "59.999 s later: still held back")
        #expect(built == 1, "a held-back message is never built")
        #expect(occur(at: 61_000) == "evicted (logged at most once a minute; 2 more since the last report)")
        #expect(occur(at: 200_000) == "evicted (logged at most once a minute)", "nothing held back since")
    }
}
