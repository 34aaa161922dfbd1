// Package agent is `maildist agent`: one storage host's file system and
// services served over HTTPS with mutual TLS, so that moves can run on
// hosts that are other machines. It is a host.Local under the agent's
// fsroot, put on the network with a small versioned API (/v1/…), plus
// the host's own hold, activity, flush, queue and logs, and the two ends
// of a tree transfer.
//
// Who may do what. Every connection needs a client certificate of the
// cluster CA (package pki), TLS 1.3. Coordinator certificates may do
// everything: read and change the file system under the cluster's roots,
// hold and release, announce imports and have this host push trees,
// flush. Agent certificates may read /v1/info and /metrics, and push one
// import: the one a coordinator announced for them, for one source path
// and one staging path (a user's move), with a one-time ticket.
//
// Paths. Every path a request names is host-absolute and must be a root
// of the cluster or lie below one (host.CheckPath: clean, no ".."); the
// folders on the way to it must be real folders on this host, not
// symlinks; and what the agent does with the last name never follows it.
// Whole trees are removed only inside maildist's own folders
// (.maildist-staging, .maildist-trash).
//
// Transfers (package xfer on the wire). The coordinator announces an
// import to the destination (POST /v1/imports → ticket), then tells the
// source to push (POST /v1/push with the ticket): the source scans its
// tree, presents the ticket with the manifest (POST /v1/imports/plan),
// gets the list of files the destination lacks and a data token, and
// streams them (POST /v1/imports/data), compressed when it pays, at the
// rate it was given. The data never pass through the coordinator. A
// stream cut short leaves the files written so far; the coordinator
// announces again and the next plan asks only for the rest.
//
// What a crash leaves: an agent keeps nothing but in memory (tickets,
// imports under way). A crash mid-import leaves a partial staging folder,
// which the move engine removes when it undoes the move or resumes.
package agent
