/// `envoy.config.accesslog.v3.AccessLog`: one JSON line per request (HTTP mode) or per
/// connection (TCP mode), written by Envoy to its stdout, its stderr or a file.
public struct AccessLog: Encodable, Hashable, Sendable {
    /// Where the lines go; never `.off`.
    public let destination: AccessLogDestination
    /// `json_format`: each key of a line and the Envoy command that fills it.
    public let fields: [String: String]

    /// An access log to `destination`; nil when it is `.off`.
    public init?(destination: AccessLogDestination, fields: [String: String]) {
        guard destination != .off else { return nil }
        self.destination = destination
        self.fields = fields
    }

    private enum CodingKeys: String, CodingKey {
        case name, typedConfig
    }

    /// Encodes `name` and `typed_config` for the destination's access logger.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        let format = LogFormat(jsonFormat: fields)
        switch destination {
        case .stdout:
            try container.encode("envoy.access_loggers.stdout", forKey: .name)
            try container.encode(Typed(StandardOutput(logFormat: format)), forKey: .typedConfig)
        case .stderr:
            try container.encode("envoy.access_loggers.stderr", forKey: .name)
            try container.encode(Typed(StandardError(logFormat: format)), forKey: .typedConfig)
        case .file(let path):
            try container.encode("envoy.access_loggers.file", forKey: .name)
            try container.encode(Typed(File(path: path, logFormat: format)), forKey: .typedConfig)
        case .off:
            preconditionFailure("an AccessLog is never made for .off")
        }
    }

    /// `envoy.config.core.v3.SubstitutionFormatString`, JSON lines.
    struct LogFormat: Encodable, Hashable, Sendable {
        var jsonFormat: [String: String]
    }

    /// `envoy.extensions.access_loggers.stream.v3.StdoutAccessLog`.
    struct StandardOutput: EnvoyMessage {
        static let typeURL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
        var logFormat: LogFormat
    }

    /// `envoy.extensions.access_loggers.stream.v3.StderrAccessLog`.
    struct StandardError: EnvoyMessage {
        static let typeURL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
        var logFormat: LogFormat
    }

    /// `envoy.extensions.access_loggers.file.v3.FileAccessLog`.
    struct File: EnvoyMessage {
        static let typeURL = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
        var path: String
        var logFormat: LogFormat
    }
}
