import Foundation
import PacketWire

/// Validates loaded manifests and resolves each Service port to its endpoints, the way the
/// EndpointSlice controller and kube-proxy do:
/// - EndpointSlices labelled `kubernetes.io/service-name` are used when a Service has any;
/// - otherwise a core/v1 `Endpoints` object of the same name (selector-less Services);
/// - otherwise Pods matching the Service's selector (running, with a pod IP; ready from the Ready condition).
public enum ServiceTableBuilder {
    public static let defaultAffinityTimeout = 10800
    public static let maximumAffinityTimeout = 86400

    public static func build(_ manifests: ClusterManifests) throws(ManifestError) -> ServiceTable {
        var entries: [ServicePortEntry] = []
        var unserved: [String] = []
        var addressOwners: [IPv4Address: String] = [:]
        var loadedServices = Set<String>()
        var frontends = Set<Frontend>()
        var nodePortOwners: [NodePort: String] = [:]
        try checkEndpointOwners(manifests)
        let index = ManifestIndex(manifests)
        // Each Service's ClusterIP and the endpoints of each of its ports (most of the work in a large cluster),
        // found on every core; errors are thrown below, in the file's order.
        let found = manifests.services.concurrentMap {
            located -> (clusterIP: Result<IPv4Address?, ManifestError>, backends: [[Backend]]) in
            let service = located.object
            let clusterIP = Result { () throws(ManifestError) in
                try clusterAddress(of: service.spec, origin: located.origin)
            }
            // Headless, ExternalName and IPv6-only Services are not load balanced: no endpoints to find.
            guard case .success(.some) = clusterIP else { return (clusterIP, []) }
            let finder = EndpointFinder(index: index, namespace: service.metadata.effectiveNamespace, service: service)
            return (clusterIP, (service.spec.ports ?? []).map { port in
                finder.backends(for: port, protocol: port.serviceProtocol)
            })
        }
        for (serviceIndex, located) in manifests.services.enumerated() {
            let service = located.object
            let namespace = service.metadata.effectiveNamespace
            let spec = service.spec
            let ports = spec.ports ?? []
            try validate(ports, origin: located.origin)
            let serviceName = service.metadata.qualified()
            guard loadedServices.insert(serviceName).inserted else {
                throw ManifestError(origin: located.origin, field: "metadata.name",
                                    message: "Service \(serviceName) is defined twice")
            }
            let affinity = try sessionAffinity(of: spec, origin: located.origin)
            let exposure = try Exposure(spec, status: service.status, origin: located.origin)
            guard let clusterIP = try found[serviceIndex].clusterIP.get() else {
                let kind = spec.type == "ExternalName" ? "ExternalName"
                    : spec.clusterIP == "None" ? "headless" : "no IPv4 ClusterIP"
                unserved += ports.isEmpty ? ["\(serviceName) (\(kind): not load balanced)"] : ports.map {
                    "\(serviceName) port \($0.port) (\(kind): not load balanced)"
                }
                continue
            }
            if let owner = addressOwners[clusterIP] {
                throw ManifestError(origin: located.origin, field: "spec.clusterIP",
                                    message: "\(clusterIP) is already the ClusterIP of \(owner)")
            }
            addressOwners[clusterIP] = serviceName
            for (portIndex, port) in ports.enumerated() {
                let serviceProtocol = port.serviceProtocol
                let name = ServicePortName(namespace: namespace, name: service.metadata.name, port: port.name ?? "")
                let frontend = Frontend(address: clusterIP, port: UInt16(port.port), serviceProtocol: serviceProtocol)
                guard frontends.insert(frontend).inserted else {
                    throw ManifestError(origin: located.origin, field: "spec.ports",
                                        message: "\(frontend) is listed twice")
                }
                let backends = found[serviceIndex].backends[portIndex]
                let usable = ServicePortEntry.usable(Array(backends.indices), of: backends)
                var entry = ServicePortEntry(name: name, frontend: frontend, backends: backends,
                                             usableBackends: usable, affinity: affinity)
                try exposure.apply(to: &entry, port: port, origin: located.origin)
                for external in entry.externalFrontends where !frontends.insert(external).inserted {
                    throw ManifestError(origin: located.origin, field: "spec.externalIPs",
                                        message: "\(external) is served by another Service already")
                }
                if let number = entry.nodePort {
                    let nodePort = NodePort(port: number, serviceProtocol: serviceProtocol)
                    if let owner = nodePortOwners.updateValue(name.description, forKey: nodePort) {
                        throw ManifestError(origin: located.origin, field: "spec.ports",
                                            message: "nodePort \(number)/\(serviceProtocol.lowercaseName) is "
                                                + "already used by \(owner)")
                    }
                }
                entries.append(entry)
            }
        }
        entries.sort { ($0.name, $0.frontend.port) < ($1.name, $1.frontend.port) }
        return ServiceTable(entries: entries, unservedPorts: unserved)
    }

