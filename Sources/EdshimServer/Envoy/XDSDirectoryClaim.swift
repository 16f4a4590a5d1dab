import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One server per xds directory. Two servers writing the same `lds.json` would each
/// overwrite the other's ports (a second server that fails to start would still have
/// emptied Envoy's configuration), so the server claims the directory with an
/// exclusive `flock` before it writes anything, and holds it until it exits.
final class XDSDirectoryClaim: Sendable {
    private let lock: HeldLock
    /// True when the directory did not exist and this server created it: an Envoy
    /// started before still serves what it read from the one that was deleted.
    let created: Bool

    /// Creates the directory when missing (with a warning: an Envoy started before
    /// watches the old one) and claims it; refuses when another server holds it.
    init(_ directory: String, logger: Logger) throws {
        let existed = access(directory, F_OK) == 0
        do {
            try AtomicFile.makeDirectories(directory)
        } catch {
            throw ServerError("\(error.description): check --xds-dir (Envoy reads its configuration there)")
        }
        created = !existed
        if created {
            logger.warning("created the xds directory (on a first start, nothing to do); an Envoy started before this must be restarted to follow it (Envoy watches the directory it found at start), and `edshim resync` run after it (contrib/envoy-edshim.service does)", metadata: ["xds_dir": "\(directory)"])
        }
        lock = try HeldLock(
            directory, flags: O_RDONLY | O_DIRECTORY, name: "--xds-dir \(directory)",
            taken: "another edshim server already publishes into it: stop that one first, or give this one its own --xds-dir (and Envoy a bootstrap for it)"
        )
    }

    /// Refuses a directory other users may write into (checked before anything is
    /// claimed or written): one who could replace lds.json would give Envoy
    /// listeners of their own.
    static func refuseWritableByOthers(_ directory: String) throws(ServerError) {
        if let refusal = WritableByOthers.refusal(directory: directory) {
            throw ServerError("--xds-dir \(directory): \(refusal)")
        }
    }

    /// The directory this server holds the claim on (its device and inode).
    var identity: FileIdentity? { lock.identity }

    /// Claims the directory again once it was deleted and made again
    /// (`XDSPublisher.restoreIfLost`); returns whether it had to.
    func relockIfLost() throws(ServerError) -> Bool {
        try lock.relockIfLost()
    }
}
