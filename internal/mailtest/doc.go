// Package mailtest starts a throwaway Postfix and Dovecot, from the
// system's packages, on loopback ports with every file of theirs in a
// folder of the test, so that tests can deliver mail over SMTP, read it
// over IMAP and POP3, and move the users in between, as in production.
//
// Nothing under /etc or /var is read or written: each server gets a
// config of its own (Dovecot: base_dir, state_dir, instance_name and log
// paths in the folder; Postfix: config, queue and data folders, a log
// file), and every command is run with -c. Each server runs in the
// foreground in a process group of its own and is stopped by its pid
// when the test ends.
//
// Dovecot serves IMAP, POP3 and LMTP to the users of a passwd-file (the
// one maildist manages) or of an SQL table; Postfix accepts mail for one
// domain over SMTP and delivers it to Dovecot over LMTP, consulting a
// transport map that a hold may fill. The configs follow what is known to
// work and what is known to lose mail (shared/notes/mail-servers-in-tests.md):
// chroot off, smtpd_reject_unlisted_recipient = no so that a held
// recipient is queued here rather than refused, short retry times, and
// main.cf dated in the past so that Postfix commands do not stall.
//
// Require says whether the servers are installed: a test skips without
// them, unless $MAILDIST_TEST_MAIL_REQUIRED is set (CI sets it), when it
// fails. The servers need root: Dovecot reads each user's mail as the
// user's uid.
//
// Clients: SMTP (net/smtp), IMAP (go-imap) and a small POP3 client for
// UIDLs; Snapshot records what an IMAP client sees of a mailbox, so that a
// test can tell whether a client would notice a move.
package mailtest
