import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// Sends a batch's datagrams with as few trips through the network stack as the
/// kernel allows: consecutive datagrams of one group (same destination and source)
/// and the same size go out as one UDP GSO send — one buffer list, one `UDP_SEGMENT`
/// control message, cut into the original datagrams by the kernel — and every send of
/// the batch goes in one sendmmsg. The receiver sees the same datagrams, in order.
///
/// Only datagrams of up to 1,200 bytes are combined (the IPv6 minimum MTU less its
/// headers; a route with a smaller MTU refuses the send, EMSGSIZE, and its datagrams go
/// one by one), and only where the kernel
/// has UDP GSO (Linux 4.18): an older one ignores the control message and would send
/// the whole list as one datagram. Should the kernel refuse a combined send anyway (an
/// odd route), its datagrams go one by one, and after repeated refusals with no
/// success the sender stops combining.
///
/// A coalesced entry (a burst the kernel received as one) is sent as its datagrams:
/// combined like the rest where they may be, else cut apart, never as one datagram.
final class SegmentingSender {
    /// Largest datagram combined: a 1,200-byte payload fits the IPv6 minimum MTU
    /// (1,280) with its headers, so hardly a route refuses the segment size (an IPv4
    /// one of a smaller MTU does, and the datagrams then go one by one).
    static let largestSegment = 1200
    /// The kernel's UDP_MAX_SEGMENTS (64 up to Linux 6.11, 128 since).
    static let mostSegments = 64
    /// The most one send may carry in all: an IPv4 datagram's largest payload (the
    /// kernel refuses a larger combined send with EMSGSIZE, which would drop it whole).
    static let mostBytes = 65_507
    private static let refusalsBeforeGivingUp = 16
    /// Sends prepared per sendmmsg, and datagrams cut from one entry per sendmmsg.
    private static let unitCapacity = DatagramBatch.capacity

    private let units: UnsafeMutablePointer<edshim_mmsghdr>
    /// The entries each unit carries: unit `i` is entries `unitStarts[i] ..< unitStarts[i + 1]`.
    private let unitStarts: UnsafeMutablePointer<Int>
    /// Datagrams in each unit.
    private let unitDatagrams: UnsafeMutablePointer<Int>
    private let controls: UnsafeMutableRawPointer
    /// The parts an entry is cut into: runs of datagrams, and (apart, which a refused
    /// run falls back to while `runs` is still being sent) single datagrams.
    private let runs = DatagramParts(capacity: SegmentingSender.unitCapacity)
    private let apart = DatagramParts(capacity: SegmentingSender.unitCapacity)
    /// The control messages of every run of one entry: its reply source, its segment size.
    private let runControl: UnsafeMutableRawPointer
    private let controlSize = DatagramBatch.controlSize
    private var combining: Bool
    private var combinedSends = 0
    private var refusals = 0
    /// Datagrams the kernel refused and that were dropped, since `takeDropped()`,
    /// and the errno of the last one.
    private var dropped = 0
    private var lastDropReason: Int32 = 0

