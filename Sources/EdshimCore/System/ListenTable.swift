/// A TCP socket in the LISTEN state, from the kernel's table.
public struct ListeningSocket: Hashable, Sendable {
    /// The local address and port.
    public var endpoint: SocketEndpoint
    /// The socket inode: the same number `fstat` gives for the socket's descriptor.
    public var inode: UInt64

    /// Creates an entry.
    public init(endpoint: SocketEndpoint, inode: UInt64) {
        self.endpoint = endpoint
        self.inode = inode
    }
}

/// The kernel's table of listening TCP sockets (`/proc/net/tcp`, `/proc/net/tcp6`):
/// how edshim knows Envoy took a port without asking Envoy's admin API.
public enum ListenTable {
    /// Every listening TCP socket of this network namespace.
    public static func read(root: String = "/proc/net") -> [ListeningSocket] {
        let v4 = SystemFile.read(root + "/tcp").map { parse($0, ipv6: false) } ?? []
        let v6 = SystemFile.read(root + "/tcp6").map { parse($0, ipv6: true) } ?? []
        return v4 + v6
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
