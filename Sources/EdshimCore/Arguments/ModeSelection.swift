/// Which mode the multicall binary runs in, decided from argv before any command
/// parsing: the shim path must stay free of everything the other modes load.
public enum ModeSelection {
    /// Program names that mean "be docker-proxy".
    public static let shimProgramNames: Set<String> = ["docker-proxy", "envoy-docker-shim"]
    /// First arguments that ask edshim itself for help, not the shim.
    static let helpFlags: Set<String> = ["-h", "-help", "--help"]

    /// The shim's arguments when `argv` starts shim mode, nil for every other mode:
    /// argv[0] named `docker-proxy` or `envoy-docker-shim`; `edshim` followed by a
    /// flag (how dockerd runs `--userland-proxy-path=/usr/local/bin/edshim`); `edshim shim …`.
    public static func shimArguments(_ argv: [String]) -> [String]? {
        guard let program = argv.first else { return nil }
        let name = program.split(separator: "/").last.map(String.init) ?? program
        let rest = Array(argv.dropFirst())
        if shimProgramNames.contains(name) { return rest }
        guard let first = rest.first else { return nil }
        if first == "shim" { return Array(rest.dropFirst()) }
        if first.hasPrefix("-"), !helpFlags.contains(first) { return rest }
        return nil
    }

    /// True when `argv` runs `edshim udp-proxy`.
    public static func startsUDPProxy(_ argv: [String]) -> Bool {
        argv.dropFirst().first == "udp-proxy"
    }
}
