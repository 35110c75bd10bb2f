import ArgumentParser
import Cluster
import Conntrack
import Dataplane
import PacketWire
import Pipeline

/// The cluster's manifests, shared by every command.
struct ManifestOptions: ParsableArguments {
    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Kubernetes manifests (Services, Endpoints, EndpointSlices, Pods): a file or a directory. Repeatable.",
        valueName: "file|dir"))
    var manifests: [String] = []

    init() {}

    init(paths: [String]) { manifests = paths }

    func validate() throws {
        if manifests.isEmpty { throw ValidationError("Missing -f: at least one manifest file or directory.") }
    }

    /// Loads and compiles the manifests.
    func serviceTable() throws(CommandFailure) -> ServiceTable {
        do {
            return try ServiceTableBuilder.build(ManifestLoader.load(paths: manifests))
        } catch {
            throw CommandFailure(message: error.description)
        }
    }
}

/// How a capture is replayed through the program: following its own replies, and cluster changes on its clock.
struct CaptureOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "Give each connection the backend whose replies the capture holds (the recorded node's choice), while that "
            + "backend is usable; --lb decides the connections the capture does not answer within two minutes of "
            + "capture time (or the UDP timeout, if longer). A capture read from a pipe is read once, so it is not "
            + "followed."))
    var followCapture = true

    @Option(name: .customLong("apply"), help: ArgumentHelp(
        "At capture time TIME (seconds since the Unix epoch, or +SECONDS after the first packet) the cluster "
            + "becomes the manifests in FILE, as a rolling update changes endpoints. Repeatable.",
        valueName: "TIME=FILE"))
    var changes: [String] = []

    @Option(name: .customLong("shard"), help: ArgumentHelp(
        "Process only shard K (0-based) of N of the capture's connections and write nothing else: N runs, one "
            + "per shard, merged with mergecap, give the one-run output (with --lb random or maglev; round-robin "
            + "rotates per shard). Both directions of a connection, before and after NAT, share a shard; N <= 256.",
        valueName: "K/N"))
    var shard: String?

    @Option(help: ArgumentHelp(
        "Run N programs in parallel threads, each with its own conntrack over a shard of the connections (the "
            + "--shard key); the output is in input order and equals one worker's with --lb random or maglev "
            + "(round-robin rotates per worker). Reading and writing take a thread of their own beside them, so "
            + "N workers can pay off only with more than N cores (on 2 cores, one worker is fastest). N times the "
            + "--shard count is at most 256.", valueName: "N"))
    var workers = 1

    func validate() throws {
        if let shard, Self.parseShard(shard) == nil {
            throw ValidationError("--shard \(shard): expected K/N with 0 <= K < N <= 256.")
        }
        let shards = shard.flatMap(Self.parseShard)?.count ?? 1
        guard workers >= 1, workers * shards <= FlowSharding.maximumShards else {
            throw ValidationError("--workers \(workers): expected 1 or more, at most 256 with the --shard count.")
        }
        for change in changes where Self.parseChange(change) == nil {
            throw ValidationError("--apply \(change): expected TIME=FILE, TIME in seconds (or +SECONDS).")
        }
    }

    /// `K/N`: shard K of N.
    static func parseShard(_ text: String) -> (index: Int, count: Int)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]),
              (1...FlowSharding.maximumShards).contains(count), (0..<count).contains(index) else { return nil }
        return (index, count)
    }

    /// `TIME=FILE` with TIME seconds since the epoch or `+SECONDS` after the first packet.
    static func parseChange(_ text: String) -> (time: ScheduledChange.Time, path: String)? {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
        let timeText = text[..<equals]
        let path = String(text[text.index(after: equals)...])
        guard !path.isEmpty, let time = CaptureTimeText.parse(timeText) else { return nil }
        return (time.relative ? .afterFirstPacket(time.nanoseconds) : .absolute(time.nanoseconds), path)
    }

    /// The `--apply` changes, each state loaded and compiled now, so that a bad file fails before any packet.
    func scheduledChanges() throws(CommandFailure) -> [ScheduledChange] {
        var scheduled: [ScheduledChange] = []
        for change in changes {
            guard let (time, path) = Self.parseChange(change) else { continue }
            let table = try ManifestOptions(paths: [path]).serviceTable()
            scheduled.append(ScheduledChange(time: time, table: table, source: path))
        }
        return scheduled
    }
}

