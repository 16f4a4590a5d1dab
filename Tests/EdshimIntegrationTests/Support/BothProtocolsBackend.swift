import EdshimCore
import NIOCore
import NIOHTTP1
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// A container that speaks HTTP/1.1 and h2c with prior knowledge on one port, as
/// Go's and gRPC's servers do: it tells them apart by the connection's first bytes
/// (HTTP/2's preface starts `PRI `). Every answer says which protocol carried the
/// request, and an HTTP/2 answer ends with gRPC's trailers (`grpc-status: 0`), which
/// only an HTTP/2 hop can carry.
final class BothProtocolsBackend: Sendable {
    let endpoint: SocketEndpoint
    private let channel: any Channel

    init(on ip: IPAddress = .loopbackIPv4) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ProtocolSniffer()) }
            }
            .bind(host: ip.description, port: 0).get()
        endpoint = SocketEndpoint(ip: ip, port: UInt16(channel.localAddress?.port ?? 0))
    }

    func stop() async {
        try? await channel.close()
    }

    /// Looks at the first bytes, sets up HTTP/2 or HTTP/1 after itself, passes them
    /// on and leaves.
    private final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        private var seen: ByteBuffer?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if var earlier = seen {
                earlier.writeBuffer(&bytes)
                bytes = earlier
            }
            guard bytes.readableBytes >= 4 else {
                seen = bytes
                return
            }
            seen = nil
            let http2 = bytes.readableBytesView.starts(with: "PRI ".utf8)
            let channel = context.channel
            do {
                if http2 {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(mode: .server, connectionConfiguration: .init(), streamConfiguration: .init(), position: .last) { stream in
                        stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(HTTP2Answer()) }
                    }
                } else {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(position: .last)
                    try channel.pipeline.syncOperations.addHandler(HTTP1Answer())
                }
            } catch {
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(wrapInboundOut(bytes))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private final class HTTP1Answer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var path = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = head.uri
            case .body: break
            case .end:
                let body = ByteBuffer(string: "protocol=HTTP/1.1\npath=\(path)\n")
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "\(body.readableBytes)")
                headers.add(name: "server", value: "both-protocols-backend")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    private final class HTTP2Answer: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload
        private var path = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let ended: Bool
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                path = headers.headers[":path"].first ?? path
                ended = headers.endStream
            case .data(let data):
                ended = data.endStream
            default:
                ended = false
            }
            guard ended else { return }
            let head: HPACKHeaders = [":status": "200", "content-type": "application/grpc", "server": "both-protocols-backend"]
            let body = ByteBuffer(string: "protocol=HTTP/2\npath=\(path)\n")
            let trailers: HPACKHeaders = ["grpc-status": "0", "grpc-message": "answered-over-h2"]
            context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        }
    }
}
