// libFuzzer target: arbitrary bytes as Kubernetes YAML, loaded and compiled into a service table.
import FuzzDriver
import Cluster

/// The process entry point (SwiftPM links an executable target's main under this name).
@_cdecl("FuzzManifest_main")
public func fuzzManifestMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    svcplane_fuzz_main(argc, argv) { data, size in fuzzManifest(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var manifests = ClusterManifests()
    do {
        try ManifestLoader.load(yaml: text, name: "fuzz", into: &manifests)
        let table = try ServiceTableBuilder.build(manifests)
        for entry in table.entries {
            precondition(entry.usableBackends.allSatisfy { entry.backends.indices.contains($0) })
        }
    } catch {
        precondition(!error.description.isEmpty)
    }
    return 0
}
