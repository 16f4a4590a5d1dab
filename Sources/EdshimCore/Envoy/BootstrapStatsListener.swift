/// The admin API's reads on a TCP address, for an admin API on a Unix socket only root
/// may use: Prometheus and `curl 127.0.0.1:9901/stats` keep working, while what the
/// admin API changes (`POST /drain_listeners`, which frees every published port for
/// any local user to bind; `/quitquitquit`; `/runtime_modify`; `/logging`, which can
/// log request headers) stays root's. Envoy's admin API takes those only as POST,
/// and this listener passes GET and HEAD alone.
extension BootstrapDocument {
    /// The static listener's and the cluster's name.
    public static let statsListenerName = "edshim-admin-reads"

    /// `static_resources`: a listener on `address` whose GET and HEAD requests go to
    /// the admin API, anything else answered 405.
    func statsListenerYAML(_ address: SocketEndpoint) -> String {
        let name = Self.quoted(Self.statsListenerName)
        let routes = ["GET", "HEAD"].map { method in
            """
                          - match:
                              prefix: "/"
                              headers:
                              - name: ":method"
                                string_match:
                                  exact: "\(method)"
                            route:
                              cluster: \(name)
            """
        }.joined(separator: "\n")
        return """
            static_resources:
              listeners:
              - name: \(name)
                address:
            \(Self.addressYAML(.tcp(address), indent: 6))
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: "edshim_admin_reads"
                      route_config:
                        virtual_hosts:
                        - name: \(name)
                          domains: ["*"]
                          routes:
            \(routes)
                          - match:
                              prefix: "/"
                            direct_response:
                              status: 405
                              body:
                                inline_string: "only GET and HEAD here: the admin API's other requests go to its Unix socket\\n"
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              clusters:
              - name: \(name)
                type: STATIC
                connect_timeout: 1s
                load_assignment:
                  cluster_name: \(name)
                  endpoints:
                  - lb_endpoints:
                    - endpoint:
                        address:
            \(Self.addressYAML(admin, indent: 14))

            """
    }
}
