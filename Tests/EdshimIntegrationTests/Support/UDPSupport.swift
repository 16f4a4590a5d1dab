import EdshimCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The ways a UDP port gets proxied: the shim as each dockerd generation runs it,
/// and `edshim udp-proxy` alone.
enum UDPWay: String, CaseIterable, Sendable, CustomStringConvertible {
    case dockerd2010
    case dockerd28
    case standalone

    var description: String { rawValue }
}

/// IPv4 or IPv6, with the addresses the tests use.
enum UDPFamily: String, CaseIterable, Sendable, CustomStringConvertible {
    case ipv4
    case ipv6

    var any: IPAddress { self == .ipv4 ? .anyIPv4 : .anyIPv6 }
    var loopback: IPAddress { self == .ipv4 ? .loopbackIPv4 : .loopbackIPv6 }
    var description: String { rawValue }
}

extension Sockets {
    /// What dockerd ≥ 28 does before starting a UDP proxy: bind the host port
    /// (v6-only for IPv6) and pass the socket on fd 4.
    static func dockerdBoundUDPSocket(_ endpoint: SocketEndpoint, dualStack: Bool = false) throws -> Int32 {
        let fd = socket(endpoint.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var v6only: Int32 = dualStack ? 0 : 1
        if endpoint.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, 4) }
        guard endpoint.withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("binding udp \(endpoint): \(reason)")
        }
        return fd
    }

    /// The socket dockerd ≥ 28 binds for a shim command line: UDP for `-proto udp`.
    static func dockerdBoundSocket(_ endpoint: SocketEndpoint, for arguments: [String]) throws -> Int32 {
        let udp = zip(arguments, arguments.dropFirst()).contains { $0 == "-proto" && $1 == "udp" } || arguments.contains("-proto=udp")
        return udp ? try dockerdBoundUDPSocket(endpoint) : try dockerdBoundListener(endpoint)
    }

    /// UDP ports already handed out in this test run.
    private static let handedOutUDP = Mutex<Set<UInt16>>([])

    /// The first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range).
    static let firstEphemeralPort: UInt16 = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { UInt16($0) } ?? 32768

    /// The ports `freeUDPPort` hands out: from 10,000 to 20,000 (or to the ephemeral
    /// range, where it begins lower).
    static var testUDPPorts: Range<UInt16> { 10_000..<max(10_001, min(20_000, firstEphemeralPort)) }

    /// The ports a spray binds its sources to (`UDPSpray`), on loopback addresses
    /// other than 127.0.0.1: from 20,000 to the ephemeral range. None is a port a
    /// test is about to bind, nor one that a client or the proxy (for its flows) takes
    /// from the ephemeral range.
    static var sprayUDPPorts: Range<UInt16> { 20_000..<max(20_001, firstEphemeralPort) }

    /// A port free for UDP on 0.0.0.0 and :: right now, never handed out before, in
    /// `testUDPPorts`: below the ephemeral range (the UDP tests open thousands of
    /// client sockets on ephemeral ports, and one of them must not take a port a test
    /// is about to bind) and below the ports a spray binds for a moment.
    static func freeUDPPort() throws -> UInt16 {
        let range = testUDPPorts
        for _ in 0..<500 {
            let port = UInt16.random(in: range)
            let families: [IPAddress] = [.anyIPv4, .anyIPv6]
            guard families.allSatisfy({ canBindUDP(SocketEndpoint(ip: $0, port: port)) && canBind(SocketEndpoint(ip: $0, port: port)) }),
                  handedOutUDP.withLock({ $0.insert(port).inserted }) else { continue }
            return port
        }
        throw TestFailure("no free UDP port in \(range)")
    }

    /// A UDP socket connected to `peer` (a flow's kind: it takes a local port from
    /// the ephemeral range, as connect binds it), for the caller to close.
    static func connectedUDPSocket(to peer: SocketEndpoint) throws -> Int32 {
        let fd = socket(peer.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        guard peer.withSocketAddress({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("connecting a UDP socket to \(peer): \(reason)")
        }
        return fd
    }

    static func canBindUDP(_ endpoint: SocketEndpoint) -> Bool {
        guard let fd = try? dockerdBoundUDPSocket(endpoint) else { return false }
        close(fd)
        return true
    }

    /// Lowers the open-files limit of the running process `pid` (prlimit(2)) so that
    /// exactly `free` more descriptors can be opened.
    static func limitDescriptors(of pid: pid_t, toFree free: Int) throws {
        // The shim closes its status pipe (fd 3) just after writing its report, which
        // the caller has read: counted open here and closed after, it would leave one
        // descriptor more than asked for.
        let deadline = ContinuousClock.now + .seconds(5)
        while FileManager.default.fileExists(atPath: "/proc/\(pid)/fd/3") {
            guard ContinuousClock.now < deadline else { throw TestFailure("process \(pid) still holds fd 3, its status pipe, 5 s after its report") }
            usleep(1000)
        }
        let open = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
        var limit = 0
        var room = 0
        while room < free {
            if !open.contains(limit) { room += 1 }
            limit += 1
        }
        var bound = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
        guard prlimit(pid, Int32(RLIMIT_NOFILE.rawValue), &bound, nil) == 0 else {
            throw TestFailure("prlimit(\(pid), RLIMIT_NOFILE, \(limit)): \(String(cString: strerror(errno)))")
        }
    }

    /// How many sockets process `pid` has open (its flows, listener, and a few more).
    static func openSockets(of pid: pid_t) -> Int {
        let directory = "/proc/\(pid)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\($0)")) ?? "").hasPrefix("socket:") }.count
    }

    /// Datagrams the kernel dropped, for want of room, before process `pid`'s UDP
    /// socket bound to 0.0.0.0:`port` read them (the `drops` column of /proc/PID/net/udp);
    /// nil when there is no such socket.
    static func udpDrops(of pid: pid_t, port: UInt16) -> Int? {
        let table = procFile("/proc/\(pid)/net/udp")
        let local = "00000000:" + String(format: "%04X", port)
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[1] == local { return fields.last.flatMap { Int($0) } }
        }
        return nil
    }

    /// The whole of a /proc file, read to its end: Foundation stops after the first
    /// read, which /proc answers with one page at most.
    static func procFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while case let count = buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }), count > 0 {
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The threads of `pid` (its /proc/PID/task entries).
    static func threads(of pid: pid_t) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).count
    }

    /// How many threads of `pid` block both SIGINT and SIGTERM (`SigBlk` in each
    /// thread's status): a signal the kernel gives any other thread does not wait
    /// for a signalfd.
    static func threadsBlockingTerminationSignals(of pid: pid_t) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        let wanted = UInt64(1) << (SIGINT - 1) | UInt64(1) << (SIGTERM - 1)
        return tasks.filter { task in
            let line = procFile("/proc/\(pid)/task/\(task)/status").split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
            guard let hex = line?.split(separator: "\t").last, let mask = UInt64(hex, radix: 16) else { return false }
            return mask & wanted == wanted
        }.count
    }

    /// CPU time `pid` has used, user and system, in clock ticks (1/100 s on Linux).
    /// Throws when the process is gone or a zombie: its ticks would stand still.
    static func cpuTicks(of pid: pid_t) throws -> Int {
        // After the command name in parentheses: state is field 3, utime 14, stime 15.
        let stat = procFile("/proc/\(pid)/stat")
        guard let end = stat.lastIndex(of: ")") else { throw TestFailure("no /proc/\(pid)/stat: the process is gone") }
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, fields[0] != "Z", let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw TestFailure("process \(pid) has exited or /proc/\(pid)/stat is unreadable: \(stat)")
        }
        return user + system
    }

    /// Resident memory of `pid` in KiB.
    static func residentKiB(of pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

/// Runs blocking socket work on a thread of its own and awaits it, so that no
/// Swift concurrency thread (there are few) is held while it waits.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try work())
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// A UDP socket for a test client: unconnected, so the source of every reply is seen.
/// Receive and send buffers of `bytes`, beyond net.core.rmem_max / wmem_max when the
/// tests run as root, else as large as those allow.
func enlargeBuffers(_ fd: Int32, to bytes: Int32) {
    var size = bytes
    for (forced, capped) in [(SO_RCVBUFFORCE, SO_RCVBUF), (SO_SNDBUFFORCE, SO_SNDBUF)] where setsockopt(fd, SOL_SOCKET, forced, &size, 4) != 0 {
        setsockopt(fd, SOL_SOCKET, capped, &size, 4)
    }
}

final class UDPTestClient: @unchecked Sendable {
    let fd: Int32

    /// A client of `family`, bound to `port` (ephemeral when 0) of `address` (any when
    /// nil), and to the network interface `device` when given (SO_BINDTODEVICE: the
    /// link of a link-local `address`, and of the datagrams it sends).
    init(_ family: UDPFamily, bindTo address: IPAddress? = nil, port: UInt16 = 0, device: String? = nil) throws {
        // `fd` is set last: an initializer that throws once every stored property is
        // set runs `deinit`, which would close the descriptor a second time, and by
        // then that number may be another test's socket.
        let fd = socket(family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        if let device {
            let name = Array(device.utf8CString)
            guard setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(name.count)) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw TestFailure("binding a client to device \(device): \(reason)")
            }
        }
        // Room for a burst of the largest datagrams: beyond net.core.rmem_max (as
        // root, as the tests run), so that a reply lost is the proxy's doing.
        enlargeBuffers(fd, to: 4 << 20)
        let local = SocketEndpoint(ip: address ?? family.any, port: port)
        guard local.withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("binding a client to \(local): \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The client's own address.
    var local: SocketEndpoint? { SocketEndpoint.local(of: fd) }

    func send(_ bytes: [UInt8], to target: SocketEndpoint) throws {
        let sent = bytes.withUnsafeBytes { raw in
            target.withSocketAddress { sendto(fd, raw.baseAddress, raw.count, 0, $0, $1) }
        }
        guard sent == bytes.count else { throw TestFailure("sendto \(target): \(String(cString: strerror(errno)))") }
    }

    /// The next datagram and who sent it, or nil after `timeout` milliseconds.
    func receive(timeout: Int32 = 2000) -> (bytes: [UInt8], from: SocketEndpoint)? {
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            // POLLNVAL: the descriptor is not open (closed under it): nothing will come.
            guard poll(&waiter, 1, timeout) == 1, waiter.revents & Int16(POLLNVAL) == 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT), $0, &length) }
                }
            }
            // ECONNREFUSED and friends: ICMP errors are not datagrams; keep waiting.
            guard count >= 0, let from = SocketEndpoint(storage: storage) else { continue }
            return (Array(buffer[0..<count]), from)
        }
    }

    /// Sends and waits for the answer, resending on silence (UDP may drop).
    func exchange(_ bytes: [UInt8], with target: SocketEndpoint, attempts: Int = 3, timeout: Int32 = 2000) throws -> [UInt8] {
        for _ in 0..<attempts {
            try send(bytes, to: target)
            if let reply = receive(timeout: timeout) { return reply.bytes }
        }
        throw TestFailure("no answer from \(target) to \(bytes.count) bytes after \(attempts) attempts")
    }

    /// The address the answer to `bytes` sent to `target` came from; sent again when
    /// none comes within `timeout` (UDP may drop a datagram on a loaded host): nil
    /// when none came after `attempts`.
    func replySource(of bytes: [UInt8], to target: SocketEndpoint, attempts: Int = 3, timeout: Int32 = 2000) throws -> SocketEndpoint? {
        for _ in 0..<attempts {
            try send(bytes, to: target)
            if let reply = receive(timeout: timeout) { return reply.from }
        }
        return nil
    }

    /// The address the echo server saw this client's datagrams come from: the
    /// proxy's upstream socket for this client's flow.
    func upstreamAddress(via target: SocketEndpoint, attempts: Int = 3) throws -> String {
        String(decoding: try exchange(Array(UDPEchoServer.whoami.utf8), with: target, attempts: attempts), as: UTF8.self)
    }
}

