import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What dockerd runs, end to end: a private dockerd 20.10 with edshim as its userland
/// proxy, a real edshim server reading the containers' labels from that dockerd, and a
/// real Envoy.
@Suite("Real dockerd, end to end")
struct DockerEndToEndTests {
    static let httpd = [BusyboxImage.name, "httpd", "-f", "-p", "80", "-h", "/www"]

    @Test("labels name the service; a request right after docker run is answered through Envoy; both twins serve")
    func labelledHTTPService() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            try await docker.run(["run", "-d", "--name", "web", "-l", "ServiceName=web", "-l", "EnvironmentName=prod", "-p", "\(port):80"] + Self.httpd)
            // Right after docker run: Envoy answers on the port (httpd may need a moment more).
            let first = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
            #expect(first.servedByEnvoy, "answered by Envoy: \(first.status)")
            try await docker.waitForContainerPort("web", port: 80)

            let containerIP = try await docker.containerIP("web")
            #expect(try bed.clusters()["web-prod-\(port)"] == ["\(containerIP):80"])
            for ip in [IPAddress.loopbackIPv4, .loopbackIPv6] {
                let response = try TestHTTP.get(SocketEndpoint(ip: ip, port: port))
                #expect(response.status == 200)
                #expect(response.body == BusyboxImage.indexHTML)
                #expect(response.servedByEnvoy)
                #expect(response.headers["x-envoy-upstream-service-time"] != nil)
            }
            #expect(try bed.stat("http.web-prod-\(port).downstream_rq_completed") >= 2)
            let registrations = try bed.registrations()
            #expect(registrations.count == 2)
            #expect(registrations.allSatisfy { $0.metadata.service == "web" && $0.metadata.environment == "prod" && $0.metadata.containerName == "web" })
        }
    }

    @Test("the container sees its client's address in X-Forwarded-For, not the bridge gateway")
    func forwardedFor() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            try await docker.run(["run", "-d", "--name", "web", "-l", "ServiceName=web", "-p", "\(port):80"] + Self.httpd)
            try await docker.run(["exec", "web", "sh", "-c",
                #"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "xff=$HTTP_X_FORWARDED_FOR"\n' > /www/cgi-bin/xff && chmod +x /www/cgi-bin/xff"#])
            try await docker.waitForContainerPort("web", port: 80)
            // A client in another container reaches the published port via the host.
            try await docker.run(["run", "-d", "--name", "client", BusyboxImage.name, "sleep", "60"])
            let clientIP = try await docker.containerIP("client")
            let answer = try await docker.run(["exec", "client", "wget", "-qO-", "http://\(docker.bridge.gateway):\(port)/cgi-bin/xff"])
            #expect(answer.contains("xff=\(clientIP)"), "the container saw: \(answer)")
            _ = bed
        }
    }

    @Test("ProxyMode=tcp: bytes pass untouched")
    func tcpMode() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            try await docker.run(["run", "-d", "--name", "echo", "-l", "ServiceName=echo", "-l", "ProxyMode=tcp", "-p", "\(port):80",
                                  BusyboxImage.name, "nc", "-ll", "-p", "80", "-e", "cat"])
            try await docker.waitForContainerPort("echo", port: 80)
            let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: port))
            defer { close(fd) }
            // HTTP-looking bytes: an HTTP-mode Envoy would rewrite them; TCP mode must not.
            let payload = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let sent = Thread.run { try? Sockets.sendAll(fd, payload) }
            let echoed = try Sockets.receive(fd, count: payload.count)
            sent.wait()
            #expect(echoed == payload)
            #expect(try bed.stat("tcp.echo-\(port).downstream_cx_total") >= 1)
        }
    }

    @Test("docker restart with a new container address keeps the port serving the new address; stop removes the listener; rm -f leaves nothing")
    func lifecycle() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: port)
            try await docker.run(["run", "-d", "--name", "web", "-l", "ServiceName=web", "-p", "\(port):80"] + Self.httpd)
            try await docker.waitForContainerPort("web", port: 80)
            let oldIP = try await docker.containerIP("web")

            // Take the old address while web is stopped, so restart gives it a new one.
            try await docker.run(["stop", "-t", "1", "web"])
            #expect(try bed.listeners().values.allSatisfy { !$0.hasSuffix(":\(port)") }, "docker stop removed the listeners")
            #expect(throws: (any Error).self) { try TestHTTP.get(dial) }
            try await docker.run(["run", "-d", "--name", "squatter", BusyboxImage.name, "sleep", "60"])
            try await docker.run(["start", "web"])
            let newIP = try await docker.containerIP("web")
            #expect(newIP != oldIP)
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try TestHTTP.get(dial).status == 200)
            #expect(try bed.clusters()["web-\(port)"] == ["\(newIP):80"])

            try await docker.run(["restart", "-t", "1", "web"])
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try TestHTTP.get(dial).status == 200, "served after docker restart")
            let restartedIP = try await docker.containerIP("web")
            #expect(try bed.clusters()["web-\(port)"] == ["\(restartedIP):80"])

            try await docker.run(["rm", "-f", "web"])
            try await bed.eventually("nothing left of web") {
                try bed.registrations().isEmpty && bed.listeners().isEmpty && bed.clusters().keys.allSatisfy { !$0.contains("\(port)") }
            }
            #expect(docker.proxies().isEmpty)
            #expect(Sockets.canBind(SocketEndpoint(ip: .anyIPv4, port: port)))
        }
    }

    @Test("three containers with the same labels on three host ports: three services, each serving its own container")
    func threeServices() async throws {
        try await withDockerTestbed { bed, docker in
            var ports: [UInt16] = []
            for index in 0..<3 {
                let port = try Sockets.freePort()
                ports.append(port)
                try await docker.run(["run", "-d", "--name", "web\(index)", "-l", "ServiceName=web", "-l", "EnvironmentName=prod", "-p", "\(port):80",
                                      BusyboxImage.name, "sh", "-c", "echo container-\(index) > /www/index.html && exec httpd -f -p 80 -h /www"])
            }
            for (index, port) in ports.enumerated() {
                try await docker.waitForContainerPort("web\(index)", port: 80)
                let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
                #expect(response.body == "container-\(index)\n")
                let containerIP = try await docker.containerIP("web\(index)")
                #expect(try bed.clusters()["web-prod-\(port)"] == ["\(containerIP):80"])
            }
        }
    }

    @Test("any label value yields names Envoy accepts; an unknown mode falls back with a warning naming the container")
    func hostileLabels() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            let long = String(repeating: "ü", count: 1000)
            try await docker.run(["run", "-d", "--name", "odd", "-l", "ServiceName=Café \"Crème\"/v2\nx", "-l", "EnvironmentName=\(long)",
                                  "-l", "ProxyMode=grpc", "-p", "\(port):80"] + Self.httpd)
            try await docker.waitForContainerPort("odd", port: 80)
            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
            #expect(response.status == 200)
            #expect(response.servedByEnvoy, "the server's default mode (http) applies")
            let all = try bed.clusters().keys
            let clusters = all.filter { $0.hasPrefix("Caf_Cr_me_v2_x-") }
            #expect(clusters.count == 1, "\(all)")
            #expect(bed.server?.log.contains("container odd: label ProxyMode=\"grpc\" is not a mode edshim knows") == true)
        }
    }
}
