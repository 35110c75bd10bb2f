import Foundation
import Yams

/// Everything loaded from manifests, before validation and endpoint resolution.
public struct ClusterManifests: Sendable {
    public var services: [Located<ServiceObject>] = []
    public var endpoints: [Located<EndpointsObject>] = []
    public var endpointSlices: [Located<EndpointSliceObject>] = []
    public var pods: [Located<PodObject>] = []

    public init() {}
}

/// Loads Kubernetes YAML: files with one or many documents (`---`), `kind: List`, and directories
/// (every `.yaml`, `.yml` and `.json` file inside, in name order).
public enum ManifestLoader {
    /// Loads all paths; a directory contributes its manifest files.
    public static func load(paths: [String]) throws(ManifestError) -> ClusterManifests {
        var manifests = ClusterManifests()
        for path in paths {
            for file in try manifestFiles(at: path) {
                try load(file: file, into: &manifests)
            }
        }
        return manifests
    }

    /// Parses YAML text (one file's content) into `manifests`; `name` is used in error messages.
    public static func load(yaml: String, name: String, into manifests: inout ClusterManifests)
        throws(ManifestError)
    {
        var documents: [Node] = []
        do {
            // Parse every document eagerly: Yams' lazy compose_all sequence swallows parse errors.
            // Keys are looked up by comparing nodes, which resolves their tags; the basic resolver does it without
            // the default one's regular expressions (decoding reads numbers and booleans from the text itself).
            let parser = try Parser(yaml: yaml, resolver: .basic, encoding: .utf8)
            while let document = try parser.nextRoot() { documents.append(document) }
        } catch {
            throw ManifestError(origin: name, message: "not valid YAML: \(yamlMessage(error))")
        }
        // One decoder for the file: creating one reads Yams' default encoding from the environment.
        let decoder = YAMLDecoder(encoding: .utf8)
        for (index, document) in documents.enumerated() {
            try add(document, origin: "\(name): document \(index + 1)", decoder: decoder, into: &manifests)
        }
    }

    private static func load(file: String, into manifests: inout ClusterManifests) throws(ManifestError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ManifestError(origin: file, message: "cannot read file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(origin: file, message: "not UTF-8 text")
        }
        try load(yaml: text, name: file, into: &manifests)
    }

    private static func manifestFiles(at path: String) throws(ManifestError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ManifestError(origin: path, message: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw ManifestError(origin: path, message: "cannot list directory")
        }
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }
            .sorted().map { (path as NSString).appendingPathComponent($0) }
    }

    private static func add(_ node: Node, origin: String, decoder: YAMLDecoder,
                            into manifests: inout ClusterManifests)
        throws(ManifestError)
    {
        guard node.mapping != nil else {
            if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "null" { return }
            throw ManifestError(origin: origin, message: "expected a Kubernetes object (a mapping)")
        }
        guard let kind = node["kind"]?.string else {
            throw ManifestError(origin: origin, field: "kind", message: "missing")
        }
        switch kind {
        case "List", "ServiceList", "EndpointsList", "EndpointSliceList", "PodList":
            guard let items = node["items"]?.sequence else { return }
            for (index, item) in items.enumerated() {
                try add(item, origin: "\(origin): items[\(index)]", decoder: decoder, into: &manifests)
            }
        case "Service":
            manifests.services.append(try decode(node, origin: origin, decoder: decoder))
        case "Endpoints":
            manifests.endpoints.append(try decode(node, origin: origin, decoder: decoder))
        case "EndpointSlice":
            manifests.endpointSlices.append(try decode(node, origin: origin, decoder: decoder))
        case "Pod":
            manifests.pods.append(try decode(node, origin: origin, decoder: decoder))
        case _ where ignorableKinds.contains(kind) || (node["apiVersion"]?.string ?? "v1").contains("/"):
            break  // a workload, config or custom resource: not part of the dataplane
        default:
            throw ManifestError(origin: origin, field: "kind",
                                message: "unknown kind \"\(kind)\" (svcplane reads Service, Endpoints, "
                                    + "EndpointSlice, Pod and List)")
        }
    }

    /// Core (`apiVersion: v1`) kinds that may sit beside Services in a manifest directory and do not change the
    /// dataplane, and grouped ones listed for clarity (every kind of a group API, `apps/v1`, a custom
    /// resource..., is skipped). Any other core kind is a mistake worth reporting: a typo such as `Servce`
    /// would otherwise vanish.
    static let ignorableKinds: Set<String> = [
        "Namespace", "Node", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
        "ReplicationController", "ConfigMap", "Secret", "ServiceAccount", "PersistentVolume",
        "PersistentVolumeClaim", "Ingress", "IngressClass", "NetworkPolicy", "Role", "RoleBinding", "ClusterRole",
        "ClusterRoleBinding", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Event", "LimitRange",
        "ResourceQuota", "CustomResourceDefinition",
    ]

    private static func decode<Object: Decodable & Sendable>(_ node: Node, origin: String, decoder: YAMLDecoder)
        throws(ManifestError) -> Located<Object>
    {
        do {
            return Located(object: try decoder.decode(Object.self, from: node), origin: origin)
        } catch let error as DecodingError {
            throw describe(error, origin: origin)
        } catch {
            throw ManifestError(origin: origin, message: yamlMessage(error))
        }
    }

    private static func describe(_ error: DecodingError, origin: String) -> ManifestError {
        switch error {
        case .typeMismatch(let type, let context):
            return ManifestError(origin: origin, field: fieldPath(context.codingPath),
                                 message: "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            return ManifestError(origin: origin, field: fieldPath(context.codingPath),
                                 message: "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return ManifestError(origin: origin, field: fieldPath(context.codingPath + [key]), message: "missing")
        case .dataCorrupted(let context):
            return ManifestError(origin: origin, field: fieldPath(context.codingPath),
                                 message: context.debugDescription)
        @unknown default:
            return ManifestError(origin: origin, message: "\(error)")
        }
    }

    private static func fieldPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "a list" : "a mapping"
        }
    }

    private static func yamlMessage(_ error: any Error) -> String {
        "\(error)".split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }
}