    init() {
        let probe = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        combining = probe >= 0 && edshim_udp_segmentation_supported(probe) != 0
        if probe >= 0 { close(probe) }
        let count = Self.unitCapacity
        units = .allocate(capacity: count)
        units.initialize(repeating: edshim_mmsghdr(), count: count)
        unitStarts = .allocate(capacity: count + 1)
        unitStarts.initialize(repeating: 0, count: count + 1)
        unitDatagrams = .allocate(capacity: count)
        unitDatagrams.initialize(repeating: 0, count: count)
        controls = .allocate(byteCount: count * controlSize, alignment: 16)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: count * controlSize)
        runControl = .allocate(byteCount: controlSize, alignment: 16)
        runControl.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
    }

    deinit {
        units.deallocate()
        unitStarts.deallocate()
        unitDatagrams.deallocate()
        controls.deallocate()
        runControl.deallocate()
    }

    /// Sends the addressed entries `range` of `batch` on `fd`. UDP semantics: a
    /// datagram the socket refuses is dropped and the rest still go; when the socket's
    /// buffer is full, the remainder is dropped.
    func send(_ range: Range<Int>, of batch: DatagramBatch, on fd: Int32) {
        guard combining, range.count > 1 || batch.datagramCount(at: range.lowerBound) > 1 else {
            sendEach(range, of: batch, on: fd)
            return
        }
        var start = range.lowerBound
        while start < range.upperBound {
            let (count, end) = plan(start..<range.upperBound, of: batch)
            sendUnits(count, of: batch, on: fd)
            start = end
            if start < range.upperBound, mustCut(start, of: batch) {
                sendCut(start, of: batch, on: fd)
                start += 1
            }
        }
    }

    /// How many datagrams were refused and dropped since the last call, and why (the
    /// errno of the last one); nil when none was.
    func takeDropped() -> (count: Int, reason: Int32)? {
        guard dropped > 0 else { return nil }
        defer { dropped = 0 }
        return (dropped, lastDropReason)
    }

    // MARK: Combining

    /// Groups entries from the start of `range` into units (one send each), up to the
    /// first entry that must be cut apart or as many units as there is room for;
    /// returns how many units, and where it stopped.
    private func plan(_ range: Range<Int>, of batch: DatagramBatch) -> (units: Int, end: Int) {
        var count = 0
        var start = range.lowerBound
        while start < range.upperBound, count < Self.unitCapacity, !mustCut(start, of: batch) {
            let size = batch.datagramSize(at: start)
            var end = start + 1
            var datagrams = batch.datagramCount(at: start)
            var bytes = batch.length(at: start)
            // More may follow only after a full-size datagram: only the last is shorter.
            var open = size > 0 && size <= Self.largestSegment && bytes % size == 0
            while open, end < range.upperBound, batch.groups[end] == batch.groups[start], !mustCut(end, of: batch) {
                let next = batch.length(at: end)
                let nextDatagrams = batch.datagramCount(at: end)
                let sameSize = batch.datagramSize(at: end) == size || (nextDatagrams == 1 && next < size)
                guard next > 0, sameSize, datagrams + nextDatagrams <= Self.mostSegments, bytes + next <= Self.mostBytes else { break }
                end += 1
                datagrams += nextDatagrams
                bytes += next
                open = next % size == 0
            }
            describe(unit: count, entries: start..<end, datagrams: datagrams, segmentSize: size, of: batch)
            count += 1
            start = end
        }
        return (count, start)
    }

    /// Whether entry `index` holds datagrams that cannot go out in one send of their
    /// own: too large to combine, or too many for one send.
    private func mustCut(_ index: Int, of batch: DatagramBatch) -> Bool {
        if batch.isUnreadable(at: index) { return true }
        let datagrams = batch.datagramCount(at: index)
        return datagrams > 1 && (batch.datagramSize(at: index) > Self.largestSegment || datagrams > Self.mostSegments || batch.length(at: index) > Self.mostBytes)
    }

    private func describe(unit index: Int, entries: Range<Int>, datagrams: Int, segmentSize: Int, of batch: DatagramBatch) {
        let first = batch.messages[entries.lowerBound].msg_hdr
        var header = first
        header.msg_iov = batch.vectors + entries.lowerBound
        header.msg_iovlen = entries.count
        if datagrams > 1 {
            let control = controls + index * controlSize
            header.msg_control = control
            header.msg_controllen = Self.appendSegmentSize(segmentSize, to: first, into: control, capacity: controlSize)
        }
        units[index].msg_hdr = header
        units[index].msg_len = 0
        unitStarts[index] = entries.lowerBound
        unitStarts[index + 1] = entries.upperBound
        unitDatagrams[index] = datagrams
    }

    /// Writes `header`'s own control messages (its reply source) into `control`, then
    /// a UDP_SEGMENT one; returns the length.
    private static func appendSegmentSize(_ size: Int, to header: msghdr, into control: UnsafeMutableRawPointer, capacity: Int) -> Int {
        var used = 0
        if let own = header.msg_control, header.msg_controllen > 0 {
            control.copyMemory(from: own, byteCount: header.msg_controllen)
            used = header.msg_controllen
        }
        return edshim_append_segment_size(control, used, capacity, UInt16(size))
    }

    private func sendUnits(_ count: Int, of batch: DatagramBatch, on fd: Int32) {
        guard count > 0 else { return }
        Self.sendAll(units, count: count, on: fd, sent: noteSuccess) { unit, code in
            let entries = unitStarts[unit]..<unitStarts[unit + 1]
            if unitDatagrams[unit] > 1, Self.refusesCombining(code) {
                let droppedBefore = dropped
                sendEach(entries, of: batch, on: fd)
                noteRefusal(ifTakenApart: unitDatagrams[unit], droppedSince: droppedBefore)
            } else {
                noteDropped(unitDatagrams[unit], code)
            }
        }
    }

    // MARK: Cutting entries apart

    /// Sends entry `index`'s datagrams in runs, each as many as one send carries,
    /// where they may be combined; else one by one.
    private func sendCut(_ index: Int, of batch: DatagramBatch, on fd: Int32) {
        let size = batch.datagramSize(at: index)
        guard combining, !batch.isUnreadable(at: index), size <= Self.largestSegment else {
            sendApart(index, of: batch, on: fd)
            return
        }
        let perRun = min(Self.mostSegments, Self.mostBytes / size)
        let controlLength = Self.appendSegmentSize(size, to: batch.messages[index].msg_hdr, into: runControl, capacity: controlSize)
        runs.cut(index, of: batch, every: perRun * size, control: runControl, controlLength: controlLength, plainUpTo: size) { count in
            // A run of one datagram is no combined send.
            Self.sendAll(runs.headers, count: count, on: fd, sent: { sent in
                if sent.contains(where: { runs.vectors[$0].iov_len > size }) { combinedSends += 1 }
            }) { run, code in
                let datagrams = (runs.vectors[run].iov_len + size - 1) / size
                if datagrams > 1, Self.refusesCombining(code) {
                    let droppedBefore = dropped
                    sendApart(index, of: batch, on: fd, within: runs.vectors[run])
                    noteRefusal(ifTakenApart: datagrams, droppedSince: droppedBefore)
                } else {
                    noteDropped(datagrams, code)
                }
            }
        }
    }

    /// Why the kernel refuses a send of several datagrams that it would take one by
    /// one: EINVAL or EIO where a route cannot segment, EMSGSIZE where the segment size
    /// is over the path MTU (no combined send is over the 65,507 bytes a datagram may
    /// carry, so it is not the total). One by one, the kernel fragments what it must.
    private static func refusesCombining(_ code: Int32) -> Bool {
        code == EINVAL || code == EIO || code == EMSGSIZE
    }

    /// Sends entry `index`'s datagrams (or those `within` its buffer) one by one.
    private func sendApart(_ index: Int, of batch: DatagramBatch, on fd: Int32, within: iovec? = nil) {
        if batch.isUnreadable(at: index) {
            noteDropped(1, EBADMSG)
            return
        }
        let header = batch.messages[index].msg_hdr
        apart.cut(index, of: batch, every: batch.datagramSize(at: index), within: within, control: header.msg_control, controlLength: header.msg_controllen) { count in
            Self.sendAll(apart.headers, count: count, on: fd, refused: { _, code in noteDropped(1, code) })
        }
    }

    // MARK: One by one

    /// Sends each datagram of `range` on its own: entries of one datagram as they are,
    /// coalesced entries cut apart.
    private func sendEach(_ range: Range<Int>, of batch: DatagramBatch, on fd: Int32) {
        var start = range.lowerBound
        for index in range where batch.datagramCount(at: index) > 1 || batch.isUnreadable(at: index) {
            sendWhole(start..<index, of: batch, on: fd)
            sendApart(index, of: batch, on: fd)
            start = index + 1
        }
        sendWhole(start..<range.upperBound, of: batch, on: fd)
    }

    private func sendWhole(_ range: Range<Int>, of batch: DatagramBatch, on fd: Int32) {
        guard !range.isEmpty else { return }
        Self.sendAll(batch.messages + range.lowerBound, count: range.count, on: fd, refused: { _, code in noteDropped(1, code) })
    }

    /// Sends `count` messages in as few sendmmsg calls as the socket takes. When its
    /// buffer is full the rest goes to `refused` (dropped); a message refused for an
    /// ICMP error the socket was holding (ECONNREFUSED, unreachable, a smaller path
    /// MTU) is tried once more (the error was an earlier datagram's); any other refusal
    /// goes to `refused` with the message's index and errno, and the rest still go.
    private static func sendAll(
        _ messages: UnsafeMutablePointer<edshim_mmsghdr>, count: Int, on fd: Int32,
        sent: (Range<Int>) -> Void = { _ in }, refused: (Int, Int32) -> Void = { _, _ in }
    ) {
        var next = 0
        var retried = -1
        while next < count {
            let taken = Int(edshim_sendmmsg(fd, messages + next, UInt32(count - next), 0))
            if taken > 0 {
                sent(next..<(next + taken))
                next += taken
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS {
                for index in next..<count { refused(index, code) }
                return
            }
            if Self.heldICMPErrors.contains(code), retried != next {
                retried = next
                continue
            }
            refused(next, code)
            next += 1
        }
    }

    /// What a connected UDP socket reports, once, at the next send after an ICMP error
    /// came back for an earlier datagram.
    private static let heldICMPErrors: Set<Int32> = [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, EPROTO, EMSGSIZE]

    private func noteSuccess(_ sent: Range<Int>) {
        guard combinedSends == 0 else { return }
        for index in sent where unitDatagrams[index] > 1 {
            combinedSends += 1
            return
        }
    }

    private func noteDropped(_ count: Int, _ code: Int32) {
        dropped += count
        lastDropReason = code
    }

    /// A combined send of `datagrams` was refused: it counts against combining only
    /// when the kernel took some of them one by one. Refused apart too (a reply source
    /// address gone from the host, EINVAL), the datagrams could not be sent at all.
    private func noteRefusal(ifTakenApart datagrams: Int, droppedSince droppedBefore: Int) {
        guard dropped - droppedBefore < datagrams else { return }
        refusals += 1
        if combinedSends == 0, refusals >= Self.refusalsBeforeGivingUp { combining = false }
    }
}