/// A loopback UDP server standing in for a container, on a thread of its own. It
/// echoes every datagram, except `whoami`, which it answers with the sender's address,
/// and `sink`, which it never answers (floods from senders that are gone: their
/// ports may already belong to another test's client).
final class UDPEchoServer: @unchecked Sendable {
    static let whoami = "whoami"
    static let sink = "sink"

    let endpoint: SocketEndpoint
    private let fd: Int32
    private final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }

    private let stopped = Flag()
    private let finished: Thread.Completion

    static let socketType = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// Binds `ip` on `port` (0: any free port) and starts echoing.
    convenience init(on ip: IPAddress, port: UInt16 = 0) throws {
        try self.init(socket: socket(ip.isIPv6 ? AF_INET6 : AF_INET, Self.socketType, 0), on: ip, port: port)
    }

    /// Echoes on `fd`, a new UDP socket made elsewhere (in a container's network
    /// namespace), bound here to `ip` on `port`; the server owns it from now on.
    init(socket fd: Int32, on ip: IPAddress, port: UInt16) throws {
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        enlargeBuffers(fd, to: 4 << 20)
        var tick = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, socklen_t(MemoryLayout<timeval>.size))
        guard SocketEndpoint(ip: ip, port: port).withSocketAddress({ bind(fd, $0, $1) }) == 0, let local = SocketEndpoint.local(of: fd) else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("binding the UDP echo server on \(ip) port \(port): \(reason)")
        }
        self.fd = fd
        endpoint = local
        let stopped = self.stopped
        finished = Thread.run {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while !stopped.raised.load(ordering: .relaxed) {
                var storage = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let count = buffer.withUnsafeMutableBytes { raw in
                    withUnsafeMutablePointer(to: &storage) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                    }
                }
                // EBADF: the socket was closed under this thread; nothing more will come.
                if count < 0, errno == EBADF { return }
                guard count >= 0, let sender = SocketEndpoint(storage: storage) else { continue }
                var reply = Array(buffer[0..<count])
                if reply == Array(Self.sink.utf8) { continue }
                if reply == Array(Self.whoami.utf8) { reply = Array(sender.description.utf8) }
                _ = reply.withUnsafeBytes { raw in
                    sender.withSocketAddress { sendto(fd, raw.baseAddress, raw.count, 0, $0, $1) }
                }
            }
        }
    }

    /// Stops echoing and closes the port (a later datagram to it is refused by ICMP).
    func stop() {
        guard !stopped.raised.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
        close(fd)
    }

    deinit { stop() }
}

