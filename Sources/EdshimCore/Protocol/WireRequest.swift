/// The version of the shim↔server protocol this build speaks.
public enum WireProtocol {
    /// Requests carry `"v": 1`; a server refuses versions newer than its own.
    public static let version = 1
    /// The largest request line a server reads, newline included.
    public static let maximumRequestBytes = 64 * 1024
    /// The largest response line a client reads, newline included (listings grow with ports).
    public static let maximumResponseBytes = 16 * 1024 * 1024
}

/// A registration request: what the shim was started with.
public struct RegisterRequest: Equatable, Sendable {
    /// Protocol, host address and port.
    public var key: RegistrationKey
    /// Where the container serves.
    public var container: SocketEndpoint
    /// The inode of a listening socket the shim still holds for the port (dockerd ≥ 28's
    /// fd 4), which readiness must not mistake for Envoy's.
    public var heldSocketInode: UInt64?
    /// Set by `edshim resync`: the shim process this registration is made for.
    public var onBehalfOf: Int32?

    /// Creates a request.
    public init(key: RegistrationKey, container: SocketEndpoint, heldSocketInode: UInt64? = nil, onBehalfOf: Int32? = nil) {
        self.key = key
        self.container = container
        self.heldSocketInode = heldSocketInode
        self.onBehalfOf = onBehalfOf
    }
}

/// A request line from a shim, `edshim status` or `edshim resync`.
public enum WireRequest: Equatable, Sendable {
    /// Register (or replace) the mapping for a key, answered once Envoy serves it.
    case register(RegisterRequest)
    /// Remove the caller's registration for a key, answered once Envoy let go of the port.
    case deregister(RegistrationKey)
    /// List every registration.
    case list
    /// List the registration for one key, if any (a shim whose dockerd exited asks
    /// whether dockerd's new shim has taken its port over).
    case lookup(RegistrationKey)
}

extension WireRequest {
    /// The request as one JSON line, newline included.
    public var encoded: [UInt8] {
        var object: JSONObject = ["v": .integer(WireProtocol.version)]
        switch self {
        case .register(let request):
            object.append("op", .string("register"))
            Self.appendKey(request.key, to: &object)
            object.append("container_ip", .string(request.container.ip.description))
            object.append("container_port", .integer(request.container.port))
            object.append("held_socket_inode", request.heldSocketInode.map { .integer($0) })
            object.append("on_behalf_of", request.onBehalfOf.map { .integer($0) })
        case .deregister(let key):
            object.append("op", .string("deregister"))
            Self.appendKey(key, to: &object)
        case .list:
            object.append("op", .string("list"))
        case .lookup(let key):
            object.append("op", .string("lookup"))
            Self.appendKey(key, to: &object)
        }
        return JSONValue.object(object).serialized + [UInt8(ascii: "\n")]
    }

    /// Decodes one request line (trailing newline optional). Unknown fields are ignored.
    public static func decode(_ line: [UInt8]) throws(WireError) -> WireRequest {
        let object = try WireDecoding.object(line, limit: WireProtocol.maximumRequestBytes)
        guard let given = object["v"] else {
            throw WireError(.badRequest, "missing protocol version \"v\": is this an edshim client?")
        }
        guard let version = given.integerValue(Int.self) else {
            // All digits, too large for an integer: a version far beyond this server's,
            // or, negative, far below 1.
            if case .number(let text) = given {
                let negative = text.hasPrefix("-")
                let digits = text.utf8.dropFirst(negative ? 1 : 0)
                if !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                    throw negative
                        ? WireError(.unsupportedVersion, "protocol version \(text) does not exist: versions start at 1 (this server speaks 1 to \(WireProtocol.version))")
                        : WireError(.unsupportedVersion, "protocol version \(text) is not supported; this server speaks version \(WireProtocol.version): upgrade edshim server")
                }
            }
            throw WireError(.badRequest, "protocol version \"v\" must be a whole number (this server speaks 1 to \(WireProtocol.version)), not \(String(decoding: given.serialized.prefix(40), as: UTF8.self))")
        }
        guard version >= 1 else {
            throw WireError(.unsupportedVersion, "protocol version \(version) does not exist: versions start at 1 (this server speaks 1 to \(WireProtocol.version))")
        }
        guard version <= WireProtocol.version else {
            throw WireError(.unsupportedVersion, "protocol version \(version) is not supported; this server speaks version \(WireProtocol.version): upgrade edshim server")
        }
        guard let op = object["op"] else {
            throw WireError(.badRequest, "missing \"op\"")
        }
        guard let operation = op.stringValue else {
            throw WireError(.badRequest, "\"op\" must be a string (register, deregister, list, lookup)")
        }
        switch operation {
        case "register":
            let key = try decodeKey(object)
            let container = SocketEndpoint(
                ip: try WireDecoding.address(object, "container_ip"),
                port: try WireDecoding.port(object, "container_port")
            )
            return .register(RegisterRequest(
                key: key,
                container: container,
                heldSocketInode: try WireDecoding.optionalInteger(object, "held_socket_inode"),
                onBehalfOf: try decodeProcessID(object, "on_behalf_of")
            ))
        case "deregister":
            return .deregister(try decodeKey(object))
        case "list":
            return .list
        case "lookup":
            return .lookup(try decodeKey(object))
        default:
            throw WireError(.unknownOperation, "unknown operation \(ErrorText.quoted(operation)): this server knows register, deregister, list and lookup")
        }
    }

    /// An optional process ID: a positive integer (0 and negative values name a
    /// process group or no process at all).
    static func decodeProcessID(_ object: JSONObject, _ name: String) throws(WireError) -> Int32? {
        guard let pid: Int32 = try WireDecoding.optionalInteger(object, name) else { return nil }
        guard pid > 0 else { throw WireError(.badRequest, "\"\(name)\" must be a process ID, 1 or more") }
        return pid
    }

    static func appendKey(_ key: RegistrationKey, to object: inout JSONObject) {
        object.append("proto", .string(key.proto.rawValue))
        object.append("host_ip", .string(key.host.ip.description))
        object.append("host_port", .integer(key.host.port))
    }

    static func decodeKey(_ object: JSONObject) throws(WireError) -> RegistrationKey {
        guard let protoText = object["proto"]?.stringValue, let proto = TransportProtocol(rawValue: protoText) else {
            throw WireError(.badRequest, "\"proto\" must be \"tcp\", \"udp\" or \"sctp\"")
        }
        return RegistrationKey(
            proto: proto,
            host: SocketEndpoint(ip: try WireDecoding.address(object, "host_ip"), port: try WireDecoding.port(object, "host_port"))
        )
    }
}