    /// Endpoints and EndpointSlices must belong to a loaded Service (slices without the service-name label
    /// belong to no Service, and kube-proxy ignores them).
    private static func checkEndpointOwners(_ manifests: ClusterManifests) throws(ManifestError) {
        let services = Set(manifests.services.map { $0.object.metadata.qualified() })
        for located in manifests.endpoints {
            let name = located.object.metadata.qualified()
            guard services.contains(name) else {
                throw ManifestError(origin: located.origin, field: "metadata.name",
                                    message: "Endpoints for \(name), which is not a loaded Service")
            }
        }
        for located in manifests.endpointSlices {
            let meta = located.object.metadata
            guard let owner = meta.labels?["kubernetes.io/service-name"] else { continue }  // kube-proxy ignores it
            let name = meta.qualified(owner)
            guard services.contains(name) else {
                throw ManifestError(origin: located.origin, field: "metadata.labels",
                                    message: "EndpointSlice for \(name), which is not a loaded Service")
            }
        }
    }

    /// The API server's rules for a Service's ports: each valid, and named (uniquely) when there are several.
    private static func validate(_ ports: [ServiceObject.Port], origin: String) throws(ManifestError) {
        var names = Set<String>()
        for (index, port) in ports.enumerated() {
            let field = "spec.ports[\(index)]"
            try validate(port, field: field, origin: origin)
            if ports.count > 1 {
                guard let name = port.name, !name.isEmpty else {
                    throw ManifestError(origin: origin, field: "\(field).name", message: "required when a Service has "
                        + "more than one port")
                }
                guard names.insert(name).inserted else {
                    throw ManifestError(origin: origin, field: "\(field).name", message: "\"\(name)\" is used twice")
                }
            }
        }
    }

    private static func validate(_ port: ServiceObject.Port, field: String, origin: String) throws(ManifestError) {
        guard (1...65535).contains(port.port) else {
            throw ManifestError(origin: origin, field: "\(field).port", message: "\(port.port) is not in 1-65535")
        }
        if let text = port.protocol, ServiceProtocol(rawValue: text) == nil {
            throw ManifestError(origin: origin, field: "\(field).protocol",
                                message: "\"\(text)\" is not TCP, UDP or SCTP")
        }
        if case .number(let target) = port.targetPort, !(1...65535).contains(target) {
            throw ManifestError(origin: origin, field: "\(field).targetPort", message: "\(target) is not in 1-65535")
        }
    }

    /// The IPv4 ClusterIP to serve, nil for headless, ExternalName and IPv6-only Services.
    private static func clusterAddress(of spec: ServiceObject.Spec, origin: String) throws(ManifestError)
        -> IPv4Address?
    {
        if spec.type == "ExternalName" { return nil }
        let candidates = spec.clusterIPs ?? spec.clusterIP.map { [$0] } ?? []
        for text in candidates where text != "None" && !text.isEmpty && !text.contains(":") {
            guard let address = IPv4Address(text) else {
                throw ManifestError(origin: origin, field: "spec.clusterIP",
                                    message: "\"\(text)\" is not an IP address")
            }
            return address
        }
        return nil
    }

