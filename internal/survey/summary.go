package survey

import "github.com/maildist/maildist/internal/cluster"

// HostSummary is one host's line of the survey's table.
type HostSummary struct {
	Host       string `json:"host"` // empty: homes under no host's root
	Pool       string `json:"pool"`
	Users      int    `json:"users"`
	OK         int    `json:"ok"`
	Missing    int    `json:"missing_home"`
	Unreadable int    `json:"unreadable"`
	Bytes      int64  `json:"bytes"`
	Messages   int64  `json:"messages"`
	ConnectS   int64  `json:"connect_s"`
	Sessions   int64  `json:"sessions"`
}

// Summarize adds the users up by host, in the cluster's order, with a
// last line (Host "") for homes on no host if there are any.
func Summarize(c *cluster.Cluster, users []cluster.User) []HostSummary {
	out := make([]HostSummary, len(c.Hosts))
	at := map[string]int{}
	for i, h := range c.Hosts {
		out[i] = HostSummary{Host: h.Name, Pool: h.Pool}
		at[h.Name] = i
	}
	var none HostSummary
	for _, u := range users {
		s := &none
		if i, ok := at[u.Host]; ok {
			s = &out[i]
		}
		s.Users++
		switch u.Status {
		case cluster.StatusOK:
			s.OK++
		case cluster.StatusMissingHome:
			s.Missing++
		default:
			s.Unreadable++
		}
		s.Bytes += u.Bytes
		s.Messages += u.Messages
		s.ConnectS += u.ConnectS
		s.Sessions += u.Sessions
	}
	if none.Users > 0 {
		out = append(out, none)
	}
	return out
}
