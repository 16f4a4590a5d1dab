/// Which occurrences of an event that can repeat at traffic rates get a log line:
/// the first, then at most one a minute, each saying how many were held back since
/// the line before — so a flood neither floods the log nor goes unseen. Occurrences
/// held back when the flood stops are owed a line of their own once their minute is
/// over (`overdueLine`), so the count is never lost.
public struct LogThrottle: Sendable {
    public static let intervalMilliseconds: Int64 = 60_000

    private var lastWritten: Int64?
    private var lastMessage = ""
    private var heldBack = 0

    public init() {}

    /// The line to log for `count` occurrences (datagrams, say) at `now` (monotonic
    /// milliseconds), or nil when they are held back; `message` is built only when a
    /// line is due.
    public mutating func line(_ message: @autoclosure () -> String, now: Int64, count: Int = 1) -> String? {
        if let lastWritten, now - lastWritten < Self.intervalMilliseconds {
            heldBack += count
            return nil
        }
        let since = heldBack == 0 ? "" : "; \(heldBack) more since the last report"
        lastWritten = now
        heldBack = 0
        lastMessage = message()
        return "\(lastMessage) (logged at most once a minute\(since))"
    }

    /// When occurrences held back are owed a line (the minute after the last line is
    /// over), or nil when none are held back.
    public var overdueAt: Int64? {
        heldBack > 0 ? lastWritten.map { $0 + Self.intervalMilliseconds } : nil
    }

    /// The line owed for the occurrences held back, once their minute is over (or at
    /// once, `final`: the process is stopping); nil when none is owed.
    public mutating func overdueLine(now: Int64, final: Bool = false) -> String? {
        guard let due = overdueAt, final || now >= due else { return nil }
        let count = heldBack
        heldBack = 0
        lastWritten = now
        return "\(lastMessage): \(count) more since the last report (logged at most once a minute)"
    }
}
