// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "svcplane",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "svcplane", targets: ["svcplane"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        .target(name: "PacketWire"),
        .target(name: "PacketIO", dependencies: ["CPcap"]),
        // Cluster reads YAML with the event parser of libyaml, the C library inside Yams (its CYaml module).
        .target(name: "Cluster", dependencies: ["PacketWire", "Yams"]),
        .target(name: "Conntrack", dependencies: ["PacketWire"]),
        .target(name: "Dataplane", dependencies: ["PacketWire", "Conntrack", "Cluster",
                                               .product(name: "DequeModule", package: "swift-collections")]),
        .target(name: "Pipeline", dependencies: ["Dataplane", "PacketIO"]),
        .target(name: "Node", dependencies: ["Pipeline"]),
        .target(name: "KubeProxyRules",
                dependencies: ["Cluster", "PacketWire", .product(name: "Crypto", package: "swift-crypto")]),
        .executableTarget(
            name: "svcplane",
            dependencies: ["Pipeline", "Node", "KubeProxyRules",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "TestSupport", dependencies: ["PacketWire"], path: "Tests/Support"),
        .testTarget(name: "PacketWireTests", dependencies: ["PacketWire", "TestSupport"]),
        .testTarget(name: "PacketIOTests", dependencies: ["CPcap", "PacketIO", "PacketWire", "TestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster"]),
        .testTarget(name: "ConntrackTests", dependencies: ["Conntrack", "TestSupport"]),
        .testTarget(name: "DataplaneTests", dependencies: ["Dataplane", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "TestSupport"]),
        .testTarget(name: "NodeTests", dependencies: ["Node", "TestSupport"]),
        .testTarget(name: "KubeProxyRulesTests", dependencies: ["KubeProxyRules", "PacketWire"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Pipeline", "TestSupport", "svcplane"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets, built only by tools/fuzz (SVCPLANE_FUZZ=1, with -sanitize=fuzzer,address), since they
// have no main function of their own.
if Context.environment["SVCPLANE_FUZZ"] != nil {
    package.targets += [
        .target(name: "FuzzDriver", path: "Fuzz/FuzzDriver"),
        .executableTarget(name: "FuzzProgram", dependencies: ["Dataplane", "FuzzDriver"], path: "Fuzz/FuzzProgram"),
        .executableTarget(name: "FuzzCapture", dependencies: ["PacketIO", "FuzzDriver"], path: "Fuzz/FuzzCapture"),
        .executableTarget(name: "FuzzManifest", dependencies: ["Cluster", "FuzzDriver"], path: "Fuzz/FuzzManifest"),
    ]
}

// package-benchmark suites (Benchmarks/), built only when asked for (the README gives the command and why it passes
// --no-progress): `SVCPLANE_BENCHMARKS=1 swift package benchmark --no-progress`.
if Context.environment["SVCPLANE_BENCHMARKS"] != nil {
    package.dependencies += [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ]
    package.targets += [
        .executableTarget(
            name: "SvcplaneBenchmarks",
            dependencies: ["Dataplane", "TestSupport", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/SvcplaneBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
}
