import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// A TCP socket in the LISTEN state, from the kernel's table.
public struct ListeningSocket: Hashable, Sendable {
    /// The local address and port.
    public var endpoint: SocketEndpoint
    /// The socket inode: the same number `fstat` gives for the socket's descriptor.
    public var inode: UInt64
    /// An IPv6 socket that takes IPv4 connections too (`IPV6_V6ONLY` off, the Linux
    /// default, as Go's `net.Listen("tcp", ":8080")` makes). Known from the socket
    /// diagnostics only: `/proc/net/tcp6` does not show it, and its sockets count as
    /// v6-only, as edshim's (Envoy's) IPv6 listeners are.
    public var acceptsIPv4: Bool
    /// Connections established and not yet accepted by the program that listens
    /// (the kernel's accept queue): one that stays long is a program that no longer
    /// accepts. Known from the socket diagnostics only (0 from `/proc/net/tcp`).
    public var acceptQueue: UInt32
    /// The kernel's cookie for the socket, which names it for as long as it lives (0
    /// from `/proc/net/tcp`).
    public var cookie: UInt64

    /// Creates an entry.
    public init(endpoint: SocketEndpoint, inode: UInt64, acceptsIPv4: Bool = false, acceptQueue: UInt32 = 0, cookie: UInt64 = 0) {
        self.endpoint = endpoint
        self.inode = inode
        self.acceptsIPv4 = acceptsIPv4
        self.acceptQueue = acceptQueue
        self.cookie = cookie
    }

    /// The same socket, whatever waits in its accept queue at the moment.
    public static func == (lhs: ListeningSocket, rhs: ListeningSocket) -> Bool {
        lhs.endpoint == rhs.endpoint && lhs.inode == rhs.inode && lhs.acceptsIPv4 == rhs.acceptsIPv4
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(endpoint)
        hasher.combine(inode)
        hasher.combine(acceptsIPv4)
    }

    /// Whether this socket keeps a listener on `host` from binding: the same family
    /// and port with the same address or a wildcard on either side
    /// (`SocketEndpoint.bindConflicts`), or, for an IPv6 socket that takes IPv4 too,
    /// an IPv4 `host` on its port when it is bound to `::` (or to `host`'s
    /// IPv4-mapped address, or `host` is `0.0.0.0`).
    public func keepsFromBinding(_ host: SocketEndpoint) -> Bool {
        if endpoint.bindConflicts(with: host) { return true }
        guard acceptsIPv4, !host.ip.isIPv6 else { return false }
        if endpoint.ip.isUnspecified { return endpoint.port == host.port }
        return endpoint.ip.mappedIPv4.map { SocketEndpoint(ip: $0, port: endpoint.port).bindConflicts(with: host) } ?? false
    }
}

