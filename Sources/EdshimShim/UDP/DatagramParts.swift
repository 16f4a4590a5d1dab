import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// Room to describe parts of one entry's buffer as messages of their own.
final class DatagramParts {
    let headers: UnsafeMutablePointer<edshim_mmsghdr>
    let vectors: UnsafeMutablePointer<iovec>
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: edshim_mmsghdr(), count: capacity)
        vectors = .allocate(capacity: capacity)
        vectors.initialize(repeating: iovec(), count: capacity)
    }

    deinit {
        headers.deallocate()
        vectors.deallocate()
    }

    /// Describes entry `index`'s payload (or the `within` part of it) as parts of
    /// `partBytes` each, the last one possibly shorter, every one with the entry's
    /// destination and `control` (a part of at most `plainUpTo` bytes, one datagram,
    /// with the entry's own control: no segment size); hands them to `send` as many at
    /// a time as there is room for.
    func cut(
        _ index: Int, of batch: DatagramBatch, every partBytes: Int, within: iovec? = nil,
        control: UnsafeMutableRawPointer?, controlLength: Int, plainUpTo plain: Int = 0, send: (Int) -> Void
    ) {
        let whole = within ?? batch.vectors[index]
        guard let base = whole.iov_base, partBytes > 0 else { return }
        let own = batch.messages[index].msg_hdr
        var header = own
        header.msg_iovlen = 1
        var offset = 0
        while offset < whole.iov_len {
            var count = 0
            while count < capacity, offset < whole.iov_len {
                let length = min(partBytes, whole.iov_len - offset)
                vectors[count] = iovec(iov_base: base + offset, iov_len: length)
                header.msg_iov = vectors + count
                if length <= plain {
                    header.msg_control = own.msg_control
                    header.msg_controllen = own.msg_controllen
                } else {
                    header.msg_control = controlLength > 0 ? control : nil
                    header.msg_controllen = controlLength
                }
                headers[count].msg_hdr = header
                headers[count].msg_len = 0
                offset += partBytes
                count += 1
            }
            send(count)
        }
    }
}
