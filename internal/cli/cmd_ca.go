package cli

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/agent/pki"
)

func newCACommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make the cluster's private CA and its certificates for agents and coordinators",
		Long: `maildist agents and the coordinators that talk to them (maildist run, move,
done… on a cluster whose hosts have agent = "https://…") trust one private CA
and nothing else: every connection is mutual TLS 1.3 with its certificates.

  maildist ca init DIR                               make the CA: DIR/ca.crt, DIR/ca.key
  maildist ca issue DIR bp04 --role agent            the agent of host bp04
  maildist ca issue DIR runner --role coordinator    a coordinator

A certificate's name is its common name and first DNS name. An agent's name
must be its host's name in the config: clients check it, whatever address
they dialled. Its role is what it may do: a coordinator may do everything an
agent offers; an agent may only push a tree that a coordinator announced to
the receiving agent. Keys are ECDSA P-256 (or --key-type ed25519), written
mode 0600; certificates are valid for one year, the CA for ten. Nothing is
ever overwritten. Keep DIR/ca.key off the hosts.`,
	}
	var keyType, name string
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Make a new CA in DIR",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("ca init needs the CA folder DIR")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pki.Init(args[0], name, keyType, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "made the CA %s/%s (key %s/%s, mode 600)\n", args[0], pki.CACert, args[0], pki.CAKey)
			return nil
		},
	}
	initCmd.Flags().StringVar(&keyType, "key-type", pki.KeyECDSA, "ecdsa (P-256) or ed25519")
	initCmd.Flags().StringVar(&name, "name", "", "the CA's common name")

	var o pki.IssueOptions
	var ips []string
	issueCmd := &cobra.Command{
		Use:   "issue DIR NAME --role agent|coordinator",
		Short: "Issue a key and certificate signed by the CA in DIR",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("ca issue needs the CA folder DIR and the certificate's NAME")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Role != pki.RoleAgent && o.Role != pki.RoleCoordinator {
				return usagef("--role %q: want agent or coordinator", o.Role)
			}
			o.IPs = nil
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return usagef("--ip %q: not an IP address", s)
				}
				o.IPs = append(o.IPs, ip)
			}
			o.Name = args[1]
			crt, key, err := pki.Issue(args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "issued %s (%s, valid one year): %s, key %s (mode 600)\n", o.Name, o.Role, crt, key)
			return nil
		},
	}
	f := issueCmd.Flags()
	f.StringVar(&o.Role, "role", "", "agent or coordinator (required)")
	f.StringArrayVar(&o.DNS, "dns", nil, "a further DNS name (repeatable)")
	f.StringArrayVar(&ips, "ip", nil, "an IP address (repeatable)")
	f.StringVar(&o.KeyType, "key-type", pki.KeyECDSA, "ecdsa (P-256) or ed25519")
	f.StringVar(&o.Out, "out", "", "folder for NAME.crt and NAME.key (default DIR)")
	cmd.AddCommand(initCmd, issueCmd)
	return cmd
}
