import Foundation
import PacketIO
import PacketWire
import Testing

@Suite("Sample captures end to end")
struct SampleCaptureTests {
    @Test("pcaps/ holds the documented samples")
    func samplesPresent() {
        let samples = Repository.sampleCaptures
        for name in ["service-demo", "single-pod", "refused", "cooked", "cooked-v1", "vlan"] {
            #expect(samples.contains(name), "pcaps/\(name) with its manifest")
        }
    }

    @Test("every sample rewrites cleanly: exit 0, valid checksums, nothing lost, same bytes twice",
          arguments: Repository.sampleCaptures)
    func rewriteSample(name: String) throws {
        let directory = try TemporaryDirectory()
        let input = Repository.capture(name)
        let manifest = "\(Repository.pcaps)/\(name).yaml"
        var outputs: [Data] = []
        var dumps: [String] = []
        for run in 0..<2 {
            let output = directory.file("out\(run).pcap")
            let result = try svcplane("rewrite", "-r", input, "-w", output, "-f", manifest, "--seed", "42",
                                      "--conntrack-dump", directory.file("ct\(run).txt"), "--stats",
                                      directory.file("stats\(run).json"), "-o", "json")
            #expect(result.status == 0, "\(result.standardError)")
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: output)))
            dumps.append(try String(contentsOfFile: directory.file("ct\(run).txt"), encoding: .utf8))
        }
        #expect(outputs[0] == outputs[1], "same input and seed give byte-identical output")
        #expect(dumps[0] == dumps[1])
        try expectValidChecksums(directory.file("out0.pcap"))

        let stats = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: directory.file("stats0.json")))) as? [String: Any]
        let read = try #require(stats?["packetsRead"] as? Int)
        let written = try #require(stats?["packetsWritten"] as? Int)
        let generated = try #require(stats?["generatedReplies"] as? Int)
        let dropped = try #require(stats?["dropped"] as? Int)
        #expect(read + generated - dropped == written, "every packet is accounted for")
        #expect(dropped == 0)
        #expect(try packetFacts(directory.file("out0.pcap")).count == packetFacts(input).count + generated)
    }

    @Test("service-demo: every connection stays on one pod, all three pods serve, answers come from the ClusterIP")
    func serviceDemo() throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("out.pcap")
        let result = try svcplane("rewrite", "-r", Repository.capture("service-demo"), "-w", output, "-f",
                                  "\(Repository.pcaps)/service-demo.yaml", "--conntrack-dump", "-")
        #expect(result.status == 0)
        var podOfConnection: [UInt16: String] = [:]
        for fact in try packetFacts(output) where fact.protocolNumber == IPProtocol.tcp {
            if fact.source == "10.0.1.2" {
                #expect(fact.destination.hasPrefix("10.244.") && fact.destinationPort == 9376)
                if let pod = podOfConnection[fact.sourcePort] { #expect(pod == fact.destination) }
                podOfConnection[fact.sourcePort] = fact.destination
            } else {
                #expect(fact.source == "10.96.148.206" && fact.sourcePort == 80)
            }
        }
        #expect(podOfConnection.count == 12)
        #expect(Set(podOfConnection.values) == ["10.244.1.11", "10.244.2.11", "10.244.3.11"])
        for fact in try packetFacts(output) where fact.protocolNumber == IPProtocol.udp && fact.destination == "10.0.1.2" {
            #expect(fact.source == "10.96.0.10" && fact.sourcePort == 53)
        }
        let lines = listing(result.standardOutput)
        #expect(lines.filter { $0.rest.hasPrefix("tcp 6 TIME_WAIT") && $0.rest.contains("[ASSURED]") }.count == 12)
        #expect(lines.filter { $0.rest.hasPrefix("udp 17") }.count == 6)
        #expect(result.standardError.contains("conntrack v1.4.7 (conntrack-tools): 18 flow entries have been shown."))
    }

    @Test("cluster: every Service shape on node-a: Local policies stay on the node, external Cluster traffic is masqueraded, no endpoints is refused, SCTP is balanced, headless and ExternalName are not")
    func cluster() throws {
        let directory = try TemporaryDirectory()
        let result = try svcplane("rewrite", "-r", Repository.capture("cluster"), "-w", directory.file("out.pcap"),
                                  "-f", "\(Repository.pcaps)/cluster.yaml", "--node-ip", "192.168.1.10",
                                  "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16", "--lb", "round-robin",
                                  "--conntrack-dump", "-")
        try #require(result.status == 0, "\(result.standardError)")
        let entries = listing(result.standardOutput).map(\.rest)
        func replies(_ original: String) -> [String] {
            entries.filter { $0.contains(original) }.map { line in
                let fields = line.split(separator: " ").filter { $0.hasPrefix("src=") || $0.hasPrefix("dst=") }
                return "\(fields[2].dropFirst(4))>\(fields[3].dropFirst(4))"
            }
        }
        let nodeA = "10.244.1."
        for frontend in ["dst=203.0.113.10 ", "dst=192.168.1.10 sport=4", "dst=10.96.10.40 "] {
            let local = replies(frontend).filter { !$0.contains(">192.168.1.10") }
            #expect(!local.isEmpty && local.allSatisfy { $0.hasPrefix(nodeA) && !$0.hasSuffix(">192.168.1.10") },
                    "Local policy, client address kept: \(frontend) \(local)")
        }
        for frontend in ["dport=30081 ", "dport=30090 ", "dst=192.0.2.50 ", "src=172.16.0.5 dst=10.96.10.10 "] {
            let masqueraded = replies(frontend)
            #expect(masqueraded.count == 3 && masqueraded.allSatisfy { $0.hasSuffix(">192.168.1.10") }, "\(frontend)")
        }
        #expect(Set(replies("dst=10.96.10.20 ")).count == 1, "ClientIP affinity: one cart pod")
        #expect(replies("dport=30081 ").allSatisfy { !$0.hasPrefix("10.244.1.108:") && !$0.hasPrefix("10.244.2.109:") },
                "not-ready catalog pods get nothing")
        #expect(result.standardError.contains("1 rejected (no endpoints), 12 masqueraded"))
        for unserved in ["payments/ledger port 5432 (headless", "payments/bank"] {
            #expect(result.standardError.contains("service \(unserved)"), "\(unserved)")
        }
        #expect(result.standardError.contains("other_protocol 1"), "ping passes unchanged")
        #expect(entries.contains { $0.hasPrefix("sctp 132 CLOSED src=10.244.1.50 dst=10.96.30.30") }, "SCTP is balanced")
        try expectValidChecksums(directory.file("out.pcap"))
    }
}

