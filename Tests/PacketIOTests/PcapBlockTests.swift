import CPcap
import Foundation
@testable import PacketIO
import Testing

/// A classic pcap file built byte by byte, to give the readers records libpcap treats specially.
struct RawCapture {
    struct Record {
        var seconds: UInt32
        var fraction: UInt32
        var captured: UInt32
        var wire: UInt32
        var data: [UInt8]

        /// An ordinary record of `length` bytes whose content is its index.
        init(_ index: Int, length: Int = 60) {
            seconds = 1_700_000_000 + UInt32(index)
            fraction = UInt32(index * 1000)
            captured = UInt32(length)
            wire = UInt32(length)
            data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ index) }
        }
    }

    var magic: UInt32 = 0xA1B2_C3D4
    var minor: UInt16 = 4
    var snapLength: UInt32 = 65535
    var bigEndian = false
    var records: [Record]

    var bytes: [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: bigEndian ? value.bigEndian : value.littleEndian) { out += $0 }
        }
        put(magic)
        put(UInt16(2))
        put(minor)
        put(UInt32(0))
        put(UInt32(0))
        put(snapLength)
        put(UInt32(1))
        for record in records {
            put(record.seconds)
            put(record.fraction)
            put(record.captured)
            put(record.wire)
            out += record.data
        }
        return out
    }
}

/// Everything a reader returned: frames (bytes, wire length, time), then the error that stopped it.
struct ReadOutcome: Equatable {
    var frames: [[UInt8]] = []
    var wireLengths: [Int] = []
    var timestamps: [Int64] = []
    var error: String?
    var readBlocks = false

    init(path: String, readsBlocks: Bool) {
        do {
            let reader = try PcapReader(path: path, readsBlocks: readsBlocks)
            readBlocks = reader.readsBlocks
            while let frame = try reader.next() {
                frames.append(Array(frame.bytes))
                wireLengths.append(frame.wireLength)
                timestamps.append(frame.timestamp)
            }
        } catch {
            self.error = error.description
        }
    }

    /// Equal frames and errors, whichever reader.
    func sameFrames(as other: ReadOutcome) -> Bool {
        (frames, wireLengths, timestamps, error) == (other.frames, other.wireLengths, other.timestamps, other.error)
    }
}