    private static func sessionAffinity(of spec: ServiceObject.Spec, origin: String) throws(ManifestError)
        -> SessionAffinity?
    {
        guard spec.sessionAffinity == "ClientIP" else { return nil }
        let timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? defaultAffinityTimeout
        guard (1...maximumAffinityTimeout).contains(timeout) else {
            throw ManifestError(origin: origin, field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                message: "\(timeout) is not in 1-\(maximumAffinityTimeout)")
        }
        return SessionAffinity(timeoutSeconds: timeout)
    }
}

/// How a Service is reached besides its ClusterIP: node ports, external IPs, load balancer IPs, and the
/// traffic policies that go with them.
struct Exposure {
    var type: String
    var externalIPs: [IPv4Address] = []
    var loadBalancerIPs: [IPv4Address] = []
    var externalTrafficLocal = false
    var internalTrafficLocal = false
    var healthCheckNodePort: UInt16?
    var loadBalancerSourceRanges: [IPv4Network] = []

    init(_ spec: ServiceObject.Spec, status: ServiceObject.Status?, origin: String) throws(ManifestError) {
        type = spec.type ?? "ClusterIP"
        guard ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(type) else {
            throw ManifestError(origin: origin, field: "spec.type",
                                message: "\"\(type)\" is not ClusterIP, NodePort, LoadBalancer or ExternalName")
        }
        for (index, text) in (spec.externalIPs ?? []).enumerated() where !text.contains(":") {
            guard let address = IPv4Address(text) else {
                throw ManifestError(origin: origin, field: "spec.externalIPs[\(index)]",
                                    message: "\"\(text)\" is not an IP address")
            }
            externalIPs.append(address)
        }
        if type == "LoadBalancer" {
            for (index, ingress) in (status?.loadBalancer?.ingress ?? []).enumerated() {
                guard let text = ingress.ip, !text.contains(":") else { continue }  // hostname-only or IPv6
                guard let address = IPv4Address(text) else {
                    throw ManifestError(origin: origin, field: "status.loadBalancer.ingress[\(index)].ip",
                                        message: "\"\(text)\" is not an IP address")
                }
                loadBalancerIPs.append(address)
            }
            for (index, text) in (spec.loadBalancerSourceRanges ?? []).enumerated() {
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                guard !trimmed.contains(":") else { continue }  // IPv6
                guard let range = IPv4Network(trimmed) else {
                    throw ManifestError(origin: origin, field: "spec.loadBalancerSourceRanges[\(index)]",
                                        message: "\"\(text)\" is not a CIDR")
                }
                // Written as Go's net.IPNet prints it: the network address.
                loadBalancerSourceRanges.append(IPv4Network(address: IPv4Address(range.address.value & range.mask),
                                                            prefixLength: range.prefixLength))
            }
        }
        // The API server takes the external policy for every Service; kube-proxy applies it to node ports and
        // load balancers only (a ClusterIP Service's external IPs always use the cluster-wide endpoints).
        externalTrafficLocal = try Self.isLocal(spec.externalTrafficPolicy, field: "spec.externalTrafficPolicy",
                                                origin: origin) && (type == "NodePort" || type == "LoadBalancer")
        if type == "LoadBalancer", externalTrafficLocal, let port = spec.healthCheckNodePort {
            guard let number = UInt16(exactly: port), number > 0 else {
                throw ManifestError(origin: origin, field: "spec.healthCheckNodePort",
                                    message: "\(port) is not in 1-65535")
            }
            healthCheckNodePort = number
        }
        internalTrafficLocal = try Self.isLocal(spec.internalTrafficPolicy, field: "spec.internalTrafficPolicy",
                                                origin: origin)
    }

