import ArgumentParser
import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `edshim bootstrap`: the Envoy bootstrap that reads edshim's xDS files.
struct BootstrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap",
        abstract: "Print an Envoy v3 bootstrap that takes its listeners and clusters from edshim.",
        discussion: """
            The bootstrap points Envoy's LDS and CDS at lds.json and cds.json in --xds-dir
            (filesystem xDS: Envoy reloads them when edshim server replaces them) and puts
            Envoy's admin API on --admin-address. Envoy runs it as is:

              mkdir -p /etc/edshim
              edshim bootstrap --xds-dir /var/lib/edshim/xds > /etc/edshim/envoy.yaml
              envoy -c /etc/edshim/envoy.yaml

            Envoy refuses to start when those files are missing, so this command creates
            the directory and empty lds.json / cds.json when they do not exist yet (it
            never changes existing ones). --xds-dir must be the server's --xds-dir.
            --admin-address is Envoy's own admin API (9901 by default), not the server's
            --admin-address (7776): the two must differ, and the server never needs to
            know Envoy's.

            Envoy's admin API can stop Envoy (POST /quitquitquit) and close every port
            (POST /drain_listeners): any local user who reaches it can then bind a
            published port and take its clients' traffic, and on a TCP address every
            local user reaches it. Give it a Unix socket only root may use, and its reads
            a TCP address with --stats-address, as contrib/envoy-edshim.service does:

              edshim bootstrap --admin-address unix:/run/envoy-edshim/admin.sock \\
                --stats-address 127.0.0.1:9901 > /run/envoy-edshim/envoy.yaml

            There Envoy answers GET and HEAD with the admin API (curl
            127.0.0.1:9901/stats, Prometheus on /stats/prometheus, /listeners,
            /clusters) and anything else 405; the rest goes through the socket (curl
            --unix-socket /run/envoy-edshim/admin.sock -X POST http://envoy/...).
            """
    )

    @Option(name: .customLong("xds-dir"), help: "Directory edshim server writes lds.json and cds.json into.")
    var xdsDirectory: String = EdshimDefaults.xdsDirectory

    @Option(name: .customLong("admin-address"), help: "HOST:PORT, or unix:/absolute/path (a socket only root may use), for Envoy's admin API (not the server's --admin-address).")
    var adminAddress: String = EdshimDefaults.envoyAdminAddress

    @Option(name: .customLong("stats-address"), help: "HOST:PORT where Envoy answers the admin API's GET and HEAD requests alone (stats, Prometheus metrics): for an admin API on a Unix socket. Default: none.")
    var statsAddress: String?

    @Option(name: .customLong("node-id"), help: "Envoy node id.")
    var nodeID: String = "edshim"

    @Option(name: .customLong("node-cluster"), help: "Envoy node cluster, as /server_info shows it (traces are named after each container's service label, not this).")
    var nodeCluster: String = "edshim"

    func validate() throws {
        guard !xdsDirectory.isEmpty else {
            throw ValidationError("--xds-dir must name the directory edshim server writes into, like \(EdshimDefaults.xdsDirectory)")
        }
        guard BootstrapDocument.AdminAddress(parsing: adminAddress) != nil else {
            throw ValidationError("--admin-address must be HOST:PORT with an IP address, like 127.0.0.1:9901, or unix: and an absolute path of at most \(UnixSocketAddress.maximumPathLength) bytes, like unix:/run/envoy-edshim/admin.sock")
        }
        if let statsAddress {
            guard let stats = SocketEndpoint(parsing: statsAddress) else {
                throw ValidationError("--stats-address must be HOST:PORT with an IP address, like 127.0.0.1:9901")
            }
            if case .tcp(let admin)? = BootstrapDocument.AdminAddress(parsing: adminAddress), admin.bindConflicts(with: stats) {
                throw ValidationError("--stats-address \(stats) and --admin-address \(admin) are the same port: put the admin API on a Unix socket (--admin-address unix:/run/envoy-edshim/admin.sock)")
            }
        }
        guard !nodeID.isEmpty, !nodeCluster.isEmpty else {
            throw ValidationError("--node-id and --node-cluster must not be empty")
        }
    }

    func run() throws {
        guard let admin = BootstrapDocument.AdminAddress(parsing: adminAddress) else { throw ExitCode.validationFailure }
        if case .tcp(let admin) = admin, let server = SocketEndpoint(parsing: EdshimDefaults.serverAdminAddress), admin.bindConflicts(with: server) {
            // Only a warning: a server moved elsewhere with its own --admin-address
            // leaves the port free for Envoy.
            FileHandle.standardError.write(Data("""
                edshim bootstrap: warning: --admin-address \(admin) is where edshim server listens by default \
                (its --admin-address, \(server)): Envoy or the server will fail to bind it. \
                Choose another (Envoy's usual is \(EdshimDefaults.envoyAdminAddress)), unless the server runs with another --admin-address.

                """.utf8))
        }
        let document = BootstrapDocument(
            xdsDirectory: absolute(xdsDirectory),
            admin: admin,
            nodeID: nodeID,
            nodeCluster: nodeCluster,
            statsAddress: statsAddress.flatMap(SocketEndpoint.init(parsing:))
        )
        do {
            try AtomicFile.makeDirectories(document.xdsDirectory)
            try seed(document.listenerPath, with: DiscoveryDocument.listeners([]))
            try seed(document.clusterPath, with: DiscoveryDocument.clusters([]))
        } catch {
            throw CommandFailure("\(error): Envoy needs lds.json and cds.json to exist; run as a user who may create them, or start edshim server first")
        }
        print(document.yaml, terminator: "")
    }

    private func seed(_ path: String, with bytes: [UInt8]) throws {
        guard access(path, F_OK) != 0 else { return }
        try AtomicFile.write(bytes, to: path)
    }
}
