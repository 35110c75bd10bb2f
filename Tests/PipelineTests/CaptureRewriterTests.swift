import Cluster
import Dataplane
import Foundation
@testable import PacketIO
import PacketWire
@testable import Pipeline
import TestSupport
import Testing

@Suite("Capture rewriter")
struct CaptureRewriterTests {
    let manifest = """
        kind: Service
        metadata: {name: web}
        spec: {clusterIP: 10.96.0.80, ports: [{port: 80, targetPort: 8080}]}
        ---
        kind: Endpoints
        metadata: {name: web}
        subsets: [{addresses: [{ip: 10.244.1.5}], ports: [{port: 8080}]}]
        ---
        kind: Service
        metadata: {name: empty}
        spec: {clusterIP: 10.96.0.81, ports: [{port: 80}]}
        """

    func frame(to address: String, port: UInt16 = 40000) -> [UInt8] {
        PacketBuilder(source: "10.0.1.2", destination: address, sourcePort: port, destinationPort: 80).ethernetFrame()
    }

    @Test("frames keep their order and timestamps; a reject follows its packet; nothing is lost")
    func orderAndAccounting() throws {
        let directory = NSTemporaryDirectory() + "svcplane-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = directory + "/in.pcap"
        let output = directory + "/out.pcap"
        let frames = [frame(to: "10.96.0.80"), frame(to: "10.96.0.81", port: 40001), frame(to: "192.0.2.1")]
        let writer = try PcapWriter(path: input, datalink: 1, snapLength: 65535, precision: .nanoseconds)
        for (n, bytes) in frames.enumerated() {
            bytes.withUnsafeBytes { writer.write($0, wireLength: bytes.count, timestamp: 1_000_000_007 + Int64(n)) }
        }
        try writer.close()

        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: manifest, name: "m", into: &manifests)
        let reader = try PcapReader(path: input)
        var program = ServiceLoadBalancer(table: try ServiceTableBuilder.build(manifests), linkType: .ethernet,
                                          configuration: LoadBalancerConfiguration())
        let sink = try PcapWriter(path: output, datalink: reader.datalink, snapLength: reader.snapLength,
                                  precision: reader.filePrecision)
        let counts = try CaptureRewriter.run(reader: reader, writer: sink, program: &program)
        #expect(counts == RewriteCounts(packetsRead: 3, packetsWritten: 4, generated: 1, dropped: 0))

        let result = try PcapReader(path: output)
        var written: [([UInt8], Int64)] = []
        while let next = try result.next() { written.append((Array(next.bytes), next.timestamp)) }
        #expect(written.map(\.1) == [1_000_000_007, 1_000_000_008, 1_000_000_008, 1_000_000_009])
        #expect(Array(written[0].0[30..<34]) == [10, 244, 1, 5], "DNAT to the endpoint")
        #expect(written[1].0 == frames[1], "the rejected packet, unchanged")
        #expect(written[2].0[14 + 9] == IPProtocol.icmp, "then its ICMP port unreachable")
        #expect(written[3].0 == frames[2], "not a Service: unchanged")
        #expect(program.stats.count(of: .tx) == 1 && program.stats.count(of: .pass) == 2)
    }
}

@Suite("Reading in blocks, end to end")
struct BlockReadingRewriteTests {
    let pcaps = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/pcaps"

    /// The rewritten capture of `capture` against `manifest`, read in blocks or through libpcap alone.
    func rewrite(_ capture: String, manifest: String, readsBlocks: Bool) throws -> Data {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: String(contentsOfFile: manifest, encoding: .utf8), name: manifest,
                                into: &manifests)
        let reader = try PcapReader(path: capture, readsBlocks: readsBlocks)
        #expect(reader.readsBlocks == readsBlocks)
        var configuration = LoadBalancerConfiguration()
        configuration.seed = 3
        var program = ServiceLoadBalancer(table: try ServiceTableBuilder.build(manifests),
                                          linkType: LinkType(dlt: reader.datalink), configuration: configuration)
        let output = NSTemporaryDirectory() + "svcplane-\(UUID().uuidString).pcap"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let sink = try PcapWriter(path: output, datalink: reader.datalink, snapLength: reader.snapLength,
                                  precision: reader.filePrecision)
        _ = try CaptureRewriter.run(reader: reader, writer: sink, program: &program)
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    @Test("every pcap in pcaps/ rewrites to the same bytes whether read in blocks or by libpcap")
    func sameOutput() throws {
        let captures = try FileManager.default.contentsOfDirectory(atPath: pcaps).filter { $0.hasSuffix(".pcap") }
        #expect(captures.count >= 9)
        for capture in captures {
            let name = String(capture.prefix { $0 != "." })
            let manifest = "\(pcaps)/\(name).yaml"
            let blocks = try rewrite("\(pcaps)/\(capture)", manifest: manifest, readsBlocks: true)
            let libpcap = try rewrite("\(pcaps)/\(capture)", manifest: manifest, readsBlocks: false)
            #expect(blocks == libpcap, "\(capture)")
            #expect(blocks.count > 24, "\(capture)")
        }
    }

    @Test("frames of up to 256 KiB, beside service traffic, rewrite the same read in blocks or by libpcap")
    func largeFrames() throws {
        let frames = (0..<120).map { n in
            let size = [262_144, 60, 65535, 1514, 131_073][n % 5]
            var frame = n % 3 == 0
                ? PacketBuilder(source: "10.0.1.2", destination: "10.96.148.206", sourcePort: UInt16(40000 + n),
                                destinationPort: 80).ethernetFrame()
                : [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: size)
            if n % 3 != 0 { frame[12] = 0x88; frame[13] = 0xB5 }  // a local EtherType: passed as it is
            return frame
        }
        try withCapture(frames, snapLength: 262_144) { capture in
            let manifest = "\(pcaps)/service-demo.yaml"
            let blocks = try rewrite(capture, manifest: manifest, readsBlocks: true)
            #expect(blocks == (try rewrite(capture, manifest: manifest, readsBlocks: false)))
            #expect(blocks.count > 120 * 16 + 80 * 60_000)
        }
    }

