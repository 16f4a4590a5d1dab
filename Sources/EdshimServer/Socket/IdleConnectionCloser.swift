import NIOCore

/// Closes a connection that has gone `limit` without a request: no request line
/// read since its last answer went out (or since it connected), and none being
/// answered. A shim's registration is answered within 12 s and clients send at
/// once, so only a connection nobody uses stays that long: a script that opens
/// connections and forgets them, or a client stuck halfway through a line, would
/// otherwise hold a descriptor of the server each for good.
final class IdleConnectionCloser: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: TimeAmount
    /// Request lines read and not answered yet.
    private var unanswered = 0
    private var idleSince = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { scheduleCheck(context, at: idleSince + limit) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if check == nil { scheduleCheck(context, at: idleSince + limit) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        unanswered += 1
        context.fireChannelRead(data)
    }

    /// Each answer is one write (an oversized line is answered without having been
    /// read as a request: hence the floor).
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unanswered = max(0, unanswered - 1)
        if unanswered == 0 { idleSince = .now() }
        context.write(data, promise: promise)
    }

    private func scheduleCheck(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        check = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard context.channel.isActive else { return }
            let due = idleSince + limit
            if unanswered == 0, due <= .now() {
                context.close(promise: nil)
            } else {
                scheduleCheck(context, at: unanswered == 0 ? due : .now() + limit)
            }
        }
    }
}
