import Foundation
import Testing

/// Runs `body` with a private containerd + dockerd whose userland proxy is `edshim`,
/// registering with the edshim server at `socket`; tears it all down afterwards, also
/// when `body` throws. When the machine cannot run Docker (`DockerDaemon.start`, or
/// `body` itself, throws `DockerUnavailable`), prints `SKIPPED: <reason>` and cancels
/// the test.
///
/// A fixture costs about 1.6 s to start (containerd, dockerd, image import, one probe
/// container) and 0.3 s to tear down, so each test gets its own.
func withDockerDaemon(
    edshim: String,
    socket: String,
    environment: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (DockerDaemon) async throws -> Void
) async throws {
    let docker: DockerDaemon
    do {
        docker = try await DockerDaemon.start(edshim: edshim, socket: socket, environment: environment)
    } catch let unavailable as DockerUnavailable {
        try unavailable.skip(sourceLocation: sourceLocation)
    }
    do {
        try await body(docker)
    } catch let unavailable as DockerUnavailable {
        await docker.stop()
        try unavailable.skip(sourceLocation: sourceLocation)
    } catch {
        await docker.stop()
        throw error
    }
    await docker.stop()
}

/// A fresh `Testbed` (edshim server + Envoy) and a private dockerd that publishes
/// ports through it: the usual start of an end-to-end Docker test. Both are torn
/// down afterwards, whatever happens; Envoy must have rejected no update.
func withDockerTestbed(
    _ options: Testbed.Options = Testbed.Options(),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (Testbed, DockerDaemon) async throws -> Void
) async throws {
    // dockerd first: the server must be told where it is (--docker-host) to read labels.
    var options = options
    let startServer = options.startServer
    let startEnvoy = options.startEnvoy
    options.startServer = false
    options.startEnvoy = false
    try await withTestbed(options) { bed in
        try await withDockerDaemon(edshim: bed.edshim, socket: bed.socketPath, environment: options.dockerdEnvironment, sourceLocation: sourceLocation) { docker in
            if startServer { try await bed.startServer(extraArguments: ["--docker-host", docker.host]) }
            if startEnvoy { try await bed.startEnvoy() }
            try await body(bed, docker)
        }
    }
}
