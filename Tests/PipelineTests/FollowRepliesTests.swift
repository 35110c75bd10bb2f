import Cluster
@testable import Dataplane
import Foundation
@testable import PacketIO
import PacketWire
@testable import Pipeline
import TestSupport
import Testing

@Suite("Following the capture's replies")
struct FollowRepliesTests {
    let manifest = """
        kind: Service
        metadata: {name: api, namespace: shop}
        spec: {clusterIP: 10.96.0.80, ports: [{name: http, port: 80, targetPort: 8080}]}
        ---
        kind: EndpointSlice
        metadata: {name: api-1, namespace: shop, labels: {kubernetes.io/service-name: api}}
        ports: [{name: http, port: 8080}]
        endpoints: [{addresses: [10.244.1.5]}, {addresses: [10.244.2.5]}, {addresses: [10.244.3.5]}]
        """

    func syn(port: UInt16) -> [UInt8] {
        var syn = PacketBuilder(source: "10.0.1.2", destination: "10.96.0.80", sourcePort: port, destinationPort: 80)
        syn.flags = [.syn]
        return syn.ethernetFrame()
    }

    func synAck(from pod: String, port: UInt16) -> [UInt8] {
        var synAck = PacketBuilder(source: pod, destination: "10.0.1.2", sourcePort: 8080, destinationPort: port)
        synAck.flags = [.syn, .ack]
        return synAck.ethernetFrame()
    }

    /// Frames that are no IP (a local EtherType): passed as they are.
    func filler(_ count: Int) -> [[UInt8]] {
        [[UInt8]](repeating: [UInt8](repeating: 0, count: 12) + [0x88, 0xB5] + [UInt8](repeating: 7, count: 46),
                  count: count)
    }

    /// The rewritten capture with `workers` programs following the capture's replies, the replies, and how many
    /// connections the programs opened on the backend the capture shows.
    func rewrite(_ capture: String, workers: Int)
        throws -> (output: [[UInt8]], replies: CaptureReplies, fromCapture: Int)
    {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: manifest, name: "m", into: &manifests)
        let table = try ServiceTableBuilder.build(manifests)
        let replies = try CaptureRewriter.followReplies(path: capture, tables: [table], udpTimeoutSeconds: 30)
        var configuration = LoadBalancerConfiguration()
        configuration.mode = .maglev
        let partition = workers > 1
            ? ConnectionPartition(sharding: FlowSharding(tables: [table], nodeAddresses: []), workers: workers) : nil
        configuration.sharding = partition?.sharding
        var programs = Array(repeating: ServiceLoadBalancer(table: table, linkType: .ethernet,
                                                           configuration: configuration, observed: replies),
                             count: workers)
        let output = NSTemporaryDirectory() + "svcplane-\(UUID().uuidString).pcap"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let reader = try PcapReader(path: capture)
        let sink = try PcapWriter(path: output, datalink: reader.datalink, snapLength: reader.snapLength,
                                  precision: reader.filePrecision)
        _ = try CaptureRewriter.run(reader: reader, writer: sink, programs: &programs, partition: partition)
        let written = try PcapReader(path: output)
        var frames: [[UInt8]] = []
        while let frame = try written.next() { frames.append(Array(frame.bytes)) }
        return (frames, replies, programs.reduce(0) { $0 + $1.stats.connectionsFromCapture })
    }

    /// The destination address of a written frame.
    func destination(_ frame: [UInt8]) -> String { frame[30..<34].map(String.init).joined(separator: ".") }

    @Test("a reply within the batches in flight decides its connection without reading the capture again")
    func nearReplies() throws {
        let frames = [syn(port: 40000), syn(port: 40001)] + filler(3 * FrameBatch.maximumFrames)
            + [synAck(from: "10.244.3.5", port: 40000), synAck(from: "10.244.1.5", port: 40001)]
        try withCapture(frames, snapLength: 65535) { capture in
            for workers in [1, 2] {
                let (output, replies, fromCapture) = try rewrite(capture, workers: workers)
                #expect(output.count == frames.count)
                #expect(destination(output[0]) == "10.244.3.5" && destination(output[1]) == "10.244.1.5")
                // Without a spare core, each batch is run before the next is read: the reply is read ahead.
                let oneCore = ProcessInfo.processInfo.activeProcessorCount == 1
                #expect(fromCapture == 2 && replies.readAhead == oneCore, "\(workers) workers")
            }
        }
    }

    @Test("a reply past the batches the run can hold is found by reading ahead; so is the lack of one")
    func farReplies() throws {
        let far = (BatchPipeline.depth + 2) * FrameBatch.maximumFrames
        let frames = [syn(port: 40000), syn(port: 40001), syn(port: 40002), synAck(from: "10.244.2.5", port: 40001)]
            + filler(far) + [synAck(from: "10.244.3.5", port: 40000)]
        try withCapture(frames, snapLength: 65535) { capture in
            let (one, replies, fromCapture) = try rewrite(capture, workers: 1)
            #expect(one.count == frames.count)
            #expect(destination(one[0]) == "10.244.3.5" && destination(one[1]) == "10.244.2.5")
            #expect(destination(one[2]).hasPrefix("10.244."), "no reply: the selector's choice")
            #expect(fromCapture == 2 && replies.readAhead)
            for workers in [2, 3] {
                let (several, _, fromCapture) = try rewrite(capture, workers: workers)
                #expect(several == one, "\(workers) workers")
                #expect(fromCapture == 2)
            }
        }
    }

    @Test("a reply counts up to a horizon past the program's clock, read ahead as far as need be; the replies forget")
    func horizon() throws {
        // A frame a millisecond: the horizon (two minutes) holds more frames than the batches in flight.
        let millisecond: Int64 = 1_000_000
        let horizon = ObservedBackends(tables: [], udpTimeoutSeconds: 30).horizon
        let answered = Int(horizon / millisecond) - 20_000
        var frames = [syn(port: 40000), syn(port: 40001), syn(port: 40002)] + filler(5 * answered)
        // Pods answering other clients now and then.
        for (index, number) in stride(from: 10, to: frames.count, by: 100).enumerated() {
            var reply = PacketBuilder(source: "10.244.\(1 + index % 3).5", destination: "10.0.9.9", sourcePort: 8080,
                                      destinationPort: UInt16(1024 + index))
            reply.flags = [.syn, .ack]
            frames[number] = reply.ethernetFrame()
        }
        frames[answered] = synAck(from: "10.244.2.5", port: 40001)  // within the horizon of its SYN
        frames[answered + 40_000] = synAck(from: "10.244.3.5", port: 40002)  // past it
        // Long after the look-ahead paused, a connection whose reply is again past the batches in flight.
        let later = 3 * answered
        frames[later] = syn(port: 40003)
        frames[later + answered] = synAck(from: "10.244.1.5", port: 40003)
        // At the end, the replies hold those of the last horizon (and a batch) alone.
        let held = (Int(horizon / millisecond) + FrameBatch.maximumFrames) / 100 + 1
        try withCapture(frames, snapLength: 65535, spacing: millisecond) { capture in
            let (one, replies, fromCapture) = try rewrite(capture, workers: 1)
            #expect(destination(one[1]) == "10.244.2.5" && destination(one[later]) == "10.244.1.5")
            #expect(fromCapture == 2 && replies.readAhead)
            #expect(replies.count <= held, "\(replies.count) of about \(frames.count / 100) replies held at the end")
            let (two, _, fromCaptureByTwo) = try rewrite(capture, workers: 2)
            #expect(two == one && fromCaptureByTwo == 2)
        }
    }
}
