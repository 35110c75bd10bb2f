import Conntrack
import PacketWire
import TestSupport
import Testing

@Suite("Conntrack table")
struct ConntrackTableTests {
    func key(_ n: Int) -> FlowKey {
        FlowKey(source: IPv4Address(UInt32(0x0A00_0000 + n)), destination: IPv4Address("10.96.0.1")!,
                sourcePort: UInt16(1024 + n % 60000), destinationPort: 80, protocolNumber: IPProtocol.tcp)
    }

    @Test("both tuples find the entry, with their direction")
    func lookup() {
        var table = ConntrackTable(capacity: 8)
        let reply = FlowKey(source: IPv4Address("10.244.1.11")!, destination: key(1).source, sourcePort: 9376,
                            destinationPort: key(1).sourcePort, protocolNumber: IPProtocol.tcp)
        let slot = try! table.insert(original: key(1), reply: reply, now: 0, tag: 7, serial: 0).get()
        table[slot].expires = 10
        #expect(table.lookup(key(1), now: 1)?.direction == .original)
        #expect(table.lookup(reply, now: 1)?.direction == .reply)
        #expect(table.lookup(key(1).reversed, now: 1) == nil)
        #expect(table.lookup(key(1), now: 10) == nil, "expired entries are gone")
        #expect(table.count == 0)
    }

    @Test("a full table early-drops a non-ASSURED entry and keeps ASSURED ones")
    func earlyDrop() {
        let size = 50  // smaller than the early-drop scan range, so the whole table is a candidate
        let later: Int64 = 1_000_000_000_000
        var table = ConntrackTable(capacity: size)
        for n in 0..<size {
            let slot = try! table.insert(original: key(n), reply: key(n).reversed, now: 0, tag: 0, serial: 0).get()
            table[slot].expires = later
            table[slot].assured = n != 42
        }
        let first = try? table.insert(original: key(1000), reply: key(1000).reversed, now: 1, tag: 0, serial: 0).get()
        #expect(first != nil && table.earlyDrops == 1 && table.count == size)
        #expect(table.lookup(key(42), now: 2) == nil)
        table[first!].expires = later
        let second = try? table.insert(original: key(1001), reply: key(1001).reversed, now: 1, tag: 0, serial: 0).get()
        #expect(second != nil)
        #expect(table.earlyDrops == 2 && table.lookup(key(1000), now: 2) == nil)
        for n in 0..<size where n != 42 { #expect(table.lookup(key(n), now: 2) != nil) }
        for n in 0..<size where n != 42 { table[table.lookup(key(n), now: 2)!.slot].assured = true }
        let lastSlot = second!
        table[lastSlot].expires = later
        table[lastSlot].assured = true
        #expect(table.insert(original: key(1002), reply: key(1002).reversed, now: 3, tag: 0, serial: 0)
                    == .failure(.full),
                "nothing can be dropped when every entry is ASSURED")
    }

    @Test("a tuple in use cannot be inserted twice")
    func insertClash() {
        var table = ConntrackTable(capacity: 8)
        let slot = try! table.insert(original: key(1), reply: key(1).reversed, now: 0, tag: 0, serial: 0).get()
        table[slot].expires = 100
        #expect(table.insert(original: key(2), reply: key(1).reversed, now: 1, tag: 0, serial: 0) == .failure(.clash))
    }

    @Test("conntrack -L line format")
    func listing() {
        var table = ConntrackTable(capacity: 8)
        let original = FlowKey(source: IPv4Address("10.0.1.2")!, destination: IPv4Address("10.96.148.206")!,
                               sourcePort: 55434, destinationPort: 80, protocolNumber: IPProtocol.tcp)
        let reply = FlowKey(source: IPv4Address("10.244.2.11")!, destination: original.source, sourcePort: 9376,
                            destinationPort: 55434, protocolNumber: IPProtocol.tcp)
        let slot = try! table.insert(original: original, reply: reply, now: 0, tag: 0, serial: 0).get()
        table[slot].tcpState = .timeWait
        table[slot].seenReply = true
        table[slot].assured = true
        table[slot].expires = 118_500_000_000
        #expect(ConntrackRecord(table[slot], now: 0).line == "tcp      6 118 TIME_WAIT src=10.0.1.2 dst=10.96.148.206 "
            + "sport=55434 dport=80 src=10.244.2.11 dst=10.0.1.2 sport=9376 dport=55434 [ASSURED] mark=0 use=1")
        let udpKey = FlowKey(source: IPv4Address("10.0.1.2")!, destination: IPv4Address("10.96.0.10")!,
                             sourcePort: 55503, destinationPort: 53, protocolNumber: IPProtocol.udp)
        let udpReply = FlowKey(source: IPv4Address("10.244.1.11")!, destination: udpKey.source, sourcePort: 53,
                               destinationPort: 55503, protocolNumber: IPProtocol.udp)
        let udp = try! table.insert(original: udpKey, reply: udpReply, now: 0, tag: 0, serial: 1).get()
        table[udp].expires = 28_000_000_000
        #expect(ConntrackRecord(table[udp], now: 0).line == "udp      17 28 src=10.0.1.2 dst=10.96.0.10 sport=55503 "
            + "dport=53 [UNREPLIED] src=10.244.1.11 dst=10.0.1.2 sport=53 dport=55503 mark=0 use=1")
        #expect(table.entries(at: 0).map(\.serial) == [0, 1])
    }

    @Test("random inserts and removals keep every tuple found exactly as a plain dictionary would (index growth, probe runs, backward shifts)",
          arguments: [1, 2, 3])
    func indexMatchesModel(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        var table = ConntrackTable(capacity: 1 << 20)
        var model: [FlowKey: (slot: Int, direction: ConntrackDirection)] = [:]
        var live: [(slot: Int, original: FlowKey, reply: FlowKey)] = []
        // Few enough distinct tuples that insertions clash and lookups hit.
        func randomKey() -> FlowKey {
            FlowKey(source: IPv4Address(0x0A00_0000 | UInt32(random.next() % 4096)),
                    destination: IPv4Address(0x0A60_0000 | UInt32(random.next() % 4)),
                    sourcePort: UInt16(random.next() % 128), destinationPort: 80, protocolNumber: IPProtocol.tcp)
        }
        for step in 0..<140_000 {  // past 65,536 entries first: the index grows
            if step == 80_000 { #expect(live.count > 66_000, "the index outgrew its first size") }
            if live.isEmpty || step < 80_000 || random.next() % 3 != 0 {
                let original = randomKey()
                let reply = random.next() % 50 == 0 ? original : randomKey()
                let clash = model[original] != nil || model[reply] != nil
                switch table.insert(original: original, reply: reply, now: 0, tag: 0, serial: 0) {
                case .success(let slot):
                    #expect(!clash)
                    table[slot].expires = .max
                    model[original] = (slot, .original)
                    model[reply] = (slot, .reply)
                    live.append((slot, original, reply))
                case .failure(let failure):
                    #expect(clash && failure == .clash)
                }
            } else {
                let victim = live.remove(at: Int(random.next() % UInt64(live.count)))
                table.remove(slot: victim.slot)
                model[victim.original] = nil
                model[victim.reply] = nil
            }
            let probe = random.next() % 2 == 0 ? randomKey() : (live.last?.reply ?? randomKey())
            let found = table.lookup(probe, now: 1)
            #expect(found?.slot == model[probe]?.slot && found?.direction == model[probe]?.direction)
        }
        for (key, value) in model {
            #expect(table.lookup(key, now: 1)?.slot == value.slot)
        }
    }
}
