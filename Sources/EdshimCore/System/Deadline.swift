#if canImport(Glibc)
import Glibc
#endif

/// A point on the monotonic clock, in milliseconds: deadlines that survive clock changes.
public struct Deadline: Sendable {
    /// Milliseconds on the monotonic clock.
    public let milliseconds: Int64

    /// Now, in milliseconds on the monotonic clock.
    public static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// A deadline `milliseconds` from now.
    public static func after(milliseconds: Int64) -> Deadline {
        Deadline(milliseconds: now() + milliseconds)
    }

    /// Milliseconds left, for `poll` (0 when passed).
    public var remaining: Int32 {
        Int32(clamping: max(0, milliseconds - Self.now()))
    }

    /// True once the deadline is reached.
    public var hasPassed: Bool { Self.now() >= milliseconds }
}
