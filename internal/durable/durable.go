// Package durable holds the two file operations every crash-safe piece of
// a node's disk state is built from, on any vfs.FS (so the simulator's
// power-loss disk can test them): replacing a file whole, and making a
// directory's entries durable.
//
// Invariant: after ReplaceFile returns nil, a crash leaves the new file;
// before, the old one or the new one, never a torn one, and at worst a
// leftover name+".tmp" that callers may remove.
package durable

import "github.com/cockroachdb/pebble/v2/vfs"

// TmpSuffix ends the temporary file ReplaceFile writes before renaming it.
const TmpSuffix = ".tmp"

// ReplaceFile replaces dir's file name with b durably: a synced temporary
// file renamed into place, then the directory synced.
func ReplaceFile(fs vfs.FS, dir, name string, b []byte) error {
	tmp := fs.PathJoin(dir, name+TmpSuffix)
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, fs.PathJoin(dir, name)); err != nil {
		return err
	}
	return SyncDir(fs, dir)
}

// SyncDir makes dir's entries (files created, renamed or removed in it)
// durable.
func SyncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
