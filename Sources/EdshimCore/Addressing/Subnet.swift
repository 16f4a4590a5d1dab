/// An address prefix, `172.17.0.0/16` or `fd00::/64`.
public struct Subnet: Hashable, Sendable {
    /// The network address.
    public var address: IPAddress
    /// The prefix length in bits.
    public var prefixLength: Int

    /// Parses CIDR text; nil when malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let address = IPAddress(String(parts[0])), let length = Int(parts[1]),
              length >= 0, length <= address.bytes.count * 8 else { return nil }
        self.address = address
        self.prefixLength = length
    }

    /// True when `ip` is in this subnet (same family, same leading bits).
    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for (mine, theirs) in zip(address.bytes, ip.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if mine & mask != theirs & mask { return false }
            remaining -= bits
        }
        return true
    }
}