/// Options of the service program, shared by every command that runs it.
struct ProgramOptions: ParsableArguments {
    @Option(name: .customLong("lb"), help: """
        Backend choice for new connections: random (iptables mode), round-robin (IPVS rr) or maglev (Cilium's \
        Maglev consistent hashing).
        """)
    var loadBalancing: LoadBalancingMode = .random

    @Option(name: .customLong("maglev-table-size"), help: ArgumentHelp(
        "Maglev table size M, a prime (Cilium's --bpf-lb-maglev-table-size; default 16381).", valueName: "M"))
    var maglevTableSize = MaglevTable.defaultSize

    @Option(help: "Seed of the random choice; the same seed and input give the same output.")
    var seed: UInt64 = 0

    @Option(help: "Conntrack table size (nf_conntrack_max).")
    var conntrackMax = 262_144

    @Option(name: .customLong("node-ip"), help: ArgumentHelp(
        "An address of the node: node ports are served on it; the first is the source of ICMP rejects (default: "
            + "the rejected address) and of masqueraded traffic. Repeatable.", valueName: "address"))
    var nodeIPs: [IPv4Address] = []

    @Option(name: .customLong("node-name"), help: ArgumentHelp(
        "The node's name: under a Local traffic policy, only endpoints with this nodeName take connections "
            + "(without it, every endpoint counts as local).", valueName: "name"))
    var nodeName: String?

    @Option(name: .customLong("cluster-cidr"), help: ArgumentHelp(
        "kube-proxy's --cluster-cidr; turns masquerading on: traffic to a ClusterIP from outside it, external "
            + "traffic under policy Cluster and hairpin traffic leave from the node's address.", valueName: "cidr"))
    var clusterCIDR: IPv4Network?

    @Option(name: .customLong("conntrack-tcp-timeout-established"),
            help: "ESTABLISHED timeout, as kube-proxy's flag (e.g. 24h); default the kernel's 5 days.")
    var establishedTimeout: GoDuration?

    @Option(name: .customLong("conntrack-tcp-timeout-close-wait"), help: "CLOSE_WAIT timeout (e.g. 1h).")
    var closeWaitTimeout: GoDuration?

    @Option(name: .customLong("conntrack-udp-timeout"), help: "UDP timeout before a stream is seen (e.g. 30s).")
    var udpTimeout: GoDuration?

    @Option(name: .customLong("conntrack-udp-timeout-stream"), help: "UDP stream timeout (e.g. 120s).")
    var udpStreamTimeout: GoDuration?

    func validate() throws {
        guard (1...(1 << 30)).contains(conntrackMax) else {
            throw ValidationError("--conntrack-max must be between 1 and 1073741824.")
        }
        guard (3...1_000_003).contains(maglevTableSize), MaglevTable.isPrime(maglevTableSize) else {
            throw ValidationError("--maglev-table-size must be a prime between 3 and 1000003 (Cilium: 16381).")
        }
    }

    /// Masquerading needs an address to leave from; a capture run has only --node-ip to give it.
    func validateMasqueradeSource() throws {
        if clusterCIDR != nil && nodeIPs.isEmpty {
            throw ValidationError("--cluster-cidr needs --node-ip: masqueraded traffic leaves from the node's address.")
        }
    }

    var configuration: LoadBalancerConfiguration {
        var configuration = LoadBalancerConfiguration()
        configuration.mode = loadBalancing
        configuration.seed = seed
        configuration.maglevTableSize = maglevTableSize
        configuration.conntrackMax = conntrackMax
        configuration.nodeAddresses = nodeIPs
        configuration.nodeName = nodeName
        configuration.clusterCIDR = clusterCIDR
        // As kube-proxy's flags: 0 leaves the kernel's value as it is.
        if let seconds = establishedTimeout?.seconds, seconds > 0 {
            configuration.timeouts.setTCP(.established, seconds: seconds)
        }
        if let seconds = closeWaitTimeout?.seconds, seconds > 0 {
            configuration.timeouts.setTCP(.closeWait, seconds: seconds)
        }
        if let seconds = udpTimeout?.seconds, seconds > 0 { configuration.timeouts.udp = seconds }
        if let seconds = udpStreamTimeout?.seconds, seconds > 0 { configuration.timeouts.udpStream = seconds }
        return configuration
    }
}

