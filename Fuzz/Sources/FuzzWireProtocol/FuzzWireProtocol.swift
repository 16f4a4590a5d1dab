import FuzzSupport

/// libFuzzer's entry point: one input through every decoder of the protocol.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireProtocol(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    WireProperties.check(FuzzInput.bytes(data, count))
    return 0
}

#if !FUZZING
@main
enum Replay {
    static func main() { CorpusReplay.run(WireProperties.check) }
}
#endif
