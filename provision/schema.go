package provision

import "github.com/hashicorp/hcl/v2"

// The HCL schema as gohcl decodes it. Fields keep their source ranges
// (def_range, label_range, attr_value_range) so that checks made after
// decoding still point at file:line:col. Lists whose elements are checked
// one by one stay expressions, to cite the element itself.

type fileSchema struct {
	Cluster clusterBlock `hcl:"cluster,block"`
	Nodes   []nodeBlock  `hcl:"node,block"`
}

type clusterBlock struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	BusAuth            *string        `hcl:"bus_auth,optional"`
	BusAuthRange       hcl.Range      `hcl:"bus_auth,attr_value_range"`
	KVReplicas         *int           `hcl:"kv_replicas,optional"`
	KVReplicasRange    hcl.Range      `hcl:"kv_replicas,attr_value_range"`
	JSSync             *string        `hcl:"js_sync,optional"`
	JSSyncRange        hcl.Range      `hcl:"js_sync,attr_value_range"`
	Monitor            *bool          `hcl:"monitor,optional"`
	ClientTLS          *bool          `hcl:"client_tls,optional"`
	ClusterUser        *string        `hcl:"cluster_user,optional"`
	ClusterUserRange   hcl.Range      `hcl:"cluster_user,attr_value_range"`
	StateDir           *string        `hcl:"state_dir,optional"`
	ClientNetworks     hcl.Expression `hcl:"client_networks,optional"`
	OperatorRecipients hcl.Expression `hcl:"operator_recipients,optional"`
	// Secrets have no place in a spec; these exist to say so precisely.
	ClusterPass     *hcl.Attribute `hcl:"cluster_pass,optional"`
	ClusterPassword *hcl.Attribute `hcl:"cluster_password,optional"`

	PKI     *pkiBlock     `hcl:"pki,block"`
	Rollout *rolloutBlock `hcl:"rollout,block"`
}

type pkiBlock struct {
	DefRange            hcl.Range `hcl:",def_range"`
	Dir                 *string   `hcl:"dir,optional"`
	KeyType             *string   `hcl:"key_type,optional"`
	KeyTypeRange        hcl.Range `hcl:"key_type,attr_value_range"`
	Validity            *string   `hcl:"validity,optional"`
	ValidityRange       hcl.Range `hcl:"validity,attr_value_range"`
	RenewBefore         *string   `hcl:"renew_before,optional"`
	RenewBeforeRange    hcl.Range `hcl:"renew_before,attr_value_range"`
	CAValidity          *string   `hcl:"ca_validity,optional"`
	CAValidityRange     hcl.Range `hcl:"ca_validity,attr_value_range"`
	RouteCABundle       *string   `hcl:"route_ca_bundle,optional"`
	RouteCABundleRange  hcl.Range `hcl:"route_ca_bundle,attr_value_range"`
	ClientCABundle      *string   `hcl:"client_ca_bundle,optional"`
	ClientCABundleRange hcl.Range `hcl:"client_ca_bundle,attr_value_range"`
}

type rolloutBlock struct {
	Order                hcl.Expression `hcl:"order,optional"`
	ReadyTimeout         *string        `hcl:"ready_timeout,optional"`
	ReadyTimeoutRange    hcl.Range      `hcl:"ready_timeout,attr_value_range"`
	ConvergeTimeout      *string        `hcl:"converge_timeout,optional"`
	ConvergeTimeoutRange hcl.Range      `hcl:"converge_timeout,attr_value_range"`
	Samples              *int           `hcl:"samples,optional"`
	SamplesRange         hcl.Range      `hcl:"samples,attr_value_range"`
}

type nodeBlock struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Addresses         hcl.Expression `hcl:"addresses"`
	DNS               hcl.Expression `hcl:"dns,optional"`
	RouteHost         *string        `hcl:"route_host,optional"`
	RouteHostRange    hcl.Range      `hcl:"route_host,attr_value_range"`
	Bind              *string        `hcl:"bind,optional"`
	BindRange         hcl.Range      `hcl:"bind,attr_value_range"`
	MonitorBind       *string        `hcl:"monitor_bind,optional"`
	MonitorBindRange  hcl.Range      `hcl:"monitor_bind,attr_value_range"`
	AgeRecipient      *string        `hcl:"age_recipient,optional"`
	AgeRecipientRange hcl.Range      `hcl:"age_recipient,attr_value_range"`
	AgeIdentity       *hcl.Attribute `hcl:"age_identity,optional"`

	Ports  *portsBlock  `hcl:"ports,block"`
	Target *targetBlock `hcl:"target,block"`
}

type portsBlock struct {
	HTTP         *int      `hcl:"http,optional"`
	HTTPRange    hcl.Range `hcl:"http,attr_value_range"`
	NATS         *int      `hcl:"nats,optional"`
	NATSRange    hcl.Range `hcl:"nats,attr_value_range"`
	Cluster      *int      `hcl:"cluster,optional"`
	ClusterRange hcl.Range `hcl:"cluster,attr_value_range"`
	Monitor      *int      `hcl:"monitor,optional"`
	MonitorRange hcl.Range `hcl:"monitor,attr_value_range"`
}

type targetBlock struct {
	DefRange     hcl.Range `hcl:",def_range"`
	Scope        *string   `hcl:"scope,optional"`
	ScopeRange   hcl.Range `hcl:"scope,attr_value_range"`
	Root         *string   `hcl:"root,optional"`
	RootRange    hcl.Range `hcl:"root,attr_value_range"`
	SSH          *string   `hcl:"ssh,optional"`
	Sudo         *bool     `hcl:"sudo,optional"`
	SudoRange    hcl.Range `hcl:"sudo,attr_value_range"`
	Manager      *string   `hcl:"manager,optional"`
	ManagerRange hcl.Range `hcl:"manager,attr_value_range"`
	Binary       *string   `hcl:"binary,optional"`
	BinaryRange  hcl.Range `hcl:"binary,attr_value_range"`
}
