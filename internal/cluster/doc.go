// Package cluster holds maildist's domain types: hosts, pools, users and
// the rules that tie a home path to the host that keeps it. It does no I/O.
//
// Words: a host keeps users' homes under its root (a host-absolute path such
// as /bp04); hosts belong to a pool; the cluster is every host in the
// config. A user belongs to the host whose root is the longest prefix of the
// user's home.
package cluster
