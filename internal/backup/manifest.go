package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ManifestName is the manifest's file name in a backup directory.
const ManifestName = "manifest.json"

// maxManifestBytes bounds the manifest read (16,384 partitions take a few
// MiB).
const maxManifestBytes = 64 << 20

// Manifest describes a complete backup.
type Manifest struct {
	Format        int         `json:"format"`
	KintsuVersion string      `json:"kintsu_version"`
	ClusterID     string      `json:"cluster_id"`
	BackupID      string      `json:"backup_id"`
	Started       string      `json:"started"`  // RFC 3339: when the cut was requested
	CutAt         string      `json:"cut_at"`   // RFC 3339: when every partition's cut had applied
	Finished      string      `json:"finished"` // RFC 3339
	Keys          int64       `json:"keys"`
	Bytes         int64       `json:"bytes"`
	Partitions    []Partition `json:"partitions"`
}

// Partition is one partition's file in a backup.
type Partition struct {
	ID        int    `json:"id"`
	SlotStart uint16 `json:"slot_start"`
	SlotEnd   uint16 `json:"slot_end"`
	Index     uint64 `json:"index"` // raft index of the cut
	Keys      int64  `json:"keys"`
	Records   int64  `json:"records"`
	Bytes     int64  `json:"bytes"`
	File      string `json:"file"`
	SHA256    string `json:"sha256"`
}

// FileName is the name of partition p's file.
func FileName(p int) string { return fmt.Sprintf("partition-%05d.kbk", p) }

// WriteManifest writes m into dir atomically (temporary file, sync,
// rename, sync of the directory): the backup is complete once it returns.
func WriteManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		return err
	}
	return SyncDir(dir)
}

func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
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
	return f.Close()
}

// SyncDir makes the directory's entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadManifest reads and sanity-checks dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: not a backup, or an unfinished one", dir, ManifestName)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(f, maxManifestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: unreadable: %w", ManifestName, err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("%s: format %d; this Kintsu reads format %d", ManifestName, m.Format, FormatVersion)
	}
	if len(m.Partitions) == 0 {
		return nil, fmt.Errorf("%s: lists no partitions", ManifestName)
	}
	var keys, bytes int64
	for i, p := range m.Partitions {
		// Merges leave gaps in the ids, so they need not be 0..n-1; in
		// ascending order each partition is listed once, and a restore can
		// tell whether a cluster's layout is the backup's.
		if p.ID < 0 || (i > 0 && p.ID <= m.Partitions[i-1].ID) {
			return nil, fmt.Errorf("%s: partition %d listed at position %d: the ids must ascend", ManifestName, p.ID, i)
		}
		if p.File != FileName(p.ID) {
			return nil, fmt.Errorf("%s: partition %d names file %q, want %q", ManifestName, p.ID, p.File, FileName(p.ID))
		}
		keys, bytes = keys+p.Keys, bytes+p.Bytes
	}
	if keys != m.Keys || bytes != m.Bytes {
		return nil, fmt.Errorf("%s: totals (%d keys, %d bytes) do not match its partitions (%d, %d)", ManifestName, m.Keys, m.Bytes, keys, bytes)
	}
	return &m, nil
}

// Verify checks every file of the backup in dir against its manifest,
// reading every byte; check, if not nil, also judges each record's
// contents, and progress, if not nil, is told of each file done. The
// error names the first bad file.
func Verify(dir string, check func(table byte, k, v []byte) error, progress func(p Partition)) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range m.Partitions {
		if err := VerifyPartition(dir, p, check); err != nil {
			return m, err
		}
		if progress != nil {
			progress(p)
		}
	}
	return m, nil
}

// VerifyPartition checks one partition's file.
func VerifyPartition(dir string, p Partition, check func(table byte, k, v []byte) error) error {
	path := filepath.Join(dir, p.File)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", p.File, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fail("missing")
	}
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail("%v", err)
	}
	if st.Size() != p.Bytes {
		return fail("%d bytes, the manifest says %d (cut short or overwritten)", st.Size(), p.Bytes)
	}
	h := sha256.New()
	counts, hdr, err := Scan(io.TeeReader(f, h), check)
	if err != nil {
		return fail("%v", err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		return fail("checksum %s, the manifest says %s (the file is damaged)", sum, p.SHA256)
	}
	if hdr.Partition != p.ID || hdr.Index != p.Index {
		return fail("holds partition %d at index %d, the manifest says partition %d at %d", hdr.Partition, hdr.Index, p.ID, p.Index)
	}
	if counts.Records != p.Records || counts.Keys != p.Keys {
		return fail("%d records and %d keys, the manifest says %d and %d", counts.Records, counts.Keys, p.Records, p.Keys)
	}
	return nil
}

// Scan reads a whole partition file from r, calling fn (if not nil) for
// each record, and returns its counts once the trailer checked out.
func Scan(r io.Reader, fn func(table byte, k, v []byte) error) (Counts, Header, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Counts{}, Header{}, err
	}
	for {
		t, k, v, err := rd.Next()
		if err == io.EOF {
			return rd.Counts(), rd.Header(), nil
		}
		if err != nil {
			return rd.Counts(), rd.Header(), err
		}
		if fn != nil {
			if err := fn(t, k, v); err != nil {
				return rd.Counts(), rd.Header(), err
			}
		}
	}
}
