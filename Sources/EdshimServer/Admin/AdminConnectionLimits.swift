import NIOCore
import Synchronization

/// What bounds the admin endpoint's connections: it listens on TCP, where any local
/// user can connect (the shims' Unix socket has its group), so idle clients and many
/// of them must not take the server's descriptors. (One who keeps 128 connections
/// busy still keeps other clients of the endpoint out.)
enum AdminConnectionLimits {
    /// Connections served at once; one beyond is closed as soon as it is accepted.
    static let concurrent = 128
    /// How long a connection may send nothing (no request, or no next request on a
    /// keep-alive one) before it is closed.
    static let idleTimeout = TimeAmount.seconds(30)
}

/// Counts the connections being served against `AdminConnectionLimits.concurrent`.
final class AdminConnectionBudget: Sendable {
    private let inUse = Atomic<Int>(0)

    /// Takes a place, or returns false when none is left.
    func take() -> Bool {
        if inUse.add(1, ordering: .relaxed).newValue <= AdminConnectionLimits.concurrent { return true }
        inUse.subtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back a place taken.
    func giveBack() {
        inUse.subtract(1, ordering: .relaxed)
    }
}

/// Closes a connection once `IdleStateHandler` says it sent nothing for a while.
final class CloseWhenIdle: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
