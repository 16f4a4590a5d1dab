@testable import EdshimCore
import Foundation
import Testing

@Suite("StatusReport")
struct StatusReportTests {
    static func registrations() throws -> [Registration] {
        [
            try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", owner: Owner(pid: 12, startTime: 1), containerID: String(repeating: "3f2a9c1b7d0e", count: 5) + "abcd", containerName: "web-1"),
            try Fixture.registration(host: "::", 5432, container: "fd00::3", 5432, mode: .tcp, owner: Owner(pid: 34_567, startTime: 2)),
        ]
    }

    @Test func emptyTableIsASentence() {
        #expect(StatusReport.table([]) == "no published ports registered")
        #expect(StatusReport.json([]) == "[]")
    }

    @Test func tableHasAHeaderAndAlignedColumns() throws {
        let table = StatusReport.table(try Self.registrations())
        #expect(table == """
            HOST          PROTO  CONTAINER       NAME   SERVICE          MODE  OWNER
            0.0.0.0:8080  tcp    172.17.0.2:80   web-1  nginx-prod-8080  http  pid 12
            [::]:5432     tcp    [fd00::3]:5432  -      unknown-5432     tcp   pid 34567
            """)
        let lines = table.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { !$0.hasSuffix(" ") })
        for column in ["PROTO", "CONTAINER", "NAME", "SERVICE", "MODE", "OWNER"] {
            let offset = try #require(lines[0].range(of: column)).lowerBound.utf16Offset(in: lines[0])
            for line in lines.dropFirst() {
                let index = line.index(line.startIndex, offsetBy: offset)
                #expect(line[line.index(before: index)] == " " && line[index] != " ", "\(column) is aligned in `\(line)`")
            }
        }
    }

    @Test func udpPortsFollowTheRegistrationsWithoutAService() throws {
        let dns = ShimProcesses.Shim(
            owner: Owner(pid: 77, startTime: 3),
            arguments: ShimArguments(proto: .udp, host: try Fixture.endpoint("0.0.0.0", 53), container: try Fixture.endpoint("172.17.0.9", 53)),
            socketPath: EdshimDefaults.socketPath
        )
        let dns6 = ShimProcesses.Shim(
            owner: Owner(pid: 78, startTime: 3),
            arguments: ShimArguments(proto: .udp, host: try Fixture.endpoint("::", 53), container: try Fixture.endpoint("172.17.0.9", 53)),
            socketPath: EdshimDefaults.socketPath
        )
        #expect(StatusReport.table(try Self.registrations(), udpShims: [dns6, dns]) == """
            HOST          PROTO  CONTAINER       NAME   SERVICE          MODE       OWNER
            0.0.0.0:8080  tcp    172.17.0.2:80   web-1  nginx-prod-8080  http       pid 12
            [::]:5432     tcp    [fd00::3]:5432  -      unknown-5432     tcp        pid 34567
            0.0.0.0:53    udp    172.17.0.9:53   -      -                udp-proxy  pid 77
            [::]:53       udp    172.17.0.9:53   -      -                udp-proxy  pid 78
            """)
        #expect(StatusReport.table([], udpShims: [dns]) == """
            HOST        PROTO  CONTAINER      NAME  SERVICE  MODE       OWNER
            0.0.0.0:53  udp    172.17.0.9:53  -     -        udp-proxy  pid 77
            """)
    }

    @Test func unregisteredTCPPortsFollowTheRegistrationsWithWhatServesThem() throws {
        func shim(_ pid: Int32, _ port: UInt16) throws -> ShimProcesses.Shim {
            ShimProcesses.Shim(
                owner: Owner(pid: pid, startTime: 3),
                arguments: ShimArguments(proto: .tcp, host: try Fixture.endpoint("0.0.0.0", port), container: try Fixture.endpoint("172.17.0.9", 80)),
                socketPath: EdshimDefaults.socketPath
            )
        }
        let unregistered = [
            StatusReport.UnregisteredShim(try shim(91, 9100), servesItself: nil),
            StatusReport.UnregisteredShim(try shim(90, 9000), servesItself: false),
            StatusReport.UnregisteredShim(try shim(89, 8900), servesItself: true),
        ]
        #expect(StatusReport.table([], unregistered: unregistered) == """
            HOST          PROTO  CONTAINER      NAME  SERVICE  MODE          OWNER
            0.0.0.0:8900  tcp    172.17.0.9:80  -     -        itself        pid 89
            0.0.0.0:9000  tcp    172.17.0.9:80  -     -        unserved      pid 90
            0.0.0.0:9100  tcp    172.17.0.9:80  -     -        unregistered  pid 91
            itself: the shim serves the port as docker-proxy would, until Envoy can take it (is Envoy running? can the server write its files: its log, or GET /healthz?)
            unserved: neither Envoy nor the shim serves the port (the server lost its registration): run edshim resync
            unregistered: not in the server's registry; run edshim status as root to see whether its shim serves it
            """)
        let elsewhere = StatusReport.table([], unregistered: unregistered, socketPath: "/srv/edshim.sock")
        #expect(elsewhere.contains("(the server lost its registration): run edshim resync --socket /srv/edshim.sock"), "a hint run as written reaches that server: \(elsewhere)")
        #expect(EdshimDefaults.resyncCommand(socketPath: "/srv/my edshim/it's.sock") == #"edshim resync --socket '/srv/my edshim/it'\''s.sock'"#)
        #expect(EdshimDefaults.resyncCommand(socketPath: EdshimDefaults.socketPath) == "edshim resync")
        let unreachable = StatusReport.table([], unregistered: unregistered, serverReachable: false)
        #expect(unreachable.contains("itself: the shim serves the port as docker-proxy would, until the server (which cannot be reached: start it) and Envoy can take it"), "\(unreachable)")
    }

    @Test func jsonIsAnArrayOfRegistrationsWithNames() throws {
        let json = StatusReport.json(try Self.registrations())
        #expect(!json.contains("\n"))
        let array = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(array.count == 2)
        #expect(array[0]["service_name"] as? String == "nginx-prod-8080")
        #expect(array[0]["listener"] as? String == "tcp_0.0.0.0_8080")
        #expect(array[0]["host_port"] as? Int == 8080)
        #expect(array[0]["service"] as? String == "nginx")
        #expect(array[0]["owner_pid"] as? Int == 12)
        #expect(array[1]["listener"] as? String == "tcp_[::]_5432")
        #expect(array[1]["mode"] as? String == "tcp")
        #expect(array[1]["service"] == nil, "absent labels are left out")
        // Each entry is still a registration a client can decode.
        let decoded = try WireResponse.decode(Fixture.bytes(#"{"v":1,"ok":true,"registrations":"# + json + "}"))
        #expect(decoded == .registrations(try Self.registrations()))
    }

    @Test func portsBeingRegisteredAreNotedAndDoNotFailTheCheck() throws {
        let registrations = try Self.registrations()
        let waiting = registrations[0].key
        let shim = ShimProcesses.Shim(
            owner: Owner(pid: 95, startTime: 3),
            arguments: ShimArguments(proto: .tcp, host: try Fixture.endpoint("0.0.0.0", 9500), container: try Fixture.endpoint("172.17.0.9", 80)),
            socketPath: EdshimDefaults.socketPath
        )
        let unregistered = [StatusReport.UnregisteredShim(shim, servesItself: false, registering: true)]
        // Nothing listens yet on the one waiting for Envoy; Envoy serves the other.
        let serving: [RegistrationKey: StatusReport.Serving] = [waiting: .nothing, registrations[1].key: .envoy]
        let table = StatusReport.table(registrations, serving: serving, unregistered: unregistered, registering: [waiting])
        #expect(table == """
            HOST          PROTO  CONTAINER       NAME   SERVICE          MODE                OWNER
            0.0.0.0:8080  tcp    172.17.0.2:80   web-1  nginx-prod-8080  http (registering)  pid 12
            [::]:5432     tcp    [fd00::3]:5432  -      unknown-5432     tcp                 pid 34567
            0.0.0.0:9500  tcp    172.17.0.9:80   -      -                registering         pid 95
            (registering): the server is registering the port: Envoy serves it once it listens, and the shim hears so (within 12 s); look again in a moment
            registering: the server is registering the port (docker run is publishing it): Envoy serves it once it listens; look again in a moment
            """)
        #expect(StatusReport.notServedByEnvoy(registrations, serving: serving, unregistered: unregistered, registering: [waiting]).isEmpty)
        // The same, not being registered: closed, unserved, and failed by --check.
        let settled = [StatusReport.UnregisteredShim(shim, servesItself: false)]
        #expect(StatusReport.notServedByEnvoy(registrations, serving: serving, unregistered: settled) == ["0.0.0.0:8080 (closed)", "0.0.0.0:9500 (not registered: unserved)"])
        // Being registered, but another program holds the port: said, and failed.
        let taken: [RegistrationKey: StatusReport.Serving] = [waiting: .other, registrations[1].key: .envoy]
        #expect(StatusReport.notServedByEnvoy(registrations, serving: taken, unregistered: [], registering: [waiting]) == ["0.0.0.0:8080 (other program)"])
        #expect(StatusReport.table(registrations, serving: taken, registering: [waiting]).contains("http (other program)"))
    }

    @Test func jsonSaysWhichAreBeingRegisteredAndWhichDoNotAccept() throws {
        let registrations = try Self.registrations()
        let json = StatusReport.json(registrations, serving: [registrations[0].key: .nothing, registrations[1].key: .envoy], notAccepting: [registrations[1].key], registering: [registrations[0].key])
        let array = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(array[0]["registering"] as? Bool == true)
        #expect(array[0]["accepting"] == nil)
        #expect(array[1]["registering"] == nil)
        #expect(array[1]["accepting"] as? Bool == false)
        #expect(array[1]["served_by"] as? String == "envoy")
    }
}
