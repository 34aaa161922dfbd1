// Command maildist moves users' mailboxes between the storage hosts of a
// mail cluster without losing a message, and rebalances users across them.
package main

import (
	"os"

	"github.com/maildist/maildist/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
