package backup

import (
	"fmt"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/txn"
)

// CheckRecord refuses a record a restore must not load: a value or
// transaction entry this version cannot read would otherwise stop the
// node that meets it later. Verify's callers pass it as the check, and a
// node checks every chunk with it before loading, so a tool and the
// cluster judge a backup alike.
func CheckRecord(table byte, k, v []byte) error {
	if table == TableData {
		if !kv.ValidStored(v) {
			return fmt.Errorf("%w: a value of key %q this version cannot read", ErrCorrupt, k)
		}
		return nil
	}
	if table == TableSub {
		if _, _, _, ok := SplitSub(k); !ok {
			return fmt.Errorf("%w: a malformed collection sub-key", ErrCorrupt)
		}
		return nil
	}
	if !txn.ValidTableEntry(table, k, v) {
		return fmt.Errorf("%w: a malformed entry of transaction table %q", ErrCorrupt, table)
	}
	return nil
}
