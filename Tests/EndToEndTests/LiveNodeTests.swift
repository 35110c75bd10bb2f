import Foundation
import PacketIO
import PacketWire
import Testing

/// Whether this machine can run svcplane between TAP devices in namespaces.
enum LiveNode {
    static let available = LiveKernel.available && FileManager.default.fileExists(atPath: "/dev/net/tun")

    static var reason: Comment {
        LiveKernel.available ? "SKIPPED: the live node tests need /dev/net/tun (modprobe tun)" : LiveKernel.reason
    }
}

/// The tools/tap-node topology (a client and three pods in namespaces, `svcplane node` between them on TAPs),
/// brought up for one test; `down()` must run whatever happens (use `defer`).
final class TapTopology {
    static let script = Repository.root + "/tools/tap-node"
    private nonisolated(unsafe) static var made = 0
    let prefix: String
    let state: String
    let ip = which("ip") ?? "/usr/sbin/ip"

    init(state: String, nodeOptions: [String]) throws {
        Self.made += 1
        prefix = "svt\(getpid())x\(Self.made)"
        self.state = state
        let result = try runProcess(Self.script, ["up", "--prefix", prefix, "--state", state, "--"] + nodeOptions,
                                    environment: ["SVCPLANE": Repository.binary])
        try #require(result.status == 0, "tools/tap-node up failed: \(result.standardError)")
    }

    /// Stops the node (its summary is returned) and removes the namespaces.
    @discardableResult
    func down() -> String {
        let result = try? runProcess(Self.script, ["down", "--prefix", prefix, "--state", state])
        return result?.standardError ?? ""
    }

    /// Runs a command in the client's namespace.
    func client(_ arguments: String...) throws -> ProcessResult { try client(arguments) }

    func client(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(ip, ["netns", "exec", "\(prefix)-client"] + arguments)
    }

    /// `curl` from the client: the answer's text, or nil when the request failed (with curl's exit status).
    func curl(_ address: String) throws -> (answer: String?, status: Int32) {
        let result = try client("curl", "-sS", "--max-time", "5", "http://\(address)/")
        return (result.status == 0 ? result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) : nil,
                result.status)
    }

    /// Asks the node for a conntrack dump now (SIGUSR1) and returns it.
    func conntrack() throws -> String {
        let path = state + "/conntrack.txt"
        let before = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
        let pid = try #require(Int32(String(contentsOfFile: state + "/node.pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGUSR1)
        for _ in 0..<100 {
            let now = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
            if now != before { break }
            usleep(10_000)
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}

@Suite("Live node: svcplane between real network stacks", .serialized,
       .enabled(if: LiveNode.available, LiveNode.reason))
struct LiveNodeTests {
    static let pods = ["hostnames-1", "hostnames-2", "hostnames-3"]

    @Test("round-robin: curl rotates over the pods, UDP answers come from the ClusterIP, affinity sticks, no endpoints is refused at once, conntrack shows TIME_WAIT, the capture's checksums are valid")
    func roundRobin() throws {
        let directory = try TemporaryDirectory()
        let topology = try TapTopology(state: directory.path, nodeOptions: ["--lb", "round-robin"])
        defer { topology.down() }

        let answers = try (0..<30).map { _ in try topology.curl("10.96.148.206") }
        #expect(answers.map(\.answer) == (0..<30).map { Self.pods[$0 % 3] }, "pod-1, pod-2, pod-3, pod-1, ...")

        let udp = try topology.client("python3", Repository.root + "/tools/lib/udp-client.py", "10.96.148.210", "53",
                                      "6", "41000")
        // The client's socket is connected to the ClusterIP: only datagrams from 10.96.148.210:53 reach it.
        #expect(udp.standardOutput.split(separator: "\n").map { String($0.split(separator: " ").last ?? "") }
            == (0..<6).map { Self.pods[$0 % 3] })

        let sticky = try (0..<6).map { _ in try topology.curl("10.96.148.207") }
        #expect(Set(sticky.map(\.answer)).count == 1 && sticky[0].answer != nil,
                "ClientIP affinity: one pod for every request (answers and curl statuses: \(sticky))")

        let started = Date()
        let refused = try topology.curl("10.96.148.208")
        #expect(refused.answer == nil && refused.status == 7, "connection refused (curl exit 7), not a timeout")
        #expect(Date().timeIntervalSince(started) < 2)

        let entries = try topology.conntrack().split(separator: "\n").filter { $0.contains("dst=10.96.148.206") }
        #expect(entries.count == 30)
        #expect(entries.allSatisfy { $0.contains(" TIME_WAIT ") && $0.contains("[ASSURED]") })

        let summary = topology.down()
        #expect(summary.contains("forwarded (REDIRECT): "), "\(summary)")
        let capture = directory.file("node.pcap")
        try expectValidChecksums(capture)
        let toClient = try packetFacts(capture).filter { $0.destination == "10.0.0.2" && $0.protocolNumber != 1 }
        #expect(toClient.count > 100)
        // tools/tap-node's own check talks to pod 1 directly: that one connection comes back from a pod address;
        // every answer to a Service was reverse-NATed to the ClusterIP.
        let direct = toClient.filter { !$0.source.hasPrefix("10.96.148.") }
        #expect(Set(direct.map { "\($0.source):\($0.sourcePort)>\($0.destinationPort)" })
            .isSubset(of: ["10.244.1.11:9376>\(direct.first?.destinationPort ?? 0)"]))
    }

    @Test("random (the default): 30 curls all succeed and every pod answers some of them; 30 at once too")
    func random() throws {
        let directory = try TemporaryDirectory()
        let topology = try TapTopology(state: directory.path, nodeOptions: ["--seed", "7"])
        defer { topology.down() }
        let answers = try (0..<30).map { _ in try topology.curl("10.96.148.206").answer }
        #expect(answers.allSatisfy { $0 != nil })
        #expect(Set(answers.compactMap { $0 }) == Set(Self.pods))

        let parallel = try topology.client(["curl", "-sS", "--max-time", "5", "--parallel", "--parallel-max", "30"]
            + [String](repeating: "http://10.96.148.206/", count: 30))
        #expect(parallel.status == 0, "\(parallel.standardError)")
        let lines = parallel.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.count == 30 && Set(lines).isSubset(of: Set(Self.pods)))
    }
}

