#if canImport(Glibc)
import Glibc
#endif

extension SocketEndpoint {
    /// The address family for `socket(2)`: AF_INET or AF_INET6.
    public var family: Int32 { ip.isIPv6 ? AF_INET6 : AF_INET }

    /// Calls `body` with this endpoint as a kernel socket address.
    public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        if ip.isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: ip.bytes) }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: ip.bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Reads an IPv4 or IPv6 kernel socket address; nil for other families.
    public init?(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            guard let ip = IPAddress(bytes: withUnsafeBytes(of: address.sin_addr) { Array($0) }) else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: address.sin_port))
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            guard let ip = IPAddress(bytes: withUnsafeBytes(of: address.sin6_addr) { Array($0) }) else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: address.sin6_port))
        default:
            return nil
        }
    }

    /// The local address a socket is bound to.
    public static func local(of fd: Int32) -> SocketEndpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return SocketEndpoint(storage: storage)
    }
}
