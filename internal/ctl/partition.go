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
	path := fmt.Sprintf("/v1/partitions/%d/split", id)
	if slot != 0 {
		path += fmt.Sprintf("?slot=%d", slot)
	}
	var out api.SplitJSON
	_, err := postJSON(ctx, addr, path, &out)
	return out, err
}

// MergePartition asks the node at addr to merge partition id with its
// neighbour. The answer's Pending says the merge is reserved and waits
// for its replicas to be co-located; asking again reports progress.
func MergePartition(ctx context.Context, addr string, id int) (api.MergeJSON, error) {
	var out api.MergeJSON
	_, err := postJSON(ctx, addr, fmt.Sprintf("/v1/partitions/%d/merge", id), &out)
	return out, err
}

// postJSON POSTs to the admin API at addr and decodes a 200 or 202
// answer into out.
func postJSON(ctx context.Context, addr, path string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, adminURL(addr, path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the admin API at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, fmt.Errorf("%s refused: %s", addr, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("unreadable answer from %s: %w", addr, err)
	}
	return resp.StatusCode, nil
}
