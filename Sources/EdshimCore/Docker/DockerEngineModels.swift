/// The parts of Docker Engine API responses edshim reads. Decoding ignores the rest,
/// so these stay valid across API versions.
enum DockerEngine {
    /// An entry of `GET /networks`.
    struct NetworkSummary: Decodable {
        struct IPAM: Decodable {
            struct Pool: Decodable {
                var Subnet: String?
            }

            var Config: [Pool]?
        }

        var Id: String
        var Name: String
        var IPAM: IPAM?
    }

    /// `GET /networks/{id}`: its endpoints, including those of containers still starting.
    struct NetworkDetail: Decodable {
        struct Endpoint: Decodable {
            var Name: String?
            var IPv4Address: String?
            var IPv6Address: String?
        }

        var Id: String
        var Containers: [String: Endpoint]?
    }

    /// An entry of `GET /containers/json` (`?all=1`: in any state).
    struct ContainerSummary: Decodable {
        /// A port of the container; published when it has a `PublicPort`.
        struct Port: Decodable {
            var IP: String?
            var PrivatePort: Int?
            var PublicPort: Int?
            var `Type`: String?
        }

        var Id: String
        var Names: [String]?
        var Labels: [String: String]?
        /// running, paused, restarting, exited, …
        var State: String?
        var Ports: [Port]?
    }

    /// `GET /containers/{id}/json`: only its main process.
    struct ContainerDetail: Decodable {
        struct ContainerState: Decodable {
            var Pid: Int?
        }

        var State: ContainerState?
    }
}
