import CEdshimLinux
import EdshimCore
import Foundation
import Logging
import Synchronization

/// Tells when a registration's owner exits, however it exits (SIGKILL, OOM): one
/// pidfd per owner, all waited on by one thread with epoll. A shim that died without
/// deregistering is noticed at once, not at the next poll.
///
/// Where a pidfd cannot be had for a live process (Linux before 5.3 has no
/// `pidfd_open`, a seccomp filter can refuse it, the server can be out of
/// descriptors), that owner is watched by reading `/proc/PID/stat` every
/// `pollInterval` instead: its exit is noticed a little later, never missed.
final class OwnerWatcher: Sendable {
    /// Owners that exited, in the order they did.
    let exits: AsyncStream<Owner>
    private let continuation: AsyncStream<Owner>.Continuation
    private let epoll: Int32
    private let wake: (read: Int32, write: Int32)
    private let logger: Logger
    private struct Watched {
        var owners: [Int32: Owner] = [:]
        var descriptors: [Owner: Int32] = [:]
        /// Owners without a pidfd, checked in /proc every `pollInterval`.
        var polled: Set<Owner> = []
        /// The pidfd_open errors already logged (each is logged once).
        var reportedErrors: Set<Int32> = []
    }

    private let watched = Mutex(Watched())
    /// How often owners without a pidfd are looked up in /proc.
    static let pollInterval: Int32 = 100
    private static let stopByte: UInt8 = 1
    private static let nudgeByte: UInt8 = 2

    init(logger: Logger) throws {
        self.logger = logger
        (exits, continuation) = AsyncStream.makeStream(of: Owner.self)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        var fds: [Int32] = [0, 0]
        guard epoll >= 0, pipe(&fds) == 0 else {
            throw ServerError("epoll/pipe for watching shims: \(ErrorText.describe(errno))")
        }
        wake = (fds[0], fds[1])
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(wake.read, F_SETFL, O_NONBLOCK)
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake.read))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake.read, &event)
        let thread = Thread { [self] in run() }
        thread.start()
    }

    /// Starts watching `owner`; false when it is not alive (any more), or is another
    /// process now holding its PID.
    @discardableResult
    func watch(_ owner: Owner) -> Bool {
        if watched.withLock({ $0.descriptors[owner] != nil || $0.polled.contains(owner) }) { return true }
        let fd = edshim_pidfd_open(owner.pid)
        guard fd >= 0 else {
            let error = errno
            // ESRCH: no such process. Anything else says nothing about the process.
            guard error != ESRCH, ProcessTable.liveness(of: owner) != .exited else { return false }
            return watchByPolling(owner, because: error)
        }
        // Checked after opening: the pidfd now pins this very process, which must not
        // have exited already (a zombie not reaped yet still has its /proc entry).
        // /proc unreadable (the pidfd took the last descriptor: EMFILE) says nothing
        // about the process: the pidfd itself tells whether it exited.
        let liveness = ProcessTable.liveness(of: owner)
        guard liveness == .running || (liveness == .unknown && !Self.hasExited(pidfd: fd)) else {
            close(fd)
            return false
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        watched.withLock {
            $0.owners[fd] = owner
            $0.descriptors[owner] = fd
        }
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: fd))
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
        return true
    }

    /// Whether the process behind `pidfd` has exited: its pidfd is then readable.
    private static func hasExited(pidfd: Int32) -> Bool {
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLIN) != 0
    }

    /// Watches `owner` by polling /proc, as no pidfd could be opened for it.
    private func watchByPolling(_ owner: Owner, because error: Int32) -> Bool {
        let (first, report) = watched.withLock {
            let report = $0.reportedErrors.insert(error).inserted
            return ($0.polled.insert(owner).inserted && $0.polled.count == 1, report)
        }
        if report {
            logger.warning("pidfd_open failed: watching shims by reading /proc every \(Self.pollInterval) ms instead (a shim's exit is noticed up to that much later)", metadata: [
                "error": "\(ErrorText.describe(error))",
                "hint": "\(Self.hint(for: error))",
            ])
        }
        // The watching thread sleeps without a timeout while nothing is polled.
        if first { wakeThread(Self.nudgeByte) }
        return true
    }

    private static func hint(for error: Int32) -> String {
        switch error {
        case ENOSYS: "the kernel is older than 5.3, or a seccomp filter refuses pidfd_open"
        case EPERM, EACCES: "a seccomp filter or security module refuses pidfd_open"
        case EMFILE, ENFILE: "the server is out of file descriptors (LimitNOFILE)"
        default: "pidfd_open failed for a reason the kernel gives above"
        }
    }

    /// Stops watching `owner`.
    func unwatch(_ owner: Owner) {
        let fd: Int32? = watched.withLock {
            if $0.polled.remove(owner) != nil { return nil }
            guard let fd = $0.descriptors.removeValue(forKey: owner) else { return nil }
            $0.owners[fd] = nil
            return fd
        }
        if let fd {
            epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
            close(fd)
        }
    }

    /// Ends the watching thread and the `exits` stream.
    func stop() {
        wakeThread(Self.stopByte)
    }

    private func wakeThread(_ byte: UInt8) {
        var byte = byte
        _ = write(wake.write, &byte, 1)
    }

    /// Whether the wake pipe asks the thread to stop (a nudge only wakes it).
    private func drainWakePipe() -> Bool {
        var bytes = [UInt8](repeating: 0, count: 64)
        var stop = false
        while true {
            let count = read(wake.read, &bytes, bytes.count)
            guard count > 0 else { break }
            if bytes.prefix(count).contains(Self.stopByte) { stop = true }
        }
        return stop
    }

    /// Owners without a pidfd that have exited, taken out of the watch. One /proc
    /// cannot tell about (no descriptor left) is looked at again next time.
    private func exitedPolledOwners() -> [Owner] {
        let polled = watched.withLock { $0.polled }
        let exited = polled.filter { ProcessTable.liveness(of: $0) == .exited }
        guard !exited.isEmpty else { return [] }
        return watched.withLock { state in exited.filter { state.polled.remove($0) != nil } }
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let timeout = watched.withLock { $0.polled.isEmpty } ? -1 : Self.pollInterval
            let count = epoll_wait(epoll, &events, Int32(events.count), timeout)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { break }
            for owner in exitedPolledOwners() { continuation.yield(owner) }
            for event in events.prefix(Int(count)) {
                let fd = event.data.fd
                if fd == wake.read {
                    guard drainWakePipe() else { continue }
                    continuation.finish()
                    return
                }
                // The event may be stale: `unwatch` can have closed this descriptor
                // since epoll_wait returned, and its number can already belong to
                // another pidfd. Only a descriptor still mapped, whose process has
                // really exited, is taken (and then closed here, by its one owner).
                let owner: Owner? = watched.withLock {
                    guard let owner = $0.owners[fd], Self.hasExited(pidfd: fd) else { return nil }
                    $0.owners[fd] = nil
                    $0.descriptors[owner] = nil
                    return owner
                }
                guard let owner else { continue }
                epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
                close(fd)
                continuation.yield(owner)
            }
        }
        continuation.finish()
    }
}
