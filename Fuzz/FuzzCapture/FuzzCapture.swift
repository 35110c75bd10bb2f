// libFuzzer target: arbitrary bytes as a capture file, read to the end through libpcap and PcapReader.
import FuzzDriver
import Foundation
import PacketIO

let path = NSTemporaryDirectory() + "svcplane-fuzz-capture-\(getpid()).pcap"

/// The process entry point (SwiftPM links an executable target's main under this name).
@_cdecl("FuzzCapture_main")
public func fuzzCaptureMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    svcplane_fuzz_main(argc, argv) { data, size in fuzzCapture(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCapture(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)),
                 "cannot write \(path): the target would test nothing")
    defer { unlink(path) }
    guard let reader = try? PcapReader(path: path) else { return 0 }
    while true {
        guard let frame = try? reader.next() else { break }
        precondition(frame.bytes.count <= max(Int(reader.snapLength), 262_144))
    }
    return 0
}
