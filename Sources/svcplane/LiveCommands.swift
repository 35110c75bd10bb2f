import ArgumentParser
import Dataplane
import Foundation
import Node
import PacketIO
import PacketWire
import Pipeline

/// `svcplane node`: the Service dataplane live, as a node routing between TAP devices.
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run the Service dataplane live: a node routing between TAP devices (ARP, routing, DNAT, "
            + "conntrack, reverse NAT).",
        discussion: """
            Each --tap is one network: svcplane opens the TAP (creating it, or attaching to a persistent one made \
            with 'ip tuntap add'), answers ARP and ping for its address there, and routes between the networks \
            by longest prefix, running the Service program on every packet. Move or configure the TAPs' kernel \
            side as you like (ip link set NAME netns NS). SIGINT or SIGTERM stops it and prints the summary; \
            SIGUSR1 rewrites the conntrack dump at once.
            """)

    @OptionGroup var cluster: ManifestOptions

    @Option(name: .customLong("tap"), help: ArgumentHelp(
        "A TAP device and the node's address on its network (the gateway of the hosts behind it). Repeatable.",
        valueName: "NAME=ADDRESS/PREFIX"))
    var taps: [String] = []

    @OptionGroup var program: ProgramOptions

    @Option(name: .customShort("w"), help: ArgumentHelp(
        "Record every frame the node sends (after rewriting) to a pcap file.", valueName: "file"))
    var record: String?

    @Option(name: .customLong("conntrack-dump"), help: ArgumentHelp(
        "Rewrite the conntrack table to this file every second, on SIGUSR1 and at the end.", valueName: "file"))
    var conntrackDump: String?

    @Option(name: .customShort("o"), help: "Format of the conntrack dump and the statistics: text or json.")
    var format: OutputFormat = .text

    @Option(help: ArgumentHelp("Write the summary to a file when the node stops, or - for stdout.",
                               valueName: "file|-"))
    var stats: String?

    @Flag(help: "Print nothing on stderr (neither the start line nor the summary).")
    var quiet = false

    /// The interfaces the --tap options describe.
    var interfaces: [NodeInterface] {
        taps.enumerated().compactMap { NodeInterface(specification: $1, position: $0) }
    }

    func validate() throws {
        if taps.isEmpty { throw ValidationError("Missing --tap: at least one NAME=ADDRESS/PREFIX.") }
        for tap in taps where NodeInterface(specification: tap, position: 0) == nil {
            throw ValidationError("--tap \(tap): expected NAME=ADDRESS/PREFIX with a host address and a prefix "
                + "of 1 to 30 (tap1=10.244.1.1/24).")
        }
        let interfaces = interfaces
        if Set(interfaces.map(\.name)).count != interfaces.count {
            throw ValidationError("--tap: each TAP may be named once.")
        }
        let networks = interfaces.map {
            IPv4Network(address: IPv4Address($0.address.value & $0.network.mask), prefixLength: $0.prefixLength)
        }
        if Set(networks).count != networks.count {
            throw ValidationError("--tap: two TAPs have the same network; a route could not choose between them.")
        }
    }

    func run() throws {
        SignalFlags.installInterruption()
        SignalFlags.installDumpRequest()
        let table = try cluster.serviceTable()
        let interfaces = interfaces
        do {
            let devices = try interfaces.map { interface throws(TapError) in try TapDevice(name: interface.name) }
            let recorder = try record.map { path throws(CaptureError) in
                try PcapWriter(path: path, datalink: 1, snapLength: 65_535, precision: .nanoseconds)
            }
            var configuration = program.configuration
            configuration.nodeAddresses += interfaces.map(\.address)
            configuration.sourceRoutes = interfaces.map(\.network)
            let forwarder = NodeForwarder(
                interfaces: interfaces,
                program: ServiceLoadBalancer(table: table, linkType: .ethernet, configuration: configuration))
            let runner = NodeRunner(devices: devices, forwarder: forwarder, recorder: recorder,
                                    dump: conntrackDump.map { ConntrackDumpTarget(path: $0, format: format) })
            try runner.run {
                if !quiet {
                    Output.standardError("svcplane node: up on "
                        + interfaces.map(\.description).joined(separator: ", ") + "; SIGINT stops\n")
                }
            }
            let summary = NodeSummary(forwarder: forwarder, warnings: runner.warnings)
            if !quiet { Output.standardError(summary.text) }
            if let stats { try Output.write(format == .json ? JSON.encode(summary) : summary.text, to: stats) }
        } catch let error as TapError {
            throw CommandFailure(message: error.description)
        } catch let error as CaptureError {
            throw CommandFailure(message: error.description)
        }
    }
}

/// `svcplane replay`: a capture written into a TAP at its recorded pace, like tcpreplay.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Send a capture's frames into a TAP device at the recorded pace (or faster), optionally through "
            + "the Service program first.")

    @Option(name: .customShort("r"), help: ArgumentHelp("Input capture (pcap or pcapng, Ethernet).",
                                                        valueName: "file"))
    var input: String

    @Option(help: ArgumentHelp("The TAP device to write into (created, or an existing persistent one).",
                               valueName: "name"))
    var tap: String

    @Option(help: "Replay at this multiple of the recorded pace (2 is twice as fast).")
    var speed: Double?

    @Option(help: "Replay at this many packets per second, whatever the timestamps say.")
    var pps: Double?

    @Flag(help: "Replay as fast as the device takes the frames.")
    var topspeed = false

    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Run the Service program on the frames first, with these manifests (file or directory); the frames sent "
            + "are those 'svcplane rewrite' would write. Repeatable.",
        valueName: "file|dir"))
    var manifests: [String] = []

    @OptionGroup var program: ProgramOptions
    @OptionGroup var capture: CaptureOptions

    @Flag(help: "Do not print the report on stderr.")
    var quiet = false

    func validate() throws {
        try program.validateMasqueradeSource()
        if [speed != nil, pps != nil, topspeed].filter({ $0 }).count > 1 {
            throw ValidationError("--speed, --pps and --topspeed exclude each other.")
        }
        for (flag, value) in [("--speed", speed), ("--pps", pps)] {
            if let value, !(value > 0 && value.isFinite) { throw ValidationError("\(flag) must be a positive number.") }
        }
    }

    var pace: ReplayPace {
        if topspeed { return .topSpeed }
        if let pps { return .packetsPerSecond(pps) }
        return .recorded(speed: speed ?? 1)
    }

    func run() throws {
        SignalFlags.installInterruption()
        let runner = try CaptureRun(input: input, cluster: ManifestOptions(paths: manifests), program: program,
                                    capture: capture)
        guard LinkType(dlt: runner.reader.datalink) == .ethernet else {
            throw CommandFailure(message: "\(input): a TAP takes Ethernet frames; this capture's link type is "
                + "\(runner.reader.datalink)")
        }
        let sink: TapReplaySink
        do { sink = try TapReplaySink(device: TapDevice(name: tap), pace: pace) } catch {
            throw CommandFailure(message: error.description)
        }
        let counts = try runner.run(writer: sink)
        if !quiet {
            Output.standardError(sink.report)
            if !manifests.isEmpty { Output.standardError(RunSummary(counts: counts, programs: runner.programs).text) }
        }
        if counts.interrupted {
            Output.standardError("svcplane: interrupted after \(counts.packetsRead) packets\n")
            throw ExitCode(130)
        }
    }
}
