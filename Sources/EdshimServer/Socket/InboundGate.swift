import NIOCore

/// Holds what a connection delivers before its task has adopted it, then lets it all
/// through, in order, on `Open`.
///
/// NIO reads a connection whose peer has already closed its sending side even while
/// reads are off (it drains the input when it learns of the end), so a client that
/// sends a request and half-closes at once (`echo … | socat`) could have its request
/// and the end of its input pass before anything listens for them.
final class InboundGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The user event that opens the gate, fired by `adopt` once the connection's
    /// async wrapper is in place.
    struct Open {}

    private var held: [ByteBuffer]? = []
    private var heldError: (any Error)?
    private var inputClosed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard held != nil else { return context.fireChannelRead(data) }
        held?.append(Self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if held == nil { context.fireChannelReadComplete() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard held != nil else { return context.fireErrorCaught(error) }
        if heldError == nil { heldError = error }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Open {
            open(context: context)
        } else if held != nil, event as? ChannelEvent == .inputClosed {
            inputClosed = true
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func open(context: ChannelHandlerContext) {
        guard let pending = held else { return }
        held = nil
        for buffer in pending { context.fireChannelRead(Self.wrapInboundOut(buffer)) }
        if !pending.isEmpty { context.fireChannelReadComplete() }
        if let heldError { context.fireErrorCaught(heldError) }
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }
}
