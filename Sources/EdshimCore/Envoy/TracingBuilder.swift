/// Builds the tracing of HTTP listeners and the cluster of the collector they export to.
enum TracingBuilder {
    /// How long Envoy waits for one export to the collector.
    static let exportTimeout = "1s"

    /// Requests traced with the OpenTelemetry tracer (`samplePercent` of them): spans
    /// under the service label's name (`service.name`), with the environment label and
    /// edshim's service name as attributes, posted to `collector`.
    static func tracing(for registration: Registration, serviceName: String, collector: TracingCollector, samplePercent: Double) -> Tracing {
        var tags = [Tracing.CustomTag(tag: "edshim.service", literal: .init(value: serviceName))]
        if let environment = registration.metadata.environment.flatMap(LabelSanitizer.sanitize) {
            tags.append(.init(tag: "deployment.environment.name", literal: .init(value: environment)))
        }
        let exporter = Tracing.OpenTelemetry(
            httpService: .init(httpUri: .init(uri: collector.description, cluster: TracingCollector.clusterName, timeout: exportTimeout)),
            serviceName: ServiceNaming.service(registration.metadata)
        )
        return Tracing(
            provider: .init(name: "envoy.tracers.opentelemetry", typedConfig: Typed(exporter)),
            customTags: tags,
            randomSampling: samplePercent < 100 ? .init(value: samplePercent) : nil
        )
    }

    /// The collector's cluster: its address, or its host name resolved by Envoy
    /// (IPv4 first, as a collector on `localhost` usually listens there).
    static func cluster(for collector: TracingCollector) -> EnvoyCluster {
        let name = TracingCollector.clusterName
        let named = collector.address == nil
        var cluster = ClusterBuilder.clusterDefaults(name: name, type: named ? .strictDNS : .static, addresses: [EnvoyAddress(host: collector.host, port: collector.port)])
        if named { cluster.dnsLookupFamily = "V4_PREFERRED" }
        return cluster
    }
}
