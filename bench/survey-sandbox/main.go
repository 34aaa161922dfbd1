// Command survey-sandbox builds a sandbox cluster for bench/survey-disk:
// the Enron corpus (or -users N generated mailboxes) laid out as Maildirs
// over four hosts. It prints the config's path.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/maildist/maildist/internal/sandbox"
)

func main() {
	dir := flag.String("dir", "", "folder to build in (must be empty or absent)")
	users := flag.Int("users", 0, "generate this many users instead of laying out the Enron corpus")
	flag.Parse()
	opt := sandbox.Options{Dir: *dir, Seed: 7}
	if *users > 0 {
		opt.Users = *users
	} else {
		c, err := sandbox.FindCorpus()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		opt.Corpus = c
	}
	sb, err := sandbox.Build(context.Background(), opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(sb.Config)
}
