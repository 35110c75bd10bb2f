import Cluster
import Conntrack
import Dataplane
import PacketWire
import TestSupport
import Testing

/// A node (node-a, 192.168.1.10) of a cluster whose pods live in 10.244.0.0/16: a LoadBalancer Service with an
/// external IP, and NodePort Services with Local policies, one of them without any endpoint on this node.
private let exposed = """
    kind: Service
    metadata: {name: web, namespace: default}
    spec: {type: LoadBalancer, clusterIP: 10.96.148.206, selector: {app: web}, externalIPs: [192.0.2.10],
           loadBalancerSourceRanges: [172.16.0.0/16], ports: [{port: 80, targetPort: 9376, nodePort: 30080}]}
    status: {loadBalancer: {ingress: [{ip: 203.0.113.7}, {hostname: lb.example.com}]}}
    ---
    kind: Service
    metadata: {name: local, namespace: default}
    spec: {type: NodePort, clusterIP: 10.96.0.20, selector: {app: web}, externalTrafficPolicy: Local,
           internalTrafficPolicy: Local, ports: [{port: 80, targetPort: 9376, nodePort: 30081}]}
    ---
    kind: Service
    metadata: {name: elsewhere, namespace: default}
    spec: {type: NodePort, clusterIP: 10.96.0.30, selector: {app: remote}, externalTrafficPolicy: Local,
           ports: [{port: 80, targetPort: 9376, nodePort: 30082}]}
    ---
    kind: List
    items:
    - {kind: Pod, metadata: {name: web-1, labels: {app: web}}, spec: {nodeName: node-a}, status: {phase: Running, podIP: 10.244.1.11, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: web-2, labels: {app: web}}, spec: {nodeName: node-b}, status: {phase: Running, podIP: 10.244.2.11, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: web-3, labels: {app: web}}, spec: {nodeName: node-a}, status: {phase: Running, podIP: 10.244.1.13, conditions: [{type: Ready, status: "True"}]}}
    - {kind: Pod, metadata: {name: remote-1, labels: {app: remote}}, spec: {nodeName: node-b}, status: {phase: Running, podIP: 10.244.2.21, conditions: [{type: Ready, status: "True"}]}}
    """

private let nodeIP = "192.168.1.10"

private func exposedHarness(masquerade: Bool = true, mode: LoadBalancingMode = .roundRobin) throws -> Harness {
    try Harness(mode: mode, manifest: exposed) { configuration in
        configuration.nodeAddresses = [IPv4Address(nodeIP)!]
        configuration.nodeName = "node-a"
        if masquerade { configuration.clusterCIDR = IPv4Network("10.244.0.0/16") }
    }
}

private func packet(from source: String, _ sourcePort: UInt16 = 40000, to destination: String, _ port: UInt16)
    -> PacketBuilder
{
    PacketBuilder(source: source, destination: destination, sourcePort: sourcePort, destinationPort: port)
}

/// Source and destination address and port of an IPv4 frame's TCP/UDP header, after checking its checksums.
private func endpoints(_ frame: [UInt8]) -> (source: String, sourcePort: UInt16, destination: String,
                                             destinationPort: UInt16)
{
    let ip = Array(frame[14...])
    #expect(ChecksumCheck.isValid(ipPacket: Array(ip.prefix(Int(ip[2]) << 8 | Int(ip[3])))), "checksums")
    func address(_ at: Int) -> String { ip[at..<(at + 4)].map(String.init).joined(separator: ".") }
    return (address(12), UInt16(ip[20]) << 8 | UInt16(ip[21]), address(16), UInt16(ip[22]) << 8 | UInt16(ip[23]))
}

