/// When to poll instead of sleeping.
///
/// Sleeping in epoll_wait and being woken for the next datagram is the most
/// expensive part of moving a datagram (in a virtual machine especially: the idle
/// CPU halts, and waking it is an interrupt round trip). On a busy port the next
/// datagram arrives within microseconds, so after a wakeup that moved datagrams the
/// proxy keeps polling — yielding the CPU between polls to anything else runnable —
/// until `window` passes without one. It only does so while traffic is dense: when the
/// gap before a wakeup was longer than the window, polling would have caught nothing,
/// and the proxy goes straight back to sleep. A quiet or sparse port never polls.
///
/// Opt-in (`window` 0 by default): where CPU-bound work shares the proxy's CPU, a
/// yield can hand it a whole time slice, and the port then stalls for milliseconds.
struct BusyPoll {
    /// Microseconds without a datagram after which polling gives way to sleeping; 0
    /// turns polling off.
    let window: Int64
    private var lastActivity: Int64 = .min / 2
    private var pollUntil: Int64 = 0

    init(windowMicroseconds: Int64) {
        window = windowMicroseconds
    }

    /// True while the proxy should poll (timeout 0) rather than sleep.
    func isPolling(at now: Int64) -> Bool {
        now < pollUntil
    }

    /// Datagrams moved at `now` (microseconds).
    mutating func noteActivity(at now: Int64) {
        guard window > 0 else { return }
        if isPolling(at: now) || now - lastActivity <= window {
            pollUntil = now + window
        }
        lastActivity = now
    }
}
