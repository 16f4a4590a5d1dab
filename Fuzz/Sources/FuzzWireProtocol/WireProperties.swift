import EdshimCore
import FuzzSupport

/// What must hold for any bytes a peer (or a damaged state file) can present:
/// decoders throw or return a value, never trap, and whatever they accept survives
/// being written and read again unchanged.
enum WireProperties {
    static func check(_ bytes: [UInt8]) {
        checkJSON(bytes)
        checkRequest(bytes)
        checkResponse(bytes)
        checkStateDocument(bytes)
    }

    /// A parsed value serializes to one line that parses back to the same value, and
    /// serializing that gives the same bytes (the xDS writer relies on stable output).
    static func checkJSON(_ bytes: [UInt8]) {
        guard let value = try? JSONParser.parse(bytes) else { return }
        let serialized = value.serialized
        require(!serialized.contains(UInt8(ascii: "\n")), "serialized JSON holds a raw newline")
        let reparsed = try? JSONParser.parse(serialized)
        require(reparsed == value, "JSON does not round-trip: \(quoted(FuzzInput.text(serialized)))")
        require(reparsed?.serialized == serialized, "JSON serialization is not stable")
        forEachString(in: value, checkAddressText)
    }

    /// The registry keys on addresses: only real address text may become one, and an
    /// address prints as text that parses back to it.
    static func checkAddressText(_ text: String) {
        guard let address = IPAddress(text) else { return }
        let isAddressCharacter: (UInt8) -> Bool = { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
                 UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "."), UInt8(ascii: ":"):
                true
            default:
                false
            }
        }
        require(text.utf8.allSatisfy(isAddressCharacter), "IPAddress accepts \(quoted(text))")
        require(IPAddress(address.description) == address, "IPAddress \(address) does not parse back")
    }

    static func checkRequest(_ bytes: [UInt8]) {
        guard let request = try? WireRequest.decode(bytes) else { return }
        let line = request.encoded
        require(isOneLine(line), "an encoded request is not one line")
        require((try? WireRequest.decode(line)) == request, "request does not round-trip: \(quoted(FuzzInput.text(line)))")
    }

    static func checkResponse(_ bytes: [UInt8]) {
        guard let response = try? WireResponse.decode(bytes) else { return }
        let line = response.encoded
        require(isOneLine(line), "an encoded response is not one line")
        require((try? WireResponse.decode(line)) == response, "response does not round-trip: \(quoted(FuzzInput.text(line)))")
    }

    /// A restored state file, saved again, restores the same registry.
    static func checkStateDocument(_ bytes: [UInt8]) {
        guard let contents = try? StateDocument.decode(bytes) else { return }
        let registry = Registry(contents.registrations)
        let restored = try? StateDocument.decode(StateDocument.encode(registry, bootID: contents.bootID))
        require(restored == StateDocument.Contents(registrations: registry.registrations, bootID: contents.bootID), "state document does not round-trip")
    }

    /// Framing: exactly one newline, at the end.
    private static func isOneLine(_ line: [UInt8]) -> Bool {
        line.last == UInt8(ascii: "\n") && !line.dropLast().contains(UInt8(ascii: "\n"))
    }

    private static func forEachString(in value: JSONValue, _ body: (String) -> Void) {
        switch value {
        case .string(let text): body(text)
        case .array(let values): values.forEach { forEachString(in: $0, body) }
        case .object(let object):
            for member in object.members {
                body(member.name)
                forEachString(in: member.value, body)
            }
        case .null, .bool, .number: break
        }
    }
}
