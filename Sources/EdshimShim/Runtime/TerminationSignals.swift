import CEdshimLinux
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT (dockerd stopping the proxy) and SIGTERM (dockerd's Pdeathsig) as a
/// descriptor to poll, blocked from the first instruction so none is lost while the
/// shim registers.
struct TerminationSignals {
    /// Readable when a termination signal is pending.
    let descriptor: Int32

    /// Blocks SIGINT and SIGTERM, ignores SIGPIPE, and opens a signalfd for them.
    /// Call on the process's only thread: a signal the kernel gives a thread that
    /// does not block it never reaches the signalfd.
    static func install() throws(ShimFailure) -> TerminationSignals {
        var mask = try block()
        signal(SIGPIPE, SIG_IGN)
        let fd = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fd >= 0 else { throw .system("signalfd") }
        return TerminationSignals(descriptor: fd)
    }

    /// Blocks SIGINT and SIGTERM on the calling thread (and on the threads it starts
    /// later); returns the set. An ignored disposition is reset first: a shell starts
    /// background jobs with SIGINT ignored, and an ignored signal never reaches a
    /// signalfd. One that comes from here on waits, pending, for the signalfd.
    static func block() throws(ShimFailure) -> sigset_t {
        guard edshim_stop_ignoring(SIGINT) == 0, edshim_stop_ignoring(SIGTERM) == 0 else { throw .system("resetting ignored SIGINT/SIGTERM") }
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        guard sigprocmask(SIG_BLOCK, &mask, nil) == 0 else { throw .system("blocking SIGINT/SIGTERM") }
        return mask
    }

    /// For a loop whose `poll` of its descriptors failed with `error` (no kernel
    /// memory, or more descriptors than a lowered open-files limit allows): logs it
    /// (at most once a minute, `doing` says what the loop does) and waits 100 ms on
    /// the signal descriptor alone, `entry` (the loop's, whose `revents` it sets), so
    /// that a stop is never missed, nor the CPU spun on. True when a signal is
    /// pending; false at once for EINTR.
    static func afterFailedPoll(_ entry: inout pollfd, error: Int32, doing: @autoclosure () -> String, log: inout LogThrottle) -> Bool {
        guard error != EINTR else { return false }
        if let line = log.line("\(doing()): poll: \(ErrorText.describe(error)); trying again every 100 ms", now: Deadline.now()) {
            ShimLog.warning(line)
        }
        var single = pollfd(fd: entry.fd, events: entry.events, revents: 0)
        let ready = poll(&single, 1, 100)
        // Even that failed: sleep instead (signals wait on the signalfd meanwhile).
        if ready < 0 { usleep(100_000) }
        entry.revents = single.revents
        return ready > 0
    }

    /// True when a signal arrived (and consumes it).
    func takePending() -> Bool {
        takeSignal() != nil
    }

    /// A signal that arrived.
    struct Received {
        /// SIGINT or SIGTERM.
        let number: Int32
        /// The process that sent it; for Pdeathsig, the parent that exited.
        let sender: pid_t
    }

    /// The signal that arrived, if one did (and consumes it).
    func takeSignal() -> Received? {
        var info = signalfd_siginfo()
        let count = withUnsafeMutableBytes(of: &info) { read(descriptor, $0.baseAddress, $0.count) }
        guard count == MemoryLayout<signalfd_siginfo>.size else { return nil }
        return Received(number: Int32(info.ssi_signo), sender: pid_t(bitPattern: info.ssi_pid))
    }

    /// Sleeps until a signal arrives; returns it.
    func wait() -> Received {
        var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        while true {
            if let signal = takeSignal() { return signal }
            _ = poll(&fds, 1, -1)
        }
    }
}
