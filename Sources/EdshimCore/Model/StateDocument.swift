/// The server's state file: the registry, so that a restarted server (even one that
/// was killed) has every registration back. Registrations use the wire protocol's
/// schema (docs/protocol.md), inside `{"edshim_state":1,"registrations":[…]}`.
public enum StateDocument {
    /// The format version written.
    public static let version = 1

    /// The state file's bytes for `registry`.
    public static func encode(_ registry: Registry) -> [UInt8] {
        let object: JSONObject = [
            "edshim_state": .integer(version),
            "registrations": .array(registry.registrations.map { .object(WireResponse.encode($0)) }),
        ]
        return JSONValue.object(object).serialized + [UInt8(ascii: "\n")]
    }

    /// The registrations in a state file; throws a readable reason for anything else.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> [Registration] {
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
        var registrations: [Registration] = []
        for item in items {
            guard let entry = item.objectValue else { throw WireError(.badRequest, "each registration must be an object") }
            registrations.append(try WireResponse.decodeRegistration(entry))
        }
        return registrations
    }
}
