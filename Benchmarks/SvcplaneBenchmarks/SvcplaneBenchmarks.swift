import Benchmark
import Cluster
import Glibc
import Conntrack
import Dataplane
import PacketWire
import TestSupport

/// The per-packet layers one at a time, then the whole program: decode, frontend lookup, conntrack insert and
/// lookup at 1k, 100k and 1M entries, DNAT with incremental checksums, one packet through the program. Each
/// sample runs 1000 operations after its set-up (`startMeasurement`); figures are per operation.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .instructions, .mallocCountTotal, .retainCount, .releaseCount, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(2), maxIterations: 100_000)

    Benchmark("decode Ethernet/IPv4/TCP") { benchmark in
        var frame = Fixtures.establishedFrame
        frame.withUnsafeMutableBytes { bytes in
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                guard let link = try? LinkHeader(frame: bytes, linkType: .ethernet),
                      let ip = try? IPv4Packet(frame: bytes, offset: link.networkOffset, wireLength: bytes.count),
                      let transport = try? TransportHeader(ip: ip) else { fatalError("fixture does not decode") }
                blackHole(FlowKey(ip: ip, transport: transport))
            }
        }
    }

    Benchmark("frontend lookup") { benchmark in
        let table = Fixtures.table
        let frontend = Frontend(address: IPv4Address("10.96.148.206")!, port: 80, serviceProtocol: .tcp)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(table.lookup(frontend, nodeAddresses: []))
        }
    }

    for (position, size) in Fixtures.conntrackSizes.enumerated() {
        Benchmark("conntrack lookup, \(size) entries") { benchmark in
            Fixtures.withConntrack(position) { table in
                var key = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    key = (key &+ 7919) % size
                    blackHole(table.lookup(Fixtures.flow(key), now: 1))
                }
            }
        }

        Benchmark("conntrack insert and remove, \(size) entries") { benchmark in
            Fixtures.withConntrack(position) { table in
                var key = size
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    key += 1
                    let flow = Fixtures.flow(key)
                    table.remove(slot: Fixtures.track(&table, flow))
                }
            }
        }
    }

    let bytesPerEntry = BenchmarkMetric.custom("resident bytes per entry", useScalingFactor: false)
    Benchmark("conntrack memory, 1000000 entries",
              configuration: .init(metrics: [bytesPerEntry], scalingFactor: .one, maxIterations: 1)) { benchmark in
        let entries = 1_000_000
        let before = Fixtures.residentBytes()
        var table = ConntrackTable(capacity: entries)
        for key in 0..<entries { Fixtures.track(&table, Fixtures.flow(key)) }
        benchmark.measurement(bytesPerEntry, (Fixtures.residentBytes() - before) / entries)
        blackHole(table)
    }

    Benchmark("DNAT with incremental checksums") { benchmark in
        var frame = Fixtures.establishedFrame
        let pod = IPv4Address("10.244.2.11")!
        let clusterIP = IPv4Address("10.96.148.206")!
        frame.withUnsafeMutableBytes { bytes in
            guard let ip = try? IPv4Packet(frame: bytes, offset: 14, wireLength: bytes.count),
                  let transport = try? TransportHeader(ip: ip) else { fatalError("fixture does not decode") }
            benchmark.startMeasurement()
            for iteration in benchmark.scaledIterations {
                let (address, port): (IPv4Address, UInt16) = iteration & 1 == 0 ? (pod, 9376) : (clusterIP, 80)
                transport.rewrite(.destination, of: ip, address: address, port: port)
            }
        }
    }

    Benchmark("whole program, one packet of an established connection") { benchmark in
        var program = Fixtures.programWithConnection()
        let original = Fixtures.establishedFrame
        var frame = original
        var generated = [UInt8](repeating: 0, count: XDPContext.generatedCapacity)
        generated.withUnsafeMutableBytes { scratch in
            frame.withUnsafeMutableBytes { bytes in
                original.withUnsafeBytes { source in
                    benchmark.startMeasurement()
                    for iteration in benchmark.scaledIterations {
                        bytes.copyMemory(from: source)  // the program rewrote the last copy
                        var context = XDPContext(data: bytes, wireLength: bytes.count,
                                                 timestamp: 2_000_000_000 + Int64(iteration), generated: scratch)
                        blackHole(program.run(&context))
                    }
                }
            }
        }
    }
}

