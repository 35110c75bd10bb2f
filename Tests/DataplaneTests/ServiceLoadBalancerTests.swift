import Cluster
import Conntrack
import Dataplane
import PacketWire
import TestSupport
import Testing

let manifest = """
    kind: Service
    metadata: {name: web, namespace: default}
    spec: {clusterIP: 10.96.148.206, selector: {app: web}, ports: [{port: 80, targetPort: 9376}]}
    ---
    kind: Service
    metadata: {name: dns, namespace: default}
    spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{name: dns, port: 53, protocol: UDP}]}
    ---
    kind: Service
    metadata: {name: empty, namespace: default}
    spec: {clusterIP: 10.96.0.50, selector: {app: nothing}, ports: [{port: 80}]}
    ---
    kind: List
    items:
    - {kind: Pod, metadata: {name: web-1, labels: {app: web}}, status: {phase: Running, podIP: 10.244.1.11, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: web-2, labels: {app: web}}, status: {phase: Running, podIP: 10.244.2.11, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: web-3, labels: {app: web}}, status: {phase: Running, podIP: 10.244.3.11, conditions: [{type: Ready, status: "True"}]}}
    """

/// A program over `manifest` and a helper that runs frames through it.
struct Harness {
    var program: ServiceLoadBalancer
    var now: Int64 = 1_700_000_000_000_000_000
    var lastGenerated: [UInt8] = []

    init(mode: LoadBalancingMode = .random, seed: UInt64 = 1, linkType: LinkType = .ethernet,
         manifest text: String = manifest, configure: (inout LoadBalancerConfiguration) -> Void = { _ in }) throws
    {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: text, name: "manifest", into: &manifests)
        var configuration = LoadBalancerConfiguration()
        configuration.mode = mode
        configuration.seed = seed
        configure(&configuration)
        program = ServiceLoadBalancer(table: try ServiceTableBuilder.build(manifests), linkType: linkType,
                                      configuration: configuration)
    }

    mutating func run(_ frame: [UInt8], wireLength: Int? = nil) -> (XDPAction, [UInt8]) {
        now += 1_000_000
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: XDPContext.generatedCapacity, alignment: 8)
        defer { scratch.deallocate() }
        let timestamp = now
        var generatedLength = 0
        let (action, bytes) = withFrame(frame) { data in
            var context = XDPContext(data: data, wireLength: wireLength ?? data.count, timestamp: timestamp,
                                     generated: scratch)
            let action = program.run(&context)
            generatedLength = context.generatedLength
            return action
        }
        lastGenerated = Array(scratch.prefix(generatedLength))
        return (action, bytes)
    }
}

/// `manifest` with ClientIP affinity on the web Service, and `extra` spec fields after it.
func affinityManifest(_ extra: String = "") -> String {
    let web = "spec: {clusterIP: 10.96.148.206, selector: {app: web}, ports: [{port: 80, targetPort: 9376}]"
    return manifest.replacingOccurrences(of: web + "}", with: web + ", sessionAffinity: ClientIP\(extra)}")
}

func client(_ port: UInt16, to address: String = "10.96.148.206", _ destinationPort: UInt16 = 80,
            _ protocolNumber: UInt8 = IPProtocol.tcp) -> PacketBuilder
{
    PacketBuilder(source: "10.0.1.2", destination: address, sourcePort: port, destinationPort: destinationPort,
                  protocolNumber: protocolNumber)
}

@Suite("Service program")
struct ServiceLoadBalancerTests {
    @Test("a TCP connection is DNATed to one pod and its replies come back from the ClusterIP")
    func tcpConnection() throws {
        var harness = try Harness()
        let syn = client(40000)
        let (action, out) = harness.run(syn.ethernetFrame())
        #expect(action == .pass)
        let ip = Array(out[14..<(14 + syn.ipPacket().count)])
        #expect(ChecksumCheck.isValid(ipPacket: ip))
        let pod = IPv4Address(UInt32(ip[16]) << 24 | UInt32(ip[17]) << 16 | UInt32(ip[18]) << 8 | UInt32(ip[19]))
        #expect(["10.244.1.11", "10.244.2.11", "10.244.3.11"].contains(pod.description))
        #expect(UInt16(ip[22]) << 8 | UInt16(ip[23]) == 9376)

        var synAck = PacketBuilder(source: pod.description, destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: 40000)
        synAck.flags = [.syn, .ack]
        synAck.acknowledgement = 1001
        let (replyAction, reply) = harness.run(synAck.ethernetFrame())
        #expect(replyAction == .pass)
        var expected = synAck
        expected.source = IPv4Address("10.96.148.206")!
        expected.sourcePort = 80
        #expect(Array(reply[14..<(14 + expected.ipPacket().count)]) == expected.ipPacket())

        var ack = syn
        ack.flags = [.ack]
        ack.sequence = 1001
        _ = harness.run(ack.ethernetFrame())
        let records = harness.program.conntrack.entries(at: harness.now).map { ConntrackRecord($0, now: harness.now) }
        #expect(records.count == 1)
        #expect(records[0].state == "ESTABLISHED" && records[0].assured && !records[0].unreplied)
        #expect(harness.program.stats.newConnections == 1)
        #expect(harness.program.stats.translatedOriginal == 2 && harness.program.stats.translatedReply == 1)
    }

