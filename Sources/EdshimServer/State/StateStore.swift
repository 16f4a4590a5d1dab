import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Keeps the registry on disk (`--state-file`), replaced atomically and durably after
/// every change, so a server that was killed comes back with every registration.
actor StateStore {
    private let path: String
    /// This server's claim on the file: nothing is written into one another server
    /// claimed.
    private let claim: StateFileClaim
    /// The boot this server runs in, written into every save.
    private let bootID = StateDocument.currentBootID()
    private let logger: Logger
    private let health: WriteHealth
    private var coalescer: Coalescer<Registry>?
    /// The state file this server read or last wrote, to see it deleted or replaced.
    private var writtenIdentity: FileIdentity?

    init(path: String, claim: StateFileClaim, health: WriteHealth, logger: Logger) {
        self.path = path
        self.claim = claim
        self.health = health
        self.logger = logger
    }

    /// The registrations in the state file; nil when it is missing, or cannot be read
    /// (an I/O error) or decoded, which is reported (one that does not decode is also
    /// moved aside for inspection): what was registered is then unknown, and the
    /// caller takes back the running shims Envoy serves (`LostStateRecovery`). One
    /// written in another boot of the host is empty: its shims all ended with that
    /// boot, and a process of this boot may have one's PID and start time again.
    /// The most of a state file read: far more than any registry takes.
    static let largestRead = 64 << 20

    func load() throws -> [Registration]? {
        if let directory = AtomicFile.parent(of: path) { try AtomicFile.makeDirectories(directory) }
        coalescer = Coalescer { [self] registry in await self.write(registry) }
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & S_IFMT != S_IFREG {
            // A FIFO would block the start on its open; a directory cannot be read, nor
            // replaced by a save.
            let directory = status.st_mode & S_IFMT == S_IFDIR
            let saves = directory ? "no save can replace a directory: remove it, or give --state-file a file's path" : "the first save replaces it"
            logger.error("the state file is not a regular file; starting without it (taking back the running shims whose ports Envoy serves; \(saves))", metadata: [
                "state_file": "\(path)", "type": "\(directory ? "directory" : status.st_mode & S_IFMT == S_IFIFO ? "FIFO" : "special file")",
            ])
            return nil
        }
        guard let bytes = SystemFile.read(path, limit: Self.largestRead) else {
            let code = errno
            if code != ENOENT {
                logger.error("the state file cannot be read; starting without it (taking back the running shims whose ports Envoy serves; edshim resync registers any other)", metadata: [
                    "state_file": "\(path)", "error": "\(ErrorText.describe(code))",
                ])
            }
            return nil
        }
        let contents: StateDocument.Contents
        writtenIdentity = FileIdentity(path)
        do {
            contents = try StateDocument.decode(bytes)
        } catch {
            let aside = "\(path).corrupt-\(time(nil))"
            let moved = rename(path, aside) == 0
            if moved {
                writtenIdentity = nil
                removeOldCopiesSetAside()
            }
            logger.error("the state file is unreadable; starting without it (taking back the running shims whose ports Envoy serves; edshim resync registers any other)", metadata: [
                "state_file": "\(path)", "kept_as": "\(moved ? aside : "(could not move it)")",
                "error": "\(bytes.count >= Self.largestRead ? "larger than the \(Self.largestRead >> 20) MiB a state file is read up to (no state file edshim writes comes near it)" : error.message)",
            ])
            return nil
        }
        if let saved = contents.bootID, let bootID, saved != bootID, !contents.registrations.isEmpty {
            logger.notice("the state file is from before the host restarted: none of its shims runs any more; starting without its registrations (the shims dockerd starts now register again)", metadata: [
                "state_file": "\(path)", "registrations": "\(contents.registrations.count)", "saved_boot_id": "\(saved)", "boot_id": "\(bootID)",
            ])
            return []
        }
        return contents.registrations
    }

    /// Unreadable state files set aside and kept for inspection: the newest.
    static let copiesSetAsideKept = 3

    /// Removes all but the newest `copiesSetAsideKept` unreadable state files set aside
    /// (`<path>.corrupt-<time>`), so that a file spoiled again and again does not fill
    /// the disk with copies.
    private func removeOldCopiesSetAside() {
        let directory = AtomicFile.parent(of: path) ?? "."
        let prefix = String(path.split(separator: "/").last ?? "") + ".corrupt-"
        let copies = ShimProcesses.entryNames(in: directory).compactMap { name in
            name.hasPrefix(prefix) ? Int(name.dropFirst(prefix.count)).map { (name, $0) } : nil
        }
        for (name, _) in copies.sorted(by: { $0.1 > $1.1 }).dropFirst(Self.copiesSetAsideKept) {
            unlink(directory + "/" + name)
        }
    }

    /// Saves `registry`, the registrar's `revision`; returns true once it (or a newer
    /// one) is on disk, false once a write of it failed (a full or failing disk: logged,
    /// reported by `/healthz`, and tried again in the background). A registration is
    /// not held up for it: Envoy serves it, and `edshim resync` restores it after a
    /// restart that found the state file behind.
    @discardableResult
    func save(_ registry: Registry, revision: Int) async -> Bool {
        await coalescer?.attempt(registry, revision: revision) ?? true
    }

    /// Takes `registry`, restored from the state file, as what the file holds, for
    /// `restoreIfLost` to write again should the file go before anything changed.
    func remember(_ registry: Registry) async {
        await coalescer?.remember(registry, revision: 0)
    }

    /// Why the state file could not be claimed again, as last logged.
    private var claimRefused: String?

    /// Claims the state file again when its lock file went, then writes the file again
    /// when it was deleted or replaced behind the server's back (`rm -rf
    /// /var/lib/edshim`): else it stays missing until the registry changes, and a
    /// restart meanwhile starts without the registrations. Called every second
    /// (`OnDiskGuard`). A file another server claimed meanwhile is left to it: an
    /// error to look into, logged once per reason and tried again every second.
    func restoreIfLost() async {
        do throws(ServerError) {
            if try claim.relockIfLost() {
                logger.notice("the state file was deleted or replaced; claimed again")
            }
            claimRefused = nil
        } catch {
            if claimRefused != error.description {
                claimRefused = error.description
                logger.error("the state file was deleted or replaced and cannot be claimed again; writing nothing into it: \(error.description)")
            }
            return
        }
        let current = FileIdentity(path)
        guard let writtenIdentity, current != writtenIdentity else { return }
        logger.warning("the state file was \(current == nil ? "deleted" : "replaced"); writing it again", metadata: ["state_file": "\(path)"])
        self.writtenIdentity = nil
        await coalescer?.rewrite()
    }

    /// Whether `registry` is on disk; a failure is tried again (`Coalescer`).
    private func write(_ registry: Registry) -> Bool {
        do {
            _ = try claim.relockIfLost()
            try AtomicFile.write(StateDocument.encode(registry, bootID: bootID), to: path, mode: 0o640, durable: true)
            writtenIdentity = FileIdentity(path)
            if let failedFor = health.succeeded(.stateFile) {
                logger.notice("the state file is saved again", metadata: ["failed_for": "\(failedFor.components.seconds) s"])
            }
            return true
        } catch {
            let description = "\(error)"
            if health.failed(.stateFile, description) {
                logger.error("cannot save the state file; retrying (a restart meanwhile takes back from lds.json the ports Envoy serves; logged again only when the reason changes)", metadata: ["error": "\(description)"])
            } else {
                logger.debug("cannot save the state file again; retrying", metadata: ["error": "\(description)"])
            }
            return false
        }
    }
}
