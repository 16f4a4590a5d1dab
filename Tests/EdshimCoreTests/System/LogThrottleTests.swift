@testable import EdshimCore
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

    @Test("occurrences held back when the flood stops get a line of their own once their minute is over, counted in the units given")
    func heldBackCountIsNeverLost() {
        var throttle = LogThrottle()
        #expect(throttle.overdueAt == nil)
        #expect(throttle.line("3 datagram(s) dropped", now: 1_000, count: 3) == "3 datagram(s) dropped (logged at most once a minute)")
        #expect(throttle.overdueAt == nil, "nothing held back")
        #expect(throttle.line("5 datagram(s) dropped", now: 2_000, count: 5) == nil)
        #expect(throttle.line("2 datagram(s) dropped", now: 3_000, count: 2) == nil)
        #expect(throttle.overdueAt == 61_000)
        #expect(throttle.overdueLine(now: 60_999) == nil, "its minute is not over")
        #expect(throttle.overdueLine(now: 61_000) == "3 datagram(s) dropped: 7 more since the last report (logged at most once a minute)")
        #expect(throttle.overdueLine(now: 200_000) == nil, "owed once")
        #expect(throttle.line("1 datagram(s) dropped", now: 62_000) == nil, "a minute since the overdue line has not passed")
        #expect(throttle.overdueLine(now: 62_500, final: true) == "3 datagram(s) dropped: 1 more since the last report (logged at most once a minute)", "a stopping process says what it held back at once")
    }
}
