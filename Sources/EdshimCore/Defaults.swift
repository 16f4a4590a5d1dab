/// Paths and addresses every mode agrees on (DESIGN.md).
public enum EdshimDefaults {
    /// The server's Unix socket; `EDSHIM_SOCKET` overrides it for clients.
    public static let socketPath = "/run/edshim/edshim.sock"
    /// The environment variable clients read for the socket path.
    public static let socketEnvironmentVariable = "EDSHIM_SOCKET"
    /// Where the server writes `lds.json` and `cds.json`.
    public static let xdsDirectory = "/var/lib/edshim/xds"
    /// Where the server keeps its registry across restarts.
    public static let stateFile = "/var/lib/edshim/state.json"
    /// The Docker Engine API the server reads labels from, when neither
    /// `--docker-host` nor `DOCKER_HOST` names one.
    public static let dockerHost = "unix:///var/run/docker.sock"
    /// `DOCKER_HOST`, else `dockerHost`: where the server and status look for Docker
    /// when not told (`--docker-host`).
    public static var environmentDockerHost: String {
        ProcessEnvironment.value("DOCKER_HOST") ?? dockerHost
    }
    /// The server's own admin and status HTTP endpoint.
    public static let serverAdminAddress = "127.0.0.1:7776"
    /// Envoy's admin API, in the bootstrap edshim prints.
    public static let envoyAdminAddress = "127.0.0.1:9901"
    /// How long a starting shim waits for the server's answer to its registration:
    /// well under the 16 s dockerd waits for the shim.
    public static let shimRegisterTimeoutSeconds = 12
    /// The resync command line for the server at `socketPath`, as hints print it:
    /// with `--socket` unless it is the default (a hint run as written must reach
    /// the server that gave it).
    public static func resyncCommand(socketPath: String) -> String {
        guard socketPath != Self.socketPath else { return "edshim resync" }
        let plain = socketPath.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || "0123456789/._-+:@%=,".unicodeScalars.contains($0) }
        // Quoted for a POSIX shell where it holds anything else (a space, a quote).
        let quoted = plain ? socketPath : "'" + socketPath.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
        return "edshim resync --socket \(quoted)"
    }

    /// The longest readiness timeout the server takes (`--ready-timeout`): its answer
    /// must reach the shim within the shim's 12 s, after the Docker lookup and the
    /// configuration's writes.
    public static let longestReadyTimeoutSeconds = 10
}
