import ArgumentParser
import EdshimCore
import EdshimShim
#if canImport(Glibc)
import Glibc
#endif

/// `edshim udp-proxy`: the UDP proxy the shim runs for `-proto udp`, on its own.
struct UDPProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp-proxy",
        abstract: "Proxy one UDP port to a container, without dockerd (what the shim runs for -proto udp).",
        discussion: """
            Binds -host-ip:-host-port (IPv6 v6-only) and relays datagrams to
            -container-ip:-container-port until SIGINT or SIGTERM, then exits 0 (1 if
            waiting for datagrams fails). Envoy and `edshim server` are not involved:
            UDP is proxied by edshim itself.

            Each client address gets a flow with its own socket to the container, so
            replies go back to the client they answer; on 0.0.0.0 or :: a reply leaves
            from the address the client sent to. Datagrams pass whole (up to 65,507
            bytes over IPv4). An ICMP "port unreachable" from the container does not
            end a flow: the next datagram is sent again.

            A flow with no datagram either way for --idle-timeout closes (docker-proxy
            keeps 90 s). At most --max-flows flows exist: a new client beyond that
            evicts the least recently used, so a spray of source ports costs a bounded
            number of sockets; evictions are logged, at most once a minute. dockerd
            cannot pass these flags to the shim; set them for it in dockerd's
            environment instead:

              EDSHIM_UDP_IDLE_TIMEOUT=30s  EDSHIM_UDP_MAX_FLOWS=4096

            --busy-poll 100 (EDSHIM_UDP_BUSY_POLL=100) makes the proxy keep polling for
            the next datagram for 100 µs after one, on ports busier than about 10,000
            datagrams a second, instead of sleeping: faster on a host with CPU to spare,
            slower where CPU-bound work shares the CPU. Off (0) by default.

            Here the flags win over those variables. Example, a DNS server published
            on every IPv4 address of the host:

              edshim udp-proxy -host-ip 0.0.0.0 -host-port 53 \\
                  -container-ip 172.17.0.2 -container-port 53
            """,
        // No -h: ArgumentParser would read a mistyped -host-ip as -h -o -s ….
        helpNames: [.long, .customLong("help", withSingleDash: true)]
    )

    /// `edshim udp-proxy -h` asks for help, as in every other mode: a lone `-h` there
    /// becomes `--help` before parsing (no `-h` name, see `helpNames`).
    static func helpAliased(_ arguments: [String]) -> [String] {
        guard arguments.first == configuration.commandName else { return arguments }
        return arguments.map { $0 == "-h" ? "--help" : $0 }
    }

    /// Accepted so that a shim's command line copied from `ps` runs as it is.
    @Option(name: [.customLong("proto", withSingleDash: true), .customLong("proto")], help: "udp, the only protocol this mode proxies (accepted so that a UDP shim's command line runs as it is).")
    var proto: String = "udp"

    /// dockerd ≥ 28 adds it to a UDP shim's command line.
    @Flag(name: .customLong("use-listen-fd", withSingleDash: true), help: "Accepted as dockerd ≥ 28 writes it on a UDP shim's command line; ignored: udp-proxy is handed no socket and binds the port itself.")
    var useListenFd = false

    @Option(name: [.customLong("host-ip", withSingleDash: true), .customLong("host-ip")], help: "Host address to bind: 0.0.0.0, ::, or one address.")
    var hostIP: String

    @Option(name: [.customLong("host-port", withSingleDash: true), .customLong("host-port")], help: "Host port, 1-65535.")
    var hostPort: UInt16

    @Option(name: [.customLong("container-ip", withSingleDash: true), .customLong("container-ip")], help: "Container address.")
    var containerIP: String

    @Option(name: [.customLong("container-port", withSingleDash: true), .customLong("container-port")], help: "Container port, 1-65535.")
    var containerPort: UInt16

    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: "Close a flow idle this long, 10ms to 24h: seconds (90, 0.5) or with a unit (500ms, 2m). Default: $EDSHIM_UDP_IDLE_TIMEOUT, else 90.")
    var idleTimeout: String?

    @Option(name: .customLong("max-flows"), parsing: .unconditional, help: "Most flows at once, 1 to \(UDPProxyOptions.maxFlowsRange.upperBound); the least recently used makes room. Default: $EDSHIM_UDP_MAX_FLOWS, else \(UDPProxyOptions.defaultMaxFlows).")
    var maxFlows: String?

    @Option(name: .customLong("busy-poll"), parsing: .unconditional, help: "Microseconds to keep polling after a datagram on a busy port instead of sleeping, 0 (never) to \(UDPProxyOptions.busyPollRangeMicroseconds.upperBound). Default: $EDSHIM_UDP_BUSY_POLL, else \(UDPProxyOptions.defaultBusyPollMicroseconds).")
    var busyPoll: String?

    func validate() throws {
        switch proto {
        case "udp": break
        case "tcp": throw ValidationError("udp-proxy proxies UDP only, not -proto tcp: a TCP port is published by the shim (edshim -proto tcp …), which registers it with edshim server for Envoy")
        case "sctp": throw ValidationError("udp-proxy proxies UDP only, and edshim does not proxy SCTP (-proto sctp): run the container with --network host, where it takes the host's SCTP port itself")
        default: throw ValidationError("udp-proxy proxies UDP only: -proto \(proto) is not a protocol edshim knows (udp here; tcp through the shim)")
        }
        _ = try endpoints()
        _ = try options()
    }

    func run() throws {
        let (host, container) = try endpoints()
        UDPProxyMode.run(host: host, container: container, options: try options())
    }

    private func endpoints() throws -> (host: SocketEndpoint, container: SocketEndpoint) {
        guard let hostAddress = IPAddress(hostIP) else {
            throw ValidationError("-host-ip \"\(hostIP)\" is not an IPv4 or IPv6 address")
        }
        guard let containerAddress = IPAddress(containerIP) else {
            throw ValidationError("-container-ip \"\(containerIP)\" is not an IPv4 or IPv6 address")
        }
        guard hostPort > 0 else { throw ValidationError("-host-port must be between 1 and 65535") }
        guard containerPort > 0 else { throw ValidationError("-container-port must be between 1 and 65535") }
        return (SocketEndpoint(ip: hostAddress, port: hostPort), SocketEndpoint(ip: containerAddress, port: containerPort))
    }

    /// Flags first, then dockerd-style environment variables, then the defaults; a
    /// variable a flag overrides is not read at all.
    private func options() throws -> UDPProxyOptions {
        let overridden = Set([
            idleTimeout.map { _ in UDPProxyOptions.idleTimeoutEnvironmentVariable },
            maxFlows.map { _ in UDPProxyOptions.maxFlowsEnvironmentVariable },
            busyPoll.map { _ in UDPProxyOptions.busyPollEnvironmentVariable },
        ].compactMap { $0 })
        do {
            var options = try UDPProxyOptions.fromEnvironment { overridden.contains($0) ? nil : ProcessEnvironment.value($0) }
            if let idleTimeout {
                options.idleTimeoutMilliseconds = try UDPProxyOptions.parseIdleTimeout(idleTimeout, source: "--idle-timeout")
            }
            if let maxFlows {
                options.maxFlows = try UDPProxyOptions.parseMaxFlows(maxFlows, source: "--max-flows")
            }
            if let busyPoll {
                options.busyPollMicroseconds = try UDPProxyOptions.parseBusyPoll(busyPoll, source: "--busy-poll")
            }
            return options
        } catch {
            throw ValidationError(error.description)
        }
    }
}
