import Foundation
import Testing

@Suite("kube-proxy rules in a real kernel")
struct RulesKernelTests {
    @Test("svcplane rules loads with iptables-restore into a namespace and the kernel lists every chain",
          .enabled(if: LiveKernel.available, LiveKernel.reason))
    func loadIntoKernel() throws {
        let directory = try TemporaryDirectory()
        let rules = try svcplane("rules", "-f", "\(Repository.pcaps)/service-demo.yaml", "-f",
                                 "\(Repository.pcaps)/refused.yaml", "--cluster-cidr", "10.244.0.0/16")
        try #require(rules.status == 0, "\(rules.standardError)")
        try rules.standardOutput.write(toFile: directory.file("rules"), atomically: true, encoding: .utf8)

        let ip = try #require(which("ip"))
        let namespace = "svcplane-rules-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try #require(try runProcess(ip, ["netns", "add", namespace]).status == 0)
        defer { _ = try? runProcess(ip, ["netns", "delete", namespace]) }
        let load = try runProcess(ip, ["netns", "exec", namespace, "iptables-restore", "--noflush",
                                                   directory.file("rules")])
        #expect(load.status == 0, "iptables-restore refused the rules: \(load.standardError)")
        let saved = try runProcess(ip, ["netns", "exec", namespace, "iptables-save"])
        let declared = rules.standardOutput.split(separator: "\n").filter { $0.hasPrefix(":KUBE-") }
        #expect(declared.count > 10)
        for chain in declared { #expect(saved.standardOutput.contains(chain), "\(chain) is in the kernel") }
        #expect(saved.standardOutput.contains("-m statistic --mode random --probability 0.33333333349"))
        #expect(saved.standardOutput.contains("--comment \"default/no-endpoints has no endpoints\""))
    }
}
