// Package host is a storage host's file system as the move engine sees it.
// Paths are host-absolute, as the directory names homes ("/bp04/alice");
// a Local host maps them under its fsroot, an agent client (a remote host)
// sends them to the host's agent.
//
// Every path is checked before use: it must be absolute, clean, and under
// one of the cluster's roots (a stub lives on the old host at a path under
// the new host's root). Renames never replace what is at the destination.
package host