    @Test("everything that is not ours passes byte for byte")
    func passThrough() throws {
        var harness = try Harness()
        let arp: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [0, 1, 8, 0, 6, 4, 0, 1]
            + [2, 0, 0, 0, 0, 1, 10, 0, 1, 2, 0, 0, 0, 0, 0, 0, 10, 0, 1, 1] + [UInt8](repeating: 0, count: 18)
        let ipv6: [UInt8] = [UInt8](repeating: 1, count: 12) + [0x86, 0xDD] + [UInt8](repeating: 0, count: 40)
        var icmp = client(0)
        icmp.protocolNumber = IPProtocol.icmp
        let otherTCP = client(40000, to: "10.96.148.206", 443)
        let reply = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.2", sourcePort: 9376,
                                  destinationPort: 40000)
        for frame in [arp, ipv6, icmp.ethernetFrame(), otherTCP.ethernetFrame(), reply.ethernetFrame(),
                      Array(arp.prefix(10))]
        {
            let (action, out) = harness.run(frame)
            #expect(action == .pass)
            #expect(out == frame)
        }
        let stats = harness.program.stats
        #expect(stats.count(passed: .notIPv4) == 2 && stats.count(passed: .notService) == 2)
        #expect(stats.count(passed: .otherProtocol) == 1)
        #expect(stats.count(passed: .malformed) == 1)
        #expect(stats.count(malformed: .truncatedLinkHeader) == 1)
    }

    @Test("a frontend without endpoints is answered with ICMP port unreachable")
    func reject() throws {
        var harness = try Harness()
        let syn = client(40001, to: "10.96.0.50")
        let frame = syn.ethernetFrame()
        let (action, out) = harness.run(frame)
        #expect(action == .tx)
        #expect(out == frame, "the rejected packet itself is not changed")
        let reply = harness.lastGenerated
        #expect(Array(reply[0..<6]) == Array(frame[6..<12]) && Array(reply[6..<12]) == Array(frame[0..<6]))
        let ip = Array(reply[14...])
        #expect(ip[1] == 0xC0 && ip[9] == IPProtocol.icmp && ip[20] == 3 && ip[21] == 3)
        #expect(Array(ip[12..<16]) == [10, 96, 0, 50] && Array(ip[16..<20]) == [10, 0, 1, 2])
        #expect(Array(ip[28...]) == syn.ipPacket(), "the whole offending datagram is quoted")
        let headerSum = ip[0..<20].withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
        let icmpSum = ip[20...].withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
        #expect(headerSum == 0xFFFF && icmpSum == 0xFFFF)
        #expect(harness.program.stats.rejected == 1 && harness.program.conntrack.count == 0)
        var reset = client(40001, to: "10.96.0.50")
        reset.flags = [.rst]
        #expect(harness.run(reset.ethernetFrame()).0 == .drop, "only a new connection is rejected")
    }

    @Test("round-robin rotates strictly through the endpoints in order")
    func roundRobin() throws {
        var harness = try Harness(mode: .roundRobin)
        var pods: [UInt8] = []
        for port in UInt16(40000)..<40007 {
            let (_, out) = harness.run(client(port).ethernetFrame())
            pods.append(out[14 + 18])
        }
        #expect(pods == [1, 2, 3, 1, 2, 3, 1])
    }

    @Test("random choice is uniform, reproducible for a seed, and differs across seeds")
    func randomChoice() throws {
        func choices(seed: UInt64) throws -> [UInt8] {
            var harness = try Harness(seed: seed)
            return (0..<3000).map { n in
                var syn = client(UInt16(10000 + n))
                syn.source = IPv4Address(UInt32(0x0A00_0000 + n))
                return harness.run(syn.ethernetFrame()).1[14 + 18]
            }
        }
        let first = try choices(seed: 1)
        #expect(try choices(seed: 1) == first)
        #expect(try choices(seed: 2) != first)
        for pod in UInt8(1)...3 {
            let share = first.filter { $0 == pod }.count
            #expect((900...1100).contains(share), "pod \(pod): \(share) of 3000")
        }
    }

    @Test("invalid TCP flags to a frontend are dropped; a mid-connection ACK is picked up")
    func invalidAndPickup() throws {
        var harness = try Harness()
        var bogus = client(40010)
        bogus.flags = [.syn, .fin]
        #expect(harness.run(bogus.ethernetFrame()).0 == .drop)
        var finAck = client(40011)
        finAck.flags = [.fin, .ack]
        #expect(harness.run(finAck.ethernetFrame()).0 == .drop)
        var ack = client(40012)
        ack.flags = [.ack, .psh]
        ack.payload = Array("GET / HTTP/1.1\r\n".utf8)
        let (action, out) = harness.run(ack.ethernetFrame())
        #expect(action == .pass && out[14 + 16] == 10 && out[14 + 17] == 244)
        #expect(harness.program.stats.count(dropped: .conntrackInvalid) == 2)
    }

    @Test("UDP: each new source port is a new connection; the answer comes from the ClusterIP")
    func udp() throws {
        var harness = try Harness()
        let query = client(55503, to: "10.96.0.10", 53, IPProtocol.udp)
        let (_, out) = harness.run(query.ethernetFrame())
        let pod = "10.244.\(out[14 + 18]).11"
        #expect(out[14 + 22] == 0 && out[14 + 23] == 53)
        let answer = PacketBuilder(source: pod, destination: "10.0.1.2", sourcePort: 53, destinationPort: 55503,
                                   protocolNumber: IPProtocol.udp)
        let (_, back) = harness.run(answer.ethernetFrame())
        #expect(Array(back[(14 + 12)..<(14 + 16)]) == [10, 96, 0, 10])
        #expect(ChecksumCheck.isValid(ipPacket: Array(back[14..<(14 + answer.ipPacket().count)])))
        let record = ConntrackRecord(harness.program.conntrack.entries(at: harness.now)[0], now: harness.now)
        #expect(record.line.hasPrefix("udp      17 30 src=10.0.1.2 dst=10.96.0.10 sport=55503 dport=53 src=\(pod)"))
    }

    @Test("round trip: DNAT then reverse NAT of the reply gives the client the ClusterIP tuple", arguments: [1, 2, 3])
    func roundTrip(seed: UInt64) throws {
        var harness = try Harness(seed: seed)
        var random = SeededGenerator(seed: seed)
        for _ in 0..<300 {
            var syn = client(.random(in: 1024...65535, using: &random))
            syn.source = IPv4Address(.random(in: 0x0A00_0000...0x0AFF_FFFF, using: &random))
            syn.sequence = .random(in: 0...UInt32.max, using: &random)
            let (_, out) = harness.run(syn.ethernetFrame())
            let ip = Array(out[14..<(14 + syn.ipPacket().count)])
            var synAck = PacketBuilder(source: "\(ip[16]).\(ip[17]).\(ip[18]).\(ip[19])",
                                       destination: syn.source.description, sourcePort: 9376,
                                       destinationPort: syn.sourcePort)
            synAck.flags = [.syn, .ack]
            synAck.acknowledgement = syn.sequence &+ 1
            let (_, back) = harness.run(synAck.ethernetFrame())
            let reply = Array(back[14..<(14 + synAck.ipPacket().count)])
            #expect(Array(reply[12..<16]) == [10, 96, 148, 206] && reply[20] == 0 && reply[21] == 80)
            #expect(Array(reply[16..<20]) == Array(syn.ipPacket()[12..<16]))
            #expect(ChecksumCheck.isValid(ipPacket: reply))
        }
    }

    @Test("frames a cooked capture marks as outgoing are the node's own output and pass")
    func cookedOutgoing() throws {
        var harness = try Harness(linkType: .linuxCooked)
        let frame = client(40020).cookedFrame(outgoing: true)
        let (action, out) = harness.run(frame)
        #expect(action == .pass && out == frame && harness.program.stats.count(passed: .outgoing) == 1)
        let (_, incoming) = harness.run(client(40021).cookedFrame())
        #expect(incoming[16 + 16] == 10 && incoming[16 + 17] == 244)
    }

    @Test("a snaplen-truncated frame is still rewritten with valid header checksums")
    func truncated() throws {
        var harness = try Harness()
        var data = client(40030)
        data.flags = [.ack]
        data.payload = [UInt8](repeating: 0x41, count: 1000)
        let full = data.ethernetFrame()
        let (action, out) = harness.run(Array(full.prefix(54)), wireLength: full.count)
        #expect(action == .pass && out[14 + 16] == 10 && out[14 + 17] == 244)
        let (_, whole) = withFrame(full) { _ in }
        var rewritten = whole
        rewritten.replaceSubrange(0..<54, with: out)
        #expect(ChecksumCheck.isValid(ipPacket: Array(rewritten[14...])))
    }

    @Test("a SYN whose options the snap length cut is still tracked and rewritten")
    func shortSnapLength() throws {
        var harness = try Harness()
        var syn = client(40040)
        syn.tcpOptions = [2, 4, 0x05, 0xB4, 4, 2, 8, 10] + [UInt8](repeating: 0, count: 8) + [1, 3, 3, 7]
        let full = syn.ethernetFrame()
        let (action, out) = harness.run(Array(full.prefix(54)), wireLength: full.count)
        #expect(action == .pass && out[14 + 16] == 10 && out[14 + 17] == 244)
        #expect(harness.program.conntrack.count == 1)
    }

    @Test("the first fragment of a UDP datagram is translated; later fragments pass and are counted")
    func fragments() throws {
        var harness = try Harness()
        var query = client(55600, to: "10.96.0.10", 53, IPProtocol.udp)
        query.payload = [UInt8](repeating: 7, count: 40)
        var first = query.ethernetFrame()
        first[14 + 6] = 0x20  // more fragments, offset 0
        first[14 + 2] = 0
        first[14 + 3] = 20 + 24  // this fragment carries the UDP header and 16 bytes of the 48
        first[14 + 10] = 0
        first[14 + 11] = 0
        let headerSum = first[14..<34].withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0)) }
        first[14 + 10] = UInt8(headerSum >> 8)
        first[14 + 11] = UInt8(headerSum & 0xFF)
        let firstFragment = Array(first.prefix(14 + 44))
        let (action, out) = harness.run(firstFragment)
        #expect(action == .pass && out[14 + 16] == 10 && out[14 + 17] == 244)
        var later = firstFragment
        later[14 + 6] = 0x00
        later[14 + 7] = 3  // offset 24 bytes
        let (laterAction, laterOut) = harness.run(later)
        #expect(laterAction == .pass && laterOut == later)
        #expect(harness.program.stats.count(passed: .laterFragment) == 1)
    }

    @Test("ClientIP affinity pins a client's new connections to one pod until the timeout passes")
    func sessionAffinity() throws {
        var harness = try Harness(mode: .roundRobin, manifest: affinityManifest(", sessionAffinityConfig: "
            + "{clientIP: {timeoutSeconds: 10}}"))
        var pods: [UInt8] = []
        for port in UInt16(41000)..<41006 {
            harness.now += 1_000_000_000
            pods.append(harness.run(client(port).ethernetFrame()).1[14 + 18])
        }
        #expect(pods == [1, 1, 1, 1, 1, 1], "every new connection renews the pin")
        var other = client(41100)
        other.source = IPv4Address("10.0.9.9")!
        #expect(harness.run(other.ethernetFrame()).1[14 + 18] == 2, "another client is balanced as usual")
        harness.now += 11_000_000_000
        #expect(harness.run(client(41200).ethernetFrame()).1[14 + 18] == 3, "after the timeout the pin is gone")
    }

    @Test("each endpoint remembers at most 100 clients, as xt_recent's ip_list_tot: the oldest is forgotten")
    func affinityListBound() throws {
        var harness = try Harness(mode: .roundRobin, manifest: affinityManifest())
        #expect(harness.run(client(42000).ethernetFrame()).1[14 + 18] == 1)
        for n in 0..<300 {  // round-robin gives pod 1 another 100 clients
            var other = client(42001)
            other.source = IPv4Address(0x0A01_0000 + UInt32(n))
            _ = harness.run(other.ethernetFrame())
        }
        #expect(harness.run(client(42002).ethernetFrame()).1[14 + 18] == 2, "10.0.1.2 was evicted from pod 1's list")
    }
}
