import Cluster
import Dataplane
import Node
import PacketWire
import TestSupport
import Testing

private let cluster = """
    kind: Service
    metadata: {name: web, namespace: default}
    spec: {clusterIP: 10.96.148.206, selector: {app: web}, ports: [{port: 80, targetPort: 9376}]}
    ---
    kind: Service
    metadata: {name: empty, namespace: default}
    spec: {clusterIP: 10.96.0.50, selector: {app: nothing}, ports: [{port: 80}]}
    ---
    kind: List
    items:
    - {kind: Pod, metadata: {name: web-1, labels: {app: web}}, status: {phase: Running, podIP: 10.244.1.11, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: web-2, labels: {app: web}}, status: {phase: Running, podIP: 10.244.2.11, conditions: [{type: Ready, status: "True"}]}}
    """

private let clientMAC: UInt64 = 0x0200_0A00_0102
private let pod1MAC: UInt64 = 0x0200_0AF4_010B
/// The node's MAC on interface `position` (see `NodeInterface(specification:position:)`).
private func nodeMAC(_ position: Int) -> UInt64 { 0x0253_5600_0000 | UInt64(position + 1) }

/// What the node sent: the interface and the frame.
private struct Sent: Equatable {
    var interface: Int
    var bytes: [UInt8]
}

/// Collects the frames the node transmits.
private struct Collector: FrameTransmitter {
    var sent: [Sent] = []

    mutating func transmit(_ frame: UnsafeRawBufferPointer, on interface: Int) -> Bool {
        sent.append(Sent(interface: interface, bytes: Array(frame)))
        return true
    }
}

/// A node on a client network (interface 0) and two pod networks (1 and 2), round-robin balancing.
private final class NodeHarness {
    let node: NodeForwarder
    var now: Int64 = 1_700_000_000_000_000_000

    init() throws {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: cluster, name: "cluster.yaml", into: &manifests)
        var configuration = LoadBalancerConfiguration()
        configuration.mode = .roundRobin
        let program = ServiceLoadBalancer(table: try ServiceTableBuilder.build(manifests), linkType: .ethernet,
                                          configuration: configuration)
        let interfaces = ["tc=10.0.1.1/24", "tp1=10.244.1.1/24", "tp2=10.244.2.1/24"].enumerated().map {
            NodeInterface(specification: $1, position: $0)!
        }
        node = NodeForwarder(interfaces: interfaces, program: program)
    }

    /// Delivers a frame on an interface, 1 ms after the previous one; returns what the node sent.
    func receive(_ frame: [UInt8], on interface: Int) -> [Sent] {
        now += 1_000_000
        var collector = Collector()
        var copy = frame
        copy.withUnsafeMutableBytes { node.receive($0, on: interface, at: now, via: &collector) }
        return collector.sent
    }

    /// Lets `seconds` pass and runs the node's timers.
    func wait(seconds: Int64) -> [Sent] {
        now += seconds * 1_000_000_000
        var collector = Collector()
        node.expireResolutions(at: now, via: &collector)
        return collector.sent
    }
}

private func mac(_ value: UInt64) -> [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * $0)) } }

private func arp(operation: UInt16, from senderMAC: UInt64, _ senderIP: String, to targetMAC: UInt64,
                 _ targetIP: String) -> [UInt8]
{
    let destination = operation == 1 ? mac(0xFFFF_FFFF_FFFF) : mac(targetMAC)
    return destination + mac(senderMAC) + [0x08, 0x06, 0, 1, 0x08, 0, 6, 4] + be16(operation) + mac(senderMAC)
        + be32(IPv4Address(senderIP)!.value) + mac(operation == 1 ? 0 : targetMAC) + be32(IPv4Address(targetIP)!.value)
}

/// A TCP SYN from the client (10.0.1.2) through the node.
private func clientSYN(to address: String = "10.96.148.206", port: UInt16 = 80, timeToLive: UInt8 = 64)
    -> PacketBuilder
{
    var packet = PacketBuilder(source: "10.0.1.2", destination: address, sourcePort: 40000, destinationPort: port)
    packet.sourceMAC = clientMAC
    packet.destinationMAC = nodeMAC(0)
    packet.timeToLive = timeToLive
    return packet
}

private func ipPacket(of frame: [UInt8]) -> [UInt8] {
    let ip = Array(frame[14...])
    return Array(ip.prefix(Int(ip[2]) << 8 | Int(ip[3])))
}

/// The ICMP message of a frame, after checking both the IP header and the ICMP checksum.
private func icmpMessage(of frame: [UInt8]) -> [UInt8] {
    let ip = ipPacket(of: frame)
    #expect(ip[9] == IPProtocol.icmp)
    let header = ip.prefix(20).withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
    let icmp = Array(ip[20...])
    #expect(header == 0xFFFF && icmp.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) } == 0xFFFF,
            "IP and ICMP checksums")
    return icmp
}

