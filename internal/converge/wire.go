package converge

import "encoding/json"

// The JSON shapes below mirror the parts of nats-server v2.15's answers the
// decision reads (server/jetstream_api.go JSApiStreamListResponse,
// server/stream.go StreamInfo/ClusterInfo/PeerInfo, server/monitor.go
// MetaClusterInfo and HealthStatus). They are declared here, not imported,
// so the package stays free of nats-server and the operator's binary can
// link it.

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// listPage is one $JS.API.STREAM.LIST answer. nats.go's lister drops
// Missing and Offline; the decision counts them.
type listPage struct {
	Error   *apiError         `json:"error"`
	Total   int               `json:"total"`
	Offset  int               `json:"offset"`
	Limit   int               `json:"limit"`
	Streams []*streamInfo     `json:"streams"`
	Missing []string          `json:"missing"`
	Offline map[string]string `json:"offline"`
}

type streamInfo struct {
	Error  *apiError `json:"error"`
	Config struct {
		Name     string `json:"name"`
		Replicas int    `json:"num_replicas"`
	} `json:"config"`
	Cluster *clusterInfo `json:"cluster"`
}

type clusterInfo struct {
	Leader   string      `json:"leader"`
	Replicas []*peerInfo `json:"replicas"`
	// Desired is set while the group moves or changes its peer set.
	Desired json.RawMessage `json:"desired"`
}

type peerInfo struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
	// Pending: the peer is assigned but has not joined the Raft group yet,
	// or is being removed.
	Pending bool `json:"pending"`
}

// caughtUp is a peer the decision counts as current.
func (p *peerInfo) caughtUp() bool {
	return p.Current && !p.Offline && p.Lag == 0 && !p.Pending
}

// metaInfo is Jsz().Meta: this server's view of the meta group.
type metaInfo struct {
	Leader   string      `json:"leader"`
	Replicas []*peerInfo `json:"replicas"`
	Size     int         `json:"cluster_size"`
}

// healthStatus is Healthz() with streams and consumers checked.
type healthStatus struct {
	Status     string `json:"status"`
	StatusCode int    `json:"status_code"`
	Error      string `json:"error"`
	Errors     []struct {
		Error string `json:"error"`
	} `json:"errors"`
}

// NextOffset is the offset of the page after page, and false when page is
// the last one (or not a page): the daemon pages the stream list with it.
func NextOffset(page []byte) (int, bool) {
	var p listPage
	if json.Unmarshal(page, &p) != nil || p.Error != nil || p.Limit <= 0 {
		return 0, false
	}
	// A page covers Limit assignments; the offline and missing among them
	// are not in Streams, so its length is no measure of the page.
	next := p.Offset + p.Limit
	return next, next < p.Total
}

// Listed are the names of the streams pages hold an answer for, the ones
// worth asking their leader about: offline and missing streams have none.
func Listed(pages []json.RawMessage) []string {
	var names []string
	for _, raw := range pages {
		var p listPage
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		missing := map[string]bool{}
		for _, m := range p.Missing {
			missing[m] = true
		}
		for _, s := range p.Streams {
			if s != nil && s.Config.Name != "" && !missing[s.Config.Name] {
				names = append(names, s.Config.Name)
			}
		}
	}
	return names
}