@Suite("Command line")
struct CommandLineTests {
    @Test("bad usage exits 2")
    func badUsage() throws {
        #expect(try svcplane("rewrite").status == 2)
        #expect(try svcplane("rewrite", "-r", "x.pcap", "-w", "y.pcap").status == 2, "no manifest")
        #expect(try svcplane("rewrite", "-r", "x", "-w", "y", "-f", "z", "--lb", "bogus").status == 2)
        #expect(try svcplane("no-such-command").status == 2)
        #expect(try svcplane("--help").status == 0)
        let sample = Repository.capture("single-pod")
        let overwrite = try svcplane("rewrite", "-r", sample, "-w", sample, "-f", "\(Repository.pcaps)/single-pod.yaml")
        #expect(overwrite.status == 2 && overwrite.standardError.contains("will not overwrite its input"))
        #expect(try svcplane("rewrite", "-r", "a", "-w", "b", "-f", "c", "--conntrack-tcp-timeout-established",
                             "99999999999h").status == 2)
    }

    @Test("bad input exits 1 with one line naming the file")
    func badInput() throws {
        let directory = try TemporaryDirectory()
        let manifest = "\(Repository.pcaps)/single-pod.yaml"
        let missing = try svcplane("rewrite", "-r", directory.file("none.pcap"), "-w", directory.file("o.pcap"),
                                   "-f", manifest)
        #expect(missing.status == 1)
        #expect(missing.standardError == "svcplane: error: \(directory.file("none.pcap")): No such file or directory\n")

        try "kind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n"
            .write(toFile: directory.file("bad.yaml"), atomically: true, encoding: .utf8)
        let bad = try svcplane("conntrack", "-r", Repository.capture("single-pod"), "-f", directory.file("bad.yaml"))
        #expect(bad.status == 1)
        #expect(bad.standardError == "svcplane: error: \(directory.file("bad.yaml")): document 1: spec.ports[0].port: "
            + "0 is not in 1-65535\n")

        let whole = try Data(contentsOf: URL(fileURLWithPath: Repository.capture("single-pod")))
        try whole.prefix(whole.count - 20).write(to: URL(fileURLWithPath: directory.file("cut.pcap")))
        let cut = try svcplane("rewrite", "-r", directory.file("cut.pcap"), "-w", directory.file("out.pcap"), "-f",
                               manifest)
        #expect(cut.status == 1)
        #expect(cut.standardError.hasPrefix("svcplane: error: \(directory.file("cut.pcap")): packet "))
        #expect(cut.standardError.split(separator: "\n").count == 1)
        let salvaged = try packetFacts(directory.file("out.pcap"))
        #expect(salvaged.count == (try packetFacts(Repository.capture("single-pod")).count) - 1,
                "every packet before the damage is written")
    }

    @Test("unreadable inputs, corrupt record lengths and a full disk give one line and exit 1")
    func badFiles() throws {
        let directory = try TemporaryDirectory()
        let manifest = "\(Repository.pcaps)/single-pod.yaml"
        let notAFile = try svcplane("rewrite", "-r", directory.path, "-w", directory.file("o.pcap"), "-f", manifest)
        #expect(notAFile.status == 1 && notAFile.standardError.hasPrefix("svcplane: error: \(directory.path): "))
        #expect(notAFile.standardError.split(separator: "\n").count == 1)

        var capture = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repository.capture("single-pod"))))
        let firstLength = Int(capture[24 + 8]) | Int(capture[24 + 9]) << 8
        let second = 24 + 16 + firstLength
        capture.replaceSubrange((second + 8)..<(second + 12), with: [0xFF, 0xFF, 0xFF, 0x7F])  // caplen 2 GiB
        try Data(capture).write(to: URL(fileURLWithPath: directory.file("corrupt.pcap")))
        let corrupt = try svcplane("rewrite", "-r", directory.file("corrupt.pcap"), "-w", directory.file("c.pcap"),
                                   "-f", manifest)
        #expect(corrupt.status == 1)
        #expect(corrupt.standardError.hasPrefix("svcplane: error: \(directory.file("corrupt.pcap")): packet 2: "))
        let salvaged = try PcapReader(path: directory.file("c.pcap"))
        #expect(try salvaged.next() != nil && salvaged.next() == nil, "the packet before the damage was written")

        let full = try svcplane("rewrite", "-r", Repository.capture("single-pod"), "-w", "/dev/full", "-f", manifest)
        #expect(full.status == 1)
        #expect(full.standardError.hasPrefix("svcplane: error: /dev/full: write failed"))
    }

    @Test("conntrack prints the table as JSON")
    func conntrackJSON() throws {
        let result = try svcplane("conntrack", "-r", Repository.capture("single-pod"), "-f",
                                  "\(Repository.pcaps)/single-pod.yaml", "-o", "json")
        #expect(result.status == 0)
        let entries = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]]
        #expect(entries?.count == 5)
        #expect(entries?.first?["state"] as? String == "TIME_WAIT")
    }

    @Test("--conntrack-at lists the table later on the capture's clock: timeouts count down, expired entries go")
    func conntrackAt() throws {
        let capture = Repository.capture("single-pod")
        func table(_ extra: String...) throws -> [ListingLine] {
            let result = try runProcess(Repository.binary, ["conntrack", "-r", capture, "-f",
                                                            "\(Repository.pcaps)/single-pod.yaml"] + extra)
            try #require(result.status == 0, "\(result.standardError)")
            return listing(result.standardOutput)
        }
        let reader = try PcapReader(path: capture)
        var lastPacket: Int64 = 0
        while let frame = try reader.next() { lastPacket = frame.timestamp }

        let atLastPacket = try table()
        #expect(atLastPacket.map(\.timeout).sorted() == [29, 30, 119, 119, 119])
        let tenLater = try table("--conntrack-at", "+10")
        #expect(tenLater.map(\.rest) == atLastPacket.map(\.rest))
        #expect(tenLater.map(\.timeout) == atLastPacket.map { $0.timeout - 10 })
        let tenLaterTime = lastPacket + 10_000_000_000
        let absolute = "\(tenLaterTime / 1_000_000_000)." + String(format: "%09lld", tenLaterTime % 1_000_000_000)
        #expect(try table("--conntrack-at", absolute) == tenLater)
        #expect(try table("--conntrack-at", "1") == atLastPacket, "a time before the last packet is the last packet's")
        // UDP entries (30 s) are gone 40 s later; TIME_WAIT (120 s) is not.
        let fortyLater = try table("--conntrack-at", "+40")
        #expect(fortyLater.map(\.rest) == atLastPacket.filter { $0.rest.hasPrefix("tcp") }.map(\.rest))
        #expect(fortyLater.map(\.timeout) == [79, 79, 79])
        let bad = try svcplane("conntrack", "-r", capture, "-f", "\(Repository.pcaps)/single-pod.yaml",
                               "--conntrack-at", "soon")
        #expect(bad.status == 2)
        #expect(bad.standardError.contains(
            "The value 'soon' is invalid for '--conntrack-at <TIME>': expected seconds since the epoch, or +SECONDS."))
    }

    @Test("--timing prints one line of wall-clock times on stderr, --quiet or not, and changes no output")
    func timing() throws {
        let directory = try TemporaryDirectory()
        let common = ["rewrite", "-r", Repository.capture("service-demo"), "-f",
                      "\(Repository.pcaps)/service-demo.yaml", "--quiet"]
        let timed = try runProcess(Repository.binary, common + ["-w", directory.file("timed.pcap"), "--timing"])
        #expect(timed.status == 0)
        let line = #"^timing: set-up [0-9.]+ s, packets [0-9.]+ s \([0-9]+ ns per packet\)\n$"#
        #expect(timed.standardError.range(of: line, options: .regularExpression) != nil, "\(timed.standardError)")
        #expect(try runProcess(Repository.binary, common + ["-w", directory.file("plain.pcap")]).standardError.isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.file("timed.pcap")))
            == Data(contentsOf: URL(fileURLWithPath: directory.file("plain.pcap"))))
    }
}

