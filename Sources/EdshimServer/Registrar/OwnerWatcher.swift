import CEdshimLinux
import EdshimCore
import Foundation
import Synchronization

/// Tells when a registration's owner exits, however it exits (SIGKILL, OOM): one
/// pidfd per owner, all waited on by one thread with epoll. A shim that died without
/// deregistering is noticed at once, not at the next poll.
final class OwnerWatcher: @unchecked Sendable {
    /// Owners that exited, in the order they did.
    let exits: AsyncStream<Owner>
    private let continuation: AsyncStream<Owner>.Continuation
    private let epoll: Int32
    private let wake: (read: Int32, write: Int32)
    private struct Watched {
        var owners: [Int32: Owner] = [:]
        var descriptors: [Owner: Int32] = [:]
    }

    private let watched = Mutex(Watched())

    init() throws {
        (exits, continuation) = AsyncStream.makeStream(of: Owner.self)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        var fds: [Int32] = [0, 0]
        guard epoll >= 0, pipe(&fds) == 0 else {
            throw ServerStartupError("epoll/pipe for watching shims: \(String(cString: strerror(errno)))")
        }
        wake = (fds[0], fds[1])
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake.read))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake.read, &event)
        let thread = Thread { [self] in run() }
        thread.start()
    }

    /// Starts watching `owner`; false when it is not alive (any more), or is another
    /// process now holding its PID.
    @discardableResult
    func watch(_ owner: Owner) -> Bool {
        if watched.withLock({ $0.descriptors[owner] != nil }) { return true }
        let fd = edshim_pidfd_open(owner.pid)
        guard fd >= 0 else { return false }
        // Checked after opening: the pidfd now pins this very process.
        guard ProcessTable.owner(of: owner.pid) == owner else {
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

    /// Stops watching `owner`.
    func unwatch(_ owner: Owner) {
        let fd: Int32? = watched.withLock {
            guard let fd = $0.descriptors.removeValue(forKey: owner) else { return nil }
            $0.owners[fd] = nil
            return fd
        }
        if let fd {
            epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
            close(fd)
        }
    }

    /// Whether the process of pidfd `fd` has exited (the pidfd is readable).
    private static func hasExited(_ fd: Int32) -> Bool {
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&waiter, 1, 0) == 1 && waiter.revents & Int16(POLLIN) != 0
    }

    /// Ends the watching thread and the `exits` stream.
    func stop() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = epoll_wait(epoll, &events, Int32(events.count), -1)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { break }
            for event in events.prefix(Int(count)) {
                let fd = event.data.fd
                if fd == wake.read {
                    continuation.finish()
                    return
                }
                // The event may be stale: `unwatch` can have closed this descriptor
                // since epoll_wait returned, and its number can already belong to
                // another pidfd. Only a descriptor still mapped, whose process has
                // really exited, is taken (and then closed here, by its one owner).
                let owner: Owner? = watched.withLock {
                    guard let owner = $0.owners[fd], Self.hasExited(fd) else { return nil }
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
