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
/// Only datagrams small enough for any path MTU are combined, and only where the kernel
/// has UDP GSO (Linux 4.18): an older one ignores the control message and would send
/// the whole list as one datagram. Should the kernel refuse a combined send anyway (an
/// odd route), its datagrams go one by one, and after repeated refusals with no
/// success the sender stops combining.
final class SegmentingSender {
    /// Largest datagram combined: a 1,200-byte payload fits the IPv6 minimum MTU
    /// (1,280) with its headers, so no route refuses the segment size.
    static let largestSegment = 1200
    /// The kernel's UDP_MAX_SEGMENTS.
    static let mostSegments = 64
    /// The most one send may carry in all: an IPv4 datagram's largest payload (the
    /// kernel refuses a larger combined send with EMSGSIZE, which would drop it whole).
    static let mostBytes = 65_507
    private static let refusalsBeforeGivingUp = 16

    private let units: UnsafeMutablePointer<edshim_mmsghdr>
    private let unitStarts: UnsafeMutablePointer<Int>
    private let controls: UnsafeMutableRawPointer
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
        let count = DatagramBatch.capacity
        units = .allocate(capacity: count)
        units.initialize(repeating: edshim_mmsghdr(), count: count)
        unitStarts = .allocate(capacity: count + 1)
        unitStarts.initialize(repeating: 0, count: count + 1)
        controls = .allocate(byteCount: count * controlSize, alignment: 16)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: count * controlSize)
    }

    deinit {
        units.deallocate()
        unitStarts.deallocate()
        controls.deallocate()
    }

    /// Sends the addressed datagrams `range` of `batch` on `fd`. UDP semantics: a
    /// datagram the socket refuses is dropped and the rest still go; when the socket's
    /// buffer is full, the remainder is dropped.
    func send(_ range: Range<Int>, of batch: DatagramBatch, on fd: Int32) {
        guard combining, range.count > 1 else {
            sendEach(range, of: batch, on: fd)
            return
        }
        let count = plan(range, of: batch)
        Self.sendAll(units, count: count, on: fd, sent: noteSuccess) { unit, code in
            let datagrams = unitStarts[unit]..<unitStarts[unit + 1]
            if datagrams.count > 1, code == EINVAL || code == EIO {
                noteRefusal()
                sendEach(datagrams, of: batch, on: fd)
            } else {
                noteDropped(datagrams.count, code)
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

    /// Groups `range` into units (one send each); returns how many.
    private func plan(_ range: Range<Int>, of batch: DatagramBatch) -> Int {
        var count = 0
        var start = range.lowerBound
        while start < range.upperBound {
            let size = batch.length(at: start)
            var end = start + 1
            if size > 0, size <= Self.largestSegment {
                while end < range.upperBound, end - start < Self.mostSegments, (end - start + 1) * size <= Self.mostBytes,
                      batch.groups[end] == batch.groups[start] {
                    let next = batch.length(at: end)
                    guard next > 0, next <= size else { break }
                    end += 1
                    // Only the last segment may be shorter.
                    if next < size { break }
                }
            }
            describe(unit: count, datagrams: start..<end, segmentSize: size, of: batch)
            unitStarts[count] = start
            count += 1
            start = end
        }
        unitStarts[count] = range.upperBound
        return count
    }

    private func describe(unit index: Int, datagrams: Range<Int>, segmentSize: Int, of batch: DatagramBatch) {
        let first = batch.messages[datagrams.lowerBound].msg_hdr
        var header = first
        header.msg_iov = batch.vectors + datagrams.lowerBound
        header.msg_iovlen = datagrams.count
        if datagrams.count > 1 {
            let control = controls + index * controlSize
            var used = 0
            if let own = first.msg_control, first.msg_controllen > 0 {
                control.copyMemory(from: own, byteCount: first.msg_controllen)
                used = first.msg_controllen
            }
            let length = edshim_append_segment_size(control, used, controlSize, UInt16(segmentSize))
            header.msg_control = control
            header.msg_controllen = length
        }
        units[index].msg_hdr = header
        units[index].msg_len = 0
    }

    private func sendEach(_ range: Range<Int>, of batch: DatagramBatch, on fd: Int32) {
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

    private func noteSuccess(_ units: Range<Int>) {
        guard combinedSends == 0 else { return }
        for index in units where unitStarts[index + 1] - unitStarts[index] > 1 {
            combinedSends += 1
            return
        }
    }

    private func noteDropped(_ count: Int, _ code: Int32) {
        dropped += count
        lastDropReason = code
    }

    private func noteRefusal() {
        refusals += 1
        if combinedSends == 0, refusals >= Self.refusalsBeforeGivingUp { combining = false }
    }
}