@Suite("Live node forwarding")
struct NodeForwarderTests {
    @Test("ARP requests for the node's address on that network are answered, others are not")
    func answersARP() throws {
        let harness = try NodeHarness()
        let sent = harness.receive(arp(operation: 1, from: clientMAC, "10.0.1.2", to: 0, "10.0.1.1"), on: 0)
        #expect(sent == [Sent(interface: 0, bytes: arp(operation: 2, from: nodeMAC(0), "10.0.1.1", to: clientMAC,
                                                           "10.0.1.2"))])
        #expect(harness.receive(arp(operation: 1, from: clientMAC, "10.0.1.2", to: 0, "10.0.1.9"), on: 0).isEmpty)
        #expect(harness.receive(arp(operation: 1, from: clientMAC, "10.0.1.2", to: 0, "10.244.1.1"), on: 0).isEmpty,
                "the address of another network is not answered on this one")
        #expect(harness.node.stats.count(of: .arpReply) == 1)
    }

    @Test("a connection to a ClusterIP: ARP for the pod, then DNAT, TTL, MACs; the reply is reverse-NATed")
    func forwardsThroughService() throws {
        let harness = try NodeHarness()
        let syn = clientSYN()
        let asked = harness.receive(syn.ethernetFrame(), on: 0)
        #expect(asked == [Sent(interface: 1, bytes: arp(operation: 1, from: nodeMAC(1), "10.244.1.1", to: 0,
                                                            "10.244.1.11"))], "the SYN waits for the pod's MAC")

        let released = harness.receive(arp(operation: 2, from: pod1MAC, "10.244.1.11", to: nodeMAC(1), "10.244.1.1"),
                                       on: 1)
        try #require(released.count == 1 && released[0].interface == 1)
        let forwarded = released[0].bytes
        #expect(Array(forwarded[0..<12]) == mac(pod1MAC) + mac(nodeMAC(1)))
        var expected = syn
        expected.destination = IPv4Address("10.244.1.11")!
        expected.destinationPort = 9376
        expected.timeToLive = 63
        #expect(ipPacket(of: forwarded) == expected.ipPacket(), "DNAT and TTL 63, checksums updated")

        var reply = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.2", sourcePort: 9376,
                                  destinationPort: 40000)
        reply.flags = [.syn, .ack]
        reply.acknowledgement = syn.sequence + 1
        reply.sourceMAC = pod1MAC
        reply.destinationMAC = nodeMAC(1)
        let back = harness.receive(reply.ethernetFrame(), on: 1)
        try #require(back.count == 1 && back[0].interface == 0, "the client's MAC was learned from its SYN")
        #expect(Array(back[0].bytes[0..<12]) == mac(clientMAC) + mac(nodeMAC(0)))
        var unNATed = reply
        unNATed.source = IPv4Address("10.96.148.206")!
        unNATed.sourcePort = 80
        unNATed.timeToLive = 63
        #expect(ipPacket(of: back[0].bytes) == unNATed.ipPacket())
        #expect(harness.node.stats.forwarded == 2 && harness.node.program.stats.newConnections == 1)
    }

    @Test("TTL 1 is answered with time exceeded as the kernel does: from the ClusterIP, quoting what the client sent, no connection left")
    func timeExceeded() throws {
        let harness = try NodeHarness()
        let sent = harness.receive(clientSYN(timeToLive: 1).ethernetFrame(), on: 0)
        try #require(sent.count == 1 && sent[0].interface == 0)
        let ip = ipPacket(of: sent[0].bytes)
        #expect(Array(ip[12..<20]) == [10, 96, 148, 206, 10, 0, 1, 2])
        let icmp = icmpMessage(of: sent[0].bytes)
        #expect(icmp[0] == 11 && icmp[1] == 0)
        #expect(Array(icmp[8...]) == clientSYN(timeToLive: 1).ipPacket(), "quotes the packet as the client sent it")
        #expect(harness.node.program.conntrack.count == 0)
    }

    @Test("a pod's reply with TTL 1 gets time exceeded from the node's address there, quoting the pod's own packet")
    func replyTimeExceeded() throws {
        let harness = try NodeHarness()
        _ = harness.receive(clientSYN().ethernetFrame(), on: 0)
        _ = harness.receive(arp(operation: 2, from: pod1MAC, "10.244.1.11", to: nodeMAC(1), "10.244.1.1"), on: 1)
        var reply = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.2", sourcePort: 9376,
                                  destinationPort: 40000)
        reply.flags = [.syn, .ack]
        reply.acknowledgement = 1001
        reply.timeToLive = 1
        reply.sourceMAC = pod1MAC
        reply.destinationMAC = nodeMAC(1)
        let sent = harness.receive(reply.ethernetFrame(), on: 1)
        try #require(sent.count == 1 && sent[0].interface == 1)
        #expect(Array(ipPacket(of: sent[0].bytes)[12..<20]) == [10, 244, 1, 1, 10, 244, 1, 11])
        #expect(Array(icmpMessage(of: sent[0].bytes)[8...]) == reply.ipPacket())
        #expect(harness.node.program.conntrack.count == 1, "the connection stays")
    }

    @Test("ping to any of the node's addresses is answered from that address")
    func echo() throws {
        let harness = try NodeHarness()
        var ping = clientSYN(to: "10.244.2.1")
        ping.protocolNumber = IPProtocol.icmp
        ping.payload = Array("abcdefgh".utf8)
        let sent = harness.receive(ping.ethernetFrame(), on: 0)
        try #require(sent.count == 1 && sent[0].interface == 0)
        #expect(Array(sent[0].bytes[0..<12]) == mac(clientMAC) + mac(nodeMAC(0)))
        #expect(Array(ipPacket(of: sent[0].bytes)[12..<20]) == [10, 244, 2, 1, 10, 0, 1, 2])
        let icmp = icmpMessage(of: sent[0].bytes)
        #expect(icmp[0] == 0 && Array(icmp[4...]) == Array(ping.ipPacket()[24...]), "same identifier, data")
    }

    @Test("a Service without endpoints is refused on the spot with ICMP port unreachable")
    func reject() throws {
        let harness = try NodeHarness()
        let sent = harness.receive(clientSYN(to: "10.96.0.50").ethernetFrame(), on: 0)
        try #require(sent.count == 1 && sent[0].interface == 0)
        #expect(Array(sent[0].bytes[0..<12]) == mac(clientMAC) + mac(nodeMAC(0)))
        let icmp = icmpMessage(of: sent[0].bytes)
        #expect(icmp[0] == 3 && icmp[1] == 3)
        #expect(harness.node.stats.count(of: .reject) == 1)
    }

    @Test("what cannot be routed or is not for the node is counted, never sent")
    func notForwarded() throws {
        let harness = try NodeHarness()
        var otherHost = clientSYN()
        otherHost.destinationMAC = 0x0200_0000_0099
        var broadcast = clientSYN(to: "10.0.1.255")
        broadcast.destinationMAC = 0xFFFF_FFFF_FFFF
        var ipv6 = mac(nodeMAC(0)) + mac(clientMAC) + [0x86, 0xDD]
        ipv6 += [UInt8](repeating: 0, count: 40)
        let frames: [([UInt8], NotForwardedReason)] = [
            (clientSYN(to: "192.168.9.9").ethernetFrame(), .unroutable),
            (otherHost.ethernetFrame(), .otherHost),
            (broadcast.ethernetFrame(), .broadcast),
            (ipv6, .notIPv4),
            (clientSYN(to: "10.0.1.1").ethernetFrame(), .local),
            (Array(clientSYN().ethernetFrame().prefix(30)), .malformed),
        ]
        for (frame, reason) in frames {
            #expect(harness.receive(frame, on: 0).isEmpty)
            #expect(harness.node.stats.count(notForwarded: reason) == 1, "\(reason.name)")
        }
    }

    @Test("a next hop that never answers: three ARP requests a second apart, then ICMP host unreachable, translated back to the client's view")
    func unresolvedNeighbor() throws {
        let harness = try NodeHarness()
        let first = harness.receive(clientSYN().ethernetFrame(), on: 0)
        let again = harness.wait(seconds: 1) + harness.wait(seconds: 1)
        #expect(first.count == 1 && again.count == 2 && (first + again).allSatisfy { $0.bytes == first[0].bytes })
        let givenUp = harness.wait(seconds: 1)
        try #require(givenUp.count == 1 && givenUp[0].interface == 0)
        let icmp = icmpMessage(of: givenUp[0].bytes)
        #expect(icmp[0] == 3 && icmp[1] == 1)
        // Translated back as conntrack's RELATED: from the ClusterIP, quoting the packet the client sent.
        #expect(Array(ipPacket(of: givenUp[0].bytes)[12..<20]) == [10, 96, 148, 206, 10, 0, 1, 2])
        #expect(Array(icmp[(8 + 16)..<(8 + 20)]) == [10, 96, 148, 206] && Array(icmp[(8 + 22)..<(8 + 24)]) == [0, 80])
        let quoted = Array(icmp[8...])
        #expect(quoted.count == Int(quoted[2]) << 8 | Int(quoted[3]) && ChecksumCheck.isValid(ipPacket: quoted),
                "the whole SYN quoted, its IP and TCP checksums valid (tshark checks both)")
        #expect(harness.wait(seconds: 1).isEmpty)
        #expect(harness.node.stats.count(notForwarded: .neighborUnreachable) == 1)
    }
}
