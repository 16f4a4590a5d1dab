#if canImport(Glibc)
import Glibc
#endif

/// Sees files of one directory being read (inotify: opened, then closed after
/// reading), so that a writer can wait until its reader took in one file before it
/// writes the next.
///
/// The xDS publisher needs it: Envoy watches `cds.json` and `lds.json` with a watcher
/// each, and when both files changed before its main loop came round, it may apply
/// the listeners before the clusters they route to — a request in between gets a 503
/// (no cluster). Writing `lds.json` only once Envoy has read `cds.json` keeps the order.
///
/// The reader may be absent (Envoy not running): a wait that runs out of patience
/// makes later waits return at once, until a read is seen again.
public actor FileReadWatcher {
    private let descriptor: Int32
    private let patience: Duration
    private var readerSeen = true
    /// What happened to each file since it was last replaced (`mark`): a read counts
    /// when the file was opened after the replacement (the rename that put the new
    /// version in place) and then closed after reading. A reader that opened the old
    /// version before, also between the mark and the rename, read the old version; the
    /// server's own opens for writing are closed as writes. Per file, so that
    /// concurrent waits and marks never take each other's reads away.
    private struct SinceReplaced {
        /// The new version was renamed into place (IN_MOVED_TO): opens count from then on.
        var replaced = false
        /// Opened since the replacement and not closed yet.
        var open = 0
        /// Opened since the replacement and closed after reading.
        var reads = 0

        var wasRead: Bool { reads > 0 }
    }
    private var sinceReplaced: [String: SinceReplaced] = [:]
    /// When a read was last seen; nil before the first.
    private var lastRead: ContinuousClock.Instant?
    /// When a file was replaced that the reader has not read anything since: nil
    /// while it has read after the last replacement.
    private var unreadSince: ContinuousClock.Instant?

    /// Watches `directory`; nil when inotify is unavailable (the reason in `errno`).
    public init?(directory: String, patience: Duration = .milliseconds(250)) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        guard inotify_add_watch(fd, directory, UInt32(IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_MOVED_TO)) >= 0 else {
            let code = errno
            close(fd)
            errno = code
            return nil
        }
        descriptor = fd
        self.patience = patience
    }

    deinit {
        close(descriptor)
    }

    /// Whether a file of the directory was ever seen read.
    public var anyReadSeen: Bool {
        noteReads()
        return lastRead != nil
    }

    /// How long since a file of the directory was last seen read; nil when none was.
    public var readNothingFor: Duration? {
        noteReads()
        return lastRead.map { ContinuousClock.now - $0 }
    }

    /// How long the reader has read nothing since a file was replaced (counted from
    /// the earliest such replacement); nil when it read after the last one.
    public var unreadFor: Duration? {
        noteReads()
        return unreadSince.map { ContinuousClock.now - $0 }
    }

    /// Call right before replacing file `name` (renaming its new version into place):
    /// only its reads after that rename count for `waitForRead(of: name)`.
    public func mark(_ name: String) {
        noteReads()
        sinceReplaced[name] = SinceReplaced()
        if unreadSince == nil { unreadSince = ContinuousClock.now }
    }

    /// Waits until `name` was read since its last `mark`, for at most the patience
    /// (not at all while the reader is thought absent). Returns whether it was read;
    /// false at once when the task is cancelled (which says nothing of the reader).
    ///
    /// `atMost`: wait that long whatever the reader was thought to be, and leave that
    /// judgement alone (for a caller that must know the file was read, not merely
    /// keep an order).
    @discardableResult
    public func waitForRead(of name: String, atMost: Duration? = nil) async -> Bool {
        let deadline = ContinuousClock.now + (atMost ?? (readerSeen ? patience : .zero))
        while true {
            noteReads()
            if sinceReplaced[name]?.wasRead == true {
                readerSeen = true
                return true
            }
            if Task.isCancelled { return false }
            guard ContinuousClock.now < deadline else {
                if atMost == nil { readerSeen = false }
                return false
            }
            try? await Task.sleep(for: .microseconds(200))
        }
    }

    /// Takes in the reads since the last look: they count for the waits on files
    /// marked before, and show that the reader is there.
    private func noteReads() {
        var read = false
        for (name, mask) in takeEvents() {
            var file = sinceReplaced[name, default: SinceReplaced()]
            if mask & UInt32(IN_MOVED_TO) != 0 { file.replaced = true }
            if mask & UInt32(IN_OPEN) != 0, file.replaced { file.open += 1 }
            if mask & UInt32(IN_CLOSE_WRITE) != 0 { file.open = max(0, file.open - 1) }
            if mask & UInt32(IN_CLOSE_NOWRITE) != 0 {
                read = true
                if file.open > 0 {
                    file.open -= 1
                    file.reads += 1
                }
            }
            sinceReplaced[name] = file
        }
        guard read else { return }
        readerSeen = true
        lastRead = ContinuousClock.now
        unreadSince = nil
    }

    /// The opens and closes of the directory's files since the last call, in order:
    /// each file's name and event mask.
    private func takeEvents() -> [(name: String, mask: UInt32)] {
        var events: [(name: String, mask: UInt32)] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return events }
            var offset = 0
            let headerSize = MemoryLayout<inotify_event>.size
            let maskOffset = MemoryLayout<inotify_event>.offset(of: \.mask)!
            let lengthOffset = MemoryLayout<inotify_event>.offset(of: \.len)!
            while offset + headerSize <= count {
                let mask = buffer.withUnsafeBytes { $0.load(fromByteOffset: offset + maskOffset, as: UInt32.self) }
                let nameLength = buffer.withUnsafeBytes { Int($0.load(fromByteOffset: offset + lengthOffset, as: UInt32.self)) }
                let nameBytes = buffer[(offset + headerSize)..<min(count, offset + headerSize + nameLength)]
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                if !name.isEmpty { events.append((name, mask)) }
                offset += headerSize + nameLength
            }
        }
    }
}
