// Package e2e holds maildist's end-to-end tests: whole commands and whole
// jobs on sandbox clusters built from real mailboxes (the Enron corpus in
// ../shared/data), checked file by file with means independent of the code
// under test (os.Lstat and SHA-256 of every file).
package e2e