@Suite("Service types, traffic policies, masquerade")
struct ServiceExposureTests {
    @Test("a node port, an external IP and a load balancer IP reach the Service; external traffic is masqueraded and its replies are un-NATed both ways", arguments: [(nodeIP, 30080), ("192.0.2.10", 80),
                                                             ("203.0.113.7", 80)] as [(String, UInt16)])
    func externalFrontends(address: String, port: UInt16) throws {
        var harness = try exposedHarness()
        let (action, forwarded) = harness.run(packet(from: "172.16.0.5", to: address, port).ethernetFrame())
        #expect(action == .pass)
        let out = endpoints(forwarded)
        #expect(out.destination == "10.244.1.11" && out.destinationPort == 9376)
        #expect(out.source == nodeIP && out.sourcePort >= 1024, "SNAT to the node, a port of the same class")

        var reply = packet(from: "10.244.1.11", 9376, to: nodeIP, out.sourcePort)
        reply.flags = [.syn, .ack]
        reply.acknowledgement = 1001
        let (replyAction, back) = harness.run(reply.ethernetFrame())
        #expect(replyAction == .pass)
        let answer = endpoints(back)
        #expect(answer.source == address && answer.sourcePort == port)
        #expect(answer.destination == "172.16.0.5" && answer.destinationPort == 40000)
        #expect(harness.program.stats.masqueraded == 1)

        let clock = harness.program.clock
        let line = ConntrackRecord(harness.program.conntrack.entries(at: clock)[0], now: clock).line
        #expect(line.contains("src=172.16.0.5 dst=\(address) sport=40000 dport=\(port) src=10.244.1.11 "
            + "dst=\(nodeIP) sport=9376 dport=\(out.sourcePort)"), "\(line)")
    }

    @Test("loadBalancerSourceRanges: a client outside them is dropped at the load balancer IP, not at the node port")
    func sourceRanges() throws {
        var harness = try exposedHarness()
        #expect(harness.run(packet(from: "198.51.100.9", to: "203.0.113.7", 80).ethernetFrame()).0 == .drop)
        #expect(harness.program.stats.count(dropped: .loadBalancerFirewall) == 1)
        #expect(harness.run(packet(from: "198.51.100.9", to: nodeIP, 30080).ethernetFrame()).0 == .pass)
    }

    @Test("a node port on an address that is not the node's is not a Service")
    func nodePortElsewhere() throws {
        var harness = try exposedHarness()
        let frame = packet(from: "172.16.0.5", to: "192.168.1.99", 30080).ethernetFrame()
        #expect(harness.run(frame) == (.pass, frame))
        #expect(harness.program.stats.count(passed: .notService) == 1)
    }

    @Test("ClusterIP traffic from outside the cluster CIDR is masqueraded; from a pod it keeps its source")
    func clusterTraffic() throws {
        var harness = try exposedHarness()
        let fromOutside = endpoints(harness.run(packet(from: "172.16.0.5", to: "10.96.148.206", 80)
                .ethernetFrame()).1)
        #expect(fromOutside.source == nodeIP)
        let fromPod = endpoints(harness.run(packet(from: "10.244.2.11", to: "10.96.148.206", 80).ethernetFrame()).1)
        #expect(fromPod.source == "10.244.2.11" && fromPod.sourcePort == 40000 && fromPod.destination == "10.244.1.13")
    }

    @Test("hairpin: a pod that reaches itself through its Service comes from the node's address")
    func hairpin() throws {
        var harness = try exposedHarness()  // round-robin: the first connection goes to 10.244.1.11
        let out = endpoints(harness.run(packet(from: "10.244.1.11", to: "10.96.148.206", 80).ethernetFrame()).1)
        #expect(out.destination == "10.244.1.11" && out.source == nodeIP)
    }

    @Test("externalTrafficPolicy Local: only this node's endpoints, the client's address kept; none here is a drop; pods short-circuit to every endpoint")
    func externalLocal() throws {
        var harness = try exposedHarness()
        var chosen = Set<String>()
        for port in UInt16(40000)..<40006 {
            let out = endpoints(harness.run(packet(from: "172.16.0.5", port, to: nodeIP, 30081).ethernetFrame()).1)
            #expect(out.source == "172.16.0.5" && out.sourcePort == port)
            chosen.insert(out.destination)
        }
        #expect(chosen == ["10.244.1.11", "10.244.1.13"])

        #expect(harness.run(packet(from: "172.16.0.5", to: nodeIP, 30082).ethernetFrame()).0 == .drop)
        #expect(harness.program.stats.count(dropped: .noLocalEndpoints) == 1)
        let fromPod = endpoints(harness.run(packet(from: "10.244.1.11", to: nodeIP, 30082).ethernetFrame()).1)
        #expect(fromPod.destination == "10.244.2.21" && fromPod.source == "10.244.1.11")
    }

    @Test("internalTrafficPolicy Local: ClusterIP traffic stays on this node")
    func internalLocal() throws {
        var harness = try exposedHarness()
        let chosen = Set((UInt16(40000)..<40006).map { port in
            endpoints(harness.run(packet(from: "10.244.2.11", port, to: "10.96.0.20", 80).ethernetFrame()).1)
                .destination
        })
        #expect(chosen == ["10.244.1.11", "10.244.1.13"])
    }

    @Test("masquerade ports never collide: two clients on the same port get two node ports")
    func masqueradePorts() throws {
        var harness = try exposedHarness(mode: .random)
        var ports = Set<UInt16>()
        for client in ["172.16.0.5", "172.16.0.6", "172.16.0.7", "172.16.0.8"] {
            let out = endpoints(harness.run(packet(from: client, 1234, to: nodeIP, 30080).ethernetFrame()).1)
            #expect(out.source == nodeIP)
            ports.insert(out.sourcePort)
        }
        #expect(ports.count == 4)
    }

    @Test("without --cluster-cidr nothing is masqueraded")
    func noClusterCIDR() throws {
        var harness = try exposedHarness(masquerade: false)
        let out = endpoints(harness.run(packet(from: "172.16.0.5", to: nodeIP, 30080).ethernetFrame()).1)
        #expect(out.source == "172.16.0.5" && out.sourcePort == 40000)
        #expect(harness.program.stats.masqueraded == 0)
    }
}
