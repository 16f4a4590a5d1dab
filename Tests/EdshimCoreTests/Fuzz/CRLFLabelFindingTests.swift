@testable import EdshimCore
import Testing

/// FuzzLabels finding (Fuzz/Corpus/FuzzLabels/finding-crlf-mode.labels): the label
/// `edshim.mode="\r\nTCP"` was refused as an unknown mode. Trimming compared
/// `Character`s, and CR LF is one grapheme, equal to neither CR nor LF, so it was
/// never trimmed: a CRLF-only value also counted as set and hid the legacy label.
@Suite("Fuzz finding: CR LF in label values")
struct CRLFLabelFindingTests {
    /// The labels the saved input decodes to (the rest of it names no label edshim reads).
    @Test func replaysTheFinding() {
        let reading = ContainerLabels.read(["edshim.mode": "\r\nTCP", "ProxyMode": "ht\np"], containerID: nil, containerName: nil)
        #expect(reading.metadata.mode == .tcp)
        #expect(reading.warnings.isEmpty)
    }

    @Test(arguments: ["tcp\r\n", "\r\ntcp", " \r\n TCP\t\r\n", "\r\n\r\ntcp\r\n"])
    func modeIsTrimmedOfCRLF(_ label: String) {
        #expect(ProxyMode(label: label) == .tcp)
    }

    @Test(arguments: ["\r\n", " \r\n\t", "\r\n\r\n"])
    func aCRLFOnlyValueCountsAsUnset(_ value: String) {
        let reading = ContainerLabels.read(["edshim.service": value, "ServiceName": "web"], containerID: nil, containerName: nil)
        #expect(reading.metadata.service == "web")
    }
}
