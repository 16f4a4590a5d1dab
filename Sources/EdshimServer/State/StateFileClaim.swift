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
    private let stateFile: String
    private let lock: HeldLock

    /// Claims `stateFile`, creating its directory and lock file when missing; refuses
    /// when another server holds it.
    init(_ stateFile: String) throws(ServerError) {
        self.stateFile = stateFile
        try Self.makeDirectory(of: stateFile)
        lock = try HeldLock(
            // Not through a symbolic link: one planted beside the state file would have
            // root create, or lock, a file anywhere.
            stateFile + ".lock", flags: O_RDWR | O_CREAT | O_NOFOLLOW, name: "--state-file \(stateFile)",
            taken: "another edshim server keeps its registry in it: stop that one first, or give this one its own --state-file"
        )
    }

    /// Claims the file again when its lock file was deleted (`rm -rf /var/lib/edshim`)
    /// or replaced, its directory made again first; returns whether it had to.
    func relockIfLost() throws(ServerError) -> Bool {
        try Self.makeDirectory(of: stateFile)
        return try lock.relockIfLost()
    }

    /// Refuses a state file in a directory other users may write into (checked
    /// before anything is claimed or written): one who could replace the file would
    /// choose what the server restores.
    static func refuseWritableByOthers(_ stateFile: String) throws(ServerError) {
        if let refusal = WritableByOthers.refusal(directory: AtomicFile.parent(of: stateFile) ?? "/") {
            throw ServerError("--state-file \(stateFile): \(refusal)")
        }
    }

    private static func makeDirectory(of stateFile: String) throws(ServerError) {
        guard let slash = stateFile.lastIndex(of: "/"), slash != stateFile.startIndex else { return }
        try refuseWritableByOthers(stateFile)
        do {
            try AtomicFile.makeDirectories(String(stateFile[..<slash]))
        } catch {
            throw ServerError("--state-file \(stateFile): \(error.description)")
        }
    }
}
