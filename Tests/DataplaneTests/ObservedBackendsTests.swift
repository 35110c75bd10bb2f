import Cluster
import Dataplane
import Foundation
import PacketWire
import TestSupport
import Testing

@Suite("Backends observed in the capture")
struct ObservedBackendsTests {
    /// A program that has seen `replies` read from the capture (each a pod answering a client port at a time).
    func harness(replies: [(pod: String, clientPort: UInt16, time: Int64)]) throws -> Harness {
        var harness = try Harness(seed: 99)
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        for (number, reply) in replies.enumerated() {
            var synAck = PacketBuilder(source: reply.pod, destination: "10.0.1.2", sourcePort: 9376,
                                       destinationPort: reply.clientPort)
            synAck.flags = [.syn, .ack]
            let sighting = withFrame(synAck.ethernetFrame()) { frame in
                observed.sighting(in: frame, frame: number, linkType: .ethernet, wireLength: frame.count,
                                  timestamp: harness.now + reply.time)
            }
            observed.record(sighting.0.map { [$0] } ?? [], throughFrame: number + 1)
        }
        observed.finish()
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: LoadBalancerConfiguration(), observed: observed)
        return harness
    }

    @Test("a connection goes to the pod whose reply the capture holds")
    func followsReplies() throws {
        var harness = try harness(replies: [("10.244.3.11", 40000, 5_000_000), ("10.244.2.11", 40001, 6_000_000)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3)
        #expect(harness.run(client(40001).ethernetFrame()).1[14 + 18] == 2)
        #expect(harness.program.observed?.decided == 2)
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
        let sighting = try #require(withFrame(synAck.ethernetFrame()) { frame in
            observed.sighting(in: frame, frame: 1, linkType: .ethernet, wireLength: frame.count,
                              timestamp: harness.now + 50_000_000)
        }.0)
        let unrelated = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.9", sourcePort: 9376,
                                      destinationPort: 50000)
        let other = try #require(withFrame(unrelated.ethernetFrame()) { frame in
            observed.sighting(in: frame, frame: 0, linkType: .ethernet, wireLength: frame.count, timestamp: harness.now)
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
        #expect(observed.decided == 1)
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

    @Test("replies from an address that is no endpoint are not observations")
    func ignoresStrangers() throws {
        var harness = try harness(replies: [("10.244.9.99", 40000, 5_000_000)])
        _ = harness.run(client(40000).ethernetFrame())
        #expect(harness.program.observed?.decided == 0)
        #expect(harness.program.observed?.isEmpty == true)
    }
}
