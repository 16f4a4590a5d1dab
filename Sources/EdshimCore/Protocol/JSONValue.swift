/// A JSON document, as the wire protocol reads and writes it.
///
/// The protocol is on the shim's path, which must not start Foundation, so edshim
/// carries this small codec instead of `JSONDecoder`. It is strict (RFC 8259),
/// bounded in depth, and keeps numbers as their text so that no precision is lost.
public indirect enum JSONValue: Equatable, Sendable {
    /// `null`.
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// A number, as it was written (already checked against the JSON grammar).
    case number(String)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object, members in order.
    case object(JSONObject)

    /// An integer number value.
    public static func integer<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The integer, if this is an integral number that fits.
    public func integerValue<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
        if case .number(let text) = self { T(text) } else { nil }
    }

    /// The bool, if this is one.
    public var boolValue: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }

    /// The object, if this is one.
    public var objectValue: JSONObject? {
        if case .object(let value) = self { value } else { nil }
    }

    /// The array, if this is one.
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }
}

/// A JSON object that keeps its members in order (for stable output) and looks
/// them up by name (the last of duplicate names wins, as in most decoders).
public struct JSONObject: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    /// The members, in order.
    public var members: [(name: String, value: JSONValue)]

    /// Creates an object from ordered members.
    public init(_ members: [(name: String, value: JSONValue)] = []) {
        self.members = members
    }

    /// Creates an object from a literal, in literal order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { (name: $0.0, value: $0.1) }
    }

    /// The value of the last member called `name`.
    public subscript(name: String) -> JSONValue? {
        members.last { $0.name == name }?.value
    }

    /// Appends a member unless `value` is nil.
    public mutating func append(_ name: String, _ value: JSONValue?) {
        if let value { members.append((name: name, value: value)) }
    }

    /// Same members in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
