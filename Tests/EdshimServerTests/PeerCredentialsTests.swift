import CEdshimLinux
@testable import EdshimServer
import Testing

@Suite("PeerCredentials")
struct PeerCredentialsTests {
    /// What SO_PEERGROUPS writes into the zeroed room: `gids`, ascending, then zeros.
    static func list(_ gids: [UInt32]) -> edshim_peer_groups {
        var list = edshim_peer_groups()
        withUnsafeMutableBytes(of: &list.groups) { raw in
            for (index, gid) in gids.enumerated() { raw.storeBytes(of: gid, toByteOffset: index * 4, as: UInt32.self) }
        }
        return list
    }

    @Test("the groups the kernel wrote end where the zeros begin; root's group first is left out", arguments: [
        ([5, 27, 105], [5, 27, 105]),
        ([0, 5, 27, 105], [5, 27, 105]),
        ([], []),
        ([0], []),
        ([65534], [65534]),
    ] as [([UInt32], Set<UInt32>)])
    func groups(written: [UInt32], read: Set<UInt32>) {
        #expect(PeerCredentials.groups(in: Self.list(written)) == read)
    }
}
