import ArgumentParser
import Foundation
import Pipeline

/// The `svcplane` command: a Kubernetes Service dataplane over captures.
struct Svcplane: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svcplane",
        abstract: "Emulate the Kubernetes Service dataplane (kube-proxy / eBPF) on packet captures and TAP devices.",
        discussion: """
            Exit status: 0 on success, 1 on bad input (one line 'svcplane: error: FILE: ...'), 2 on bad usage.
            """,
        subcommands: [Rewrite.self, ConntrackCommand.self, RulesCommand.self, NodeCommand.self, ReplayCommand.self])
}

@main
enum Main {
    static func main() {
        let command: any ParsableCommand
        do {
            command = try Svcplane.parseAsRoot()
        } catch {
            if Svcplane.exitCode(for: error) == .success { Svcplane.exit(withError: error) }
            FileHandle.standardError.write(Data((Svcplane.fullMessage(for: error) + "\n").utf8))
            exit(2)
        }
        do {
            var runnable = command
            try runnable.run()
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("svcplane: error: \(failure.message)\n".utf8))
            exit(1)
        } catch {
            Svcplane.exit(withError: error)
        }
    }
}
