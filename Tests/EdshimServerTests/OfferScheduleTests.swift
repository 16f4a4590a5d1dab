import EdshimCore
@testable import EdshimServer
import Testing

@Suite("Closed ports offered to Envoy again")
struct OfferScheduleTests {
    private let port = RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: 8080))
    private let other = RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: 8081))

    @Test("a port is offered at once, then 2, 4, 8 … checks later, at most 64 apart")
    func backsOff() {
        var schedule = UnservedPortsLog.OfferSchedule()
        let offered = (1...200).filter { !schedule.due([port], at: $0).isEmpty }
        #expect(offered == [1, 3, 7, 15, 31, 63, 127, 191])
    }

    @Test("a port open again (or held again) starts over; each port has its own schedule")
    func startsOver() {
        var schedule = UnservedPortsLog.OfferSchedule()
        #expect(schedule.due([port], at: 1) == [port])
        #expect(schedule.due([port, other], at: 2) == [other])
        #expect(schedule.due([other], at: 3).isEmpty)
        #expect(schedule.due([port, other], at: 4) == [port, other])
    }
}
