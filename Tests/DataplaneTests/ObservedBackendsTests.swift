import Cluster
@testable import Dataplane
import Foundation
import PacketWire
import TestSupport
import Testing

@Suite("Backends observed in the capture")
struct ObservedBackendsTests {
    /// A program (of `configuration`) that has seen `replies` read from the capture (each a pod answering a client
    /// port at a time).
    func harness(replies: [(pod: String, clientPort: UInt16, time: Int64)],
                 configuration: LoadBalancerConfiguration = LoadBalancerConfiguration()) throws -> Harness
    {
        var harness = try Harness(seed: 99)
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        for (number, reply) in replies.enumerated() {
            var synAck = PacketBuilder(source: reply.pod, destination: "10.0.1.2", sourcePort: 9376,
                                       destinationPort: reply.clientPort)
            synAck.flags = [.syn, .ack]
            var reported = ReportedPairs()
            let sighting = withFrame(synAck.ethernetFrame()) { frame in
                observed.sighting(in: frame, frame: number, linkType: .ethernet, wireLength: frame.count,
                                  timestamp: harness.now + reply.time, reported: &reported)
            }
            observed.record(sighting.0.map { [$0] } ?? [], throughFrame: number + 1)
        }
        observed.finish()
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: configuration, observed: observed)
        return harness
    }

    @Test("a connection goes to the pod whose reply the capture holds")
    func followsReplies() throws {
        var harness = try harness(replies: [("10.244.3.11", 40000, 5_000_000), ("10.244.2.11", 40001, 6_000_000)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3)
        #expect(harness.run(client(40001).ethernetFrame()).1[14 + 18] == 2)
        #expect(harness.program.stats.connectionsFromCapture == 2)
    }

    @Test("a program asking before the reply is read waits for it, and gives up only when the capture is read")
    func waitsForTheReader() throws {
        var harness = try Harness(seed: 99)
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: LoadBalancerConfiguration(), observed: observed)
        var synAck = PacketBuilder(source: "10.244.3.11", destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: 40000)
        synAck.flags = [.syn, .ack]
        var reported = ReportedPairs()
        let sighting = try #require(withFrame(synAck.ethernetFrame()) { frame in
            observed.sighting(in: frame, frame: 1, linkType: .ethernet, wireLength: frame.count,
                              timestamp: harness.now + 50_000_000, reported: &reported)
        }.0)
        let unrelated = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.9", sourcePort: 9376,
                                      destinationPort: 50000)
        let other = try #require(withFrame(unrelated.ethernetFrame()) { frame in
            observed.sighting(in: frame, frame: 0, linkType: .ethernet, wireLength: frame.count, timestamp: harness.now,
                              reported: &reported)
        }.0)
        // The reader records an unrelated reply, then, later, the one that decides; then the capture ends.
        Thread.detachNewThread {
            observed.record([other], throughFrame: 1)
            Thread.sleep(forTimeInterval: 0.2)
            observed.record([sighting], throughFrame: 2)
            Thread.sleep(forTimeInterval: 0.2)
            observed.finish()
        }
        let started = ContinuousClock.now
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3, "the reply read late decides")
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        #expect(harness.run(client(40001).ethernetFrame()).0 == .pass, "undecided once the capture is read")
        #expect(harness.program.stats.connectionsFromCapture == 1)
    }

    @Test("a reused client port follows the reply that comes after its SYN")
    func portReuse() throws {
        var harness = try harness(replies: [("10.244.1.11", 40000, 1_500_000), ("10.244.3.11", 40000, 60_000_000)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 1)
        harness.now += 50_000_000
        var rst = client(40000)  // the client aborts; its next SYN from the same port opens a new connection
        rst.flags = [.rst]
        _ = harness.run(rst.ethernetFrame())
        var second = client(40000)
        second.sequence = 77
        #expect(harness.run(second.ethernetFrame()).1[14 + 18] == 3)
    }

    @Test("only connections the table takes count as opened on the backend the capture shows")
    func countsConnectionsMade() throws {
        var configuration = LoadBalancerConfiguration()
        configuration.conntrackMax = 1
        var harness = try harness(replies: [("10.244.3.11", 40000, 1_500_000), ("10.244.2.11", 40001, 5_000_000)],
                                  configuration: configuration)
        _ = harness.run(client(40000).ethernetFrame())
        var synAck = PacketBuilder(source: "10.244.3.11", destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: 40000)
        (synAck.flags, synAck.sequence, synAck.acknowledgement) = ([.syn, .ack], 5000, 1001)
        _ = harness.run(synAck.ethernetFrame())
        var ack = client(40000)  // established and ASSURED: early drop cannot make room
        (ack.flags, ack.sequence, ack.acknowledgement) = ([.ack], 1001, 5001)
        _ = harness.run(ack.ethernetFrame())
        #expect(harness.run(client(40001).ethernetFrame()).0 == .drop, "table full")
        #expect(harness.program.stats.count(dropped: .tableFull) == 1)
        #expect(harness.program.stats.newConnections == 1 && harness.program.stats.connectionsFromCapture == 1)
    }

    @Test("replies from an address that is no endpoint are not observations")
    func ignoresStrangers() throws {
        var harness = try harness(replies: [("10.244.9.99", 40000, 5_000_000)])
        _ = harness.run(client(40000).ethernetFrame())
        #expect(harness.program.stats.connectionsFromCapture == 0)
        #expect(harness.program.observed?.isEmpty == true)
    }

    @Test("passing over the later segments of reported pairs records what reading every frame records")
    func reportedPairsChangeNothing() throws {
        let table = try Harness().program.table
        let web = try #require(table.entries.first { $0.frontend.port == 80 && !$0.backends.isEmpty })
        let dns = try #require(table.entries.first { $0.frontend.port == 53 })
        let pods = ["10.244.1.11", "10.244.2.11", "10.244.3.11", "10.244.9.99"]  // the last is no endpoint
        let flagChoices: [TCPFlags] = [[.ack], [.ack], [.ack, .psh], [.syn, .ack], [.fin, .ack], [.rst], [.syn]]
        var random = SeededGenerator(seed: 7)
        // A few hundred pairs that recur, among many that do not (more than the table's slots, which they evict).
        func client() -> (address: String, port: UInt16) {
            Bool.random(using: &random)
                ? ("10.0.1.\(Int.random(in: 1...4, using: &random))", UInt16.random(in: 40000..<40080, using: &random))
                : ("10.0.\(Int.random(in: 2...200, using: &random)).\(Int.random(in: 1...250, using: &random))",
                   UInt16.random(in: 32768...60999, using: &random))
        }
        let memo = CaptureReplies(tables: [table], udpTimeoutSeconds: 30)
        let everyFrame = CaptureReplies(tables: [table], udpTimeoutSeconds: 30)
        var reported = ReportedPairs()
        var clients: [FlowKey] = []
        var (memoSightings, allSightings) = (0, 0)
        for number in 0..<20_000 {
            let (address, port) = client()
            let isTCP = Int.random(in: 0..<5, using: &random) > 0
            var reply = PacketBuilder(source: pods.randomElement(using: &random)!, destination: address,
                                      sourcePort: isTCP ? 9376 : 53, destinationPort: port)
            reply.protocolNumber = isTCP ? IPProtocol.tcp : IPProtocol.udp
            reply.flags = flagChoices.randomElement(using: &random)!
            var frame = reply.ethernetFrame()
            switch Int.random(in: 0..<50, using: &random) {
            case 0: frame.removeLast(Int.random(in: 1...frame.count, using: &random))  // cut short
            case 1: frame[Int.random(in: 14..<frame.count, using: &random)] ^= 0xFF  // damaged
            default: break
            }
            let time = Int64(number) * 1_000_000_000
            _ = withFrame(frame) { bytes in
                var fresh = ReportedPairs()
                if let sighting = everyFrame.sighting(in: bytes, frame: number, linkType: .ethernet,
                                                      wireLength: bytes.count, timestamp: time, reported: &fresh)
                {
                    everyFrame.record([sighting], throughFrame: number + 1)
                    allSightings += 1
                }
                if let sighting = memo.sighting(in: bytes, frame: number, linkType: .ethernet,
                                                wireLength: bytes.count, timestamp: time, reported: &reported)
                {
                    memo.record([sighting], throughFrame: number + 1)
                    memoSightings += 1
                }
            }
            if number % 7 == 0 {
                clients.append(FlowKey(source: IPv4Address(address)!, destination: IPv4Address(10, 96, 0, 1),
                                       sourcePort: port, destinationPort: 80, protocolNumber: reply.protocolNumber))
            }
        }
        memo.finish()
        everyFrame.finish()
        #expect(memoSightings < allSightings * 3 / 4, "\(memoSightings) of \(allSightings) sightings")
        var decided = 0
        for (index, flow) in clients.enumerated() {
            let entry = flow.protocolNumber == IPProtocol.tcp ? web : dns
            let candidates = Array(entry.backends.indices.shuffled(using: &random).prefix(2))
            for time in [0, Int64(index) * 7_000_000_000, Int64(index + 100) * 7_000_000_000] {
                let expected = everyFrame.choice(for: flow, at: time, entry: entry, among: candidates)
                #expect(memo.choice(for: flow, at: time, entry: entry, among: candidates) == expected)
                if expected != nil { decided += 1 }
            }
        }
        #expect(decided > clients.count)
    }
}