/// Shared inputs, built once.
enum Fixtures {
    static let manifest = """
        kind: Service
        metadata: {name: web, namespace: default}
        spec: {clusterIP: 10.96.148.206, ports: [{port: 80, targetPort: 9376}]}
        ---
        kind: Endpoints
        metadata: {name: web, namespace: default}
        subsets: [{addresses: [{ip: 10.244.1.11}, {ip: 10.244.2.11}, {ip: 10.244.3.11}], ports: [{port: 9376}]}]
        """

    static let table: ServiceTable = {
        var manifests = ClusterManifests()
        try! ManifestLoader.load(yaml: manifest, name: "benchmark.yaml", into: &manifests)
        return try! ServiceTableBuilder.build(manifests)
    }()

    static func client(_ flags: TCPFlags) -> PacketBuilder {
        var builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.148.206", sourcePort: 40000,
                                    destinationPort: 80)
        builder.flags = flags
        return builder
    }

    /// An ACK with 100 bytes of data from the client to the ClusterIP.
    static let establishedFrame: [UInt8] = {
        var builder = client([.ack])
        builder.payload = [UInt8](repeating: 0x61, count: 100)
        return builder.ethernetFrame()
    }()

    /// A program that has seen the client's handshake with the pod it chose (the first, in round-robin).
    static func programWithConnection() -> ServiceLoadBalancer {
        var configuration = LoadBalancerConfiguration()
        configuration.mode = .roundRobin
        var program = ServiceLoadBalancer(table: table, linkType: .ethernet, configuration: configuration)
        var answer = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: 40000)
        answer.flags = [.syn, .ack]
        var generated = [UInt8](repeating: 0, count: XDPContext.generatedCapacity)
        for (step, packet) in [client([.syn]), answer, client([.ack])].enumerated() {
            var frame = packet.ethernetFrame()
            generated.withUnsafeMutableBytes { scratch in
                frame.withUnsafeMutableBytes { bytes in
                    var context = XDPContext(data: bytes, wireLength: bytes.count,
                                             timestamp: 1_000_000_000 + Int64(step) * 1_000_000, generated: scratch)
                    _ = program.run(&context)
                }
            }
        }
        return program
    }

    static let serviceAddress = IPv4Address("10.96.0.1")!
    static let podAddress = IPv4Address("10.244.1.11")!

    /// Connection number `key`: a client of 11.0.0.0/8 to a ClusterIP.
    static func flow(_ key: Int) -> FlowKey {
        FlowKey(source: IPv4Address(UInt32(0x0B00_0000) | UInt32(key >> 16)), destination: serviceAddress,
                sourcePort: UInt16(truncatingIfNeeded: key), destinationPort: 443, protocolNumber: IPProtocol.udp)
    }

    static func reply(_ flow: FlowKey) -> FlowKey {
        FlowKey(source: podAddress, destination: flow.source, sourcePort: 6443,
                destinationPort: flow.sourcePort, protocolNumber: flow.protocolNumber)
    }

    static let conntrackSizes = [1_000, 100_000, 1_000_000]

    /// The process's resident memory, from /proc/self/statm (its second field, in pages).
    static func residentBytes() -> Int {
        let descriptor = open("/proc/self/statm", O_RDONLY)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var text = [UInt8](repeating: 0, count: 256)
        let count = text.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        let fields = text.prefix(max(count, 0)).split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }

    /// Inserts a UDP connection (to a pod) and tracks its first datagram, as the program does; returns its slot.
    @discardableResult
    static func track(_ table: inout ConntrackTable, _ flow: FlowKey) -> Int {
        guard case .success(let slot) = table.insert(original: flow, reply: reply(flow), now: 1, tag: 0, serial: 0)
        else {
            fatalError("insert failed")
        }
        _ = table.track(slot: slot, direction: .original, segment: nil, now: 1, timeouts: ConntrackTimeouts())
        return slot
    }
    /// Tables holding `conntrackSizes` entries, filled once and reused by every sample (which leaves them as it
    /// found them).
    nonisolated(unsafe) private static var conntrackTables: [ConntrackTable] = []

    /// Runs `body` on the table of `conntrackSizes[position]`, moved out of the cache so that it is changed in
    /// place rather than copied.
    static func withConntrack(_ position: Int, _ body: (inout ConntrackTable) -> Void) {
        if conntrackTables.isEmpty {
            conntrackTables = conntrackSizes.map { size in
                var table = ConntrackTable(capacity: size * 2)
                for key in 0..<size { track(&table, flow(key)) }
                return table
            }
        }
        var table = ConntrackTable(capacity: 1)
        swap(&table, &conntrackTables[position])
        body(&table)
        swap(&table, &conntrackTables[position])
    }
}
