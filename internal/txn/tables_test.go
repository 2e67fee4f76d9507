package txn_test

import (
	"testing"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/txn"
)

// The table ids cross three packages unchanged: the engine stores what txn
// names, a backup carries the engine's id as its tag, and a restore hands
// that tag back to the engine. A mismatch would load entries into the
// wrong table.
func TestTableIDsAgree(t *testing.T) {
	for _, c := range []struct {
		name                string
		txn, storage, bkTag byte
	}{
		{"locks", txn.TableLocks, storage.TxnLocks, backup.TableLocks},
		{"parts", txn.TableParts, storage.TxnParts, backup.TableParts},
		{"records", txn.TableRecords, storage.TxnRecords, backup.TableRecords},
	} {
		if c.txn != c.storage || c.txn != c.bkTag {
			t.Errorf("%s table: txn %q, storage %q, backup %q", c.name, c.txn, c.storage, c.bkTag)
		}
	}
}
