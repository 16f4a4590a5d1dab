/// What the server cannot do, in words for the operator: why, and what to do. At
/// start it ends the server (another server holds the socket, a path is unusable);
/// while it runs it is logged (a claim on the state file or the xds directory lost
/// and not taken again, a peer without credentials).
struct ServerError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