/// The kernel's table of listening TCP sockets: how edshim knows Envoy took a port
/// without asking Envoy's admin API.
///
/// Read through the kernel's socket diagnostics (netlink, as `ss -lt` does), which
/// hand over the listening sockets alone. `/proc/net/tcp{,6}` has the same facts but
/// walks the whole connection hash table on every read — about 4 ms each on a host
/// with 24 GiB, however few sockets it has — so it is used only where the kernel
/// offers no socket diagnostics (`unavailableDiagnostics` says why).
public enum ListenTable {
    /// Why the socket diagnostics could not be read: the errno of the failing call.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var code: Int32
        public var description: String {
            "netlink socket diagnostics (NETLINK_SOCK_DIAG): \(ErrorText.describe(code))"
        }
    }

    /// Every listening TCP socket of this network namespace.
    public static func read() -> [ListeningSocket] {
        if case .success(let sockets) = readDiagnostics() { return sockets }
        return readProcNet()
    }

    /// The listening TCP sockets of this network namespace on `ports`: the kernel
    /// hands over those alone (a filter on the socket diagnostics), so a read costs
    /// little however many other ports listen — a registration's readiness is polled
    /// every millisecond on a host that may have thousands.
    public static func read(onPorts ports: Set<UInt16>) -> [ListeningSocket] {
        guard !ports.isEmpty else { return [] }
        guard ports.count <= Int(EDSHIM_DIAG_MOST_PORTS) else { return read().filter { ports.contains($0.endpoint.port) } }
        if case .success(let sockets) = readDiagnostics(onPorts: ports) { return sockets }
        return readProcNet().filter { ports.contains($0.endpoint.port) }
    }

    /// The listening sockets on `ports` (1 to `EDSHIM_DIAG_MOST_PORTS` of them) from
    /// NETLINK_SOCK_DIAG, the kernel leaving out the others.
    static func readDiagnostics(onPorts ports: Set<UInt16>) -> Result<[ListeningSocket], Failure> {
        ports.sorted().withUnsafeBufferPointer { portList in
            readDiagnostics { family, sockets, capacity in
                edshim_tcp_listening_sockets_on(family, portList.baseAddress, Int32(portList.count), sockets, capacity)
            }
        }
    }

    /// Every listening TCP socket of this network namespace, or why neither the
    /// socket diagnostics nor /proc/net could be read (out of descriptors: EMFILE),
    /// for a caller that must not take "cannot tell" for "nothing listens".
    public static func readOrFailure() -> Result<[ListeningSocket], Failure> {
        let diagnostics = readDiagnostics()
        guard case .failure(let failure) = diagnostics else { return diagnostics }
        guard let sockets = procNet() else { return .failure(Failure(code: errno == 0 ? failure.code : errno)) }
        return .success(sockets)
    }

    /// Why the socket diagnostics cannot be read here (nil when they can): `read()`
    /// then falls back to /proc/net, which the server says once at start.
    public static func unavailableDiagnostics() -> String? {
        if case .failure(let failure) = readDiagnostics() { return failure.description }
        return nil
    }

    /// The listening sockets from NETLINK_SOCK_DIAG, IPv4 then IPv6 (none where the
    /// kernel has IPv6 disabled, as /proc/net/tcp6 is then missing too).
    public static func readDiagnostics() -> Result<[ListeningSocket], Failure> {
        readDiagnostics(reading: edshim_tcp_listening_sockets)
    }

    private static func readDiagnostics(reading read: Reading) -> Result<[ListeningSocket], Failure> {
        diagnostics(family: Int32(AF_INET), reading: read).flatMap { v4 in
            switch diagnostics(family: Int32(AF_INET6), reading: read) {
            case .success(let v6): .success(v4 + v6)
            case .failure where access("/proc/net/tcp6", F_OK) != 0: .success(v4)
            case .failure(let failure): .failure(failure)
            }
        }
    }

    /// The listening sockets from `/proc/net/tcp` and `/proc/net/tcp6` (under `root`).
    public static func readProcNet(root: String = "/proc/net") -> [ListeningSocket] {
        procNet(root: root) ?? []
    }

    /// `readProcNet`, or nil when `tcp` cannot be read (errno says why); a missing
    /// `tcp6` is IPv6 disabled, no error.
    private static func procNet(root: String = "/proc/net") -> [ListeningSocket]? {
        guard let v4 = SystemFile.read(root + "/tcp") else { return nil }
        let v6 = SystemFile.read(root + "/tcp6").map { parse($0, ipv6: true) } ?? []
        return parse(v4, ipv6: false) + v6
    }

    /// The connections the kernel has established on a listening socket and that no
    /// program has accepted yet (their socket has no inode: it is in no process's
    /// descriptors), also those whose client has given up meanwhile (CLOSE_WAIT: they
    /// stay in the accept queue all the same), by local address and cookie, IPv4 then
    /// IPv6; empty where the
    /// socket diagnostics cannot be read. One still there a while later is one the
    /// listening program does not accept.
    public static func unacceptedConnections() -> [(local: SocketEndpoint, cookie: UInt64)] {
        [Int32(AF_INET), Int32(AF_INET6)].flatMap { family in
            (try? diagnostics(family: family, reading: edshim_tcp_established_sockets).get()) ?? []
        }.filter { $0.inode == 0 }.map { ($0.endpoint, $0.cookie) }
    }

    /// The UDP sockets of `family` that are bound and not connected (a port's socket,
    /// not a flow's), from NETLINK_SOCK_DIAG: the sockets that receive a port's
    /// datagrams.
    public static func unconnectedUDPSockets(family: Int32) -> Result<[ListeningSocket], Failure> {
        diagnostics(family: family, reading: edshim_udp_unconnected_sockets)
    }

    /// A call of CEdshimLinux's socket diagnostics: family, room, capacity → count or -errno.
    typealias Reading = (Int32, UnsafeMutablePointer<edshim_listening_socket>?, Int32) -> Int32

    private static func diagnostics(family: Int32, reading read: Reading) -> Result<[ListeningSocket], Failure> {
        entries(family: family, reading: read).map { $0.compactMap { socket($0, family: family) } }
    }

    /// The kernel's entries, as `read` (one of CEdshimLinux's socket diagnostics) gives them.
    static func entries(family: Int32, reading read: Reading) -> Result<[edshim_listening_socket], Failure> {
        var capacity = 64
        while true {
            var entries = [edshim_listening_socket](repeating: edshim_listening_socket(), count: capacity)
            let count = Int(read(family, &entries, Int32(capacity)))
            guard count >= 0 else { return .failure(Failure(code: Int32(-count))) }
            // Sockets opened between a count and the next read: ask again with room to spare.
            guard count <= capacity else {
                capacity = count * 2
                continue
            }
            return .success(Array(entries.prefix(count)))
        }
    }

    /// The socket an entry of `family` describes, by its local address; nil for one
    /// whose address does not read.
    static func socket(_ entry: edshim_listening_socket, family: Int32) -> ListeningSocket? {
        address(entry.address, family: family).map {
            ListeningSocket(endpoint: SocketEndpoint(ip: $0, port: entry.port), inode: entry.inode, acceptsIPv4: entry.accepts_ipv4 != 0, acceptQueue: entry.accept_queue, cookie: entry.cookie)
        }
    }

    /// An address field of an entry (16 bytes, of which IPv4 uses the first 4).
    static func address(_ field: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8), family: Int32) -> IPAddress? {
        IPAddress(bytes: withUnsafeBytes(of: field) { Array($0.prefix(family == AF_INET ? 4 : 16)) })
    }

    /// Parses the text of `/proc/net/tcp` (or `tcp6` when `ipv6`), keeping the
    /// LISTEN (`0A`) rows. Rows that do not parse are skipped.
    public static func parse(_ text: [UInt8], ipv6: Bool) -> [ListeningSocket] {
        var sockets: [ListeningSocket] = []
        for line in text.split(separator: UInt8(ascii: "\n")).dropFirst() {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count >= 10, fields[3].elementsEqual("0A".utf8),
                  let endpoint = parseEndpoint(fields[1], ipv6: ipv6),
                  let inode = UInt64(String(decoding: fields[9], as: UTF8.self))
            else { continue }
            sockets.append(ListeningSocket(endpoint: endpoint, inode: inode))
        }
        return sockets
    }

    /// `0100007F:1F90` → 127.0.0.1:8080. The address is printed as 32-bit words in
    /// host byte order; the port in plain hex.
    static func parseEndpoint<S: Collection<UInt8>>(_ field: S, ipv6: Bool) -> SocketEndpoint? {
        let parts = field.split(separator: UInt8(ascii: ":"))
        let hexLength = ipv6 ? 32 : 8
        guard parts.count == 2, parts[0].count == hexLength,
              let port = UInt16(String(decoding: parts[1], as: UTF8.self), radix: 16)
        else { return nil }
        let hex = Array(parts[0])
        var bytes: [UInt8] = []
        for wordStart in stride(from: 0, to: hexLength, by: 8) {
            guard let word = UInt32(String(decoding: hex[wordStart..<(wordStart + 8)], as: UTF8.self), radix: 16) else {
                return nil
            }
            withUnsafeBytes(of: word) { bytes += $0 }
        }
        guard let ip = IPAddress(bytes: bytes) else { return nil }
        return SocketEndpoint(ip: ip, port: port)
    }
}
