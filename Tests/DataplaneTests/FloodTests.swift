import Cluster
import Conntrack
import Dataplane
import PacketWire
import TestSupport
import Testing

/// Runs many packets through one program quickly: one frame buffer, its source address rewritten in place.
struct FloodRunner {
    var program: ServiceLoadBalancer
    var now: Int64 = 1_700_000_000_000_000_000

    init(conntrackMax: Int) throws {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: manifest, name: "manifest", into: &manifests)
        var configuration = LoadBalancerConfiguration()
        configuration.conntrackMax = conntrackMax
        program = ServiceLoadBalancer(table: try ServiceTableBuilder.build(manifests), linkType: .ethernet,
                                      configuration: configuration)
    }

    /// Sends `template` once per source address, 1 µs apart; returns how many were passed.
    mutating func flood(_ template: [UInt8], sources: [UInt32]) -> Int {
        var frame = template
        var passed = 0
        let generated = UnsafeMutableRawBufferPointer.allocate(byteCount: XDPContext.generatedCapacity, alignment: 8)
        defer { generated.deallocate() }
        frame.withUnsafeMutableBytes { bytes in
            for source in sources {
                bytes.copyBytes(from: template)  // undo the previous DNAT
                bytes.setU32(14 + 12, source)
                now += 1000
                var context = XDPContext(data: bytes, wireLength: bytes.count, timestamp: now, generated: generated)
                if program.run(&context) == .pass { passed += 1 }
            }
        }
        return passed
    }

    /// Opens a TCP connection from 10.0.2.N and completes its handshake, so that it is ASSURED.
    mutating func establish(_ n: Int) -> Harness {
        var harness = try! Harness()
        harness.program = program
        harness.now = now
        var syn = client(UInt16(20000 + n))
        syn.source = IPv4Address(0x0A00_0200 + UInt32(n))
        let (_, out) = harness.run(syn.ethernetFrame())
        var synAck = PacketBuilder(source: "\(out[30]).\(out[31]).\(out[32]).\(out[33])",
                                   destination: syn.source.description, sourcePort: 9376,
                                   destinationPort: syn.sourcePort)
        synAck.flags = [.syn, .ack]
        synAck.acknowledgement = 1001
        _ = harness.run(synAck.ethernetFrame())
        var ack = syn
        ack.flags = [.ack]
        ack.sequence = 1001
        ack.acknowledgement = 1
        _ = harness.run(ack.ethernetFrame())
        program = harness.program
        now = harness.now
        return harness
    }
}

@Suite("Full tables and floods")
struct FloodTests {
    func randomSources(_ count: Int, seed: UInt64) -> [UInt32] {
        var random = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt32.random(in: 0x0B00_0000...0x0BFF_FFFF, using: &random) }
    }

    @Test("a SYN flood from 1M sources: bounded table, early drops, established connections untouched")
    func synFlood() throws {
        var runner = try FloodRunner(conntrackMax: 65536)
        for n in 0..<100 { _ = runner.establish(n) }
        #expect(runner.program.conntrack.entries(at: runner.now).filter(\.assured).count == 100)
        let sources = randomSources(1_000_000, seed: 5)
        let passed = runner.flood(client(33333).ethernetFrame(), sources: sources)
        let table = runner.program.conntrack
        #expect(table.count <= 65536)
        #expect(table.earlyDrops >= Set(sources).count - 65536, "a repeated source is a SYN retransmit, not new")
        #expect(passed + runner.program.stats.count(dropped: .tableFull) == 1_000_000)
        let assured = table.entries(at: runner.now).filter(\.assured)
        #expect(assured.count == 100, "ASSURED connections are never early-dropped")
        // ...and their packets are still translated.
        var harness = try Harness()
        harness.program = runner.program
        harness.now = runner.now
        var data = client(20007)
        data.source = IPv4Address(0x0A00_0207)
        data.flags = [.ack, .psh]
        data.sequence = 1001
        data.payload = Array("GET /".utf8)
        let (action, out) = harness.run(data.ethernetFrame())
        #expect(action == .pass && out[30] == 10 && out[31] == 244)
    }

    @Test("a UDP flood is bounded the same way")
    func udpFlood() throws {
        var runner = try FloodRunner(conntrackMax: 4096)
        let sources = randomSources(200_000, seed: 6)
        let passed = runner.flood(client(33333, to: "10.96.0.10", 53, IPProtocol.udp).ethernetFrame(),
                                  sources: sources)
        #expect(passed == 200_000)
        #expect(runner.program.conntrack.count <= 4096)
        // A repeated source finds its entry, unless the flood early-dropped it in between.
        #expect((Set(sources).count...sources.count).contains(runner.program.stats.newConnections))
        #expect(runner.program.conntrack.earlyDrops >= Set(sources).count - 4096)
    }

    @Test("when every entry is ASSURED a new connection is dropped and counted as table full")
    func tableFull() throws {
        var runner = try FloodRunner(conntrackMax: 16)
        for n in 0..<16 { _ = runner.establish(n) }
        let passed = runner.flood(client(40000).ethernetFrame(), sources: [0x0B00_0001, 0x0B00_0002])
        #expect(passed == 0)
        #expect(runner.program.stats.count(dropped: .tableFull) == 2)
        #expect(runner.program.conntrack.count == 16)
    }
}
