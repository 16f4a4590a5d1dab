import NIOCore
import ServiceLifecycle

extension NIOAsyncChannel where Outbound == Never, Inbound == any Channel {
    /// Serves every accepted connection on its own task until a graceful shutdown,
    /// which closes the listening socket (`onShutdown` runs first), then waits for the
    /// connections being served.
    ///
    /// The server yields raw channels, left unread (autoRead off) by the child
    /// initializer, and each task wraps its own (`adopt`). A connection accepted in the
    /// instant the listening socket closes is then just a socket closed with the
    /// process — not an NIOAsyncChannel dropped unfinished, which NIO traps on.
    func serveConnections(
        onShutdown: @escaping @Sendable () -> Void = {},
        _ serve: @escaping @Sendable (any Channel) async -> Void
    ) async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            onShutdown()
            channel.close(promise: nil)
        }
    }
}

/// Wraps an accepted connection for async use and starts reading from it; what its
/// `InboundGate` held back until now goes through first.
func adopt<Inbound: Sendable, Outbound: Sendable>(
    _ channel: any Channel,
    as _: NIOAsyncChannel<Inbound, Outbound>.Type = NIOAsyncChannel<Inbound, Outbound>.self
) async throws -> NIOAsyncChannel<Inbound, Outbound> {
    try await channel.eventLoop.submit {
        let wrapped = try NIOAsyncChannel<Inbound, Outbound>(wrappingChannelSynchronously: channel)
        channel.pipeline.syncOperations.fireUserInboundEventTriggered(InboundGate.Open())
        try channel.syncOptions?.setOption(.autoRead, value: true)
        channel.read()
        return wrapped
    }.get()
}
