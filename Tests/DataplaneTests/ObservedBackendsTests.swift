import Cluster
import Dataplane
import PacketWire
import TestSupport
import Testing

@Suite("Backends observed in the capture")
struct ObservedBackendsTests {
    /// A program that has seen `replies` in a pre-pass (each a pod answering a client port at a time).
    func harness(replies: [(pod: String, clientPort: UInt16, time: Int64)]) throws -> Harness {
        var harness = try Harness(seed: 99)
        var observed = ObservedBackends(tables: [harness.program.table], udpTimeoutSeconds: 30)
        for reply in replies {
            var synAck = PacketBuilder(source: reply.pod, destination: "10.0.1.2", sourcePort: 9376,
                                       destinationPort: reply.clientPort)
            synAck.flags = [.syn, .ack]
            _ = withFrame(synAck.ethernetFrame()) { frame in
                observed.observe(frame: frame, linkType: .ethernet, wireLength: frame.count,
                                 timestamp: harness.now + reply.time)
            }
        }
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
