import EdshimCore
import Foundation
import Testing

/// `edshim resync` against the shims a real dockerd started, with dockerd's own
/// command lines and environment.
@Suite("Real dockerd, resync")
struct DockerResyncTests {
    @Test("after the server lost its state, resync registers dockerd's shims again, named from their labels; docker rm still cleans up")
    func resyncDockerdShims() async throws {
        try await withDockerTestbed { bed, docker in
            let web = try Sockets.freePort()
            let api = try Sockets.freePort()
            try await docker.run(["run", "-d", "--name", "web", "-l", "ServiceName=web", "-l", "EnvironmentName=prod", "-p", "\(web):80"] + DockerEndToEndTests.httpd)
            try await docker.run(["run", "-d", "--name", "api", "-l", "ServiceName=api", "-l", "ProxyMode=tcp", "-p", "\(api):80"] + DockerEndToEndTests.httpd)
            for name in ["web", "api"] { try await docker.waitForContainerPort(name, port: 80) }
            let clusters = try bed.clusters()
            let listeners = try bed.listeners()
            #expect(Set(clusters.keys) == ["web-prod-\(web)", "api-\(api)"])
            let shims = Set(try bed.registrations().map(\.owner.pid))
            #expect(shims.count == 4 && shims == Set(docker.proxyProcesses().map(\.pid)), "the server's owners are dockerd's proxies")

            try await bed.restartServerWithoutState(extraArguments: ["--docker-host", docker.host])
            let first = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("resynced 4 of 4"), "\(first.output)")
            #expect(Set(try bed.registrations().map(\.owner.pid)) == shims, "registered on behalf of dockerd's shims")
            #expect(try bed.clusters() == clusters, "the same clusters, named from the labels again")
            #expect(try bed.listeners() == listeners)
            for port in [web, api] {
                for ip in [IPAddress.loopbackIPv4, .loopbackIPv6] {
                    let response = try TestHTTP.get(SocketEndpoint(ip: ip, port: port))
                    #expect(response.status == 200, "port \(port) via \(ip)")
                    #expect(response.body == BusyboxImage.indexHTML)
                }
            }
            #expect(try bed.stat("http.web-prod-\(web).downstream_rq_completed") >= 2, "web is served by Envoy's HTTP proxy")
            #expect(try bed.stat("tcp.api-\(api).downstream_cx_total") >= 2, "api is served by Envoy's TCP proxy")

            let listenersFile = try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8)
            let second = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(second.status == 0 && second.output.contains("resynced 4 of 4"), "\(second.output)")
            #expect(try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8) == listenersFile, "a second resync changes nothing")

            // The resynced registrations belong to the shims: their deregistration on docker rm is accepted.
            try await docker.run(["rm", "-f", "web"])
            try await bed.eventually("web's listeners and cluster are gone, api's stay") {
                try Set(bed.clusters().keys) == ["api-\(api)"] && bed.listeners().count == 2
            }
        }
    }
}
