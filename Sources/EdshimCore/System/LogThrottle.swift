/// Which occurrences of an event that can repeat at traffic rates get a log line:
/// the first, then at most one a minute, each saying how many were held back since
/// the line before — so a flood neither floods the log nor goes unseen.
public struct LogThrottle: Sendable {
    public static let intervalMilliseconds: Int64 = 60_000

    private var lastWritten: Int64?
    private var heldBack = 0

    public init() {}

    /// The line to log for this occurrence at `now` (monotonic milliseconds), or nil
    /// when it is held back; `message` is built only when a line is due.
    public mutating func line(_ message: @autoclosure () -> String, now: Int64) -> String? {
        if let lastWritten, now - lastWritten < Self.intervalMilliseconds {
            heldBack += 1
            return nil
        }
        let since = heldBack == 0 ? "" : "; \(heldBack) more since the last report"
        lastWritten = now
        heldBack = 0
        return "\(message()) (logged at most once a minute\(since))"
    }
}
