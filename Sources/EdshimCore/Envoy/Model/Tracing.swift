/// `HttpConnectionManager.Tracing`: every request is traced with Envoy's OpenTelemetry
/// tracer, which exports the spans over OTLP/HTTP and passes a W3C `traceparent` to
/// the container.
public struct Tracing: Encodable, Hashable, Sendable {
    /// `envoy.config.trace.v3.Tracing.Http`.
    public struct Provider: Encodable, Hashable, Sendable {
        /// `envoy.tracers.opentelemetry`.
        public var name: String
        /// The tracer's configuration.
        public var typedConfig: Typed<OpenTelemetry>
    }

    /// `envoy.config.trace.v3.OpenTelemetryConfig`.
    public struct OpenTelemetry: EnvoyMessage {
        public static let typeURL = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"

        /// `envoy.config.core.v3.HttpService`.
        public struct HTTPService: Encodable, Hashable, Sendable {
            /// `envoy.config.core.v3.HttpUri`.
            public struct URI: Encodable, Hashable, Sendable {
                /// The collector's URL.
                public var uri: String
                /// The collector's cluster.
                public var cluster: String
                /// How long one export may take.
                public var timeout: String
            }

            /// Where spans are posted.
            public var httpUri: URI
        }

        /// OTLP/HTTP export.
        public var httpService: HTTPService
        /// `service.name` of the spans: the container's service label.
        public var serviceName: String
    }

    /// `envoy.type.tracing.v3.CustomTag` with a constant value.
    public struct CustomTag: Encodable, Hashable, Sendable {
        /// `Literal`.
        public struct Literal: Encodable, Hashable, Sendable {
            /// The value.
            public var value: String
        }

        /// The attribute's name.
        public var tag: String
        /// Its value.
        public var literal: Literal
    }

    /// `envoy.type.v3.Percent`.
    public struct Percent: Encodable, Hashable, Sendable {
        /// 0 to 100.
        public var value: Double
    }

    /// The tracer.
    public var provider: Provider
    /// Attributes every span of the listener carries; nil: none.
    public var customTags: [CustomTag]?
    /// The share of requests traced, chosen at random; nil: Envoy's default, all of them.
    public var randomSampling: Percent?

    /// The collector's cluster.
    public var cluster: String { provider.typedConfig.message.httpService.httpUri.cluster }
}
