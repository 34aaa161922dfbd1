// Package fsutil has the small file system primitives every other package
// leans on for durability: atomic replace (temp file, fsync, rename, fsync
// of the folder), folder fsync, and advisory locks.
//
// A crash during WriteFile leaves either the old file or the new one, never
// a mix; at worst a temp file named ".NAME.tmp-*" is left beside it.
package fsutil
