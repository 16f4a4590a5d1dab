import ArgumentParser
import EdshimCore

/// `edshim`: the root command.
struct EdshimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edshim",
        abstract: "Envoy in front of every published Docker port.",
        discussion: """
            edshim replaces docker-proxy. Run dockerd with
              --userland-proxy-path=/usr/local/bin/edshim
              --iptables=false --ip6tables=false
            and dockerd starts edshim in shim mode for each published port. TCP ports are
            registered with `edshim server`, which writes them as Envoy v3 configuration
            (filesystem xDS): Envoy listens on the host port and proxies to the container,
            with its metrics, access logs and tracing, named from the container's labels
            (edshim.service, edshim.environment, edshim.mode, or the legacy ServiceName,
            EnvironmentName, ProxyMode; docs/labels.md). UDP ports are proxied by edshim
            itself.

            Shim mode starts when edshim is called as docker-proxy or envoy-docker-shim,
            with a first argument that is a flag (-proto …), or as `edshim shim …`.

            Quick start:
              edshim server &                                  # the registrar
              mkdir -p /etc/edshim /run/envoy-edshim           # Envoy's bootstrap:
              edshim bootstrap --admin-address unix:/run/envoy-edshim/admin.sock \\
                --stats-address 127.0.0.1:9901 > /etc/edshim/envoy.yaml
              envoy -c /etc/edshim/envoy.yaml --file-flush-interval-msec 1000 \\
                --disable-hot-restart &                        # as root, like dockerd
              edshim resync                                    # after each Envoy start
              edshim status                                    # what is published
            """,
        version: EdshimVersion.banner,
        subcommands: [
            ShimCommand.self,
            ServerCommand.self,
            ResyncCommand.self,
            UDPProxyCommand.self,
            BootstrapCommand.self,
            StatusCommand.self,
            VersionCommand.self,
        ]
    )
}
