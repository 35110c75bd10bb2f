import Foundation
import PacketIO
import PacketWire
import Testing

@Suite("Live changes")
struct LiveChangeTests {
    @Test("a rolling update under a replayed capture: no new connection goes to a removed pod")
    func rollingUpdate() throws {
        let directory = try TemporaryDirectory()
        let original = try String(contentsOfFile: "\(Repository.pcaps)/service-demo.yaml", encoding: .utf8)
        // Step 1 replaces the pod at 10.244.1.11 with one at 10.244.4.11; step 2 the one at 10.244.2.11.
        let step1 = original.replacingOccurrences(of: "10.244.1.11", with: "10.244.4.11")
        let step2 = step1.replacingOccurrences(of: "10.244.2.11", with: "10.244.5.11")
        try step1.write(toFile: directory.file("step1.yaml"), atomically: true, encoding: .utf8)
        try step2.write(toFile: directory.file("step2.yaml"), atomically: true, encoding: .utf8)
        let output = directory.file("out.pcap")
        let result = try svcplane("rewrite", "-r", Repository.capture("service-demo"), "-w", output, "-f",
                                  "\(Repository.pcaps)/service-demo.yaml",
                                  "--apply", "+0.05=\(directory.file("step1.yaml"))",
                                  "--apply", "+0.1498=\(directory.file("step2.yaml"))",
                                  "--lb", "round-robin", "--no-follow-capture",
                                  "--stats", directory.file("stats.json"), "-o", "json", "--conntrack-dump",
                                  directory.file("ct.json"))
        try #require(result.status == 0, "\(result.standardError)")

        let stats = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: directory.file("stats.json")))) as? [String: Any]
        let changes = try #require(stats?["changes"] as? [[String: Any]])
        #expect(changes.count == 2)
        let firstMoves = try #require(changes.first?["moved"] as? [[String: Any]])
        #expect(firstMoves.count == 2, "both Services of the pods moved")
        #expect(firstMoves.allSatisfy { ($0["removed"] as? [String])?.first?.hasPrefix("10.244.1.11:") == true })
        #expect(firstMoves.allSatisfy { ($0["added"] as? [String])?.first?.hasPrefix("10.244.4.11:") == true })
        #expect((changes[1]["udpEntriesDeleted"] as? Int ?? 0) >= 1, "UDP entries to the removed pod are deleted")
        #expect(result.standardError.isEmpty || result.standardError.contains("change at"))

        // Every connection opened after a change avoids the pods that change removed.
        let start = try #require(try PcapReader(path: Repository.capture("service-demo")).next()?.timestamp)
        let opened = try packetFactsWithTimes(output).filter { fact, _ in
            fact.source == "10.0.1.2" && (fact.flags == TCPFlags.syn.rawValue || fact.protocolNumber == IPProtocol.udp)
        }.map { (time: $0.time - start, pod: $0.fact.destination) }
        #expect(opened.count == 18)
        #expect(opened.filter { $0.time >= 50_000_000 }.allSatisfy { $0.pod != "10.244.1.11" })
        #expect(opened.filter { $0.time >= 149_800_000 }.allSatisfy { $0.pod != "10.244.2.11" })
        #expect(opened.contains { $0.pod == "10.244.4.11" }, "the new pod takes connections")
    }
}
