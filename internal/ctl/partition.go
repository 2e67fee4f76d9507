package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// SplitPartition asks the node at addr to split partition id at slot (0:
// the middle of its range); it returns the new partition's id. Asking
// again finishes a split that was interrupted.
func SplitPartition(ctx context.Context, addr string, id int, slot uint16) (api.SplitJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	url := adminURL(addr, fmt.Sprintf("/v1/partitions/%d/split", id))
	if slot != 0 {
		url += fmt.Sprintf("?slot=%d", slot)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return api.SplitJSON{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return api.SplitJSON{}, fmt.Errorf("cannot reach the admin API at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return api.SplitJSON{}, fmt.Errorf("%s refused: %s", addr, strings.TrimSpace(string(b)))
	}
	var out api.SplitJSON
	if err := json.Unmarshal(b, &out); err != nil {
		return api.SplitJSON{}, fmt.Errorf("unreadable answer from %s: %w", addr, err)
	}
	return out, nil
}
