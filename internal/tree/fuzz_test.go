package tree

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestManifestText(t *testing.T) {
	dir := t.TempDir()
	build(t, dir, []node{
		F("Maildir/cur/with\nnewline\tand tab:2,S", msg),
		F("Maildir/cur/\xff\xfe:2,S", msg),
		F("Maildir/cur/\"quoted\" \\ back:2,S", ""),
		H("Maildir/new/x", "Maildir/cur/\xff\xfe:2,S"),
		L("Maildir/l", "../../etc/passwd\n"),
		D("Maildir/.Sent").Mode(0o2750),
	})
	for _, hashed := range []bool{false, true} {
		m, err := Scan(context.Background(), dir, ScanOptions{Hash: hashed})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadManifest(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("ReadManifest: %v\n%s", err, buf.String())
		}
		if diffs := Compare(m, back, CompareOptions{}); len(diffs) > 0 {
			t.Errorf("hashed=%v: round trip differs: %v", hashed, diffs)
		}
		if back.Totals != m.Totals {
			t.Errorf("totals %+v, want %+v", back.Totals, m.Totals)
		}
	}

	bad := []struct{ name, text, want string }{
		{"empty", "", "empty"},
		{"no header", "path\tkind\n", "line 1: not a manifest header"},
		{"root missing", textHeader + "\n" + textColumns + "\n" +
			"\"a\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 3: the first entry must be the root"},
		{"unsorted", textHeader + "\n" + textColumns + "\n" +
			"\".\"\tdir\t0755\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
			"\"b\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n" +
			"\"a\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 5: \"a\": not after \"b\""},
		{"escape", textHeader + "\n" + textColumns + "\n" +
			"\".\"\tdir\t0755\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
			"\"../x\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 4: path \"../x\": not a clean relative path"},
		{"orphan", textHeader + "\n" + textColumns + "\n" +
			"\".\"\tdir\t0755\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
			"\"a/b\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 4: \"a/b\": its folder \"a\" is not in the manifest"},
		{"link forward", textHeader + "\n" + textColumns + "\n" +
			"\".\"\tdir\t0755\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
			"\"a\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"b\"\n" +
			"\"b\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 4: \"a\": hard link to \"b\""},
		{"mode", textHeader + "\n" + textColumns + "\n" +
			"\".\"\tdir\t17777\t0\t0\t0\t0\t-\t\"\"\t\"\"\n", "line 3: mode \"17777\""},
		{"hash missing", textHeader + hashedSuffix + "\n" + textColumns + "\n" +
			"\".\"\tdir\t0755\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
			"\"a\"\tfile\t0644\t0\t0\t1\t0\t-\t\"\"\t\"\"\n", "line 4: hash \"-\""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadManifest(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadManifest: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// FuzzReadManifest: whatever ReadManifest accepts, it writes back in a
// form that reads back to the same manifest and the same bytes.
func FuzzReadManifest(f *testing.F) {
	f.Add(textHeader + "\n" + textColumns + "\n" +
		"\".\"\tdir\t0755\t0\t0\t0\t1609556645123456789\t-\t\"\"\t\"\"\n" +
		"\"a\\xff\\n\"\tfile\t4644\t1\t2\t3\t-5\t-\t\"\"\t\"\"\n" +
		"\"b\"\tfile\t4644\t1\t2\t3\t-5\t-\t\"\"\t\"a\\xff\\n\"\n" +
		"\"c\"\tsymlink\t0777\t1\t2\t3\t0\t-\t\"../\"\t\"\"\n")
	f.Add(textHeader + hashedSuffix + "\n" + textColumns + "\n" +
		"\".\"\tdir\t0700\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
		"\"d\"\tdir\t0700\t0\t0\t0\t0\t-\t\"\"\t\"\"\n" +
		"\"d/f:2,S\"\tfile\t0600\t0\t0\t1\t0\t000102030405060708090a0b0c0d0e0f\t\"\"\t\"\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := ReadManifest(strings.NewReader(text))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := m.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		back, err := ReadManifest(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("written manifest does not read back: %v\n%s", err, out.String())
		}
		if !reflect.DeepEqual(m, back) {
			t.Fatalf("round trip differs")
		}
		var again bytes.Buffer
		back.WriteTo(&again)
		if !bytes.Equal(out.Bytes(), again.Bytes()) {
			t.Fatalf("second write differs")
		}
		if len(Compare(m, back, CompareOptions{})) != 0 {
			t.Fatalf("Compare sees a difference in equal manifests")
		}
	})
}

// FuzzCopy builds a tree from the fuzzer's bytes (folders, files, symlinks,
// hard links, odd names, modes, times), copies it, and checks that the
// copy scans equal to the source.
func FuzzCopy(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"))
	f.Add([]byte("maildir:2,S!;\xff\n \x80\x81\x82\x83"))
	f.Add(bytes.Repeat([]byte{3, 0x41, 2, 0x7f}, 20))
	f.Fuzz(func(t *testing.T, seed []byte) {
		if len(seed) > 256 {
			return
		}
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		build(t, src, treeFromSeed(seed))
		if _, err := Copy(context.Background(), src, dst, Options{Workers: 3}); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		sameTree(t, src, dst)
	})
}

// treeFromSeed turns bytes into nodes: each step reads an operation and
// its arguments, wrapping around the seed's bytes.
func treeFromSeed(seed []byte) []node {
	if len(seed) == 0 {
		return nil
	}
	names := []string{"cur", "new", "tmp", ".Sent", "a:2,S", "b!2,S", "c;2,", "d:2,:2,S", "e f", "g\nh", "\xff\xfe", "dovecot-uidlist"}
	pos := 0
	next := func() byte {
		b := seed[pos%len(seed)]
		pos++
		return b
	}
	dirs := []string{"."}
	var files []string
	used := map[string]bool{".": true}
	var nodes []node
	for step := 0; step < len(seed) && len(nodes) < 40; step++ {
		op := next() % 5
		parent := dirs[int(next())%len(dirs)]
		name := names[int(next())%len(names)]
		if b := next(); b%3 == 0 {
			name += fmt.Sprint(b)
		}
		rel := joinPath(parent, name)
		if used[rel] {
			continue
		}
		used[rel] = true
		mt := baseTime + int64(next())*1_000_000_001
		switch op {
		case 0:
			nodes = append(nodes, D(rel).Mode([]uint32{0o755, 0o700, 0o2770, 0o1777, 0o500}[next()%5]).At(mt))
			dirs = append(dirs, rel)
		case 1, 2:
			data := strings.Repeat(string(rune('a'+next()%26)), int(next())*int(next()%4))
			nodes = append(nodes, F(rel, data).Mode([]uint32{0o600, 0o644, 0o4755, 0, 0o2711}[next()%5]).At(mt))
			files = append(files, rel)
		case 3:
			target := []string{"..", "/etc/passwd", "cur", "x\xff", "../../.."}[next()%5]
			nodes = append(nodes, L(rel, target).At(mt))
		case 4:
			if len(files) == 0 {
				continue
			}
			nodes = append(nodes, H(rel, files[int(next())%len(files)]))
		}
	}
	return nodes
}

// The text form, byte for byte: manifests written by earlier versions
// (a verified manifest beside an unfinished move) must read the same.
func TestManifestTextGolden(t *testing.T) {
	m := &Manifest{Hashed: true, Entries: []Entry{
		{Path: ".", Kind: Dir, Mode: 0o2750, UID: 5000, GID: 8, MTime: 1700000000123456789},
		{Path: "a\tb\xff", Kind: File, Mode: 0o600, UID: 5000, GID: 8, Size: 46, MTime: -1, Hash: Hash{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}},
		{Path: "h", Kind: File, Mode: 0o4755, Size: 46, Hash: Hash{1}, Link: "a\tb\xff"},
		{Path: "l", Kind: Symlink, Mode: 0o777, Size: 5, Target: "\"x\"\n"},
	}}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	want := "# maildist tree manifest v1 hashed\n" +
		"path\tkind\tmode\tuid\tgid\tsize\tmtime\thash\ttarget\tlink\n" +
		"\".\"\tdir\t2750\t5000\t8\t0\t1700000000123456789\t-\t\"\"\t\"\"\n" +
		"\"a\\tb\\xff\"\tfile\t0600\t5000\t8\t46\t-1\tab0102030405060708090a0b0c0d0eff\t\"\"\t\"\"\n" +
		"\"h\"\tfile\t4755\t0\t0\t46\t0\t01000000000000000000000000000000\t\"\"\t\"a\\tb\\xff\"\n" +
		"\"l\"\tsymlink\t0777\t0\t0\t5\t0\t-\t\"\\\"x\\\"\\n\"\t\"\"\n"
	if got := buf.String(); got != want {
		t.Errorf("text form:\n%s\nwant:\n%s", got, want)
	}
}

// appendQuote is strconv.AppendQuote, with a quick way for plain names.
func TestAppendQuote(t *testing.T) {
	cases := []string{"", "cur/1.M1P1.host,S=46:2,S", `a"b`, `a\b`, "tab\there", "nl\n", "\x7f", "ü", "\xff\xfe", " ~", "\x00"}
	for c := range 256 {
		cases = append(cases, "x"+string(rune(c))+"y", "x"+string([]byte{byte(c)})+"y")
	}
	for _, s := range cases {
		if got, want := string(appendQuote([]byte("p:"), s)), string(strconv.AppendQuote([]byte("p:"), s)); got != want {
			t.Errorf("appendQuote(%q) = %s, want %s", s, got, want)
		}
	}
}
