import ArgumentParser
import EdshimCore

/// `--socket`, for the commands that talk to a running server (status, resync).
struct ServerSocketOptions: ParsableArguments {
    @Option(name: .long, help: "The server's socket (default: $\(EdshimDefaults.socketEnvironmentVariable), else \(EdshimDefaults.socketPath)).")
    var socket: String?

    func validate() throws {
        guard socket?.isEmpty != true else { throw ValidationError("--socket must name the server's socket, like \(EdshimDefaults.socketPath)") }
    }

    /// A client of the server named by `--socket`, else by `EDSHIM_SOCKET`, else the default.
    var client: ServerClient {
        socket.map(ServerClient.init(socketPath:)) ?? ServerClient.fromEnvironment()
    }
}
