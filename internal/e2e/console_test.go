package e2e

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
)

// consoleColors are the console's colours of nodes 1-3 (console.js
// PALETTE): the ring's arcs are painted in the colour of each
// partition's leader.
var consoleColors = map[uint64]color.RGBA{1: {0x4e, 0x79, 0xa7, 0xff}, 2: {0xf2, 0x8e, 0x2b, 0xff}, 3: {0x59, 0xa1, 0x4f, 0xff}}

// TestConsoleInChromium opens the web console of a live cluster under
// load in a real headless Chromium (Debian's): a user allowed only to
// read signs in and sees every node, its load and the events, with no
// action offered (and the API refuses one); an admin signs in and is
// offered the actions. The screenshot must show the ring painted in the
// leaders' colours, every node's share of it. KINTSU_CONSOLE_SCREENSHOT
// names a file to keep the screenshot in.
func TestConsoleInChromium(t *testing.T) {
	chromium := needTool(t, "chromium")
	c := startCluster(t, 3)
	waitTopology(t, c)
	n1 := c.Nodes()[0]
	admin := client(n1.RESPAddr)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "viewer", "on", ">secret", "~*", "+@read"},
		{"ACL", "SETUSER", "default", "on", ">adminpw"},
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	base := "http://" + n1.HTTPAddr
	waitFor(t, "node 1 to know the viewer", 10*time.Second, func() bool { return httpStatus(base+"/v1/whoami", "viewer", "secret", "GET") == 200 })
	if got := httpStatus(base+"/v1/nodes/2/decommission", "viewer", "secret", "POST"); got != http.StatusForbidden {
		t.Fatalf("a read-only user's decommission: %d, want 403", got)
	}
	if got := httpStatus(base+"/v1/status", "", "", "GET"); got != http.StatusUnauthorized {
		t.Fatalf("status without credentials: %d, want 401", got)
	}
	var seeds []string
	for _, n := range c.Nodes() {
		seeds = append(seeds, n.RESPAddr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds, Password: "adminpw", ReadTimeout: 6 * time.Second})
	defer cc.Close()
	load := startIncrLoad(ctx, cc, 8, "console")
	defer func() {
		if _, err := load.halt(); err != nil {
			t.Errorf("the load: %v", err)
		}
	}()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1250), chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	signIn := func(user, pass string) {
		t.Helper()
		err := chromedp.Do(bctx,
			chromedp.WaitVisible("#login-form"),
			chromedp.SetValue(`input[name="user"]`, user),
			chromedp.SetValue(`input[name="password"]`, pass),
			chromedp.Click(`#login-form button[type="submit"]`),
			chromedp.WaitVisible("#main"),
			poll(`document.querySelectorAll("#nodes tbody tr").length === 3`),
			poll(`document.querySelectorAll("#events tbody tr").length > 0`),
			poll(`document.querySelectorAll("#ring path").length >= 16`),
		)
		if err != nil {
			dom, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("signed in as %s: %v\npage:\n%s", user, err, dom)
		}
	}

	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/console/")); err != nil {
		t.Fatal(err)
	}
	signIn("viewer", "secret")
	who, err := chromedp.Run(bctx, chromedp.Text("#who"))
	if err != nil || !strings.Contains(who, "read-only") {
		t.Fatalf("viewer is shown as %q (%v)", who, err)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#nodes button").length`)); err != nil || n != 0 {
		t.Fatalf("a read-only user is offered %d actions (%v)", n, err)
	}

	// Signing out reloads the page, which asks again.
	if err := chromedp.Do(bctx, chromedp.Click("#signout"), chromedp.WaitVisible("#login-form")); err != nil {
		t.Fatal(err)
	}
	signIn("default", "adminpw")
	err = chromedp.Do(bctx,
		poll(`document.querySelectorAll("#nodes button").length === 3`),
		// Two polls of the nodes' load draw a line per node.
		poll(`[...document.querySelectorAll("#tput polyline")].filter(l => l.points.numberOfItems >= 2).length === 3`),
		poll(`document.getElementById("ready").textContent === "ready"`),
	)
	if err != nil {
		t.Fatalf("the admin's console: %v", err)
	}
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 / 3", "nodes up", "default · admin", "partitions", "Recent events", "became leader"} {
		if !strings.Contains(text, want) {
			t.Errorf("the console does not show %q:\n%s", want, text)
		}
	}
	shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(t.TempDir(), "console.png")
	if p := os.Getenv("KINTSU_CONSOLE_SCREENSHOT"); p != "" {
		keep = p
	}
	if err := os.WriteFile(keep, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1400 || b.Dy() < 900 {
		t.Fatalf("screenshot of %v", b)
	}
	counts := colorCounts(img)
	led := map[uint64]int{}
	st, err := chromedp.Run(bctx, chromedp.Evaluate[[]uint64](`state.status.partitions.map(p => p.leader)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st {
		led[l]++
	}
	for id, col := range consoleColors {
		// Each partition's arc is some 150 square pixels for every
		// partition of 16; a node leading none is still in the legend.
		if min := 100 + 150*led[id]; counts[col] < min {
			t.Errorf("node %d's colour covers %d pixels; it leads %d partitions, so want at least %d (screenshot: %s)", id, counts[col], led[id], min, keep)
		}
	}
	t.Logf("screenshot: %s; pixels by leader colour: %v", keep, map[uint64]int{1: counts[consoleColors[1]], 2: counts[consoleColors[2]], 3: counts[consoleColors[3]]})
}

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(45*time.Second))
}

func colorCounts(img image.Image) map[color.RGBA]int {
	counts := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}]++
		}
	}
	return counts
}

// httpStatus is the status of a request with Basic credentials (none
// when user is "").
func httpStatus(url, user, pass, method string) int {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
