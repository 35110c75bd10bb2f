import Cluster
import Dataplane
import PacketWire
import TestSupport
import Testing

/// An ICMP error about `frame`, sent by `sender` to the frame's source, as a host's stack would build it.
private func icmpError(_ kind: ICMPErrorReply.Kind = .portUnreachable, about frame: [UInt8], from sender: String)
    -> [UInt8]
{
    var copy = frame
    var output = [UInt8](repeating: 0, count: XDPContext.generatedCapacity)
    let length = copy.withUnsafeMutableBytes { data in
        let link = try! LinkHeader(frame: data, linkType: .ethernet)
        let ip = try! IPv4Packet(frame: data, offset: link.networkOffset, wireLength: data.count)
        return output.withUnsafeMutableBytes {
            ICMPErrorReply.write(kind, about: data, link: link, linkType: .ethernet, ip: ip,
                                 from: IPv4Address(sender)!, into: $0)
        }
    }
    return Array(output.prefix(length))
}

/// The outer addresses, and the quoted datagram's addresses and ports, of an ICMP error frame, after checking
/// the outer header, ICMP and quoted header checksums (and the quoted UDP checksum when the whole datagram is
/// quoted).
private func icmpFacts(_ frame: [UInt8]) -> (outer: String, quoted: String) {
    let ip = Array(frame[14...])
    let icmp = Array(ip[20..<(Int(ip[2]) << 8 | Int(ip[3]))])
    let quoted = Array(icmp[8...])
    func sum(_ bytes: ArraySlice<UInt8>) -> UInt16 { bytes.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) } }
    #expect(sum(ip[0..<20]) == 0xFFFF && sum(icmp[...]) == 0xFFFF && sum(quoted[0..<20]) == 0xFFFF, "checksums")
    if quoted[9] == IPProtocol.udp && quoted.count == Int(quoted[2]) << 8 | Int(quoted[3]) {
        #expect(ChecksumCheck.isValid(ipPacket: quoted), "quoted UDP checksum")
    }
    func address(_ bytes: [UInt8], _ at: Int) -> String { bytes[at..<(at + 4)].map(String.init).joined(separator: ".") }
    func port(_ at: Int) -> Int { Int(quoted[at]) << 8 | Int(quoted[at + 1]) }
    return ("\(address(ip, 12)) > \(address(ip, 16))",
            "\(address(quoted, 12)):\(port(20)) > \(address(quoted, 16)):\(port(22))")
}

@Suite("ICMP errors about tracked connections (RELATED)")
struct RelatedICMPTests {
    @Test("a pod's port unreachable about a DNATed datagram reaches the client from the ClusterIP, quoting what the client sent")
    func fromPod() throws {
        var harness = try Harness(mode: .roundRobin)
        let query = client(45000, to: "10.96.0.10", 53, IPProtocol.udp)
        let (_, dnated) = harness.run(query.ethernetFrame())
        let error = icmpError(about: dnated, from: "10.244.1.11")
        #expect(icmpFacts(error).quoted == "10.0.1.2:45000 > 10.244.1.11:53")
        let (action, translated) = harness.run(error)
        #expect(action == .pass)
        let facts = icmpFacts(translated)
        #expect(facts.outer == "10.96.0.10 > 10.0.1.2")
        #expect(facts.quoted == "10.0.1.2:45000 > 10.96.0.10:53")
        #expect(harness.program.stats.translatedRelated == 1)
    }

    @Test("a client's error about a reply reaches the pod that sent it, quoting the pod's own datagram")
    func fromClient() throws {
        var harness = try Harness(mode: .roundRobin)
        _ = harness.run(client(45000, to: "10.96.0.10", 53, IPProtocol.udp).ethernetFrame())
        let answer = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.2", sourcePort: 53,
                                   destinationPort: 45000, protocolNumber: IPProtocol.udp)
        let (_, unNATed) = harness.run(answer.ethernetFrame())
        let (action, translated) = harness.run(icmpError(about: unNATed, from: "10.0.1.2"))
        #expect(action == .pass)
        let facts = icmpFacts(translated)
        #expect(facts.outer == "10.0.1.2 > 10.244.1.11")
        #expect(facts.quoted == "10.244.1.11:53 > 10.0.1.2:45000")
    }

    @Test("a masqueraded connection: the error to the node is translated back to the client, both ends")
    func masqueraded() throws {
        var harness = try Harness(mode: .roundRobin, manifest: """
            kind: Service
            metadata: {name: web, namespace: default}
            spec: {type: NodePort, clusterIP: 10.96.148.206, selector: {app: web}, ports: [{port: 80, targetPort: 9376, nodePort: 30080}]}
            ---
            kind: Pod
            metadata: {name: web-1, labels: {app: web}}
            status: {phase: Running, podIP: 10.244.1.11, conditions: [{type: Ready, status: "True"}]}
            """) { configuration in
            configuration.nodeAddresses = [IPv4Address("192.168.1.10")!]
            configuration.clusterCIDR = IPv4Network("10.244.0.0/16")
        }
        let syn = PacketBuilder(source: "172.16.0.5", destination: "192.168.1.10", sourcePort: 40000,
                                destinationPort: 30080)
        let (_, forwarded) = harness.run(syn.ethernetFrame())
        let (action, translated) = harness.run(icmpError(.hostUnreachable, about: forwarded, from: "10.244.1.1"))
        #expect(action == .pass)
        let facts = icmpFacts(translated)
        #expect(facts.outer == "192.168.1.10 > 172.16.0.5")
        #expect(facts.quoted == "172.16.0.5:40000 > 192.168.1.10:30080")
    }

    @Test("errors about no tracked connection, and echo requests to a ClusterIP, pass unchanged")
    func unrelated() throws {
        var harness = try Harness()
        let stray = icmpError(about: client(46000, to: "10.96.0.10", 53, IPProtocol.udp).ethernetFrame(),
                              from: "10.96.0.10")
        var echo = client(7, to: "10.96.148.206", 1)
        echo.protocolNumber = IPProtocol.icmp
        for frame in [stray, echo.ethernetFrame()] {
            #expect(harness.run(frame) == (.pass, frame))
        }
        #expect(harness.program.stats.count(passed: .otherProtocol) == 2)
        #expect(harness.program.stats.newConnections == 0)
    }
}
