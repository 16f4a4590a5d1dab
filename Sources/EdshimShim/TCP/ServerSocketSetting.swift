import EdshimCore

/// The server socket a shim was told to use (`EDSHIM_SOCKET`, from dockerd's
/// environment): a path no server can ever be reached at is refused at start, as a
/// bad `EDSHIM_FALLBACK` is, instead of the shim serving every port itself and
/// retrying for good.
enum ServerSocketSetting {
    static func check(_ client: ServerClient) throws(ShimFailure) {
        let variable = EdshimDefaults.socketEnvironmentVariable
        if client.pathProblem != nil {
            throw ShimFailure("\(variable)=\(client.socketPath) is longer than \(UnixSocketAddress.maximumPathLength) bytes, the most a Unix socket path can have: choose a shorter one, for the server's --socket too (set in dockerd's environment)")
        }
        guard client.socketPath.hasPrefix("/") else {
            throw ShimFailure("\(variable)=\(client.socketPath) is not an absolute path: a shim runs in dockerd's working directory; set it to the server's --socket path, e.g. \(EdshimDefaults.socketPath) (set in dockerd's environment)")
        }
    }
}
