import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// The local address a client sent its datagram to, which its replies must leave
/// from: on a socket bound to 0.0.0.0 or ::, the kernel would otherwise pick the
/// source by route, and a client of a host with several addresses drops a reply from
/// an address it did not talk to.
struct ReplySource: Equatable {
    /// AF_INET, AF_INET6, or 0: no address to impose (let the kernel choose).
    var family: Int32 = 0
    /// The address bytes: the first 4 for AF_INET, all 16 for AF_INET6.
    var high: UInt64 = 0
    var low: UInt64 = 0
    /// The interface, kept only where the address needs one (IPv6 link-local).
    var interface: UInt32 = 0

    /// No imposed source.
    static let none = ReplySource()

    /// The destination of a datagram received with packet info turned on; `none`
    /// when it carried none, or when it was sent to an address a reply cannot come
    /// from (IPv6 multicast: the kernel already answers those from a unicast one).
    init(receivedWith message: UnsafePointer<msghdr>) {
        var bytes: (UInt64, UInt64) = (0, 0)
        var interface: UInt32 = 0
        let family = withUnsafeMutableBytes(of: &bytes) { raw in
            edshim_packet_destination(message, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), &interface)
        }
        guard family == AF_INET || family == AF_INET6 else { return }
        let first = UInt8(truncatingIfNeeded: bytes.0)
        if family == AF_INET6, first == 0xFF { return }
        self.family = family
        self.high = bytes.0
        self.low = bytes.1
        // fe80::/10 is only meaningful with its interface; other addresses route freely.
        let linkLocal = family == AF_INET6 && first == 0xFE && (UInt8(truncatingIfNeeded: bytes.0 >> 8) & 0xC0) == 0x80
        self.interface = linkLocal ? interface : 0
    }

    private init() {}

    /// Writes the control message imposing this source into `control`; returns its
    /// length for `msg_controllen` (0: none).
    func encode(into control: UnsafeMutableRawPointer, capacity: Int) -> Int {
        guard family != 0 else { return 0 }
        var bytes = (high, low)
        return withUnsafeBytes(of: &bytes) { raw in
            Int(edshim_packet_source(control, capacity, family, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), interface))
        }
    }
}
