/// Which of a cluster's endpoints a listener sends to, when its twin's container
/// address is another (`envoy.config.core.v3.Metadata` in the `envoy.lb` namespace,
/// which Envoy's subset load balancer reads): the endpoint carries its address, and
/// the listener's route or TCP proxy asks for the one of its own registration.
public struct EndpointSelection: Encodable, Hashable, Sendable {
    /// The `envoy.lb` namespace's one key.
    public struct LoadBalancing: Encodable, Hashable, Sendable {
        /// The container address, as the endpoint's own (`fd00::242:ac11:3`).
        public var containerAddress: String
    }

    /// Keyed by the namespace Envoy's load balancer reads.
    public struct FilterMetadata: Encodable, Hashable, Sendable {
        public var loadBalancing: LoadBalancing

        private enum CodingKeys: String, CodingKey {
            case loadBalancing = "envoy.lb"
        }
    }

    /// The metadata.
    public var filterMetadata: FilterMetadata

    /// The endpoint at container address `address`.
    public init(_ address: IPAddress) {
        filterMetadata = FilterMetadata(loadBalancing: LoadBalancing(containerAddress: address.description))
    }

    /// The key the cluster's subsets are made by.
    static let subsetKey = "container_address"
}

extension EnvoyCluster {
    /// `LbSubsetConfig`: a subset per container address; a listener that asks for
    /// none (for the moment between the cluster's update and its own) gets any.
    public struct SubsetConfig: Encodable, Hashable, Sendable {
        /// `LbSubsetSelector`.
        public struct Selector: Encodable, Hashable, Sendable {
            public var keys = [EndpointSelection.subsetKey]
        }

        public var fallbackPolicy = "ANY_ENDPOINT"
        public var subsetSelectors = [Selector()]
    }
}
