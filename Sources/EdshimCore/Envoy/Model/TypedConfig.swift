/// An Envoy message that can sit in a `google.protobuf.Any`.
public protocol EnvoyMessage: Encodable, Hashable, Sendable {
    /// `type.googleapis.com/...`.
    static var typeURL: String { get }
}

/// A message wrapped as `google.protobuf.Any`: its fields plus `"@type"`.
public struct Typed<Message: EnvoyMessage>: Encodable, Hashable, Sendable {
    /// The wrapped message.
    public var message: Message

    /// Wraps a message.
    public init(_ message: Message) {
        self.message = message
    }

    private enum TypeKey: String, CodingKey {
        case type = "@type"
    }

    /// Encodes `"@type"` beside the message's own fields.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TypeKey.self)
        try container.encode(Message.typeURL, forKey: .type)
        try message.encode(to: encoder)
    }
}