@Suite("Replay into a TAP", .serialized, .enabled(if: LiveNode.available, LiveNode.reason))
struct ReplayTests {
    /// Replays `arguments` into a persistent TAP of a namespace of the test's own while tcpdump records what the
    /// kernel receives on it; returns the frames received.
    func replay(_ arguments: [String], frames: Int, directory: TemporaryDirectory) throws -> [[UInt8]] {
        let ip = try #require(which("ip"))
        let namespace = "svr\(getpid())"
        try #require(try runProcess(ip, ["netns", "add", namespace]).status == 0)
        defer { _ = try? runProcess(ip, ["netns", "del", namespace]) }
        for command in [["netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                         "net.ipv6.conf.default.disable_ipv6=1"],
                        ["-n", namespace, "tuntap", "add", "dev", "rp0", "mode", "tap"],
                        ["-n", namespace, "link", "set", "rp0", "up"]]
        {
            let result = try runProcess(ip, command)
            try #require(result.status == 0, "ip \(command.joined(separator: " ")): \(result.standardError)")
        }

        let received = directory.file("received.pcap")
        let tcpdumpLog = directory.file("tcpdump.log")
        try #require(FileManager.default.createFile(atPath: tcpdumpLog, contents: nil))
        let tcpdump = Process()
        tcpdump.executableURL = URL(fileURLWithPath: ip)
        tcpdump.arguments = ["netns", "exec", namespace, try #require(which("tcpdump")), "-i", "rp0", "-Q", "in",
                             "-U", "-c", "\(frames)", "-s", "0", "-w", received]
        tcpdump.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: tcpdumpLog))
        try tcpdump.run()
        defer { if tcpdump.isRunning { kill(tcpdump.processIdentifier, SIGKILL) } }
        for _ in 0..<100 where !logSays("listening on", tcpdumpLog) { usleep(50_000) }

        let result = try runProcess(ip, ["netns", "exec", namespace, Repository.binary, "replay", "--tap", "rp0"]
            + arguments)
        try #require(result.status == 0, "svcplane replay: \(result.standardError)")
        #expect(result.standardError.contains("replay: \(frames) frames"), "\(result.standardError)")
        for _ in 0..<100 where tcpdump.isRunning { usleep(50_000) }
        #expect(!tcpdump.isRunning, "tcpdump saw fewer than \(frames) frames")
        return try frameBytes(received)
    }

    /// Whether a log file holds `text` yet (an empty file is not read: Foundation leaks the buffer it reads into).
    func logSays(_ text: String, _ path: String) -> Bool {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return size > 0 && ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains(text)
    }

    func frameBytes(_ path: String) throws -> [[UInt8]] {
        let reader = try PcapReader(path: path)
        var frames: [[UInt8]] = []
        while let frame = try reader.next() { frames.append(Array(frame.bytes)) }
        return frames
    }

    /// service-demo holds 138 frames over 0.150 s.
    @Test("the kernel receives the capture's frames byte for byte, at the pace asked", arguments: [
        (["--pps", "1000"], 0.137), (["--speed", "0.5"], 0.300),
    ])
    func plain(pace: [String], atLeastSeconds: Double) throws {
        let directory = try TemporaryDirectory()
        let input = Repository.capture("service-demo")
        let expected = try frameBytes(input)
        let started = Date()
        let received = try replay(["-r", input] + pace, frames: expected.count, directory: directory)
        #expect(received == expected)
        #expect(Date().timeIntervalSince(started) >= atLeastSeconds)
    }

    @Test("with -f, the frames sent are those svcplane rewrite writes")
    func throughProgram() throws {
        let directory = try TemporaryDirectory()
        let input = Repository.capture("service-demo")
        let rewritten = directory.file("rewritten.pcap")
        let rewrite = try svcplane("rewrite", "-r", input, "-w", rewritten, "-f", "\(Repository.pcaps)/service-demo.yaml",
                                   "--quiet")
        try #require(rewrite.status == 0, "\(rewrite.standardError)")
        let expected = try frameBytes(rewritten)
        let received = try replay(["-r", input, "-f", "\(Repository.pcaps)/service-demo.yaml", "--topspeed"],
                                  frames: expected.count, directory: directory)
        #expect(received == expected)
    }
}
