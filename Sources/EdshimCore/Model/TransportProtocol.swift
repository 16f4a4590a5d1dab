/// The transport of a published port, as dockerd names it in `-proto`.
public enum TransportProtocol: String, Hashable, Comparable, Sendable, CaseIterable {
    /// TCP: handed to Envoy.
    case tcp
    /// UDP: proxied by edshim itself.
    case udp
    /// SCTP: dockerd can publish it; edshim refuses it with a clear reason.
    case sctp

    /// Orders tcp < udp < sctp.
    public static func < (lhs: TransportProtocol, rhs: TransportProtocol) -> Bool {
        lhs.rank < rhs.rank
    }

    private var rank: Int {
        switch self {
        case .tcp: 0
        case .udp: 1
        case .sctp: 2
        }
    }
}
