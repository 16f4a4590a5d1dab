import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// Preallocated room for a batch of datagrams, as recvmmsg/sendmmsg want it: one
/// header, buffer, address and control area per datagram. Nothing is allocated per
/// datagram.
///
/// The buffers (64 KiB each, so any datagram passes whole) are one anonymous mapping:
/// the kernel commits a page only when a datagram is written into it, so an idle
/// proxy or one carrying small datagrams stays small.
///
/// An entry is one datagram, or, on a socket with receive coalescing on (UDP_GRO),
/// a burst of datagrams from one sender that the kernel handed over as one: every
/// `datagramSize(at:)` bytes is one datagram, the last one possibly shorter.
final class DatagramBatch {
    /// Datagrams per system call.
    static let capacity = 32
    /// Room per datagram: above the largest UDP payload (65,507 bytes over IPv4,
    /// 65,527 over IPv6).
    static let bufferSize = 65_536
    /// Room per datagram for its control messages (packet info, a segment size).
    static let controlSize = Int(EDSHIM_UDP_CONTROL_SPACE)

    /// One header per datagram; `msg_iov` points at its own entry of `vectors`.
    let messages: UnsafeMutablePointer<edshim_mmsghdr>
    /// One buffer descriptor per datagram, contiguous: consecutive datagrams can go
    /// out as one segmented send.
    let vectors: UnsafeMutablePointer<iovec>
    /// Which datagrams may be sent together: same destination and source.
    let groups: UnsafeMutablePointer<Int32>
    /// The size of each datagram of a coalesced entry; 0 for an entry of one datagram,
    /// -1 for one whose control messages were cut short (see `isUnreadable`).
    private let segmentSizes: UnsafeMutablePointer<Int>
    private let names: UnsafeMutablePointer<sockaddr_in6>
    private let controls: UnsafeMutableRawPointer
    private let buffers: UnsafeMutableRawPointer
    private let mappingSize: Int

    /// Maps the buffers; fails only when the address space is exhausted.
    init() throws(ShimFailure) {
        let count = Self.capacity
        mappingSize = count * Self.bufferSize
        let mapping = mmap(nil, mappingSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapping, mapping != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .system("mapping \(mappingSize / 1024) KiB of datagram buffers")
        }
        buffers = mapping
        messages = .allocate(capacity: count)
        messages.initialize(repeating: edshim_mmsghdr(), count: count)
        vectors = .allocate(capacity: count)
        vectors.initialize(repeating: iovec(), count: count)
        groups = .allocate(capacity: count)
        groups.initialize(repeating: 0, count: count)
        segmentSizes = .allocate(capacity: count)
        segmentSizes.initialize(repeating: 0, count: count)
        names = .allocate(capacity: count)
        names.initialize(repeating: sockaddr_in6(), count: count)
        controls = .allocate(byteCount: count * Self.controlSize, alignment: 16)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: count * Self.controlSize)
        for index in 0..<count {
            vectors[index].iov_base = buffers + index * Self.bufferSize
            messages[index].msg_hdr.msg_iov = vectors + index
            messages[index].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        munmap(buffers, mappingSize)
        messages.deallocate()
        vectors.deallocate()
        groups.deallocate()
        segmentSizes.deallocate()
        names.deallocate()
        controls.deallocate()
    }

