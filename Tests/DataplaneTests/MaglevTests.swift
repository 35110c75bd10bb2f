import Cluster
@testable import Dataplane
import PacketWire
import TestSupport
import Testing

@Suite("Maglev consistent hashing")
struct MaglevTests {
    private func backends(_ count: Int, port: UInt16 = 9376) -> [Backend] {
        (0..<count).map { index in
            let address = 0x0AF4_0000 as UInt32 | UInt32(index / 200) << 8 | UInt32(index % 200 + 10)
            return Backend(address: IPv4Address(address), port: port)
        }
    }

    private func slots(_ table: MaglevTable, size: Int) -> [Int] {
        (0..<size).map { table.backend(forHash: UInt64($0)) }
    }

    @Test("MurmurHash3_x64_128 gives the reference values (empty, one tail, blocks and tail)")
    func murmur() {
        #expect(Murmur3.hash128([], seed: 0) == (0, 0))
        #expect(Murmur3.hash128(Array("hello".utf8), seed: 0) == (0xCBD8_A7B3_41BD_9B02, 0x5B1E_906A_48AE_1D19))
        #expect(Murmur3.hash128(Array("[10.244.1.11:9376/TCP,State:active]".utf8), seed: 0x24B7_EF82)
            == (0x95ED_65F3_04FA_4F07, 0x8B2E_4799_F7DD_1FB0))
    }

    @Test("the table equals an independent implementation of Cilium's computeLookupTable, with and without weights")
    func golden() throws {
        let pods = ["10.244.1.11", "10.244.2.11", "10.244.3.11"].map {
            Backend(address: IPv4Address($0)!, port: 9376)
        }
        let plain = MaglevTable(backends: pods, serviceProtocol: .tcp, size: 251)
        #expect(slots(plain, size: 251).map(String.init).joined() == "02120021001210222110202102221012002110121021201112010202100221022002200122011201010210222102201121011201020110221002210122112102121021201000110021002200110012102121101021002210220011201110210012122101221012211020112201020210010122100221002201020112021")
        let weighted = MaglevTable(backends: pods, serviceProtocol: .tcp, weights: [100, 300, 100], size: 251)
        #expect(slots(weighted, size: 251).map(String.init).joined() == "12110021101210122111102111121011012110121111201112011101101111021002210122011201110211211102111121011211020110221101111111112101121011201110110021101100111012101121111021012210210111101111111011122111221012211110112101120111011122110221012211110112111")
        let shares = Dictionary(grouping: slots(weighted, size: 251), by: { $0 }).mapValues(\.count)
        #expect(shares[1]! > 2 * shares[0]! && shares[1]! > 2 * shares[2]!, "weight 300 takes about 3/5: \(shares)")
    }

    @Test("each of N backends holds about M/N slots, whatever order they are listed in", arguments: [3, 10, 100])
    func balance(count: Int) {
        let pods = backends(count)
        let table = MaglevTable(backends: pods, serviceProtocol: .tcp)
        let shares = Dictionary(grouping: slots(table, size: MaglevTable.defaultSize), by: { $0 }).mapValues(\.count)
        let fair = Double(MaglevTable.defaultSize) / Double(count)
        #expect(shares.count == count)
        #expect(shares.values.allSatisfy { abs(Double($0) - fair) <= max(2, fair * 0.02) }, "\(shares.values.sorted())")
        let reversed = MaglevTable(backends: pods.reversed(), serviceProtocol: .tcp)
        #expect(slots(reversed, size: MaglevTable.defaultSize).map { count - 1 - $0 }
            == slots(table, size: MaglevTable.defaultSize))
    }

    // At the default M = 16381, N = 50 moves 1.05% of the other flows: Maglev's bound wants M of several
    // hundred times N, so N = 50 is checked with M = 65521.
    @Test("removing one of N backends moves its own flows and at most 1% of the others", arguments: [
        (5, MaglevTable.defaultSize), (10, MaglevTable.defaultSize), (20, MaglevTable.defaultSize), (50, 65521),
    ])
    func disruption(count: Int, size: Int) {
        let pods = backends(count)
        let before = MaglevTable(backends: pods, serviceProtocol: .tcp, size: size)
        var random = SeededGenerator(seed: UInt64(count))
        for removed in [0, count / 2, count - 1] {
            var remaining = pods
            remaining.remove(at: removed)
            let after = MaglevTable(backends: remaining, serviceProtocol: .tcp, size: size)
            var moved = 0
            var ownFlows = 0
            let flows = 100_000
            for _ in 0..<flows {
                let hash = random.next()
                let old = before.backend(forHash: hash)
                let new = after.backend(forHash: hash)
                if old == removed {
                    ownFlows += 1
                } else if pods[old] != remaining[new] {
                    moved += 1
                }
            }
            let ownShare = Double(ownFlows) / Double(flows)
            #expect(abs(ownShare - 1 / Double(count)) < 0.01, "the removed backend held about 1/N: \(ownShare)")
            #expect(Double(moved) / Double(flows) <= 0.01, "flows of kept backends moved: \(moved) of \(flows)")
        }
    }

    @Test("--lb maglev: a flow always gets the same endpoint, in any order and any run, and endpoints share the flows")
    func program() throws {
        func choices(_ ports: [UInt16]) throws -> [UInt16: UInt8] {
            var harness = try Harness(mode: .maglev, seed: 7)
            var chosen: [UInt16: UInt8] = [:]
            for port in ports { chosen[port] = harness.run(client(port).ethernetFrame()).1[14 + 18] }
            return chosen
        }
        let ports = (UInt16(20000)..<21500).map { $0 }
        let forward = try choices(ports)
        #expect(try choices(ports.reversed()) == forward)
        let counts = Dictionary(grouping: forward.values, by: { $0 }).mapValues(\.count)
        #expect(counts.keys.sorted() == [1, 2, 3] && counts.values.allSatisfy { $0 > 400 }, "\(counts)")
    }
}