@Suite("Interruption")
struct InterruptionTests {
    @Test("SIGINT during a rewrite flushes what was written and exits 130")
    func interrupt() throws {
        let directory = try TemporaryDirectory()
        let fifo = directory.file("in.pcap")
        try #require(mkfifo(fifo, 0o600) == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repository.binary)
        process.arguments = ["rewrite", "-r", fifo, "-w", directory.file("out.pcap"), "-f",
                             "\(Repository.pcaps)/single-pod.yaml", "--quiet"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        let feed = try #require(FileHandle(forWritingAtPath: fifo))  // opens once svcplane reads
        let capture = try Data(contentsOf: URL(fileURLWithPath: Repository.capture("single-pod")))
        feed.write(capture.prefix(capture.count - 10))  // all but the end of the last record: svcplane waits
        var unread: Int32 = 1
        for _ in 0..<600 where unread > 0 {  // until svcplane has taken everything from the pipe (at most 60 s)
            _ = ioctl(feed.fileDescriptor, UInt(FIONREAD), &unread)
            Thread.sleep(forTimeInterval: 0.1)
        }
        Thread.sleep(forTimeInterval: 0.3)
        process.interrupt()
        process.waitUntilExit()
        try feed.close()
        #expect(process.terminationStatus == 130)
        let written = try packetFacts(directory.file("out.pcap")).count
        #expect(written == (try packetFacts(Repository.capture("single-pod")).count) - 1)
    }
}

@Suite("Progress on a terminal")
struct ProgressTests {
    /// Runs `svcplane rewrite` on 70,000 packets fed through a FIFO, all but the first few 1.2 s late (so the run
    /// has lasted more than a second when it passes packet 65,536), on a terminal (`script`) or not; returns
    /// what it printed on stderr.
    private func rewriteSlowly(onTerminal: Bool, quiet: Bool) throws -> String {
        let directory = try TemporaryDirectory()
        let capture = directory.file("big.pcap")
        let manifest = directory.file("bench.yaml")
        let generated = try runProcess(Repository.root + "/tools/gen-capture", [capture, manifest, "--packets",
                                                                               "70000", "--flows", "100"])
        try #require(generated.status == 0, "\(generated.standardError)")
        let fifo = directory.file("in.pcap")
        try #require(mkfifo(fifo, 0o600) == 0)
        let command = [Repository.binary, "rewrite", "-r", fifo, "-w", directory.file("out.pcap"), "-f", manifest,
                       "--lb", "round-robin"] + (quiet ? ["--quiet"] : [])
        let process = Process()
        let output = Pipe()
        if onTerminal {
            process.executableURL = URL(fileURLWithPath: try #require(which("script")))
            process.arguments = ["-qec", command.joined(separator: " "), "/dev/null"]
            process.standardOutput = output
        } else {
            process.executableURL = URL(fileURLWithPath: Repository.binary)
            process.arguments = Array(command.dropFirst())
            process.standardError = output
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        let feed = try #require(FileHandle(forWritingAtPath: fifo))
        let data = try Data(contentsOf: URL(fileURLWithPath: capture))
        feed.write(data.prefix(4096))  // the file header and the first packets: the run starts
        Thread.sleep(forTimeInterval: 1.2)
        feed.write(data.dropFirst(4096))
        try feed.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return text
    }

    @Test("a run past a second shows packets and rate on a terminal, then clears the line before the summary")
    func terminal() throws {
        let text = try rewriteSlowly(onTerminal: true, quiet: false)
        #expect(text.contains("\r\u{1B}[K65536 packets, "), "\(text.prefix(300))")
        #expect(text.contains(" Mpps"))
        #expect(text.contains("\r\u{1B}[Kpackets: 70000 read"), "the summary follows a cleared line")
    }

    @Test("no progress when stderr is not a terminal, nothing at all with --quiet")
    func notTerminal() throws {
        let text = try rewriteSlowly(onTerminal: false, quiet: false)
        #expect(!text.contains("\r") && text.hasPrefix("packets: 70000 read"))
        #expect(try rewriteSlowly(onTerminal: true, quiet: true).isEmpty)
    }
}