    /// Resets `range` to take datagrams: whole buffers, with room for the sender's
    /// address (`withNames`) and control messages (`withControl`: packet info, the
    /// segment size of a coalesced receive).
    func prepareToReceive(_ range: Range<Int>, withNames: Bool, withControl: Bool) {
        for index in range {
            segmentSizes[index] = 0
            vectors[index].iov_len = Self.bufferSize
            messages[index].msg_len = 0
            messages[index].msg_hdr.msg_flags = 0
            if withNames {
                messages[index].msg_hdr.msg_name = UnsafeMutableRawPointer(names + index)
                messages[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            } else {
                messages[index].msg_hdr.msg_name = nil
                messages[index].msg_hdr.msg_namelen = 0
            }
            if withControl {
                messages[index].msg_hdr.msg_control = controls + index * Self.controlSize
                messages[index].msg_hdr.msg_controllen = Self.controlSize
            } else {
                messages[index].msg_hdr.msg_control = nil
                messages[index].msg_hdr.msg_controllen = 0
            }
        }
    }

    /// Receives into `range` (prepared) without blocking; the count received, 0 when
    /// nothing is waiting, or -1 with errno for a socket error (which it clears).
    func receive(_ fd: Int32, into range: Range<Int>) -> Int {
        while true {
            let count = edshim_recvmmsg(fd, messages + range.lowerBound, UInt32(range.count), Int32(MSG_DONTWAIT))
            if count >= 0 { return Int(count) }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1
        }
    }

    /// The sender of a datagram received with names.
    func sender(at index: Int) -> UnsafePointer<sockaddr_in6> {
        UnsafePointer(names + index)
    }

    /// Length of the sender address the kernel wrote.
    func senderLength(at index: Int) -> socklen_t {
        messages[index].msg_hdr.msg_namelen
    }

    /// The header of datagram `index`, to read its control messages.
    func header(at index: Int) -> UnsafePointer<msghdr> {
        UnsafeRawPointer(messages + index).assumingMemoryBound(to: msghdr.self)
    }

    /// Bytes in entry `index` once it is addressed for sending.
    func length(at index: Int) -> Int {
        vectors[index].iov_len
    }

    /// Reads how the kernel coalesced the entries of `range`, just received with
    /// control messages; call before they are addressed.
    func readCoalescing(_ range: Range<Int>) {
        for index in range {
            segmentSizes[index] = Int(edshim_received_segment_size(header(at: index)))
        }
    }

    /// Whether entry `index` came with its control messages cut short (other options
    /// turned on on dockerd's socket filled the room): it may hold several datagrams
    /// and nothing says where each ends, so it cannot be sent on.
    func isUnreadable(at index: Int) -> Bool {
        segmentSizes[index] < 0
    }

    /// Bytes of each datagram in entry `index` (the last one may be shorter).
    func datagramSize(at index: Int) -> Int {
        let size = segmentSizes[index]
        let length = vectors[index].iov_len
        return size > 0 && size < length ? size : length
    }

    /// How many datagrams entry `index` holds.
    func datagramCount(at index: Int) -> Int {
        let size = datagramSize(at: index)
        return size > 0 ? (vectors[index].iov_len + size - 1) / size : 1
    }

    /// Readies a received datagram to be sent on a connected socket, as it came.
    func addressToPeer(at index: Int) {
        groups[index] = 0
        vectors[index].iov_len = Int(messages[index].msg_len)
        messages[index].msg_hdr.msg_name = nil
        messages[index].msg_hdr.msg_namelen = 0
        messages[index].msg_hdr.msg_control = nil
        messages[index].msg_hdr.msg_controllen = 0
    }

    /// Readies a received datagram to be sent to `client`, leaving from `source`;
    /// datagrams with the same `group` share both and may go out together.
    func address(at index: Int, to client: UnsafePointer<sockaddr_in6>, length: socklen_t, from source: ReplySource, group: Int32) {
        groups[index] = group
        vectors[index].iov_len = Int(messages[index].msg_len)
        names[index] = client.pointee
        messages[index].msg_hdr.msg_name = UnsafeMutableRawPointer(names + index)
        messages[index].msg_hdr.msg_namelen = length
        let control = controls + index * Self.controlSize
        let controlLength = source.encode(into: control, capacity: Self.controlSize)
        messages[index].msg_hdr.msg_control = controlLength > 0 ? control : nil
        messages[index].msg_hdr.msg_controllen = controlLength
    }
}
