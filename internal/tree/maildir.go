package tree

import "strings"

// What Sync knows of mail storage, to bring a copy up to date with little
// work. Both rules only pick a cheaper way to the same result: what they
// assume is checked on the files themselves before it is trusted.
//
//   - A Maildir message never changes after delivery; only its name does.
//     Its name is a unique base, then the info part that holds the flags
//     (":2,FRS"; "!2," or ";2," where a file system cannot hold ':'). A
//     flag change renames it within cur/, and a first look moves it from
//     new/ to cur/. So a name that is gone from the source and a new name
//     with the same base in the same Maildir folder are one message.
//   - An mbox file only grows while mail is delivered into it: mail is
//     appended at its end. Expunges rewrite it, which the unchanged head
//     check sees.

// messageKey returns the key of a Maildir message file: its Maildir folder
// and its unique base name. ok is false for a name that is not a message
// in a cur/ or new/ folder.
func messageKey(rel string) (key string, ok bool) {
	dir, name := splitPath(rel)
	folder, sub := splitPath(dir)
	if dir == "." || sub != "cur" && sub != "new" || name == "" || name[0] == '.' {
		return "", false
	}
	// NUL cannot be in a name, so the key cannot be mistaken.
	return folder + "\x00" + messageBase(name), true
}

// messageBase is a message name without its info part.
func messageBase(name string) string {
	for i := 0; i+2 < len(name); i++ {
		switch name[i] {
		case ':', '!', ';':
			if name[i+1] == '2' && name[i+2] == ',' {
				return name[:i]
			}
		}
	}
	return name
}

// mboxCandidate reports whether a file may be an mbox: one that is not in
// a Maildir's cur/, new/ or tmp/ folder. Whether it is one is told by its
// first bytes ("From "), read when it matters.
func mboxCandidate(rel string) bool {
	dir, _ := splitPath(rel)
	_, sub := splitPath(dir)
	if dir == "." {
		return true
	}
	return sub != "cur" && sub != "new" && sub != "tmp"
}

// mboxMagic starts every mbox file: the "From " line of its first message.
const mboxMagic = "From "

func isMboxStart(b []byte) bool { return strings.HasPrefix(string(b), mboxMagic) }
