// Package directory is the user directory: who the users are and where
// each one's home is. A home path names the host (see cluster.HostOf).
//
// Backends live in subfolders (passwd/, sql/) and must all pass the
// conformance suite in directorytest. The one write a move makes is Switch,
// a compare and swap of one user's home: it changes the entry only if it
// still holds the old home, so a move never overwrites a change someone else
// made meanwhile.
package directory