/// The UDP echo servers of one test, stopped when it ends.
final class UDPEchoServers: @unchecked Sendable {
    private let servers = Mutex<[UDPEchoServer]>([])

    func start(on ip: IPAddress, port: UInt16 = 0) throws -> UDPEchoServer {
        keep(try UDPEchoServer(on: ip, port: port))
    }

    /// One on `ip` and `port` (0: any free port) in `namespace` (a container's, or the test's own).
    func start(in namespace: NetworkNamespace, on ip: IPAddress, port: UInt16 = 0) async throws -> UDPEchoServer {
        let fd = try await namespace.socket(family: ip.isIPv6 ? AF_INET6 : AF_INET, type: UDPEchoServer.socketType)
        return keep(try UDPEchoServer(socket: fd, on: ip, port: port))
    }

    private func keep(_ server: UDPEchoServer) -> UDPEchoServer {
        servers.withLock { $0.append(server) }
        return server
    }

    func stopAll() {
        for server in servers.withLock({ $0 }) { server.stop() }
    }
}

extension Testbed {
    /// A new echo server on `family`'s loopback standing in for the container, and the
    /// UDP proxy in front of it on `family`'s any-address, started the `way` asks for;
    /// `target` is where clients send.
    func startUDPProxyToEcho(
        _ way: UDPWay, _ family: UDPFamily, echoes: UDPEchoServers, idleTimeout: String? = nil, maxFlows: Int? = nil
    ) async throws -> (proxy: ShimRun, target: SocketEndpoint) {
        let echo = try echoes.start(on: family.loopback)
        let host = SocketEndpoint(ip: family.any, port: try Sockets.freeUDPPort())
        let proxy = try await startUDPProxy(way, host: host, container: echo.endpoint, idleTimeout: idleTimeout, maxFlows: maxFlows)
        return (proxy, SocketEndpoint(ip: family.loopback, port: host.port))
    }

