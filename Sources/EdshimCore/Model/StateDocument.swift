/// The server's state file: the registry, so that a restarted server (even one that
/// was killed) has every registration back. Registrations use the wire protocol's
/// schema (docs/protocol.md), inside
/// `{"edshim_state":1,"registrations":[…],"boot_id":"…"}`.
///
/// `boot_id` is the kernel's id of the boot the file was written in
/// (`/proc/sys/kernel/random/boot_id`): an owner is a PID and a start time counted
/// from boot, which a process of a later boot can have again (the same services start
/// in the same order each boot), so registrations of another boot are never restored.
public enum StateDocument {
    /// The format version written.
    public static let version = 1

    /// What a state file holds.
    public struct Contents: Equatable, Sendable {
        public var registrations: [Registration]
        /// The boot it was written in; nil in a file written before edshim kept it.
        public var bootID: String?

        public init(registrations: [Registration], bootID: String?) {
            self.registrations = registrations
            self.bootID = bootID
        }
    }

    /// The state file's bytes for `registry`, written during boot `bootID`.
    public static func encode(_ registry: Registry, bootID: String?) -> [UInt8] {
        var object: JSONObject = [
            "edshim_state": .integer(version),
            "registrations": .array(registry.registrations.map { .object(WireResponse.encode($0)) }),
        ]
        object.append("boot_id", bootID.map(JSONValue.string))
        return JSONValue.object(object).serialized + [UInt8(ascii: "\n")]
    }

    /// The registrations in a state file, and its boot; throws a readable reason for
    /// anything else.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Contents {
        let object = try WireDecoding.object(bytes, limit: Int.max)
        guard let version = object["edshim_state"]?.integerValue(Int.self) else {
            throw WireError(.badRequest, "not an edshim state file (no \"edshim_state\")")
        }
        guard version == Self.version else {
            throw WireError(.unsupportedVersion, "state file version \(version); this server reads version \(Self.version)")
        }
        guard let items = object["registrations"]?.arrayValue else {
            throw WireError(.badRequest, "\"registrations\" must be an array")
        }
        var bootID: String?
        if let value = object["boot_id"] {
            guard let text = value.stringValue else { throw WireError(.badRequest, "\"boot_id\" must be a string") }
            bootID = text
        }
        var registrations: [Registration] = []
        for item in items {
            guard let entry = item.objectValue else { throw WireError(.badRequest, "each registration must be an object") }
            registrations.append(try WireResponse.decodeRegistration(entry))
        }
        return Contents(registrations: registrations, bootID: bootID)
    }

    /// The id of the running boot, nil where the kernel does not offer it.
    public static func currentBootID(path: String = "/proc/sys/kernel/random/boot_id") -> String? {
        SystemFile.read(path).map { String(decoding: $0, as: UTF8.self).trimmingASCIIWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
    }
}