    @Test("batches come out in input order, each part prepared once, worked by every worker, overlapping the reading or not")
    func overlapping() throws {
        let frameCount = 3 * BatchPipeline.depth * FrameBatch.maximumFrames + 123
        let workers = 3
        // Frame n holds n in its first three bytes, then zeros: its owner's, one for each worker to count the frames
        // it saw, and one to count the times it was prepared.
        let frames = (0..<frameCount).map { number in
            [16, 8, 0].map { UInt8(truncatingIfNeeded: number >> $0) } + [UInt8](repeating: 0, count: 57 + number % 7)
        }
        /// The worker of frame n (from its bytes, so that a part left unprepared keeps another batch's workers).
        func owner(_ number: Int) -> Int { number / 5 % workers }
        let expected = frames.enumerated().map { number, frame in
            var frame = frame
            frame[3] = UInt8(owner(number))
            for worker in 0..<workers { frame[4 + worker] = 1 }
            frame[4 + workers] = 1
            return frame
        }
        try withCapture(frames, snapLength: 65535) { capture in
            /// The frames as `finish` sees them: the parts' frames are given their owners (and counted); then each
            /// worker writes its number into the frames it owns and counts every frame in its own byte.
            func run(overlaps: Bool, observer: ReadingLog) throws -> [[UInt8]] {
                let pipeline = BatchPipeline(reader: try PcapReader(path: capture), workers: workers,
                                             overlaps: overlaps, progress: nil, observer: observer)
                var seen: [[UInt8]] = []
                let (read, damage) = pipeline.run { batch, part in
                    for index in part {
                        let bytes = batch.bytes(of: index)
                        batch.workers[index] = owner(Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2]))
                        bytes[4 + workers] &+= 1
                    }
                } work: { batch, worker in
                    for index in 0..<batch.count {
                        let bytes = batch.bytes(of: index)
                        if batch.workers[index] == worker { bytes[3] = UInt8(worker) }
                        bytes[4 + worker] &+= 1
                    }
                } finish: { batch in
                    for index in 0..<batch.count { seen.append(Array(batch.bytes(of: index))) }
                }
                #expect(read == frameCount && damage == nil)
                return seen
            }
            /// The number of the first frame that differs from what is expected (nil when none does).
            func firstWrong(_ seen: [[UInt8]]) -> Int? {
                seen.count != expected.count ? min(seen.count, expected.count)
                    : seen.indices.first { seen[$0] != expected[$0] }
            }
            for overlaps in [false, true] {
                let log = ReadingLog(workers: workers)
                let wrong = firstWrong(try run(overlaps: overlaps, observer: log))
                #expect(wrong == nil, "overlapping: \(overlaps)")
                #expect(log.framesSeen == frameCount && log.allUnworked, "every frame, before any worker saw it")
                #expect(log.heldInTurn && log.ended == 1, "held up and let go in turn, then ended once")
                #expect(log.framesWorked == frameCount && log.allWorked, "every frame, once every worker worked it")
            }
        }
    }
}

/// What a `BatchPipeline` showed its observer: the batches in order, each before any worker touched it (the
/// bytes after a frame's number still zero), hold-ups, each let go before the next and before the end, and the end.
private final class ReadingLog: ReadingObserver {
    let workers: Int
    private(set) var framesSeen = 0
    private(set) var allUnworked = true
    private var held = false
    private(set) var heldInTurn = true
    private(set) var ended = 0
    /// Frames of the batches shown as worked, each prepared once and worked once by every worker by then.
    private(set) var framesWorked = 0
    private(set) var allWorked = true

    init(workers: Int) { self.workers = workers }

    func read(_ batch: FrameBatch, framesBefore: Int) {
        allUnworked = allUnworked && framesBefore == framesSeen
            && (0..<batch.count).allSatisfy { batch.bytes(of: $0)[3...4 + workers].allSatisfy { $0 == 0 } }
        framesSeen += batch.count
    }

    func readingHeld(_ held: Bool) {
        heldInTurn = heldInTurn && held != self.held && ended == 0
        self.held = held
    }

    func worked(_ batch: FrameBatch) {
        allWorked = allWorked
            && (0..<batch.count).allSatisfy { batch.bytes(of: $0)[4...4 + workers].allSatisfy { $0 == 1 } }
        framesWorked += batch.count
    }

    func readingEnded() {
        heldInTurn = heldInTurn && !held
        ended += 1
    }
}

/// Runs `body` with a temporary Ethernet capture of `frames` (one every `spacing` nanoseconds, a microsecond unless
/// told), removed afterwards.
func withCapture(_ frames: [[UInt8]], snapLength: Int32, spacing: Int64 = 1000, _ body: (String) throws -> Void)
    throws
{
    let directory = NSTemporaryDirectory() + "svcplane-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let capture = directory + "/frames.pcap"
    let writer = try PcapWriter(path: capture, datalink: 1, snapLength: snapLength, precision: .microseconds)
    for (n, frame) in frames.enumerated() {
        frame.withUnsafeBytes {
            writer.write($0, wireLength: $0.count, timestamp: 1_700_000_000_000_000_000 + Int64(n) * spacing)
        }
    }
    try writer.close()
    try body(capture)
}
