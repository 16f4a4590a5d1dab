/// `envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat`, with the one
/// formatter edshim uses: header names keep the case they arrived in.
public struct HeaderKeyFormat: Encodable, Hashable, Sendable {
    /// `envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig`.
    public struct PreserveCase: EnvoyMessage {
        public static let typeURL = "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig"
        /// True: the container's reason phrase (`200 Alright`) reaches the client.
        public var forwardReasonPhrase = true
    }

    /// `TypedExtensionConfig`: the preserve-case formatter.
    public struct StatefulFormatter: Encodable, Hashable, Sendable {
        public var name = "preserve_case"
        public var typedConfig = Typed(PreserveCase())
    }

    /// Remembers each name's case as it is decoded, and writes it so.
    public var statefulFormatter = StatefulFormatter()

    /// Names as they came: Envoy lowercases them by default, where docker-proxy
    /// passed them as sent; HTTP/1.1 says case does not matter, yet some clients
    /// and applications compare them exactly.
    public static let preserveCase = HeaderKeyFormat()
}