/// A failure to report as `svcplane: error: ...` with exit status 1.
struct CommandFailure: Error {
    let message: String
}

extension LoadBalancingMode: ExpressibleByArgument {}
extension IPv4Network: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
extension IPv4Address: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
extension OutputFormat: ExpressibleByArgument {}

/// A duration written as kube-proxy's flags take it (Go's time.ParseDuration: `24h`, `1h30m`, `90s`),
/// or a plain number of seconds; at most 2^31-1 seconds, the range of the kernel's timeout sysctls.
struct GoDuration: ExpressibleByArgument {
    static let maximumSeconds: Int64 = (1 << 31) - 1
    let seconds: Int64

    init?(argument: String) {
        if let plain = Int64(argument) {
            guard (0...Self.maximumSeconds).contains(plain) else { return nil }
            seconds = plain
            return
        }
        var total = 0.0
        var number = ""
        var rest = Substring(argument)
        guard !rest.isEmpty else { return nil }
        while let character = rest.first {
            if character.isNumber || character == "." {
                number.append(character)
                rest = rest.dropFirst()
                continue
            }
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "h": scale = 3600
            case "m": scale = 60
            case "s": scale = 1
            case "ms": scale = 0.001
            default: return nil
            }
            guard let value = Double(number) else { return nil }
            total += value * scale
            number = ""
        }
        guard number.isEmpty, total <= Double(Self.maximumSeconds) else { return nil }
        seconds = Int64(total)
    }
}

/// When the conntrack table is listed: after the last packet, or later on the capture's clock.
struct ListingTimeOption: ParsableArguments {
    @Option(name: .customLong("conntrack-at"), help: ArgumentHelp(
        "List the conntrack table as it stands at capture time TIME (seconds since the Unix epoch, say when the "
            + "conntrack -L to compare with was taken, or +SECONDS after the last packet), not at the last packet: "
            + "timeouts count down to TIME and entries expired by then are left out. A time before the last packet "
            + "is the last packet's.", valueName: "TIME"), transform: ListingTimeOption.parse)
    var time: (relative: Bool, nanoseconds: Int64)?

    /// `TIME` as `CaptureTimeText` reads it.
    static func parse(_ text: String) throws -> (relative: Bool, nanoseconds: Int64) {
        guard let time = CaptureTimeText.parse(text[...]) else {
            throw ValidationError("expected seconds since the epoch, or +SECONDS.")
        }
        return time
    }

    /// The listing time in nanoseconds on the capture's clock, given the last packet's time.
    func nanoseconds(lastPacket: Int64) -> Int64 {
        guard let time else { return lastPacket }
        return time.relative ? lastPacket + time.nanoseconds : time.nanoseconds
    }
}

/// A time on a capture's clock as options give it: `SECONDS` since the epoch or `+SECONDS` from a packet, in
/// decimal with up to nine digits of fraction, read exactly (a pcap timestamp has nanoseconds).
enum CaptureTimeText {
    static func parse(_ text: Substring) -> (relative: Bool, nanoseconds: Int64)? {
        let relative = text.hasPrefix("+")
        let parts = (relative ? text.dropFirst() : text).split(separator: ".", maxSplits: 1,
                                                               omittingEmptySubsequences: false)
        let fraction = parts.count == 2 ? parts[1] : ""
        guard let whole = parts.first, (1...10).contains(whole.count), fraction.count <= 9,
              (whole + fraction).allSatisfy({ $0.isASCII && $0.isNumber }), let seconds = Int64(whole),
              seconds < 1 << 32 else { return nil }
        let fractionNanoseconds = Int64(fraction + String(repeating: "0", count: 9 - fraction.count)) ?? 0
        return (relative, seconds * 1_000_000_000 + fractionNanoseconds)
    }
}
