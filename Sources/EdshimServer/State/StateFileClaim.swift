import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// One server per state file. Two servers keeping their registries in one file would
/// each restore the other's ports and overwrite the other's saves, so the server
/// claims the file before it reads it: an exclusive lock on `<state file>.lock`
/// beside it (the state file itself is replaced on every save, so it cannot hold a
/// lock), held until the server exits. The lock file is left in place.
final class StateFileClaim: Sendable {
    private let lock: HeldLock

    /// Claims `stateFile`, creating its directory and lock file when missing; refuses
    /// when another server holds it.
    init(_ stateFile: String) throws(ServerStartupError) {
        let name = "--state-file \(stateFile)"
        if let slash = stateFile.lastIndex(of: "/"), slash != stateFile.startIndex {
            do {
                try AtomicFile.makeDirectories(String(stateFile[..<slash]))
            } catch {
                throw ServerStartupError("\(name): \(error.description)")
            }
        }
        lock = try HeldLock(
            stateFile + ".lock", flags: O_RDWR | O_CREAT, name: name,
            taken: "another edshim server keeps its registry in it: stop that one first, or give this one its own --state-file"
        )
    }
}
