// Package cli is maildist's command line: one file per command, each a
// newXCommand constructor whose RunE calls a plain runX function. Results
// go to stdout (or JSON with --json); progress, warnings and logs to
// stderr. Main maps errors to the documented exit codes in one place.
package cli
