import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Sockets made inside a container's network namespace. A socket stays in the
/// namespace it was created in, so a test can serve a container's port from its own
/// process — the busybox image has no UDP server — and use the socket from any thread.
enum NetworkNamespace {
    private typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32
    /// `CLONE_NEWNET`, which Swift's Glibc module does not export (nor `setns`).
    private static let networkNamespaceType: Int32 = 0x4000_0000

    /// A new socket (`socket(family, type, 0)`) in the network namespace of `pid`.
    /// The switch happens on a thread of its own, which switches back before it ends:
    /// nothing else in the test process changes namespace.
    static func socket(of pid: pid_t, family: Int32, type: Int32) async throws -> Int32 {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "setns") else { throw TestFailure("this libc has no setns") }
        let setns = unsafeBitCast(symbol, to: SetNamespace.self)
        return try await onThread {
            let target = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
            let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            defer {
                if target >= 0 { close(target) }
                if own >= 0 { close(own) }
            }
            guard target >= 0, own >= 0 else { throw TestFailure("opening the network namespaces of \(pid) and this thread: \(String(cString: strerror(errno)))") }
            guard setns(target, networkNamespaceType) == 0 else {
                throw TestFailure("entering the network namespace of \(pid): \(String(cString: strerror(errno))) (needs CAP_SYS_ADMIN)")
            }
            let fd = Glibc.socket(family, type, 0)
            let code = errno
            guard setns(own, networkNamespaceType) == 0 else {
                // This thread cannot go back: end the process rather than run on in the wrong namespace.
                fatalError("leaving the network namespace of \(pid): \(String(cString: strerror(errno)))")
            }
            guard fd >= 0 else { throw TestFailure("socket in the network namespace of \(pid): \(String(cString: strerror(code)))") }
            return fd
        }
    }
}
