import Cluster
import Conntrack
import Dataplane
import PacketWire
import TestSupport
import Testing

private let sctpService = """
    kind: Service
    metadata: {name: diameter, namespace: default}
    spec: {clusterIP: 10.96.30.30, selector: {app: diameter}, ports: [{port: 3868, protocol: SCTP, targetPort: 3869}]}
    ---
    kind: Pod
    metadata: {name: diameter-1, labels: {app: diameter}}
    status: {phase: Running, podIP: 10.244.1.21, conditions: [{type: Ready, status: "True"}]}
    """

/// An Ethernet frame with an SCTP packet of `chunks` (type, body), its CRC-32C computed.
private func sctpFrame(from source: String, _ sourcePort: UInt16, to destination: String, _ port: UInt16,
                       chunks: [(UInt8, [UInt8])]) -> [UInt8]
{
    var sctp = be16(sourcePort) + be16(port) + be32(0x0102_0304) + [0, 0, 0, 0]
    for (type, body) in chunks {
        sctp += [type, 0] + be16(UInt16(4 + body.count)) + body
        while sctp.count % 4 != 0 { sctp.append(0) }
    }
    let crc = sctp.withUnsafeBytes { CRC32C.checksum($0) }
    sctp.replaceSubrange(8..<12, with: withUnsafeBytes(of: crc.littleEndian) { Array($0) })
    var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + sctp.count)) + [0, 1, 0x40, 0, 64, IPProtocol.sctp, 0, 0]
    ip += be32(IPv4Address(source)!.value) + be32(IPv4Address(destination)!.value)
    let sum = ip.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0)) }
    ip[10] = UInt8(sum >> 8)
    ip[11] = UInt8(sum & 0xFF)
    return [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00] + ip + sctp
}

/// Addresses and ports of an SCTP frame, after checking that its CRC-32C is right.
private func sctpEndpoints(_ frame: [UInt8]) -> String {
    var sctp = Array(frame[34...])
    let stored = sctp[8..<12]
    sctp.replaceSubrange(8..<12, with: [0, 0, 0, 0])
    let crc = sctp.withUnsafeBytes { CRC32C.checksum($0) }
    #expect(Array(stored) == withUnsafeBytes(of: crc.littleEndian) { Array($0) }, "CRC-32C")
    let ip = frame[14..<34].map(String.init)
    return "\(ip[12...15].joined(separator: ".")):\(UInt16(sctp[0]) << 8 | UInt16(sctp[1])) > "
        + "\(ip[16...19].joined(separator: ".")):\(UInt16(sctp[2]) << 8 | UInt16(sctp[3]))"
}

private let initChunk: (UInt8, [UInt8]) = (1, be32(0x0A0B_0C0D) + be32(65535) + be16(10) + be16(10) + be32(1))

@Suite("SCTP Services")
struct SCTPTests {
    @Test("CRC-32C has the standard check value")
    func crc() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
    }

    @Test("an association through a ClusterIP: DNAT and reverse NAT with the CRC-32C recomputed, and conntrack's SCTP states from CLOSED to ESTABLISHED and back")
    func association() throws {
        var harness = try Harness(manifest: sctpService)
        func state() -> String {
            let clock = harness.program.clock
            return ConntrackRecord(harness.program.conntrack.entries(at: clock)[0], now: clock).line
        }
        let (action, out) = harness.run(sctpFrame(from: "10.0.1.2", 40000, to: "10.96.30.30", 3868,
                                                  chunks: [initChunk]))
        #expect(action == .pass)
        #expect(sctpEndpoints(out) == "10.0.1.2:40000 > 10.244.1.21:3869")
        #expect(state().hasPrefix("sctp     132 10 CLOSED src=10.0.1.2 dst=10.96.30.30 sport=40000 dport=3868 "
            + "[UNREPLIED] src=10.244.1.21 dst=10.0.1.2 sport=3869 dport=40000 mark=0"), "\(state())")

        let (_, initAck) = harness.run(sctpFrame(from: "10.244.1.21", 3869, to: "10.0.1.2", 40000,
                                                 chunks: [(2, initChunk.1)]))
        #expect(sctpEndpoints(initAck) == "10.96.30.30:3868 > 10.0.1.2:40000")
        #expect(state().hasPrefix("sctp     132 3 COOKIE_WAIT "))
        _ = harness.run(sctpFrame(from: "10.0.1.2", 40000, to: "10.96.30.30", 3868, chunks: [(10, [1, 2, 3, 4])]))
        #expect(state().hasPrefix("sctp     132 3 COOKIE_ECHOED "))
        _ = harness.run(sctpFrame(from: "10.244.1.21", 3869, to: "10.0.1.2", 40000, chunks: [(11, [])]))
        #expect(state().hasPrefix("sctp     132 210 ESTABLISHED ") && state().contains("[ASSURED]"))
        _ = harness.run(sctpFrame(from: "10.0.1.2", 40000, to: "10.96.30.30", 3868, chunks: [(0, [0, 0, 0, 1])]))
        #expect(state().hasPrefix("sctp     132 210 ESTABLISHED "), "DATA keeps the state")
        _ = harness.run(sctpFrame(from: "10.244.1.21", 3869, to: "10.0.1.2", 40000, chunks: [(6, [])]))
        #expect(state().hasPrefix("sctp     132 10 CLOSED "), "ABORT closes")
    }

    @Test("a first packet that cannot start an association is dropped, as conntrack finds it invalid",
          arguments: [[0], [6], [11], [14], [1, 0]] as [[UInt8]])
    func invalidFirstPacket(types: [UInt8]) throws {
        var harness = try Harness(manifest: sctpService)
        let chunks = types.map { $0 == 1 ? initChunk : ($0, [0, 0, 0, 1]) }
        #expect(harness.run(sctpFrame(from: "10.0.1.2", 40000, to: "10.96.30.30", 3868, chunks: chunks)).0 == .drop)
        #expect(harness.program.conntrack.count == 0)
    }
}
