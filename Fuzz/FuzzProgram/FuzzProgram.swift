// libFuzzer target: arbitrary bytes as a sequence of frames through the frame decoder and the whole
// service program (node ports, external IPs, a Local policy, masquerade, ICMP errors about tracked connections),
// with its conntrack state carried from frame to frame.
// Input: [link type selector][length][frame bytes]... (the selector picks Ethernet, raw IPv4 or cooked).
import FuzzDriver
import Cluster
import Dataplane
import PacketWire

let manifest = """
    kind: Service
    metadata: {name: web}
    spec: {type: NodePort, clusterIP: 10.96.0.1, externalIPs: [192.0.2.1], externalTrafficPolicy: Local,
           ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080},
                   {name: dns, port: 53, protocol: UDP, nodePort: 30053}]}
    ---
    kind: Endpoints
    metadata: {name: web}
    subsets:
    - addresses: [{ip: 10.244.1.1, nodeName: n1}, {ip: 10.244.2.2}]
      ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]
    ---
    kind: Service
    metadata: {name: empty}
    spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
    """

func makeTable() -> ServiceTable {
    var manifests = ClusterManifests()
    try! ManifestLoader.load(yaml: manifest, name: "fuzz", into: &manifests)
    return try! ServiceTableBuilder.build(manifests)
}

let table = makeTable()
let linkTypes: [LinkType] = [.ethernet, .rawIPv4, .linuxCooked, .linuxCooked2]
nonisolated(unsafe) let generated = UnsafeMutableRawBufferPointer.allocate(
    byteCount: XDPContext.generatedCapacity, alignment: 16)

/// The process entry point (SwiftPM links an executable target's main under this name).
@_cdecl("FuzzProgram_main")
public func fuzzProgramMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    svcplane_fuzz_main(argc, argv) { data, size in fuzzProgram(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProgram(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    var configuration = LoadBalancerConfiguration()
    configuration.conntrackMax = 8
    configuration.nodeAddresses = [IPv4Address(10, 0, 0, 1)]
    configuration.nodeName = "n1"
    configuration.clusterCIDR = IPv4Network("10.244.0.0/16")
    var program = ServiceLoadBalancer(table: table, linkType: linkTypes[Int(data[0]) % linkTypes.count],
                                      configuration: configuration)
    var offset = 1
    var timestamp: Int64 = 1_000_000_000
    while offset < size {
        let length = min(Int(data[offset]) * 2, size - offset - 1)
        offset += 1
        var frame = Array(UnsafeBufferPointer(start: data + offset, count: length))
        offset += length
        timestamp += 1_000_000
        let before = frame
        frame.withUnsafeMutableBytes { bytes in
            var context = XDPContext(data: bytes, wireLength: bytes.count, timestamp: timestamp, generated: generated)
            let action = program.run(&context)
            precondition(action != .aborted)
            precondition(context.generatedLength <= generated.count)
            precondition(action == .tx || context.generatedLength == 0)
        }
        precondition(frame.count == before.count, "a rewrite never changes a frame's length")
    }
    return 0
}
