/// The subset of Kubernetes API objects svcplane reads, decoded from `kubectl get -o yaml` output.
/// Unknown fields are ignored, so real cluster dumps decode as they are.

/// `metadata` of any object.
public struct ObjectMeta: Decodable, Sendable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]?
    public var deletionTimestamp: String?

    /// The namespace, `default` when the manifest leaves it out (as kubectl apply does).
    public var effectiveNamespace: String { namespace ?? "default" }

    /// `namespace/name`, or `namespace/other` for an object named `other` in the same namespace.
    public func qualified(_ other: String? = nil) -> String { "\(effectiveNamespace)/\(other ?? name)" }
}

/// A port number or a port name (`targetPort`, `port` in probes).
public enum IntOrString: Decodable, Sendable, Equatable {
    case number(Int)
    case name(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            self = .number(number)
        } else {
            let text = try container.decode(String.self)
            self = Int(text).map(IntOrString.number) ?? .name(text)
        }
    }
}

/// `kind: Service`.
public struct ServiceObject: Decodable, Sendable {
    public var metadata: ObjectMeta
    public var spec: Spec
    public var status: Status?

    public struct Spec: Decodable, Sendable {
        public var type: String?
        public var clusterIP: String?
        public var clusterIPs: [String]?
        public var ports: [Port]?
        public var selector: [String: String]?
        public var sessionAffinity: String?
        public var sessionAffinityConfig: SessionAffinityConfig?
        public var externalIPs: [String]?
        public var externalTrafficPolicy: String?
        public var internalTrafficPolicy: String?
        public var healthCheckNodePort: Int?
        public var loadBalancerSourceRanges: [String]?
    }

    public struct Port: Decodable, Sendable {
        public var name: String?
        public var `protocol`: String?
        public var port: Int
        public var targetPort: IntOrString?
        public var nodePort: Int?
    }

    public struct Status: Decodable, Sendable {
        public var loadBalancer: LoadBalancerStatus?
    }

    public struct LoadBalancerStatus: Decodable, Sendable {
        public var ingress: [Ingress]?
    }

    /// A load balancer's address; cloud load balancers known by hostname only have no IP to serve.
    public struct Ingress: Decodable, Sendable {
        public var ip: String?
        public var hostname: String?
    }

    public struct SessionAffinityConfig: Decodable, Sendable {
        public var clientIP: ClientIPConfig?
    }

    public struct ClientIPConfig: Decodable, Sendable {
        public var timeoutSeconds: Int?
    }
}

/// `kind: Endpoints` (core/v1), the classic hand-made endpoint list.
public struct EndpointsObject: Decodable, Sendable {
    public var metadata: ObjectMeta
    public var subsets: [Subset]?

    public struct Subset: Decodable, Sendable {
        public var addresses: [Address]?
        public var notReadyAddresses: [Address]?
        public var ports: [Port]?
    }

    public struct Address: Decodable, Sendable {
        public var ip: String
        public var nodeName: String?
        public var targetRef: ObjectReference?
    }

    public struct Port: Decodable, Sendable {
        public var name: String?
        public var port: Int
        public var `protocol`: String?
    }
}

/// A reference to another object (an endpoint's Pod).
public struct ObjectReference: Decodable, Sendable {
    public var kind: String?
    public var name: String?
    public var namespace: String?
}

/// `kind: EndpointSlice` (discovery.k8s.io/v1).
public struct EndpointSliceObject: Decodable, Sendable {
    public var metadata: ObjectMeta
    public var addressType: String?
    public var endpoints: [Endpoint]?
    public var ports: [Port]?

    public struct Endpoint: Decodable, Sendable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var nodeName: String?
        public var targetRef: ObjectReference?
    }

    public struct Conditions: Decodable, Sendable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
    }

    public struct Port: Decodable, Sendable {
        public var name: String?
        public var port: Int?
        public var `protocol`: String?
    }
}

/// `kind: Pod`, for deriving endpoints from a Service's selector.
public struct PodObject: Decodable, Sendable {
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public struct Spec: Decodable, Sendable {
        public var nodeName: String?
        public var containers: [Container]?
    }

    public struct Container: Decodable, Sendable {
        public var name: String?
        public var ports: [ContainerPort]?
    }

    public struct ContainerPort: Decodable, Sendable {
        public var name: String?
        public var containerPort: Int
        public var `protocol`: String?
    }

    public struct Status: Decodable, Sendable {
        public var phase: String?
        public var podIP: String?
        public var conditions: [Condition]?
    }

    public struct Condition: Decodable, Sendable {
        public var type: String
        public var status: String
    }
}
