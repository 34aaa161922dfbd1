package config

import (
	"path/filepath"
	"regexp"
	"strings"
)

// mapTypes are the Postfix table types postmap can rebuild from a source
// file, so that maildist can keep its hold entries in one.
var mapTypes = map[string]bool{"hash": true, "btree": true, "lmdb": true, "cdb": true, "dbm": true, "sdbm": true}

var typePrefix = regexp.MustCompile(`^([a-z0-9_]+):`)

// postfix fills in and checks what hold = "postfix" needs: the transport
// map (delivery.transport_map, "TYPE:PATH" or a path of a hash table;
// default postfix_config_dir/maildist-hold), logins refused while held,
// and postqueue as the queue and flush commands unless they are given.
func (v *validator) postfix(c *Config, transportMap string, noQueue, noFlush bool) {
	d := &c.Delivery
	typ, path := "hash", transportMap
	if m := typePrefix.FindStringSubmatch(transportMap); m != nil {
		typ, path = m[1], transportMap[len(m[0]):]
		if !mapTypes[typ] {
			v.key("delivery.transport_map", "delivery.transport_map %q: maildist edits the map and rebuilds it with postmap, so its type must be hash, btree, lmdb, cdb, dbm or sdbm, not %s", transportMap, typ)
		}
		if path == "" {
			v.key("delivery.transport_map", "delivery.transport_map %q names no file", transportMap)
		}
	}
	if path == "" && d.PostfixConfigDir != "" {
		path = filepath.Join(d.PostfixConfigDir, "maildist-hold")
	}
	d.TransportMap, d.TransportMapType = v.rel(path), typ
	if d.Hold != "postfix" {
		return
	}
	if strings.ContainsAny(d.TransportMap, " \t,") {
		v.key("delivery.transport_map", "delivery.transport_map %q: Postfix cannot list a map whose path has spaces or commas", d.TransportMap)
	}
	if !c.Directory.HoldMarker {
		what := "set hold_marker = true in [directory]"
		if c.Directory.Type == "sql" {
			what = "give [directory.queries] hold and unhold (the default queries have them) and do not set hold_marker = false"
		}
		v.key("delivery.hold", "delivery.hold = \"postfix\" leaves the home in place while it is copied, so logins must be refused meanwhile (a client's changes after the copy would be lost): %s", what)
	}
	if d.PostfixConfigDir == "" {
		return
	}
	if noQueue {
		d.Queue = []string{"postqueue", "-c", d.PostfixConfigDir, "-j"}
	}
	if noFlush {
		d.Flush = []string{"postqueue", "-c", d.PostfixConfigDir, "-f"}
	}
}
