/// What a shim-position command line asks for.
public enum ShimInvocation: Equatable, Sendable {
    /// Proxy the port.
    case run(ShimArguments)
    /// `-v` / `-version`: print the version and exit 0.
    case version
    /// `-h` / `-help`: print the usage and exit 0.
    case help
}

extension ShimInvocation {
    private static let scanner = GoFlagScanner(kinds: [
        "proto": .value, "host-ip": .value, "host-port": .value,
        "container-ip": .value, "container-port": .value,
        "use-listen-fd": .bool, "v": .bool, "version": .bool,
    ])

    /// The usage text, in the shape Go's `flag` prints it.
    public static let usage = """
        Usage: edshim -proto tcp|udp -host-ip IP -host-port PORT
                      -container-ip IP -container-port PORT [-use-listen-fd]

        The docker-proxy drop-in dockerd runs for each published port, with
          dockerd --userland-proxy-path=/usr/local/bin/edshim \\
                  --iptables=false --ip6tables=false
        TCP ports are registered with `edshim server` and served by Envoy;
        UDP ports are proxied by edshim itself.

          -proto string           tcp, udp or sctp (default "tcp"; sctp is refused)
          -host-ip string         host address: 0.0.0.0, ::, or one address
          -host-port int          host port, 1-65535
          -container-ip string    container address
          -container-port int     container port, 1-65535
          -use-listen-fd          dockerd >= 28: fd 4 is the host port's bound socket
          -v, -version            print the version and exit

        fd 3, when it is a pipe (dockerd's status pipe), gets "0\\n" once the port is
        served, or "1\\n<reason>" before edshim exits 1; otherwise both are only
        logged. Run by hand as dockerd 20.10 runs it:
          edshim -proto tcp -host-ip 0.0.0.0 -host-port 8080 \\
              -container-ip 172.17.0.2 -container-port 80

        The command line belongs to dockerd, so settings come from its environment:
          EDSHIM_SOCKET            the server socket, an absolute path (default
                                   /run/edshim/edshim.sock)
          EDSHIM_FALLBACK          proxy (default): serve a TCP port itself while the
                                   server or Envoy is not there; fail: report 1 instead
          EDSHIM_DOCKERD_RESTART_GRACE
                                   with "live-restore": how long a TCP or UDP port
                                   stays served after dockerd exits, until the next
                                   dockerd publishes it again (120, 120s, 2m; at most
                                   a day; default 0: withdrawn at once)
          EDSHIM_UDP_IDLE_TIMEOUT  idle time before a UDP flow closes (default 90s)
          EDSHIM_UDP_MAX_FLOWS     UDP flows kept at once, least recent evicted (8192)
          EDSHIM_UDP_BUSY_POLL     microseconds to keep polling after a datagram on a
                                   busy UDP port instead of sleeping (default 0: off)
          EDSHIM_SYSLOG_SOCKET     where log lines go when stderr is /dev/null, as
                                   dockerd leaves it (default /dev/log: the journal)
        """

    /// Parses a shim command line (without the program name) with Go `flag` rules.
    public static func parse(_ arguments: [String]) throws(ArgumentError) -> ShimInvocation {
        let scan = try scanner.scan(arguments)
        if scan.helpRequested { return .help }
        if let extra = scan.positional.first {
            throw ArgumentError("unexpected argument \"\(extra)\": edshim takes only docker-proxy's flags (edshim shim -h lists them)")
        }
        var values: [String: String] = [:]
        for flag in scan.flags {
            // Go's flag.Int parses every occurrence: an earlier bad one is refused too.
            if portFlags.contains(flag.name), GoFlagScanner.parseInt(flag.value) == nil {
                throw ArgumentError("invalid value \"\(flag.value)\" for -\(flag.name): use a port between 1 and 65535")
            }
            values[flag.name] = flag.value
        }

        if values["v"].flatMap(GoFlagScanner.parseBool) == true
            || values["version"].flatMap(GoFlagScanner.parseBool) == true {
            return .version
        }

        let protoText = values["proto"] ?? "tcp"
        guard let proto = TransportProtocol(rawValue: protoText) else {
            throw ArgumentError("invalid value \"\(protoText)\" for -proto: use tcp or udp (sctp is not proxied)")
        }
        let host = SocketEndpoint(
            ip: try address(values, "host-ip"),
            port: try port(values, "host-port")
        )
        let container = SocketEndpoint(
            ip: try address(values, "container-ip"),
            port: try port(values, "container-port")
        )
        let useListenFD = values["use-listen-fd"].flatMap(GoFlagScanner.parseBool) ?? false
        return .run(ShimArguments(proto: proto, host: host, container: container, useListenFD: useListenFD))
    }

    private static let portFlags: Set<String> = ["host-port", "container-port"]

    private static func address(_ values: [String: String], _ name: String) throws(ArgumentError) -> IPAddress {
        guard let text = values[name] else {
            throw ArgumentError("missing -\(name): dockerd always passes it; give an IPv4 or IPv6 address")
        }
        guard let address = IPAddress(text) else {
            throw ArgumentError("invalid value \"\(text)\" for -\(name): not an IPv4 or IPv6 address")
        }
        return address
    }

    private static func port(_ values: [String: String], _ name: String) throws(ArgumentError) -> UInt16 {
        guard let text = values[name] else {
            throw ArgumentError("missing -\(name): give a port between 1 and 65535")
        }
        guard let value = GoFlagScanner.parseInt(text), (1...65535).contains(value) else {
            throw ArgumentError("invalid value \"\(text)\" for -\(name): use a port between 1 and 65535")
        }
        return UInt16(value)
    }
}
