/// A structured refusal: a stable machine code and a one-line message for people.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stable, lower-snake-case error code. Unknown codes from newer peers are kept as is.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The code text.
        public var rawValue: String
        /// Wraps a code.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The code text.
        public var description: String { rawValue }

        /// The line was not a valid request (JSON, fields, types).
        public static let badRequest = Code(rawValue: "bad_request")
        /// The request's `v` is newer than this server speaks.
        public static let unsupportedVersion = Code(rawValue: "unsupported_version")
        /// The `op` is unknown to this server.
        public static let unknownOperation = Code(rawValue: "unknown_op")
        /// The request exceeded the size limit.
        public static let tooLarge = Code(rawValue: "too_large")
        /// The protocol cannot be handed to Envoy (udp, sctp).
        public static let unsupportedProtocol = Code(rawValue: "unsupported_protocol")
        /// Another registration holds an overlapping address on the same port.
        public static let addressConflict = Code(rawValue: "address_conflict")
        /// The host address is not one Envoy could listen on (the host does not have
        /// it, or it is IPv4-mapped).
        public static let addressUnavailable = Code(rawValue: "address_unavailable")
        /// A process other than Envoy listens on the host address and port.
        public static let portInUse = Code(rawValue: "port_in_use")
        /// Envoy did not start listening in time.
        public static let envoyTimeout = Code(rawValue: "envoy_timeout")
        /// Envoy reads none of the server's files (it is not running): the registration
        /// (for `edshim resync`) is kept, and served as soon as Envoy runs.
        public static let envoyAbsent = Code(rawValue: "envoy_absent")
        /// The registration belongs to another process.
        public static let notOwner = Code(rawValue: "not_owner")
        /// Nothing is registered under the key.
        public static let notRegistered = Code(rawValue: "not_registered")
        /// The shim runs in another network namespace than the server (a dockerd inside
        /// a container): its ports are not the host's, and Envoy cannot serve them; the
        /// shim serves its port itself, as docker-proxy would there.
        public static let foreignNamespace = Code(rawValue: "foreign_namespace")
        /// The peer may not do this.
        public static let permissionDenied = Code(rawValue: "permission_denied")
        /// The peer sends too many requests.
        public static let rateLimited = Code(rawValue: "rate_limited")
        /// The server cannot check the caller (its /proc entry unreadable), or the
        /// shim exited while registering.
        public static let unavailable = Code(rawValue: "unavailable")
    }

    /// The machine-readable code.
    public var code: Code
    /// One line for people: what went wrong and what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, with its code.
    public var description: String { "\(message) [\(code)]" }
}