    /// Starts the UDP proxy for `host` → `container` the `way` asks for, and waits
    /// for its report on fd 3. The flow bounds go in as dockerd would pass them
    /// (environment) or as `udp-proxy` flags. With a `namespace`, the proxy runs
    /// there (and dockerd ≥ 28's socket is bound there).
    func startUDPProxy(
        _ way: UDPWay, host: SocketEndpoint, container: SocketEndpoint, idleTimeout: String? = nil, maxFlows: Int? = nil, in namespace: NetworkNamespace? = nil
    ) async throws -> ShimRun {
        let shimArguments = ShimArguments(proto: .udp, host: host, container: container).commandLine
        switch way {
        case .dockerd2010, .dockerd28:
            var environment: [String: String] = [:]
            if let idleTimeout { environment[UDPProxyOptions.idleTimeoutEnvironmentVariable] = idleTimeout }
            if let maxFlows { environment[UDPProxyOptions.maxFlowsEnvironmentVariable] = String(maxFlows) }
            return try await spawnShim(shimArguments, style: way == .dockerd28 ? .dockerd28 : .dockerd2010, environment: environment, host: host, networkNamespace: namespace)
        case .standalone:
            var arguments = ["udp-proxy"] + shimArguments.dropFirst(2)
            if let idleTimeout { arguments += ["--idle-timeout", idleTimeout] }
            if let maxFlows { arguments += ["--max-flows", String(maxFlows)] }
            return try await spawnShim(arguments, host: host, networkNamespace: namespace)
        }
    }
}

/// Runs `body` with a testbed without Envoy (UDP needs neither it nor the server; the
/// server runs so that tests can check the UDP proxy registers nothing with it) and a
/// set of UDP echo servers; stops everything afterwards.
func withUDPTestbed(_ body: (Testbed, UDPEchoServers) async throws -> Void) async throws {
    var options = Testbed.Options()
    options.startEnvoy = false
    let echoes = UDPEchoServers()
    defer { echoes.stopAll() }
    try await withTestbed(options) { bed in try await body(bed, echoes) }
}

/// prlimit(2) (glibc), which Swift's Glibc module does not export (GNU only; a
/// simple C signature: integers and pointers).
@_silgen_name("prlimit")
private func prlimit(_ pid: pid_t, _ resource: Int32, _ new: UnsafePointer<rlimit>?, _ old: UnsafeMutablePointer<rlimit>?) -> Int32
