// Package config loads maildist.toml: defaults, then the file, then flags.
// Load reports every problem it finds at once, each with the file and line,
// so an operator fixes a config in one pass rather than one error per run.
//
// Relative paths in the file (state_dir, directory.path, fsroot, survey
// logs) are relative to the folder the file is in.
package config
