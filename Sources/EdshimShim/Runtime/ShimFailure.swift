import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A failure the shim reports to dockerd: one line saying what is wrong and what to do.
struct ShimFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// `context: strerror(errno)`.
    static func system(_ context: String, _ code: Int32 = errno) -> ShimFailure {
        ShimFailure("\(context): \(ErrorText.describe(code))")
    }

    /// A port the shim could not bind, in docker-proxy's wording, then what to do
    /// about it (`BindRefusal`); naming the processes listening on the port, when known.
    static func bind(_ proto: String, _ host: SocketEndpoint, _ code: Int32, holders: [PortHolders.Holder] = []) -> ShimFailure {
        ShimFailure(BindRefusal.message(proto, host, code, holders: holders))
    }
}
