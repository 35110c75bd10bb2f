/// One document of a manifest file, by its `kind`: an object svcplane reads, a list of documents
/// (`kind: List` and the typed lists `kubectl get` prints), or an object it skips. An empty document is skipped.
enum ManifestDocument: Decodable {
    case service(ServiceObject)
    case endpoints(EndpointsObject)
    case endpointSlice(EndpointSliceObject)
    case pod(PodObject)
    case list([ManifestDocument])
    case skipped

    private enum CodingKeys: String, CodingKey {
        case kind
        case apiVersion
        case items
    }

    init(from decoder: any Decoder) throws {
        if try decoder.singleValueContainer().decodeNil() {
            self = .skipped
            return
        }
        guard let container = try? decoder.container(keyedBy: CodingKeys.self) else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath, debugDescription: "expected a Kubernetes object (a mapping)"))
        }
        let kind = try container.decode(String.self, forKey: .kind)
        let apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? "v1"
        switch kind {
        case "List", "ServiceList", "EndpointsList", "EndpointSliceList", "PodList":
            self = .list(try container.decodeIfPresent([ManifestDocument].self, forKey: .items) ?? [])
        case "Service":
            self = .service(try ServiceObject(from: decoder))
        case "Endpoints":
            self = .endpoints(try EndpointsObject(from: decoder))
        case "EndpointSlice":
            self = .endpointSlice(try EndpointSliceObject(from: decoder))
        case "Pod":
            self = .pod(try PodObject(from: decoder))
        case _ where Self.ignorableKinds.contains(kind) || apiVersion.contains("/"):
            self = .skipped  // a workload, config or custom resource: not part of the dataplane
        default:
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath + [CodingKeys.kind],
                debugDescription: "unknown kind \"\(kind)\" (svcplane reads Service, Endpoints, EndpointSlice, Pod "
                    + "and List)"))
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

    /// Adds the document's objects to `manifests`, each with its origin (`origin`, plus `: items[i]` in a list).
    func add(to manifests: inout ClusterManifests, origin: String) {
        switch self {
        case .service(let object): manifests.services.append(Located(object: object, origin: origin))
        case .endpoints(let object): manifests.endpoints.append(Located(object: object, origin: origin))
        case .endpointSlice(let object): manifests.endpointSlices.append(Located(object: object, origin: origin))
        case .pod(let object): manifests.pods.append(Located(object: object, origin: origin))
        case .list(let items):
            for (index, item) in items.enumerated() { item.add(to: &manifests, origin: "\(origin): items[\(index)]") }
        case .skipped: break
        }
    }
}