    private static func isLocal(_ policy: String?, field: String, origin: String) throws(ManifestError) -> Bool {
        switch policy {
        case nil, "Cluster": return false
        case "Local": return true
        case let other?: throw ManifestError(origin: origin, field: field,
                                             message: "\"\(other)\" is not Cluster or Local")
        }
    }

    /// Sets the port's node port, external frontends and policies.
    func apply(to entry: inout ServicePortEntry, port: ServiceObject.Port, origin: String) throws(ManifestError) {
        if type == "NodePort" || type == "LoadBalancer", let number = port.nodePort {
            guard let nodePort = UInt16(exactly: number), nodePort > 0 else {
                throw ManifestError(origin: origin, field: "spec.ports", message: "nodePort \(number) is not in 1-65535")
            }
            entry.nodePort = nodePort
        }
        entry.externalIPs = externalIPs
        entry.loadBalancerIPs = loadBalancerIPs
        entry.externalTrafficLocal = externalTrafficLocal
        entry.internalTrafficLocal = internalTrafficLocal
        entry.healthCheckNodePort = healthCheckNodePort
        entry.loadBalancerSourceRanges = loadBalancerSourceRanges
    }
}

/// The endpoint sources of every Service, found once: IPv4 EndpointSlices by namespace and
/// `kubernetes.io/service-name` label, Endpoints objects by namespace and name (the first of a name), Pods by
/// namespace. Finding them per Service by scanning every object would make loading quadratic in the cluster.
struct ManifestIndex {
    struct Key: Hashable {
        let namespace: String
        let name: String
    }

    private(set) var slices: [Key: [EndpointSliceObject]] = [:]
    private(set) var endpoints: [Key: EndpointsObject] = [:]
    private(set) var pods: [String: [PodObject]] = [:]

    init(_ manifests: ClusterManifests) {
        for located in manifests.endpointSlices {
            let slice = located.object
            guard let service = slice.metadata.labels?["kubernetes.io/service-name"],
                  (slice.addressType ?? "IPv4") == "IPv4" else { continue }
            slices[Key(namespace: slice.metadata.effectiveNamespace, name: service), default: []].append(slice)
        }
        for located in manifests.endpoints {
            let key = Key(namespace: located.object.metadata.effectiveNamespace, name: located.object.metadata.name)
            if endpoints[key] == nil { endpoints[key] = located.object }
        }
        for located in manifests.pods {
            pods[located.object.metadata.effectiveNamespace, default: []].append(located.object)
        }
    }
}

/// Finds the endpoints of one Service from slices, an Endpoints object or Pods.
struct EndpointFinder {
    let service: ServiceObject
    let slices: [EndpointSliceObject]
    let endpoints: EndpointsObject?
    let pods: [PodObject]

    init(index: ManifestIndex, namespace: String, service: ServiceObject) {
        let name = service.metadata.name
        self.service = service
        slices = index.slices[ManifestIndex.Key(namespace: namespace, name: name)] ?? []
        endpoints = index.endpoints[ManifestIndex.Key(namespace: namespace, name: name)]
        if let selector = service.spec.selector, !selector.isEmpty {
            pods = (index.pods[namespace] ?? []).filter { pod in
                selector.allSatisfy { pod.metadata.labels?[$0.key] == $0.value }
            }
        } else {
            pods = []
        }
    }

    /// Endpoints of one service port, deduplicated and sorted by address and port.
    func backends(for port: ServiceObject.Port, protocol serviceProtocol: ServiceProtocol) -> [Backend] {
        let found: [Backend]
        if !slices.isEmpty {
            found = fromSlices(port, serviceProtocol)
        } else if let endpoints {
            found = fromEndpoints(endpoints, port, serviceProtocol)
        } else {
            found = fromPods(port, serviceProtocol)
        }
        var seen = Set<Backend.Key>()
        // kube-proxy orders a service port's endpoints by their "ip:port" text, byte by byte.
        return found.filter { seen.insert($0.key).inserted }.map { (text: $0.description, backend: $0) }
            .sorted { $0.text < $1.text }.map(\.backend)
    }

