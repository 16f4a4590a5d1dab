import EdshimCore
import NIOCore

/// Splits the byte stream into request lines (newline included) and refuses a
/// line longer than the protocol allows before it is buffered whole.
struct BoundedLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// A line grew past the limit.
    struct LineTooLong: Error {}

    let maximumLength: Int
    /// Bytes at the start of the unread input already searched for a newline: each
    /// read searches only what it brought (a line sent a byte at a time would
    /// otherwise be searched again whole at every byte).
    private var searched = 0

    init(maximumLength: Int) {
        self.maximumLength = maximumLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let unread = buffer.readableBytesView
        if let newline = unread[(unread.startIndex + min(searched, unread.count))...].firstIndex(of: UInt8(ascii: "\n")) {
            searched = 0
            let length = newline - buffer.readerIndex + 1
            guard length <= maximumLength, let line = buffer.readSlice(length: length) else { throw LineTooLong() }
            context.fireChannelRead(Self.wrapInboundOut(line))
            return .continue
        }
        searched = unread.count
        if buffer.readableBytes > maximumLength { throw LineTooLong() }
        return .needMoreData
    }

    /// At the end of input, a last request without its newline is still a request.
    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if seenEOF, buffer.readableBytes > 0, let rest = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(Self.wrapInboundOut(rest))
        }
        return .needMoreData
    }
}