@Suite("Reading pcap in blocks")
struct PcapBlockTests {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Reads `bytes` from a file with both readers.
    func outcomes(_ bytes: [UInt8]) throws -> (blocks: ReadOutcome, libpcap: ReadOutcome) {
        let path = temporaryPath("raw.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (ReadOutcome(path: path, readsBlocks: true), ReadOutcome(path: path, readsBlocks: false))
    }

    @Test("every capture in pcaps/ reads the same in blocks as through libpcap")
    func samples() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: repository + "/pcaps")
            .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }
        #expect(names.count >= 10)
        for name in names {
            let path = repository + "/pcaps/" + name
            let blocks = ReadOutcome(path: path, readsBlocks: true)
            let libpcap = ReadOutcome(path: path, readsBlocks: false)
            #expect(blocks.sameFrames(as: libpcap), "\(name)")
            #expect(blocks.error == nil && !blocks.frames.isEmpty, "\(name)")
            #expect(blocks.readBlocks == name.hasSuffix(".pcap"), "\(name): pcapng is libpcap's")
        }
    }

    @Test("records past the block length, of every size up to the snapshot, straddle block boundaries intact")
    func largeFile() throws {
        let lengths = [60, 1514, 9000, 65535, 0, 1, 65535, 333]
        let records = (0..<160).map { RawCapture.Record($0, length: lengths[$0 % lengths.count]) }
        let (blocks, libpcap) = try outcomes(RawCapture(records: records).bytes)
        #expect(blocks.readBlocks)
        #expect(blocks.frames.count == 160 && blocks.error == nil)
        #expect(blocks.sameFrames(as: libpcap))
    }

    @Test("unusual records are libpcap's to read, and the blocks resume after them", arguments: [
        "caplen over snaplen", "caplen over len", "microseconds out of range", "seconds past 2^31",
    ])
    func unusualRecord(kind: String) throws {
        var records = (0..<6).map { RawCapture.Record($0) }
        switch kind {
        case "caplen over snaplen":
            records[2] = RawCapture.Record(2, length: 300)
        case "caplen over len":
            records[2].wire = 40
        case "microseconds out of range":
            records[2].fraction = 1_500_000
        default:
            records[2].seconds = 0x8000_0001
        }
        let (blocks, libpcap) = try outcomes(RawCapture(snapLength: 200, records: records).bytes)
        #expect(blocks.readBlocks)
        #expect(blocks.sameFrames(as: libpcap))
        if kind != "seconds past 2^31" { #expect(blocks.frames.count == 6) }
    }

    @Test("a capture cut at any byte gives the same frames and the same error from both readers")
    func everyCut() throws {
        let whole = RawCapture(records: (0..<3).map { RawCapture.Record($0, length: 20) }).bytes
        for cut in 24..<whole.count {
            let (blocks, libpcap) = try outcomes(Array(whole.prefix(cut)))
            #expect(blocks.sameFrames(as: libpcap), "cut at \(cut)")
            #expect(cut % 36 == 24 ? blocks.error == nil : blocks.error?.contains("packet \(blocks.frames.count + 1)")
                == true, "cut at \(cut): \(blocks.error ?? "no error")")
        }
    }

    @Test("files in the other byte order or of another version are left to libpcap", arguments: [
        (true, UInt16(4)), (false, UInt16(3)),
    ])
    func otherLayouts(bigEndian: Bool, minor: UInt16) throws {
        let raw = RawCapture(minor: minor, bigEndian: bigEndian, records: (0..<4).map { RawCapture.Record($0) })
        let (blocks, libpcap) = try outcomes(raw.bytes)
        #expect(!blocks.readBlocks)
        #expect(blocks.sameFrames(as: libpcap) && blocks.frames.count == 4)
    }

    @Test("the writer's bytes are pcap_dump's", arguments: [TimestampPrecision.nanoseconds, .microseconds])
    func writerMatchesLibpcap(precision: TimestampPrecision) throws {
        let ours = temporaryPath("ours.pcap")
        let theirs = temporaryPath("theirs.pcap")
        defer {
            try? FileManager.default.removeItem(atPath: ours)
            try? FileManager.default.removeItem(atPath: theirs)
        }
        // Sizes that fill the megabyte buffer unevenly; wire lengths above, equal to and (cut by the writer's
        // rule) below the captured length.
        let frames = (0..<100).map { RawCapture.Record($0, length: [60, 65535, 1514, 262_144][$0 % 4]) }
        let stamp = { (n: Int) in Int64(1_700_000_000 + n) * 1_000_000_000 + Int64(n) * 123_457 }
        let writer = try PcapWriter(path: ours, datalink: 1, snapLength: 262_144, precision: precision)
        for (n, frame) in frames.enumerated() {
            frame.data.withUnsafeBytes {
                writer.write($0, wireLength: frame.data.count + n % 3 - 1, timestamp: stamp(n))
            }
        }
        try writer.close()

        let libpcapPrecision = precision == .nanoseconds ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO
        let dead = try #require(pcap_open_dead_with_tstamp_precision(1, 262_144, UInt32(libpcapPrecision)))
        defer { pcap_close(dead) }
        let dumper = try #require(pcap_dump_open(dead, theirs))
        for (n, frame) in frames.enumerated() {
            var header = pcap_pkthdr()
            header.ts.tv_sec = Int(stamp(n) / 1_000_000_000)
            let fraction = Int(stamp(n) % 1_000_000_000)
            header.ts.tv_usec = precision == .nanoseconds ? fraction : fraction / 1000
            header.caplen = UInt32(frame.data.count)
            header.len = UInt32(max(frame.data.count + n % 3 - 1, frame.data.count))
            frame.data.withUnsafeBytes {
                pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                          $0.baseAddress?.assumingMemoryBound(to: UInt8.self))
            }
        }
        pcap_dump_close(dumper)
        let written = try Data(contentsOf: URL(fileURLWithPath: ours))
        #expect(written.count > 3 << 20)
        #expect(written == (try Data(contentsOf: URL(fileURLWithPath: theirs))))
    }
}