    private func fromSlices(_ port: ServiceObject.Port, _ serviceProtocol: ServiceProtocol) -> [Backend] {
        slices.flatMap { slice -> [Backend] in
            guard let match = slice.ports?.first(where: {
                ($0.name ?? "") == (port.name ?? "") && ($0.protocol ?? "TCP") == serviceProtocol.rawValue
            }), let number = match.port, let portNumber = UInt16(exactly: number) else { return [] }
            return (slice.endpoints ?? []).compactMap { endpoint in
                guard let text = endpoint.addresses.first, let address = IPv4Address(text) else { return nil }
                let ready = endpoint.conditions?.ready ?? true
                return Backend(address: address, port: portNumber, ready: ready,
                               serving: endpoint.conditions?.serving ?? ready,
                               terminating: endpoint.conditions?.terminating ?? false,
                               podName: endpoint.targetRef?.name, nodeName: endpoint.nodeName)
            }
        }
    }

    private func fromEndpoints(_ object: EndpointsObject, _ port: ServiceObject.Port,
                               _ serviceProtocol: ServiceProtocol) -> [Backend]
    {
        (object.subsets ?? []).flatMap { subset -> [Backend] in
            let ports = subset.ports ?? []
            let match = ports.first { ($0.name ?? "") == (port.name ?? "") }
            guard let match, (match.protocol ?? "TCP") == serviceProtocol.rawValue,
                  let portNumber = UInt16(exactly: match.port) else { return [] }
            func backend(_ address: EndpointsObject.Address, ready: Bool) -> Backend? {
                IPv4Address(address.ip).map {
                    Backend(address: $0, port: portNumber, ready: ready, serving: ready, terminating: false,
                            podName: address.targetRef?.name, nodeName: address.nodeName)
                }
            }
            return (subset.addresses ?? []).compactMap { backend($0, ready: true) }
                + (subset.notReadyAddresses ?? []).compactMap { backend($0, ready: false) }
        }
    }

    private func fromPods(_ port: ServiceObject.Port, _ serviceProtocol: ServiceProtocol) -> [Backend] {
        pods.compactMap { pod in
            guard let status = pod.status, let text = status.podIP, let address = IPv4Address(text),
                  status.phase != "Succeeded", status.phase != "Failed",
                  let portNumber = targetPort(port, serviceProtocol, in: pod) else { return nil }
            let readyCondition = status.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false
            let terminating = pod.metadata.deletionTimestamp != nil
            return Backend(address: address, port: portNumber, ready: readyCondition && !terminating,
                           serving: readyCondition, terminating: terminating, podName: pod.metadata.name,
                           nodeName: pod.spec?.nodeName)
        }
    }

    /// The pod's port for a Service port: a number as is, a name through the containers' named ports.
    private func targetPort(_ port: ServiceObject.Port, _ serviceProtocol: ServiceProtocol, in pod: PodObject)
        -> UInt16?
    {
        switch port.targetPort ?? .number(port.port) {
        case .number(let number):
            return UInt16(exactly: number)
        case .name(let name):
            let ports = (pod.spec?.containers ?? []).flatMap { $0.ports ?? [] }
            return ports.first { $0.name == name && ($0.protocol ?? "TCP") == serviceProtocol.rawValue }
                .flatMap { UInt16(exactly: $0.containerPort) }
        }
    }
}

extension ServiceObject.Port {
    /// The port's protocol, TCP when unset (a value that is none of the three fails validation first).
    var serviceProtocol: ServiceProtocol { ServiceProtocol(rawValue: self.protocol ?? "TCP") ?? .tcp }
}

extension Backend {
    /// Identity of an endpoint within a service port: address and port.
    struct Key: Hashable {
        let address: UInt32
        let port: UInt16
    }

    var key: Key { Key(address: address.value, port: port) }
}
