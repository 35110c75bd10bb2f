import Cluster
import Dataplane
import PacketWire
import TestSupport
import Testing

@Suite("Sharding by connection")
struct FlowShardingTests {
    @Test("a connection's packets share a shard both ways, before and after NAT, masqueraded or not, for any N")
    func bothDirections() throws {
        let node = "192.168.1.10"
        var harness = try Harness { configuration in
            configuration.nodeAddresses = [IPv4Address(node)!]
            configuration.clusterCIDR = IPv4Network("10.244.0.0/16")
        }
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: manifest, name: "manifest", into: &manifests)
        let sharding = FlowSharding(tables: [try ServiceTableBuilder.build(manifests)],
                                    nodeAddresses: [IPv4Address(node)!])
        func shard(_ frame: [UInt8], _ count: Int) -> Int {
            withFrame(frame) {
                Int(sharding.residue(of: $0, wireLength: $0.count, linkType: .ethernet)) % count
            }.0
        }
        var masqueraded = 0
        for client in 0..<300 {
            // Half from outside the cluster CIDR (masqueraded to the node), half from pods (not).
            let address = client % 2 == 0 ? "172.16.\(client / 250).\(client % 250 + 1)"
                : "10.244.9.\(client % 250 + 1)"
            let syn = PacketBuilder(source: address, destination: "10.96.148.206", sourcePort: UInt16(30000 + client),
                                    destinationPort: 80)
            let (_, forwarded) = harness.run(syn.ethernetFrame())
            let sentFrom = IPv4Address(UInt32(forwarded[26]) << 24 | UInt32(forwarded[27]) << 16
                | UInt32(forwarded[28]) << 8 | UInt32(forwarded[29]))
            let sentFromPort = UInt16(forwarded[34]) << 8 | UInt16(forwarded[35])
            let pod = IPv4Address(UInt32(forwarded[30]) << 24 | UInt32(forwarded[31]) << 16
                | UInt32(forwarded[32]) << 8 | UInt32(forwarded[33]))
            if sentFrom.description == node { masqueraded += 1 }
            var answer = PacketBuilder(source: pod.description, destination: sentFrom.description, sourcePort: 9376,
                                       destinationPort: sentFromPort)
            answer.flags = [.syn, .ack]
            for count in [2, 3, 4, 7, 16, 256] {
                let shards = [shard(syn.ethernetFrame(), count), shard(forwarded, count),
                              shard(answer.ethernetFrame(), count)]
                #expect(Set(shards).count == 1, "client \(address): shards \(shards) of \(count)")
            }
        }
        #expect(masqueraded == 150)
        let spread = Set((0..<300).map { client in
            shard(PacketBuilder(source: "172.16.0.\(client % 250 + 1)", destination: "10.96.148.206",
                                sourcePort: UInt16(30000 + client), destinationPort: 80).ethernetFrame(), 4)
        })
        #expect(spread == [0, 1, 2, 3], "connections spread over the shards")
    }

    @Test("flows on a Service's port number that are no Service's, and clients on such a port, share a shard both ways")
    func portNumberCollisions() throws {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: manifest, name: "manifest", into: &manifests)
        let sharding = FlowSharding(tables: [try ServiceTableBuilder.build(manifests)], nodeAddresses: [])
        func shard(_ from: (String, UInt16), _ to: (String, UInt16)) -> Int {
            let packet = PacketBuilder(source: from.0, destination: to.0, sourcePort: from.1, destinationPort: to.1)
            return withFrame(packet.ethernetFrame()) {
                Int(sharding.residue(of: $0, wireLength: $0.count, linkType: .ethernet))
            }.0
        }
        for client in 0..<64 {
            let address = "172.16.0.\(client + 1)"
            // A web server outside the cluster on port 80 (a frontend's port): decided by the port numbers alone.
            let server = ("93.184.216.\(client + 1)", UInt16(80))
            #expect(shard((address, 40000), server) == shard(server, (address, 40000)))
            // A client whose own port is an endpoint's (9376) or a frontend's (80), to the Service and back from
            // a pod: both ends' ports are a Service's, so the endpoints decide.
            for port: UInt16 in [9376, 80] {
                let request = shard((address, port), ("10.96.148.206", 80))
                #expect(request == shard(("10.244.2.11", 9376), (address, port)))
                #expect(request == shard(("10.244.3.11", 9376), (address, port)))
            }
        }
        let spread = Set((0..<64).map { shard(("172.16.0.\($0 + 1)", 40000), ("93.184.216.34", 80)) })
        #expect(spread.count > 32, "flows decided by their port numbers spread over the shards")
    }

    @Test("Services sharing an endpoint share ClientIP stickiness: all of a client's connections to either land together")
    func sharedEndpointStickiness() throws {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: affinityManifest() + """

            ---
            kind: Service
            metadata: {name: web-plain, namespace: default}
            spec: {clusterIP: 10.96.148.207, selector: {app: web}, ports: [{port: 80, targetPort: 9376}]}
            ---
            kind: Service
            metadata: {name: other, namespace: default}
            spec: {clusterIP: 10.96.148.208, ports: [{port: 80}]}
            ---
            kind: Endpoints
            metadata: {name: other, namespace: default}
            subsets: [{addresses: [{ip: 10.244.7.7}], ports: [{port: 80}]}]
            """, name: "manifest", into: &manifests)
        let sharding = FlowSharding(tables: [try ServiceTableBuilder.build(manifests)], nodeAddresses: [])
        let client = IPv4Address("172.16.0.9")!
        func residues(_ clusterIP: String) -> Set<UInt8> {
            let frontend = Frontend(address: IPv4Address(clusterIP)!, port: 80, serviceProtocol: .tcp)
            return Set((UInt16(30000)..<30064).map { sharding.residue(ofClient: client, port: $0, toward: frontend) })
        }
        #expect(residues("10.96.148.206").count == 1, "the affinity Service keys its clients by address")
        #expect(residues("10.96.148.207") == residues("10.96.148.206"), "so does one sharing its pods")
        #expect(residues("10.96.148.208").count > 32, "an unrelated Service keys by address and port")
    }
}
