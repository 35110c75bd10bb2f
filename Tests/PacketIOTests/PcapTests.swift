import Foundation
import PacketIO
import TestSupport
import Testing

/// A fresh path under the system temporary directory, removed by the caller.
func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "svcplane-\(UUID().uuidString)-\(name)"
}

func readAll(_ path: String) throws -> [([UInt8], Int, Int64)] {
    let reader = try PcapReader(path: path)
    var frames: [([UInt8], Int, Int64)] = []
    while let frame = try reader.next() { frames.append((Array(frame.bytes), frame.wireLength, frame.timestamp)) }
    return frames
}

@Suite("Capture files")
struct PcapTests {
    let frames: [[UInt8]] = (0..<5).map { n in
        PacketBuilder(source: "10.0.1.2", destination: "10.96.0.10", sourcePort: UInt16(1000 + n),
                      destinationPort: 53, protocolNumber: 17).ethernetFrame()
    }

    func write(_ path: String, precision: TimestampPrecision) throws {
        let writer = try PcapWriter(path: path, datalink: 1, snapLength: 262_144, precision: precision)
        for (n, frame) in frames.enumerated() {
            frame.withUnsafeBytes {
                writer.write($0, wireLength: frame.count + n, timestamp: 1_700_000_000_123_456_789 + Int64(n))
            }
        }
        try writer.close()
    }

    @Test("nanosecond pcap round trip keeps bytes, lengths and timestamps", arguments: [
        TimestampPrecision.nanoseconds, .microseconds,
    ])
    func roundTrip(precision: TimestampPrecision) throws {
        let path = temporaryPath("round.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try write(path, precision: precision)
        #expect(try PcapReader(path: path).filePrecision == precision)
        let read = try readAll(path)
        #expect(read.map(\.0) == frames)
        #expect(read.map(\.1) == frames.enumerated().map { $1.count + $0 })
        let expectedStamp: Int64 = precision == .nanoseconds ? 1_700_000_000_123_456_789 : 1_700_000_000_123_456_000
        #expect(read[0].2 == expectedStamp)
    }

    @Test("a capture cut mid-record fails with the file and the packet number")
    func truncatedFile() throws {
        let path = temporaryPath("cut.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try write(path, precision: .microseconds)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: path))
        let reader = try PcapReader(path: path)
        var good = 0
        do {
            while try reader.next() != nil { good += 1 }
            Issue.record("no error for a cut capture")
        } catch {
            #expect(good == 4)
            #expect(error.description.hasPrefix("\(path): packet 5: "))
        }
    }

    @Test("a file that is not a capture, and a missing file, give one-line errors")
    func notACapture() throws {
        let path = temporaryPath("text.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "hello, this is not a capture\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: CaptureError.self) { try PcapReader(path: path) }
        do { _ = try PcapReader(path: path) } catch { #expect(error.description.hasPrefix("\(path): ")) }
        do { _ = try PcapReader(path: "/nonexistent/x.pcap") } catch {
            #expect(error.description == "/nonexistent/x.pcap: No such file or directory")
        }
    }

    @Test("an output that cannot be written is an error, also when the disk is full")
    func unwritable() throws {
        #expect(throws: CaptureError.self) {
            try PcapWriter(path: "/nonexistent/dir/out.pcap", datalink: 1, snapLength: 65535, precision: .microseconds)
        }
        do {
            _ = try PcapWriter(path: "/nonexistent/out.pcap", datalink: 1, snapLength: 65535, precision: .microseconds)
        } catch {
            #expect(error.description == "/nonexistent/out.pcap: No such file or directory", "the path named once")
        }
        guard FileManager.default.isWritableFile(atPath: "/dev/full") else { return }
        let writer = try PcapWriter(path: "/dev/full", datalink: 1, snapLength: 65535, precision: .microseconds)
        frames[0].withUnsafeBytes { writer.write($0, wireLength: frames[0].count, timestamp: 0) }
        #expect(throws: CaptureError.self) { try writer.close() }
    }

    @Test("the space reserved for the expected size never shows in the file's size and is given back at close",
          arguments: [false, true])
    func reservedSpace(writtenOver: Bool) throws {
        let path = temporaryPath("reserved.pcap")
        let plain = temporaryPath("plain.pcap")
        defer { for file in [path, plain] { try? FileManager.default.removeItem(atPath: file) } }
        if writtenOver { try Data(repeating: 0xEE, count: 1 << 20).write(to: URL(fileURLWithPath: path)) }
        try write(plain, precision: .microseconds)
        let reserved = 64 << 20
        let writer = try PcapWriter(path: path, datalink: 1, snapLength: 262_144, precision: .microseconds,
                                    expectedSize: Int64(reserved))
        for (n, frame) in frames.enumerated() {
            frame.withUnsafeBytes {
                writer.write($0, wireLength: frame.count + n, timestamp: 1_700_000_000_123_456_789 + Int64(n))
            }
        }
        try writer.flush()
        var status = stat()
        #expect(stat(path, &status) == 0)
        let plainSize = try FileManager.default.attributesOfItem(atPath: plain)[.size] as? Int
        #expect(Int(status.st_size) == plainSize, "the size is what is written")
        let reservationTook = Int(status.st_blocks) * 512 >= reserved  // where the file system reserves
        try writer.close()
        #expect(stat(path, &status) == 0)
        #expect(Int(status.st_blocks) * 512 < 1 << 20, "reserved \(reservationTook), then given back")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: plain)))
    }

    @Test("a file written over holds the new capture alone, whether it is emptied before, during or after the writing",
          arguments: [1, 2_000, 40_000])
    func writtenOver(records: Int) throws {
        let path = temporaryPath("over.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // The old file, longer than the new one; then a new one of `records` 1 KiB records, written a run at a
        // time while the old one is emptied: past 32 MiB the writer waits for it.
        try Data(repeating: 0xEE, count: 48 << 20).write(to: URL(fileURLWithPath: path))
        let record = [UInt8](repeating: 0, count: 16) + [UInt8](repeating: 0x5A, count: 1008)
        let run = [[UInt8]](repeating: record, count: 100).flatMap { $0 }
        let writer = try PcapWriter(path: path, datalink: 1, snapLength: 65535, precision: .microseconds)
        for start in stride(from: 0, to: records, by: 100) {
            let count = min(100, records - start)
            run.withUnsafeBytes {
                writer.writeRecords(UnsafeRawBufferPointer(rebasing: $0[0..<count * 1024]), count: count)
            }
        }
        try writer.close()
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(written.count == 24 + records * 1024)
        #expect(written.dropFirst(24).allSatisfy { $0 != 0xEE }, "nothing of the old file is left")
        #expect(written.prefix(4) == Data([0xD4, 0xC3, 0xB2, 0xA1]), "libpcap's header first")
    }
}
