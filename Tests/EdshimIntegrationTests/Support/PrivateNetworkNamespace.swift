import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace of the test's own: `lo` up, with 127.0.0.1 and ::1 and the
/// extra addresses the test asks for, and nothing else. The test holds it by an open
/// descriptor, so no process has to stay in it, and it goes away once `close()` is
/// called and what was started inside has ended.
final class PrivateNetworkNamespace: Sendable {
    /// The namespace, named by the test process's descriptor.
    let namespace: NetworkNamespace
    private let descriptor: Int32
    private let closed = Atomic<Bool>(false)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        namespace = NetworkNamespace(path: "/proc/\(getpid())/fd/\(descriptor)")
    }

    /// A new namespace with `lo` up and `loopbackAddresses` (such as "fd00:ed5::2/128")
    /// added to it, set up with `ip` run inside (its output goes to `logDirectory`).
    /// Throws `NetworkNamespaceUnavailable` where the machine refuses a new namespace.
    static func create(loopbackAddresses: [String], logDirectory: String) async throws -> PrivateNetworkNamespace {
        let created = PrivateNetworkNamespace(descriptor: try await onThread(unshareOnThisThread))
        do {
            let ip = try SystemExecutables.ip()
            try await created.namespace.check(ip, ["link", "set", "lo", "up"], logDirectory: logDirectory)
            for address in loopbackAddresses {
                let family = address.contains(":") ? "-6" : "-4"
                try await created.namespace.check(ip, [family, "addr", "add", address, "dev", "lo", "nodad"], logDirectory: logDirectory)
            }
        } catch {
            created.close()
            throw error
        }
        return created
    }

    /// Moves this thread into a new network namespace, opens it, and moves the thread
    /// back; returns the open descriptor.
    fileprivate static func unshareOnThisThread() throws -> Int32 {
        let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard own >= 0 else { throw TestFailure("opening this thread's network namespace: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(own) }
        guard NamespaceCalls.unshareNetworkNamespace() == 0 else {
            let code = errno
            let reason = "unshare(CLONE_NEWNET): \(String(cString: strerror(code)))"
            // EPERM: no CAP_SYS_ADMIN; EINVAL: a kernel without network namespaces;
            // ENOSPC: user.max_net_namespaces reached (or 0).
            if [EPERM, EINVAL, ENOSPC].contains(code) { throw NetworkNamespaceUnavailable(reason: reason) }
            throw TestFailure(reason)
        }
        let created = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let code = errno
        guard NamespaceCalls.enterNetworkNamespace(own) == 0 else {
            // This thread cannot go back: end the process rather than run on in the wrong namespace.
            fatalError("leaving a new network namespace: \(String(cString: strerror(errno)))")
        }
        guard created >= 0 else { throw TestFailure("opening a new network namespace: \(String(cString: strerror(code)))") }
        return created
    }

    /// Lets go of the namespace (once; later calls do nothing).
    func close() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        Glibc.close(descriptor)
    }

    deinit { close() }
}

extension PrivateNetworkNamespace {
    /// `EDSHIM_REQUIRE_NAMESPACES=1` (`.ci/run`): a test that cannot have a namespace
    /// of its own fails instead of being skipped.
    static var requiredByCI: Bool { ProcessInfo.processInfo.environment["EDSHIM_REQUIRE_NAMESPACES"] == "1" }

    /// Whether this machine gives the test process new network namespaces: one is
    /// made and let go at once. Where it refuses, says why (`SKIPPED:` on stderr).
    static func areAvailable() async -> Bool {
        do {
            let fd = try await onThread(unshareOnThisThread)
            Glibc.close(fd)
            return true
        } catch let unavailable as NetworkNamespaceUnavailable {
            announceSkip(unavailable.description)
            return false
        } catch {
            // Not a refusal: let the test run into it and fail with the reason.
            return true
        }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where it can have network namespaces of its own; elsewhere
    /// it is listed as skipped (with `SKIPPED:` and the reason on stderr). For
    /// parameterized tests, whose cancelled cases would be listed as passed.
    static var needsPrivateNetworkNamespaces: Self {
        // EDSHIM_REQUIRE_NAMESPACES=1 (CI) runs the test regardless: it then fails
        // where namespaces are missing, instead of being skipped.
        .enabled("needs network namespaces of its own (CAP_SYS_ADMIN)") {
            PrivateNetworkNamespace.requiredByCI ? true : await PrivateNetworkNamespace.areAvailable()
        }
    }
}

/// The machine refuses the test a network namespace of its own (no CAP_SYS_ADMIN, or
/// a kernel without them): not a fault of edshim. Tests print `SKIPPED:` and are
/// recorded as cancelled, never as passed.
struct NetworkNamespaceUnavailable: Error, CustomStringConvertible {
    var reason: String

    var description: String { "no private network namespace here: \(reason)" }
}

/// Runs `body` with a new `PrivateNetworkNamespace` (see `create`), closed afterwards.
/// Where the machine refuses one, prints `SKIPPED: <reason>` and cancels the test.
func withPrivateNetworkNamespace(
    loopbackAddresses: [String],
    logDirectory: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (NetworkNamespace) async throws -> Void
) async throws {
    let created: PrivateNetworkNamespace
    do {
        created = try await PrivateNetworkNamespace.create(loopbackAddresses: loopbackAddresses, logDirectory: logDirectory)
    } catch let unavailable as NetworkNamespaceUnavailable {
        if PrivateNetworkNamespace.requiredByCI {
            throw TestFailure("EDSHIM_REQUIRE_NAMESPACES=1, but \(unavailable.description)")
        }
        try skipLoudly(unavailable.description, sourceLocation: sourceLocation)
    }
    defer { created.close() }
    try await body(created.namespace)
}
