package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeBackup writes a backup of parts partitions, each with n keys and one
// transaction record, and returns its directory.
func writeBackup(t *testing.T, parts, n int) string {
	t.Helper()
	ids := make([]int, parts)
	for i := range ids {
		ids[i] = i
	}
	return writeBackupOf(t, ids, n)
}

// writeBackupOf is writeBackup of the partitions ids.
func writeBackupOf(t *testing.T, ids []int, n int) string {
	t.Helper()
	dir := t.TempDir()
	m := &Manifest{Format: FormatVersion, ClusterID: "c", BackupID: "b"}
	for _, p := range ids {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Header{Partition: p, Index: uint64(100 + p)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := w.Add(TableData, fmt.Appendf(nil, "k%d-%d", p, i), fmt.Appendf(nil, "sv%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Add(TableRecords, []byte("txn1"), []byte("committed")); err != nil {
			t.Fatal(err)
		}
		c, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, FileName(p)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		m.Partitions = append(m.Partitions, Partition{ID: p, Index: uint64(100 + p), Keys: c.Keys, Records: c.Records,
			Bytes: int64(buf.Len()), File: FileName(p), SHA256: hex.EncodeToString(sum[:])})
		m.Keys += c.Keys
		m.Bytes += int64(buf.Len())
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRoundTrip(t *testing.T) {
	dir := writeBackup(t, 3, 50)
	m, err := Verify(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Keys != 150 {
		t.Fatalf("keys = %d", m.Keys)
	}
	f, err := os.Open(filepath.Join(dir, FileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	var chunk []byte
	c, h, err := Scan(f, func(table byte, k, v []byte) error {
		got = append(got, fmt.Sprintf("%c %s=%s", table, k, v))
		chunk = AppendRecord(chunk, table, k, v)
		return nil
	})
	if err != nil || c.Keys != 50 || c.Records != 51 || h.Partition != 1 || h.Index != 101 {
		t.Fatalf("scan: %+v %+v %v", c, h, err)
	}
	if got[0] != "d k1-0=sv0" || got[50] != "r txn1=committed" {
		t.Fatalf("records %q ... %q", got[0], got[50])
	}
	var again []string
	if err := DecodeRecords(chunk, func(table byte, k, v []byte) error {
		again = append(again, fmt.Sprintf("%c %s=%s", table, k, v))
		return nil
	}); err != nil || strings.Join(again, ",") != strings.Join(got, ",") {
		t.Fatalf("chunk decode differs: %v", err)
	}
}

// Merges leave gaps in the partition ids: a backup of partitions 0, 1, 3
// and 7 is whole. Ids out of order or listed twice are refused, as are
// files not named after their partition.
func TestManifestIDsWithGaps(t *testing.T) {
	dir := writeBackupOf(t, []int{0, 1, 3, 7}, 5)
	m, err := Verify(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Partitions[3].ID != 7 || m.Keys != 20 {
		t.Fatalf("partitions %+v, %d keys", m.Partitions, m.Keys)
	}
	for what, c := range map[string]struct {
		change func(m *Manifest)
		want   string
	}{
		"descending":    {func(m *Manifest) { m.Partitions[1], m.Partitions[2] = m.Partitions[2], m.Partitions[1] }, "partition 1 listed at position 2: the ids must ascend"},
		"listed twice":  {func(m *Manifest) { m.Partitions[2] = m.Partitions[1] }, "partition 1 listed at position 2"},
		"negative":      {func(m *Manifest) { m.Partitions[0].ID = -1 }, "partition -1 listed at position 0"},
		"misnamed file": {func(m *Manifest) { m.Partitions[2].File = FileName(2) }, `partition 3 names file "partition-00002.kbk"`},
	} {
		bad := *m
		bad.Partitions = slices.Clone(m.Partitions)
		c.change(&bad)
		bad.Keys, bad.Bytes = 0, 0
		for _, p := range bad.Partitions {
			bad.Keys, bad.Bytes = bad.Keys+p.Keys, bad.Bytes+p.Bytes
		}
		d := t.TempDir()
		must(t, WriteManifest(d, &bad))
		if _, err := ReadManifest(d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", what, err, c.want)
		}
	}
}

// Every damaged backup is refused with an error naming the bad file.
func TestVerifyRefusesDamage(t *testing.T) {
	name := FileName(1)
	cases := []struct {
		what   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"one byte flipped in a value", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, name), -40) }, name + ": checksum"},
		{"one byte flipped in the header", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, name), 3) }, name},
		{"one byte flipped in the trailer", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, name), -2) }, name},
		{"file missing", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, name))) }, name + ": missing"},
		{"cut short", func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			st, err := os.Stat(p)
			must(t, err)
			must(t, os.Truncate(p, st.Size()/2))
		}, name + ": "},
		{"manifest missing", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, ManifestName))) }, ManifestName},
		{"manifest damaged", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, ManifestName), 30) }, ManifestName},
	}
	for _, tc := range cases {
		t.Run(tc.what, func(t *testing.T) {
			dir := writeBackup(t, 3, 50)
			tc.damage(t, dir)
			_, err := Verify(dir, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// A file whose checksum was recomputed after damage (so the manifest
// matches) is still refused when its structure is wrong.
func TestScanRefusesMalformed(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{Partition: 0, Index: 1})
	must(t, w.Add(TableData, []byte("k"), []byte("v")))
	_, err := w.Close()
	must(t, err)
	good := buf.Bytes()
	for _, bad := range [][]byte{
		good[:len(good)-1],           // trailer cut
		append(bytes.Clone(good), 0), // data after the trailer
		bytes.Replace(good, []byte("d\x01k"), []byte("x\x01k"), 1), // unknown table
	} {
		if _, _, err := Scan(bytes.NewReader(bad), nil); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if err := w.Add('x', []byte("k"), nil); err == nil {
		t.Fatal("wrote a record of an unknown table")
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{Partition: 2, Index: 9})
	_ = w.Add(TableData, []byte("key"), []byte("value"))
	_, _ = w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = Scan(bytes.NewReader(b), nil)
		_ = DecodeRecords(b, func(byte, []byte, []byte) error { return nil })
	})
}

func flip(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	must(t, os.WriteFile(path, b, 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
