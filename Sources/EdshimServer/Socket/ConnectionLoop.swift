import NIOCore
import ServiceLifecycle

extension NIOAsyncChannel where Outbound == Never, Inbound: Sendable {
    /// Serves every accepted connection on its own task until a graceful shutdown,
    /// which closes the listening socket (`onShutdown` runs first), then waits for the
    /// connections being served.
    func serveConnections(
        onShutdown: @escaping @Sendable () -> Void = {},
        _ serve: @escaping @Sendable (Inbound) async -> Void
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
