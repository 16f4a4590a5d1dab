import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace, named by a file that refers to it: `/proc/PID/ns/net` (a
/// container's), or `/proc/PID/fd/N` (one the test holds open, a
/// `PrivateNetworkNamespace`). Work runs inside it on a thread of its own, which
/// switches back before it ends: nothing else in the test process changes namespace.
/// What that work leaves behind stays inside: a socket stays in the namespace it was
/// created in (and can then be used from any thread), and a process started from
/// the thread (posix_spawn) lives in the namespace.
struct NetworkNamespace: Sendable, CustomStringConvertible {
    /// The file naming the namespace.
    let path: String

    /// The network namespace of process `pid`.
    static func of(_ pid: pid_t) -> NetworkNamespace {
        NetworkNamespace(path: "/proc/\(pid)/ns/net")
    }

    var description: String { "the network namespace \(path)" }

    /// Runs `work` on a thread of its own inside this namespace, and awaits it.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let path = self.path
        return try await onThread {
            let target = open(path, O_RDONLY | O_CLOEXEC)
            let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            defer {
                if target >= 0 { close(target) }
                if own >= 0 { close(own) }
            }
            guard target >= 0, own >= 0 else { throw TestFailure("opening \(path) and this thread's network namespace: \(String(cString: strerror(errno)))") }
            guard NamespaceCalls.enterNetworkNamespace(target) == 0 else {
                throw TestFailure("entering the network namespace \(path): \(String(cString: strerror(errno))) (needs CAP_SYS_ADMIN)")
            }
            defer {
                if NamespaceCalls.enterNetworkNamespace(own) != 0 {
                    // This thread cannot go back: end the process rather than run on in the wrong namespace.
                    fatalError("leaving the network namespace \(path): \(String(cString: strerror(errno)))")
                }
            }
            return try work()
        }
    }

    /// Runs `work` inside `namespace`, or right here when there is none.
    static func run<T: Sendable>(in namespace: NetworkNamespace?, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard let namespace else { return try work() }
        return try await namespace.run(work)
    }

    /// Sets this namespace's ephemeral port range (net.ipv4.ip_local_port_range),
    /// where connect() takes the local ports of flows' and clients' sockets.
    func narrowEphemeralPorts(to ports: ClosedRange<UInt16>) async throws {
        try await run {
            let range = Array("\(ports.lowerBound) \(ports.upperBound)\n".utf8)
            let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY | O_CLOEXEC)
            guard fd >= 0, write(fd, range, range.count) == range.count else {
                throw TestFailure("narrowing the namespace's ephemeral range: \(String(cString: strerror(errno)))")
            }
            close(fd)
        }
    }

    /// A new socket (`socket(family, type, 0)`) in this namespace.
    func socket(family: Int32, type: Int32) async throws -> Int32 {
        try await run {
            let fd = Glibc.socket(family, type, 0)
            guard fd >= 0 else { throw TestFailure("socket in \(path): \(String(cString: strerror(errno)))") }
            return fd
        }
    }

    /// Runs a short command inside this namespace to completion (a process started
    /// from a thread inside inherits it); a non-zero exit throws with its output,
    /// which goes to a file in `directory` meanwhile.
    func check(_ executable: String, _ arguments: [String], logDirectory directory: String) async throws {
        let log = directory + "/netns-\(UUID().uuidString.prefix(8)).log"
        defer { unlink(log) }
        let process = try await run { try ChildProcess.spawn(executable, arguments, logPath: log) }
        let command = ([executable] + arguments).joined(separator: " ")
        let status = try await process.finish(within: .seconds(10), command: command)
        guard status == 0 else { throw TestFailure("`\(command)` in \(path) exited \(status): \(process.log)") }
    }
}

/// The namespace system calls, which Swift's Glibc module does not export: looked
/// up in the C library at run time.
enum NamespaceCalls {
    private typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32
    private typealias Unshare = @convention(c) (Int32) -> Int32
    /// `CLONE_NEWNET`.
    private static let networkNamespaceType: Int32 = 0x4000_0000

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(dlopen(nil, RTLD_NOW), name)
    }

    /// setns(fd, CLONE_NEWNET): moves the calling thread into the network namespace
    /// `fd` refers to. 0, or -1 with errno.
    static func enterNetworkNamespace(_ fd: Int32) -> Int32 {
        guard let symbol = symbol("setns") else {
            errno = ENOSYS
            return -1
        }
        return unsafeBitCast(symbol, to: SetNamespace.self)(fd, networkNamespaceType)
    }

    /// unshare(CLONE_NEWNET): moves the calling thread into a new, empty network
    /// namespace. 0, or -1 with errno.
    static func unshareNetworkNamespace() -> Int32 {
        guard let symbol = symbol("unshare") else {
            errno = ENOSYS
            return -1
        }
        return unsafeBitCast(symbol, to: Unshare.self)(networkNamespaceType)
    }
}
